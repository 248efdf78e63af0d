"""The driver loop of gradient sharing: one barrier stage per ``epochs_per_stage`` epochs (default 1), retried
from the stage's start on failure.

The driver holds the state at every stage boundary (parameters, updater state, tau), so a stage that fails
(a dead executor, a stuck peer caught by the collective timeout) is relaunched from exactly that state, up to
``spark.stage.maxConsecutiveAttempts`` times. A barrier result stage is never retried by Spark itself
("Could not recover from a failed barrier ResultStage"), which is why the retry lives here.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from deepspark.errors import ConfigError, DistributedTrainingError
from deepspark.spark._averaging import (
    PreparedData,
    RoundInfo,
    _clear_job_group,
    _report_round,
    _score_tensor,
    _wire_bytes,
)
from deepspark.spark._errors import is_spark_failure, raise_from_spark, root_cause
from deepspark.spark._rendezvous import DriverStore
from deepspark.spark._sharing_worker import RESULT_SCHEMA, StageResult, StageTask, run_arrow_stage
from deepspark.spark.masters import GradientSharing
from deepspark.spark.stats import PHASE_RETRY, TrainingStats, decode_events, driver_event

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from deepspark.nn import Network

log = logging.getLogger("deepspark")

JOB_GROUP = "deepspark-sharing"
"""Spark job group of the gradient-sharing stages."""

SLOT_WAIT_S = 5.0
"""How long the first launch waits for enough task slots (executors still registering) before failing."""

RETRY_SLOT_WAIT_S = 30.0
"""How long a relaunch waits for task slots (a lost executor being replaced takes ~5-10 s) before failing."""


def task_slots(sc: Any) -> int:
    """Tasks the cluster can run at once right now, as Spark's own barrier check counts them."""
    jsc = sc._jsc.sc()
    try:
        profile = jsc.resourceProfileManager().defaultResourceProfile()
        return int(jsc.maxNumConcurrentTasks(profile))
    except Exception:  # an API Spark keeps private: fall back to the default parallelism
        return int(sc.defaultParallelism)


def wait_for_slots(sc: Any, needed: int, deadline_s: float) -> None:
    """Poll until ``needed`` task slots exist or ``deadline_s`` passes; then fail with the settings to change."""
    deadline = time.monotonic() + deadline_s
    slots = task_slots(sc)
    while slots < needed and time.monotonic() < deadline:
        time.sleep(0.25)
        slots = task_slots(sc)
    if slots < needed:
        raise DistributedTrainingError(
            f"the barrier stage needs {needed} task slots but the cluster offers {slots}: lower "
            "GradientSharing.num_workers or add executor cores (local[N], spark.executor.cores, "
            "spark.executor.instances, spark.task.cpus)"
        )


def check_master(master: GradientSharing) -> None:
    """Refuse settings this build cannot run, before any data is converted."""
    if master.backend == "nccl":
        raise ConfigError(
            "NCCL moves CUDA tensors only and deepspark's Network computes on the CPU; use 'gloo' or 'auto'",
            "backend",
        )


def _driver_host(sc: Any) -> str:
    return str(sc.getConf().get("spark.driver.host", None) or os.environ.get("SPARK_LOCAL_IP") or "127.0.0.1")


