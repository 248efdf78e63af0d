"""Driver side of barrier-stage training: one stage trains the whole fit, each epoch's state streams back.

The stage runs on a background thread while the driver's main thread takes each epoch's state from the
rendezvous store as soon as the ranks publish it (``_stage_worker``): rank 0's parameters and updater state,
every rank's counters, events and readings. The driver applies them to its network, reports to listeners and
runs the epoch callbacks (checkpoints), so nothing waits for a stage to end, and nothing pays a Spark job, a
broadcast or a re-read of the cached blocks per epoch. With ``synchronous`` epochs (early stopping) the ranks
wait for the driver's verdict after each epoch.

A failed stage (a lost executor, a peer stuck past ``collective_timeout``) is relaunched from the last epoch
the driver took, up to ``spark.stage.maxConsecutiveAttempts`` times; Spark never retries a failed barrier
result stage by itself. Ctrl-C on the driver cancels the stage's job group and returns at once.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from deepspark._failures import is_spark_failure, root_cause, translate
from deepspark.errors import DataError, DeepSparkError, DistributedTrainingError
from deepspark.spark._executor import ship
from deepspark.spark._rendezvous import DriverStore
from deepspark.spark._stage_worker import (
    RESULT_SCHEMA,
    StageTask,
    driver_key,
    epoch_key,
    resume_key,
    run_stage,
    unpack_report,
)
from deepspark.spark._trainer_state import TrainerState, host_dtype
from deepspark.spark.events import PHASE_RETRY, decode_events, driver_event

if TYPE_CHECKING:
    from deepspark.spark._driver import FitContext

log = logging.getLogger("deepspark")

SLOT_WAIT_S = 5.0
"""How long the first launch waits for enough task slots (executors still registering) before failing."""

RETRY_SLOT_WAIT_S = 30.0
"""How long a relaunch waits for task slots (a lost executor being replaced takes ~5-10 s) before failing."""

POLL_S = 0.005
"""How often the driver looks for the next epoch's state while the stage runs."""


def task_slots(sc: Any) -> int:
    """Tasks the cluster can run at once right now, as Spark's own barrier check counts them."""
    jsc = sc._jsc.sc()
    try:
        profile = jsc.resourceProfileManager().defaultResourceProfile()
        return int(jsc.maxNumConcurrentTasks(profile))
    except Exception:  # an API Spark keeps private: fall back to the default parallelism
        return int(sc.defaultParallelism)


def wait_for_slots(sc: Any, needed: int, deadline_s: float, master: str) -> None:
    """Poll until ``needed`` task slots exist or ``deadline_s`` passes; then fail with the settings to change."""
    deadline = time.monotonic() + deadline_s
    slots = task_slots(sc)
    while slots < needed and time.monotonic() < deadline:
        time.sleep(0.25)
        slots = task_slots(sc)
    if slots < needed:
        raise DistributedTrainingError(
            f"the barrier stage needs {needed} task slots but the cluster offers {slots}: lower "
            f"{master}.num_workers or add executor cores (local[N], spark.executor.cores, "
            "spark.executor.instances, spark.task.cpus)"
        )


def executor_addresses(sc: Any) -> set[str]:
    """``host:port`` of every block manager registered with the driver now (executors, and the driver's own)."""
    try:
        infos = sc._jsc.sc().statusTracker().getExecutorInfos()
        return {f"{i.host()}:{i.port()}" for i in infos if int(i.port()) > 0}  # port 0: not registered yet
    except Exception:  # a Spark whose status API changed: the cause then comes from the failure's text alone
        return set()


def driver_host(sc: Any) -> str:
    """The address executors reach the driver at (where the rendezvous store listens)."""
    return str(sc.getConf().get("spark.driver.host", None) or os.environ.get("SPARK_LOCAL_IP") or "127.0.0.1")


