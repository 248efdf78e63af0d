"""Driver side of parameter averaging (DL4J's ParameterAveragingTrainingMaster), over either transport.

``transport="collective"`` (default): the workers fit ``averaging_frequency`` minibatches and average their
parameters and updater state with all-reduces inside one barrier stage (``_stage``); no Spark job per round.
``transport="spark"``: each round is one Spark job (broadcast, ``mapInArrow`` over the cached blocks,
``treeAggregate`` of ``RoundResult``s), needs no barrier mode, and Spark retries a failed task by itself.
The two give the same parameters for the same data and seed.
"""

from __future__ import annotations

import math
import os
import socket
import time
import uuid
from functools import partial
from typing import TYPE_CHECKING, Any

from deepspark._failures import spark_failures
from deepspark.spark import _stage
from deepspark.spark._averaging_worker import (
    ROUND_SCHEMA,
    RoundResult,
    RoundTask,
    fit_round_arrow,
    merge_results,
    result_from_row,
)
from deepspark.spark._driver import job_group
from deepspark.spark._executor import ship
from deepspark.spark.events import PHASE_RETRY, PhaseEvent, decode_events

if TYPE_CHECKING:
    from deepspark.spark._driver import FitContext
    from deepspark.spark.masters import ParameterAveraging
    from deepspark.spark.stats import TrainingStats

JOB_GROUP = "deepspark-averaging"
"""Spark job group of the averaging rounds and stages (visible in the Spark UI; lets tools find them)."""


def train(master: ParameterAveraging, ctx: FitContext) -> None:
    """Run ``ctx.epochs`` epochs of averaging rounds over the master's transport, updating ``ctx.net``."""
    if master.transport == "collective":
        _stage.train(ctx, master, group=JOB_GROUP, what="parameter averaging")
    else:
        _train_rounds(master, ctx)


def _train_rounds(master: ParameterAveraging, ctx: FitContext) -> None:
    """The Spark transport: one broadcast + job + treeAggregate per round."""
    sc, net, data = ctx.sc, ctx.net, ctx.data
    bs, freq = master.batch_size_per_worker, master.averaging_frequency
    batches = math.ceil(max(data.counts) / bs)
    rounds = math.ceil(batches / freq)
    host, pid = socket.gethostname(), os.getpid()
    seen_jobs: set[int] = set(sc.statusTracker().getJobIdsForGroup(JOB_GROUP))
    global_round = 0
    end_epoch = net.epoch + ctx.epochs
    while net.epoch < end_epoch:
        for r in range(rounds):
            t_round = time.time()
            t0 = time.time()
            with_updater = master.save_updater and net.updater.state.numel() > 0
            shipment = ship(sc, net, with_updater=with_updater, key=uuid.uuid4().hex)
            ctx.timer("broadcast", t0, global_round)
            task = RoundTask(
                fit_id=data.fit_id,
                spec=data.spec,
                model=shipment,
                epoch=net.epoch,
                round=global_round,
                iteration=net.iteration,
                first_batch=r * freq,
                num_batches=freq,
                batch_size=bs,
                seed=master.seed,
                prefetch=master.worker_prefetch,
                collect_stats=ctx.stats is not None,
                worker_stats=bool(ctx.listeners),
            )
            t0 = time.time()
            try:
                with job_group(sc, JOB_GROUP, f"deepspark averaging round {global_round} (epoch {net.epoch})"), \
                        spark_failures(f"averaging round {global_round} (epoch {net.epoch})"):
                    results = data.blocks.mapInArrow(partial(fit_round_arrow, task), ROUND_SCHEMA).rdd
                    result: RoundResult | None = results.map(result_from_row).treeAggregate(
                        None, merge_results, merge_results, depth=master.aggregation_depth
                    )
            finally:
                shipment.unpersist()
            ctx.timer("map", t0, global_round)
            if ctx.stats is not None:
                _record_retries(sc, seen_jobs, ctx.stats, global_round, host, pid)
            if result is None:
                global_round += 1
                continue
            t0 = time.time()
            result.params /= result.workers  # in place: the aggregated buffer is ours
            if result.updater is not None:
                result.updater /= result.workers
            net.iteration += -(-result.minibatches // result.workers)  # minibatches each worker fitted this round
            ctx.apply_state(result.params, result.updater)  # NaN/inf: TrainingDivergedError
            net.last_score = _score_tensor(result.score_sum / max(result.minibatches, 1))
            ctx.timer("process_params", t0, global_round)
            if ctx.stats is not None and result.events:
                ctx.stats.add(decode_events(result.events))
            ctx.round_done(
                epoch=net.epoch,
                round=global_round,
                index_in_epoch=r,
                rounds_in_epoch=rounds,
                score_sum=result.score_sum,
                minibatches=result.minibatches,
                examples=result.examples,
                started=t_round,
                readings=result.readings,
            )
            global_round += 1
        net.epoch += 1
        if ctx.epoch_done():
            break


def _score_tensor(value: float) -> Any:
    import torch

    return torch.tensor(value)


def _record_retries(sc: Any, seen_jobs: set[int], stats: TrainingStats, rnd: int, host: str, pid: int) -> None:
    """Add a driver ``retry`` event when the round's job had failed tasks or re-attempted stages."""
    tracker = sc.statusTracker()
    failed, attempt = 0, 0
    for job in set(tracker.getJobIdsForGroup(JOB_GROUP)) - seen_jobs:
        seen_jobs.add(job)
        info = tracker.getJobInfo(job)
        for stage_id in info.stageIds if info is not None else []:
            stage = tracker.getStageInfo(stage_id)
            if stage is not None:
                failed += stage.numFailedTasks
                attempt = max(attempt, stage.currentAttemptId)
    if failed or attempt:
        stats.add(
            [
                PhaseEvent(
                    phase=PHASE_RETRY,
                    side="driver",
                    worker=-1,
                    host=host,
                    pid=pid,
                    start=time.time(),
                    duration=0.0,
                    round=rnd,
                    attempt=max(attempt, 1),
                    detail={"failed_tasks": failed, "stage_attempt": attempt},
                )
            ]
        )