def train(
    spark: SparkSession,
    net: Network,
    master: GradientSharing,
    data: PreparedData,
    epochs: int,
    stats: TrainingStats | None,
    on_round: Callable[[RoundInfo], None] | None = None,
    on_epoch: Callable[[int], None] | None = None,
    listeners: Sequence[Any] = (),
) -> None:
    """Run ``epochs`` epochs, one barrier stage per ``master.epochs_per_stage`` of them, updating ``net`` in place."""
    sc = spark.sparkContext
    check_master(master)
    frame = data.rdd  # the cached block DataFrame (see _averaging.prepare)
    workers = frame.rdd.getNumPartitions()
    wait_for_slots(sc, workers, SLOT_WAIT_S)
    max_attempts = int(sc.getConf().get("spark.stage.maxConsecutiveAttempts", "4"))
    config_json = net.config.to_json(indent=None) if net.config is not None else ""
    dtype = str(net.flat.params.dtype).replace("torch.", "")
    store = DriverStore(_driver_host(sc), master.collective_timeout)
    tau: float | None = None

    def record(phase: str, start: float, step: int, attempt: int = 0, **detail: Any) -> None:
        if stats is not None:
            stats.add([driver_event(phase, start, time.time() - start, step, attempt, **detail)])

    try:
        end_epoch = net.epoch + epochs
        while net.epoch < end_epoch:
            stage_epochs = min(master.epochs_per_stage, end_epoch - net.epoch)
            attempt = 0
            t_epoch = time.time()
            while True:
                t0 = time.time()
                params_bc = sc.broadcast(_wire_bytes(net.flat.params))
                updater_bc = sc.broadcast(_wire_bytes(net.updater.state)) if net.updater.state.numel() else None
                record("broadcast", t0, net.iteration)
                task = StageTask(
                    fit_id=data.fit_id,
                    config_json=config_json,
                    spec=data.spec,
                    dtype=dtype,
                    master=master,
                    epoch=net.epoch,
                    iteration=net.iteration,
                    tau=tau,
                    store_host=store.host,
                    store_port=store.port,
                    prefix=f"{data.fit_id}/epoch{net.epoch}/attempt{attempt}/",
                    world_size=workers,
                    attempt=attempt,
                    collect_stats=stats is not None,
                    worker_stats=bool(listeners),
                    normalizer_json=None if net.normalizer is None else net.normalizer.to_json(),
                    epochs=stage_epochs,
                )
                t0 = time.time()
                sc.setJobGroup(JOB_GROUP, f"deepspark gradient sharing, epoch {net.epoch} (attempt {attempt})")
                try:
                    stage = frame.mapInArrow(
                        partial(run_arrow_stage, task, params_bc, updater_bc), RESULT_SCHEMA, barrier=True
                    )
                    results = [StageResult(**row.asDict()) for row in stage.collect()]
                    record("map", t0, net.iteration, attempt)
                    break
                except Exception as e:
                    if not is_spark_failure(e) or "deepspark.errors.DataError" in str(e):
                        if is_spark_failure(e):
                            raise_from_spark(e, f"gradient sharing, epoch {net.epoch}")
                        raise
                    attempt += 1
                    cause = root_cause(e)
                    record(PHASE_RETRY, time.time(), net.iteration, attempt, cause=cause[:200])
                    if attempt >= max_attempts:
                        raise DistributedTrainingError(
                            f"gradient sharing, epoch {net.epoch}: the barrier stage failed {attempt} times "
                            f"(spark.stage.maxConsecutiveAttempts = {max_attempts}); last cause: {cause}"
                        ) from e
                    log.warning(
                        "gradient sharing: epoch %d attempt %d failed (%s); relaunching from the epoch's start",
                        net.epoch,
                        attempt,
                        cause,
                    )
                    wait_for_slots(sc, workers, RETRY_SLOT_WAIT_S)
                finally:
                    _clear_job_group(sc)
                    params_bc.unpersist()
                    if updater_bc is not None:
                        updater_bc.unpersist()
            t0 = time.time()
            n_events = len(stats) if stats is not None else 0
            tau = _absorb(net, results, stats, stage_epochs)
            record("process_params", t0, net.iteration)
            if listeners:  # one report per stage: the driver sees the parameters only at stage ends
                _report_round(
                    listeners,
                    net,
                    net.epoch - 1,
                    sum(r.score_sum for r in results),
                    sum(r.steps for r in results),
                    sum(r.examples for r in results),
                    t_epoch,
                    tuple(r.reading for r in results if r.reading),
                    stats.events()[n_events:] if stats is not None else [],
                )
            if on_round is not None:
                score = float(net.last_score) if net.last_score is not None else float("nan")
                examples = sum(r.examples for r in results)
                on_round(RoundInfo(net.epoch - 1, 0, 1, score, examples, time.time() - t_epoch, workers))
            if on_epoch is not None:
                on_epoch(net.epoch)
    finally:
        store.close()


def _absorb(net: Network, results: list[StageResult], stats: TrainingStats | None, epochs: int) -> float:
    """Take rank 0's parameters and the ranks' scores and events into the driver's network; returns tau."""
    lead = next(r for r in results if r.rank == 0)
    dtype = net.flat.params.detach().numpy().dtype
    if lead.params is None:
        raise DistributedTrainingError("rank 0 returned no parameters at the end of the stage; this is a bug")
    net.set_params(np.frombuffer(lead.params, dtype=dtype))
    if lead.updater:
        net.set_updater_state(np.frombuffer(lead.updater, dtype=dtype))
    steps = lead.steps
    score = sum(r.score_sum for r in results) / max(1, sum(r.steps for r in results))
    net.iteration += steps
    net.last_score = _score_tensor(score)
    net.epoch += epochs
    if stats is not None:
        for r in results:
            if r.events:
                stats.add(decode_events(r.events))
    return lead.tau
