"""Executor side of a barrier stage: one task = one rank training its epochs in lockstep with its peers.

``run_stage`` is a plain top-level function of one frozen ``StageTask``. Every rank loads the same shipped
parameters, decodes its cached block once, joins the stage's process group through the driver's store and
hands each epoch to the master's stage trainer (``TrainingMaster.stage_trainer``: gradient sharing's
exchange, or parameter averaging's local steps and collective averages). After every epoch each rank
publishes its report to the driver's store, and rank 0 the parameters and updater state, so the driver has
each epoch's state (checkpoints, listeners, the restart point of a failed stage) without the stage ending.
This module knows neither master: the trainer comes from the spec the task carries.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from deepspark.data._arrow import ColumnSpec
from deepspark.errors import DataError
from deepspark.spark import _rendezvous
from deepspark.spark._executor import (
    Minibatches,
    ModelShipment,
    epoch_order,
    freeze_setup,
    load_model,
    partition_index,
    worker_block,
    worker_reading,
)
from deepspark.spark.events import PHASE_GC, PHASE_RENDEZVOUS, PhaseTimer, encode_events

RESULT_SCHEMA = "rank int, epochs int"
GO_WAIT = timedelta(hours=1)  # a synchronous stage waits this long for the driver's verdict on an epoch


class StageTrainer(Protocol):
    """What a training master runs inside a barrier stage, on every rank (see ``TrainingMaster.stage_trainer``).

    Counters are cumulative over the stage; the stage worker reports their per-epoch differences.
    """

    score_sum: float
    steps: int
    examples: int
    seconds: float
    bytes_sent: int
    bytes_received: int
    elements_sent: int

    def agree_max(self, value: int) -> int:
        """The largest ``value`` over the ranks."""

    def train_epoch(self, feeder: Minibatches, longest: int) -> None:
        """Train one epoch of minibatches from ``feeder`` (the longest block holds ``longest`` examples)."""

    def finish(self) -> None:
        """End of the epoch: leave every rank with identical parameters and updater state."""

    def state(self) -> dict[str, float]:
        """What a stage relaunched after this epoch needs besides parameters and updater state (e.g. tau)."""

    def rank_state(self) -> Any:
        """This rank's own flat buffer that the next epoch continues from (threshold residual), or None."""

    def restore_rank_state(self, data: bytes) -> None:
        """Continue from a buffer ``rank_state`` gave at the end of an earlier epoch (a resumed fit)."""

    def close(self) -> None:
        """Release what the trainer attached to the network (hooks)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class StageTask:
    """What every rank of a barrier stage needs (the parameters travel in ``model``'s broadcasts).

    Attributes:
        fit_id: names this fit's blocks in the executors' caches.
        spec: how the training blocks are encoded.
        model: the shipped network (parameters and updater state at the stage's first epoch).
        master: the training master spec; builds each rank's stage trainer.
        state: JSON of the trainer state the stage starts from (``{}`` on a fresh fit).
        epoch: the stage's first epoch; ``epochs``: how many it trains.
        iteration: ``net.iteration`` at the stage's start.
        store_host, store_port: the driver's rendezvous store.
        prefix: this stage attempt's key prefix (an aborted attempt's keys never meet the next one's).
        world_size: ranks in the stage; ``attempt``: the stage attempt (0 first).
        batch_size, prefetch, seed, backend, timeout: from the master's settings.
        collect_stats: record per-step phases; ``worker_stats``: send readings (RSS, GC) for listeners.
        synchronous: after each epoch wait for the driver's verdict (continue or stop: early stopping).
        rank_state_epochs: epochs after which every rank also publishes its own state (``rank_state``: the
            driver checkpoints then).
        resume_ranks: the driver put each rank's state to continue from under ``resume_key(rank)``.
    """

    fit_id: str
    spec: ColumnSpec
    model: ModelShipment
    master: Any
    state: str
    epoch: int
    epochs: int
    iteration: int
    store_host: str
    store_port: int
    prefix: str
    world_size: int
    attempt: int
    batch_size: int
    prefetch: int
    seed: int
    backend: str
    timeout: float
    collect_stats: bool
    worker_stats: bool
    synchronous: bool
    rank_state_epochs: tuple[int, ...] = ()
    resume_ranks: bool = False


def resume_key(rank: int) -> str:
    """Store key (under the stage prefix) of the state rank ``rank`` continues from."""
    return f"resume/r{rank}"


def epoch_key(epoch: int, what: str) -> str:
    """Store key (under the stage prefix) of an epoch's item: ``r<rank>`` (report), ``s<rank>`` (rank state),
    ``params``, ``updater``, ``go``."""
    return f"e{epoch}/{what}"


def driver_key(prefix: str, key: str) -> str:
    """The key a rank's ``PrefixStore(prefix, ...)`` writes ``key`` under, as the driver's store sees it."""
    return f"{prefix}/{key}"


def pack_report(header: dict[str, Any], events: bytes) -> bytes:
    """A rank's epoch report: 4-byte little-endian JSON length, the JSON header, then the encoded events."""
    # NaN/inf allowed: a diverged epoch's score must reach the driver, which stops the fit with TrainingDivergedError
    text = json.dumps(header, separators=(",", ":")).encode()
    return len(text).to_bytes(4, "little") + text + events


def unpack_report(data: bytes) -> tuple[dict[str, Any], bytes]:
    """Inverse of ``pack_report``."""
    n = int.from_bytes(data[:4], "little")
    header = json.loads(data[4 : 4 + n].decode())
    if not isinstance(header, dict):
        raise DataError("a rank's epoch report has no JSON object header")
    return header, data[4 + n :]


_COUNTERS = ("score_sum", "steps", "examples", "seconds", "bytes_sent", "bytes_received", "elements_sent")


def _counters(trainer: StageTrainer) -> dict[str, float]:
    return {name: getattr(trainer, name) for name in _COUNTERS}


def run_stage(task: StageTask, batches: Iterator[Any]) -> Iterator[Any]:
    """``mapInArrow(..., barrier=True)`` body: train ``task.epochs`` epochs as one rank (see module docstring)."""
    import pyarrow as pa

    from deepspark.spark._probes import gc_monitor

    index = partition_index()
    # the stage attempt, not Spark's task attempt: a relaunched stage is a new job whose tasks start at 0
    timer = PhaseTimer("worker", index, enabled=task.collect_stats, attempt=task.attempt)
    t0 = time.time()
    task.model.fetch()
    timer("broadcast_get", t0, task.iteration)
    t0 = time.time()
    net = load_model(task.model, training=True)
    net.iteration, net.epoch = task.iteration, task.epoch
    if net.device.type != "cpu":  # the GPU Spark assigned this task: say so now if the batches will not fit
        net.check_device_memory(task.batch_size)
    timer("model_init", t0, task.iteration)
    t0 = time.time()
    x, y = worker_block(task.fit_id, index, task.spec, task.model.normalizer_json, batches)
    timer("data_fetch", t0, task.iteration, examples=len(x))
    if len(x) == 0:
        raise DataError(
            f"worker {index} received no training rows; with repartition='never' every input partition needs rows"
        )
    t0 = time.time()
    member = _rendezvous.join(
        task.store_host, task.store_port, task.prefix, index, task.world_size, task.backend, task.timeout,
        device=str(net.device),
    )
    timer(PHASE_RENDEZVOUS, t0, task.iteration, backend=member.backend)
    trainer: StageTrainer | None = None
    done = 0
    monitor = gc_monitor()
    try:
        trainer = task.master.stage_trainer(net, member.world_size, json.loads(task.state), timer)
        if task.resume_ranks:
            trainer.restore_rank_state(bytes(member.store.get(resume_key(index))))
        longest = trainer.agree_max(len(x))
        feeder = Minibatches(net, task.spec, x, y, task.batch_size, task.prefetch)
        freeze_setup()
        for epoch in range(task.epoch, task.epoch + task.epochs):
            net.epoch = epoch
            before, gc_before, t_epoch = _counters(trainer), monitor.seconds, time.time()
            feeder.order = epoch_order(task.seed, epoch, index, len(x))
            trainer.train_epoch(feeder, longest)
            trainer.finish()
            gc_seconds = monitor.seconds - gc_before
            timer.record(PHASE_GC, time.time(), gc_seconds, round=net.iteration, epoch_seconds=time.time() - t_epoch)
            _publish(task, member.store, index, net, trainer, before, timer)
            done += 1
            if task.synchronous and epoch + 1 < task.epoch + task.epochs and not _go_on(member.store, epoch):
                break
    finally:
        if trainer is not None:
            trainer.close()
        _rendezvous.leave()
    yield pa.RecordBatch.from_arrays([pa.array([index], pa.int32()), pa.array([done], pa.int32())], ["rank", "epochs"])


def _publish(
    task: StageTask,
    store: Any,
    index: int,
    net: Any,
    trainer: StageTrainer,
    before: dict[str, float],
    timer: PhaseTimer,
) -> None:
    """This rank's epoch report (and, on rank 0, the parameters and updater state) into the driver's store."""
    epoch = net.epoch
    delta = {k: v - before[k] for k, v in _counters(trainer).items()}
    header: dict[str, Any] = {"rank": index, "iteration": net.iteration, "state": trainer.state(), **delta}
    if task.worker_stats:
        reading = worker_reading(
            index, int(delta["examples"]), int(delta["steps"]), float(delta["seconds"]), float(delta["score_sum"])
        )
        header["reading"] = json.loads(reading)
    if epoch in task.rank_state_epochs:  # before the report too
        buffer = trainer.rank_state()
        store.set(epoch_key(epoch, f"s{index}"), b"" if buffer is None else buffer.cpu().numpy().tobytes())
    if index == 0:  # parameters first: the driver takes the epoch once every rank's report is there
        store.set(epoch_key(epoch, "params"), net.flat.params.detach().cpu().numpy().tobytes())
        if net.updater.state.numel():
            store.set(epoch_key(epoch, "updater"), net.updater.state.detach().cpu().numpy().tobytes())
    store.set(epoch_key(epoch, f"r{index}"), pack_report(header, encode_events(timer.drain())))


def _go_on(store: Any, epoch: int) -> bool:
    """Wait for the driver's verdict on ``epoch``: continue (b"1") or stop (b"0")."""
    key = epoch_key(epoch, "go")
    store.wait([key], GO_WAIT)
    return bytes(store.get(key)) == b"1"


__all__ = [
    "RESULT_SCHEMA",
    "StageTask",
    "StageTrainer",
    "driver_key",
    "epoch_key",
    "pack_report",
    "resume_key",
    "run_stage",
    "unpack_report",
]