class _StageRun:
    """The stage's Spark action on its own thread, so the driver's main thread can take epoch states meanwhile."""

    def __init__(self, ctx: FitContext, frame: Any, group: str, description: str) -> None:
        from pyspark import InheritableThread

        self.ctx, self.group = ctx, group
        self.error: BaseException | None = None
        self.rows: list[Any] = []
        self.finished = threading.Event()

        def action() -> None:
            try:
                ctx.sc.setJobGroup(group, description, interruptOnCancel=True)
                self.rows = frame.collect()
            except BaseException as e:  # handed to the main thread
                self.error = e
            finally:
                self.finished.set()

        self.thread = InheritableThread(target=action, daemon=True)
        self.thread.start()

    def cancel(self) -> None:
        """Cancel the stage (Ctrl-C, a failing callback); returns within a second or two, done or not."""
        self.ctx.sc.cancelJobGroup(self.group)
        self.finished.wait(2)


@dataclass
class _Epoch:
    """One epoch as the ranks published it (``ranks``: each rank's own state, when asked for and kept)."""

    params: bytes
    updater: bytes | None
    reports: list[tuple[dict[str, Any], bytes]]
    ranks: tuple[bytes, ...] | None = None


def _take_epoch(store: DriverStore, task: StageTask, epoch: int, with_updater: bool) -> _Epoch | None:
    """The epoch's published items, removed from the store; None while some rank has not published yet."""
    prefix, world = task.prefix, task.world_size
    keys = [driver_key(prefix, epoch_key(epoch, f"r{r}")) for r in range(world)]
    if not store.check(keys):
        return None
    params = store.take(driver_key(prefix, epoch_key(epoch, "params")))
    updater = store.take(driver_key(prefix, epoch_key(epoch, "updater"))) if with_updater else None
    reports = [unpack_report(store.take(k)) for k in keys]
    ranks = None
    if epoch in task.rank_state_epochs:
        ranks = tuple(store.take(driver_key(prefix, epoch_key(epoch, f"s{r}"))) for r in range(world))
        if not any(ranks):  # the master's ranks keep nothing of their own
            ranks = None
    return _Epoch(params, updater, reports, ranks)


def _held_ranks(held: TrainerState | None, epoch: int, world: int, dtype: Any) -> tuple[bytes, ...] | None:
    """Each rank's state to continue ``epoch`` from, if the driver holds it for that epoch and world size."""
    if held is None or held.epoch != epoch or not held.ranks:
        return None
    if len(held.ranks) != world:
        log.warning(
            "the trainer state of epoch %d holds %d ranks' buffers but this fit runs %d workers: the ranks start "
            "from empty buffers (residuals); resume with num_workers=%d to continue exactly",
            epoch, len(held.ranks), world, len(held.ranks),
        )
        return None
    return tuple(np.ascontiguousarray(r, dtype=dtype).tobytes() for r in held.ranks)


def _absorb(ctx: FitContext, master: Any, epoch: int, taken: _Epoch, t_epoch: float) -> dict[str, float]:
    """Apply one epoch's state to the driver's network, record its events, report it; returns the trainer state."""
    net = ctx.net
    dtype = host_dtype(net)
    headers = [h for h, _ in taken.reports]
    lead = next(h for h in headers if h["rank"] == 0)
    steps = sum(int(h["steps"]) for h in headers)
    score_sum = sum(float(h["score_sum"]) for h in headers)
    net.iteration = int(lead["iteration"])
    updater = None if taken.updater is None else np.frombuffer(taken.updater, dtype=dtype)
    ctx.apply_state(np.frombuffer(taken.params, dtype=dtype), updater)  # NaN/inf: TrainingDivergedError
    net.epoch = epoch + 1
    net.last_score = _score_tensor(score_sum / max(steps, 1))
    if ctx.stats is not None:
        for _, events in taken.reports:
            if events:
                ctx.stats.add(decode_events(events))
    readings = tuple(json.dumps(h["reading"]).encode() for h in headers if "reading" in h)
    ctx.round_done(
        epoch=epoch,
        round=epoch,
        index_in_epoch=0,
        rounds_in_epoch=1,
        score_sum=score_sum,
        minibatches=steps,
        examples=sum(int(h["examples"]) for h in headers),
        started=t_epoch,
        readings=readings,
    )
    state: dict[str, float] = dict(lead.get("state") or {})
    master.review_epoch(epoch, headers, net.flat.n_trainable)
    return state


def _score_tensor(value: float) -> Any:
    import torch

    return torch.tensor(value)


def train(ctx: FitContext, master: Any, *, group: str, what: str) -> None:
    """Train ``ctx.epochs`` epochs in barrier stages of ``master.epochs_per_stage`` epochs (None: all of them).

    ``master`` is the training master spec: it builds each rank's stage trainer on the executors and says
    the stage's settings (``batch_size_per_worker``, ``worker_prefetch``, ``seed``, ``backend``,
    ``collective_timeout``, ``epochs_per_stage``).
    """
    sc = ctx.sc
    frame = ctx.data.blocks
    workers = ctx.data.workers
    name = type(master).__name__
    wait_for_slots(sc, workers, SLOT_WAIT_S, name)
    max_attempts = int(sc.getConf().get("spark.stage.maxConsecutiveAttempts", "4"))
    store = DriverStore(driver_host(sc), master.collective_timeout)
    net = ctx.net
    dtype = host_dtype(net)
    resumed = ctx.trainer_state  # a resumed checkpoint's (tau, residuals), when it belongs to this epoch
    state: dict[str, float] = dict(resumed.scalars) if resumed is not None and resumed.epoch == net.epoch else {}
    end_epoch = net.epoch + ctx.epochs
    with_updater = bool(net.updater.state.numel())
    stopped = False
    launch = 0
    try:
        while net.epoch < end_epoch and not stopped:
            attempt = 0  # consecutive failed attempts without an epoch of progress
            while True:  # one stage attempt per pass; a failure relaunches from the driver's last epoch
                per_stage = 1 if ctx.epoch_per_stage else master.epochs_per_stage or (end_epoch - net.epoch)
                stage_epochs = min(per_stage, end_epoch - net.epoch)
                prefix = f"{ctx.data.fit_id}/launch{launch}"
                launch += 1
                launched_at = net.epoch
                t0 = time.time()
                shipment = ship(sc, net, with_updater=True, key=prefix)
                ranks = _held_ranks(ctx.trainer_state, net.epoch, workers, dtype)
                for rank, data in enumerate(ranks or ()):
                    store.set(driver_key(prefix, resume_key(rank)), data)
                ctx.timer("broadcast", t0, net.iteration)
                executors = executor_addresses(sc)
                task = StageTask(
                    fit_id=ctx.data.fit_id,
                    spec=ctx.data.spec,
                    model=shipment,
                    master=master,
                    state=json.dumps(state),
                    epoch=net.epoch,
                    epochs=stage_epochs,
                    iteration=net.iteration,
                    store_host=store.host,
                    store_port=store.port,
                    prefix=prefix,
                    world_size=workers,
                    attempt=attempt,
                    batch_size=master.batch_size_per_worker,
                    prefetch=master.worker_prefetch,
                    seed=master.seed,
                    backend=master.backend,
                    timeout=master.collective_timeout,
                    collect_stats=ctx.stats is not None,
                    worker_stats=bool(ctx.listeners),
                    synchronous=ctx.synchronous,
                    rank_state_epochs=tuple(range(net.epoch, net.epoch + stage_epochs)),  # every epoch: see _sharing
                    resume_ranks=ranks is not None,
                )
                stage = frame.mapInArrow(partial(run_stage, task), RESULT_SCHEMA, barrier=True)
                t_stage = time.time()
                last = net.epoch + stage_epochs - 1
                run = _StageRun(ctx, stage, group, f"deepspark {what}, epochs {net.epoch}..{last}")
                try:
                    stopped, state = _follow(ctx, master, run, store, task, with_updater, state)
                except BaseException:
                    run.cancel()
                    raise
                finally:
                    shipment.unpersist()
                    for rank in range(len(ranks or ())):
                        store.delete(driver_key(prefix, resume_key(rank)))
                ctx.timer("map", t_stage, net.iteration, attempt=attempt)
                if run.error is None:
                    break
                error = run.error
                if not is_spark_failure(error):
                    raise error
                translated = translate(error, f"{what}, epoch {net.epoch}")
                if isinstance(translated, DataError) or not isinstance(translated, DistributedTrainingError):
                    raise translated from None
                attempt = attempt + 1 if net.epoch == launched_at else 1
                cause = root_cause(error)
                gone = sorted(executors - executor_addresses(sc))
                if gone and not cause.startswith("executor "):  # a peer's broken connection reported first
                    cause = f"executor at {', '.join(gone)} was lost during the stage ({cause})"
                if ctx.timer.enabled:  # the attempt goes in the event's own field, where retried attempts are read
                    ctx.timer.events.append(
                        driver_event(PHASE_RETRY, time.time(), 0.0, net.iteration, attempt, cause=cause[:200])
                    )
                if attempt >= max_attempts:
                    raise DistributedTrainingError(
                        f"{what}, epoch {net.epoch}: the barrier stage failed {attempt} times in a row "
                        f"(spark.stage.maxConsecutiveAttempts = {max_attempts}); last cause: {cause}. Find out why "
                        "it fails (the executors' logs), or allow more attempts with a higher "
                        "spark.stage.maxConsecutiveAttempts; resume_from a checkpoint_dir continues from the last "
                        "checkpointed epoch"
                    ) from error
                log.warning(
                    "%s: epoch %d attempt %d failed (%s); relaunching from the driver's state", what, net.epoch,
                    attempt, cause,
                )
                if net.epoch >= end_epoch or stopped:  # it failed after publishing its last epoch
                    break
                try:
                    wait_for_slots(sc, workers, RETRY_SLOT_WAIT_S, name)
                except DistributedTrainingError as lost:  # no replacement executor in time: say what was lost
                    raise DistributedTrainingError(
                        f"{what}, epoch {net.epoch}: cannot relaunch after attempt {attempt} failed ({cause}): {lost}"
                    ) from error
    finally:
        store.close()


def _follow(
    ctx: FitContext,
    master: Any,
    run: _StageRun,
    store: DriverStore,
    task: StageTask,
    with_updater: bool,
    state: dict[str, float],
) -> tuple[bool, dict[str, float]]:
    """Take each epoch's state as the ranks publish it until the stage ends; returns (stopped early, state).

    ``ctx.trainer_state`` follows: after each epoch it holds the trainer state (each rank's own buffers too
    when the task asked for them that epoch), which the epoch callback checkpoints."""
    net = ctx.net
    first, prefix = net.epoch, task.prefix
    dtype = host_dtype(net)
    t_epoch = time.time()
    for epoch in range(first, first + task.epochs):
        while True:
            taken = _take_epoch(store, task, epoch, with_updater)
            if taken is not None:
                break
            if run.finished.is_set():
                taken = _take_epoch(store, task, epoch, with_updater)  # published just before the end
                if taken is not None:
                    break
                if run.error is None:
                    raise DeepSparkError(f"the barrier stage ended without publishing epoch {epoch}; this is a bug")
                return False, state
            run.finished.wait(POLL_S)
        t0 = time.time()
        state = _absorb(ctx, master, epoch, taken, t_epoch)
        ranks = tuple(np.frombuffer(r, dtype=dtype) for r in taken.ranks) if taken.ranks is not None else ()
        ctx.trainer_state = TrainerState(epoch=net.epoch, scalars=dict(state), ranks=ranks)
        ctx.timer("process_params", t0, net.iteration)
        stop = ctx.epoch_done()
        if ctx.synchronous and epoch + 1 < first + task.epochs:
            store.set(driver_key(prefix, epoch_key(epoch, "go")), b"0" if stop else b"1")
        t_epoch = time.time()
        if stop:
            run.finished.wait()
            return True, state
    run.finished.wait()
    return False, state


__all__ = ["driver_host", "task_slots", "train", "wait_for_slots"]
