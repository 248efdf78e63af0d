"""The driver loop of parameter averaging: prepare the data once, then broadcast -> fit -> treeAggregate rounds."""

from __future__ import annotations

import logging
import math
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from deepspark.errors import DataError
from deepspark.spark._errors import is_spark_failure, raise_from_spark
from deepspark.spark._worker import RoundResult, RoundTask, add_results, fit_round
from deepspark.spark.masters import GradientSharing, ParameterAveraging
from deepspark.spark.stats import PHASE_RETRY, PhaseEvent, TrainingStats, decode_events
from deepspark.spark.stats import driver_event as stats_driver_event

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from deepspark.data._arrow import ColumnSpec
    from deepspark.nn import Network

log = logging.getLogger("deepspark")

JOB_GROUP = "deepspark-averaging"
"""Spark job group of the averaging rounds (visible in the Spark UI; lets tools find the running round)."""


@dataclass(frozen=True)
class RoundInfo:
    """What the driver reports after each averaging round (for progress bars and logs)."""

    epoch: int
    round: int
    rounds_in_epoch: int
    score: float
    examples: int
    seconds: float
    workers: int


@dataclass
class PreparedData:
    """Training blocks cached on the executors: one partition per worker, converted once per fit.

    ``rdd`` is a Python RDD of block dicts (parameter averaging), or the cached block DataFrame itself
    (gradient sharing, whose barrier stage reads it with ``mapInArrow``); ``counts`` is empty then.
    """

    rdd: Any
    counts: list[int]
    spec: ColumnSpec
    fit_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def unpersist(self) -> None:
        self.rdd.unpersist()


def _block_dict(row: Any) -> dict[str, Any]:
    """A block row as a plain dict of ints and bytes: cached as a Python RDD, it reaches the worker at
    socket speed every round (a DataFrame row would be re-pickled by the JVM each time)."""
    return {"part": int(row["part"]), "n": int(row["n"]), "x": bytes(row["x"]), "y": bytes(row["y"] or b"")}


def _keyed_minibatch(workers: int, row: Any) -> tuple[int, dict[str, Any]]:
    batch = int(row["batch"])
    return batch % workers, {"part": batch, "n": int(row["n"]), "x": bytes(row["x"]), "y": bytes(row["y"] or b"")}


def _identity(key: int) -> int:
    return key


def _value(pair: tuple[int, dict[str, Any]]) -> dict[str, Any]:
    return pair[1]


def _check_against_network(spec: ColumnSpec, net: Network) -> None:
    expected = _input_size(net)
    if expected is not None and spec.n_features != expected:
        raise DataError(
            f"column {spec.features[0]!r} has {spec.n_features} features per row but the network's input "
            f"expects {expected}; check features_col or the config's {getattr(net.config, 'INPUT_FIELD', 'input_type')}"
        )


def _counts(rdd: Any, workers: int) -> list[int]:
    counts = [0] * workers
    for w, n in rdd.mapPartitionsWithIndex(lambda i, rows: [(i, sum(r["n"] for r in rows))]).collect():
        counts[w] = n
    return counts


def prepare(
    df: DataFrame,
    net: Network,
    master: ParameterAveraging | GradientSharing,
    features_col: Any,
    label_col: str,
    workers: int,
    record: Callable[[str, float], None],
) -> PreparedData:
    """Check columns against the network, convert to per-worker blocks through Arrow, cache them."""
    from pyspark import StorageLevel

    from deepspark.data.dataframe import describe_columns, to_blocks
    from deepspark.nn.functional import CLASSIFICATION_LOSSES

    t0 = time.time()
    head = net.heads[0]
    classifier = head.loss in CLASSIFICATION_LOSSES
    try:
        if _recurrent_input(net):
            from deepspark.data.sequences import describe_sequences, sequence_label_kind

            kind = sequence_label_kind(df, label_col, head.recurrent, classifier)
            spec, seen = describe_sequences(df, features_col, label_col, label_kind=kind)
        else:
            spec, seen = describe_columns(
                df,
                features_col,
                label_col,
                label_kind="index" if classifier and not head.recurrent and _is_scalar(df, label_col) else None,
            )
    except Exception as e:
        if is_spark_failure(e):
            raise_from_spark(e, "reading the training columns")
        raise
    _check_against_network(spec, net)
    total = seen.rows or 0  # describe_columns already refused an empty DataFrame
    record("count", t0)
    if total < workers:
        raise DataError(
            f"{total} rows cannot feed {workers} workers; lower num_workers (ParameterAveraging.num_workers) "
            "or add data"
        )
    if seen.label_max is not None and seen.label_max >= head.n_out:
        raise DataError(
            f"label column {label_col!r}: class index {int(seen.label_max)} is out of range for {head.n_out} output "
            f"classes (valid 0..{head.n_out - 1})"
        )
    t0 = time.time()
    strategy: Literal["balanced", "spark_default", "keep"] = getattr(master, "repartition_strategy", "balanced")
    if master.repartition == "never" or (
        master.repartition == "num_partitions_differs" and df.rdd.getNumPartitions() == workers
    ):
        strategy = "keep"
    rdd: Any = None
    try:
        blocks = to_blocks(df, spec, num_partitions=workers, strategy=strategy)
        if isinstance(master, GradientSharing):  # its stage reads the cached blocks through Arrow: no RDD copy
            rdd = blocks.persist(getattr(StorageLevel, master.storage_level))
            rdd.count()
            counts: list[int] = []
        else:
            rdd = blocks.rdd.map(_block_dict, preservesPartitioning=True)
            rdd = rdd.persist(getattr(StorageLevel, master.storage_level))
            counts = _counts(rdd, rdd.getNumPartitions())
    except Exception as e:
        if rdd is not None:
            rdd.unpersist()
        if is_spark_failure(e):
            raise_from_spark(e, "converting the training data")
        raise
    record("repartition", t0)
    return PreparedData(rdd, counts, spec)


def prepare_exported(
    spark: SparkSession,
    path: str,
    net: Network,
    master: ParameterAveraging | GradientSharing,
    workers: int,
    record: Callable[[str, float], None],
) -> PreparedData:
    """Training blocks from minibatches written by ``export_minibatches``: minibatch j goes to worker j % W."""
    from pyspark import StorageLevel

    from deepspark.data.export import read_exported

    t0 = time.time()
    frame, info = read_exported(spark, path)
    _check_against_network(info.spec, net)
    if info.n_batches < workers:
        raise DataError(
            f"the export at {path} holds {info.n_batches} minibatches, fewer than {workers} workers; lower "
            "num_workers or export smaller minibatches"
        )
    rdd = (
        frame.rdd.map(partial(_keyed_minibatch, workers))
        .partitionBy(workers, _identity)
        .map(_value, preservesPartitioning=True)
        .persist(getattr(StorageLevel, master.storage_level))
    )
    counts = _counts(rdd, workers)
    record("repartition", t0)
    return PreparedData(rdd, counts, info.spec)


def _is_scalar(df: DataFrame, column: str) -> bool:
    from pyspark.sql.types import NumericType

    fields = {f.name: f.dataType for f in df.schema.fields}
    return isinstance(fields.get(column), NumericType)


def _recurrent_input(net: Network) -> bool:
    """The network reads sequences (its input type is recurrent): the features column is array<array<...>>."""
    from deepspark.config.graph import GraphConfig

    config = net.config
    types = config.input_types if isinstance(config, GraphConfig) else [getattr(config, "input_type", None)]
    return bool(types) and getattr(types[0], "form", None) == "recurrent"


def _input_size(net: Network) -> int | None:
    config = net.config
    input_type = getattr(config, "input_type", None)
    return None if input_type is None else int(input_type.flat_size())


def train(
    spark: SparkSession,
    net: Network,
    master: ParameterAveraging,
    data: PreparedData,
    epochs: int,
    stats: TrainingStats | None,
    on_round: Callable[[RoundInfo], None] | None = None,
    on_epoch: Callable[[int], None] | None = None,
    listeners: Sequence[Any] = (),
) -> None:
    """Run ``epochs`` epochs of averaging rounds on prepared data, updating ``net`` in place.

    ``listeners`` get ``on_round_done(net, RoundReport)`` after each round (``deepspark.spark.listeners``)."""
    sc = spark.sparkContext
    bs, freq = master.batch_size_per_worker, master.averaging_frequency
    batches = math.ceil(max(data.counts) / bs)
    rounds = math.ceil(batches / freq)
    host, pid = socket.gethostname(), os.getpid()
    config_json = net.config.to_json(indent=None) if net.config is not None else ""

    def driver_event(phase: str, start: float, rnd: int) -> None:
        if stats is not None:
            stats.add([stats_driver_event(phase, start, time.time() - start, rnd)])

    global_round = 0
    seen_jobs: set[int] = set(sc.statusTracker().getJobIdsForGroup(JOB_GROUP))
    for _ in range(epochs):
        for r in range(rounds):
            t_round = time.time()
            n_events = len(stats) if stats is not None else 0  # this round's events follow (for listeners)
            t0 = time.time()
            params_bc = sc.broadcast(_wire_bytes(net.flat.params))
            with_updater = master.save_updater and net.updater.state.numel() > 0
            updater_bc = sc.broadcast(_wire_bytes(net.updater.state)) if with_updater else None
            driver_event("broadcast", t0, global_round)
            task = RoundTask(
                fit_id=data.fit_id,
                config_json=config_json,
                spec=data.spec,
                dtype=str(net.flat.params.dtype).replace("torch.", ""),
                epoch=net.epoch,
                round=global_round,
                iteration=net.iteration,
                first_batch=r * freq,
                num_batches=freq,
                batch_size=bs,
                seed=master.seed,
                with_updater=with_updater,
                collect_stats=stats is not None,
                prefetch=master.worker_prefetch,
                worker_stats=bool(listeners),
                normalizer_json=None if net.normalizer is None else net.normalizer.to_json(),
            )
            t0 = time.time()
            sc.setJobGroup(JOB_GROUP, f"deepspark averaging round {global_round} (epoch {net.epoch})")
            try:
                result: RoundResult | None = data.rdd.mapPartitionsWithIndex(
                    partial(_run_round, task, params_bc, updater_bc)
                ).treeAggregate(None, add_results, add_results, depth=master.aggregation_depth)
            except Exception as e:
                if is_spark_failure(e):
                    raise_from_spark(e, f"averaging round {global_round} (epoch {net.epoch})")
                raise
            finally:
                _clear_job_group(sc)
                params_bc.unpersist()
                if updater_bc is not None:
                    updater_bc.unpersist()
            driver_event("map", t0, global_round)
            if stats is not None:
                _record_retries(sc, seen_jobs, stats, global_round, host, pid)
            if result is None:
                global_round += 1
                continue
            t0 = time.time()
            n_workers, psum, usum, score_sum, n_batches, n_examples, events, readings = result
            psum /= n_workers  # in place: the aggregated buffer is ours, no second parameter-sized copy
            net.set_params(psum)
            if usum is not None:
                usum /= n_workers
                net.set_updater_state(usum)
            net.iteration += -(-n_batches // n_workers)  # minibatches each worker fitted this round
            net.last_score = _score_tensor(score_sum / max(n_batches, 1))
            driver_event("process_params", t0, global_round)
            if stats is not None:
                for blob in events:
                    stats.add(decode_events(blob))
            if listeners:
                _report_round(listeners, net, global_round, score_sum, n_batches, n_examples, t_round, readings,
                              stats.events()[n_events:] if stats is not None else [])
            if on_round is not None:
                on_round(
                    RoundInfo(
                        net.epoch,
                        r,
                        rounds,
                        score_sum / max(n_batches, 1),
                        n_examples,
                        time.time() - t_round,
                        n_workers,
                    )
                )
            global_round += 1
        net.epoch += 1
        if on_epoch is not None:
            on_epoch(net.epoch)


def _report_round(
    listeners: Sequence[Any],
    net: Network,
    rnd: int,
    score_sum: float,
    n_batches: int,
    n_examples: int,
    t_round: float,
    readings: tuple[bytes, ...],
    events: list[PhaseEvent],
) -> None:
    """Call the listeners' ``on_round_done`` with the round's numbers and the workers' JSON readings."""
    import json

    from deepspark.spark.listeners import RoundReport, notify

    workers = tuple(sorted((json.loads(r) for r in readings), key=lambda w: int(w.get("worker", 0))))
    report = RoundReport(
        iteration=net.iteration,
        epoch=net.epoch,
        round=rnd,
        score=score_sum / max(n_batches, 1),
        examples=n_examples,
        minibatches=n_batches,
        seconds=time.time() - t_round,
        workers=workers,
        events=tuple(events),
        params=net.flat.params.detach().numpy(),
    )
    notify(listeners, "on_round_done", net, report)


def _clear_job_group(sc: Any) -> None:
    """Leave the thread's later jobs (the user's, or the next fit's preparation) out of the round group."""
    for key in ("spark.jobGroup.id", "spark.job.description"):
        sc.setLocalProperty(key, None)


def _wire_bytes(t: Any) -> bytes:
    """A flat buffer as raw bytes in its own dtype (one copy)."""
    return bytes(t.detach().numpy().tobytes())


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
        now = time.time()
        stats.add(
            [
                PhaseEvent(
                    phase=PHASE_RETRY,
                    side="driver",
                    worker=-1,
                    host=host,
                    pid=pid,
                    start=now,
                    duration=0.0,
                    round=rnd,
                    attempt=max(attempt, 1),
                    detail={"failed_tasks": failed, "stage_attempt": attempt},
                )
            ]
        )


def _run_round(task: RoundTask, params_bc: Any, updater_bc: Any, index: int, rows: Iterator[Any]) -> Iterator[Any]:
    return fit_round(task, params_bc, updater_bc, index, rows)


def _score_tensor(value: float) -> Any:
    import torch

    return torch.tensor(value)


def latest_checkpoint(path: str | Path) -> Path:
    """The archive to resume from: ``path`` itself, or the newest ``*.zip`` in a checkpoint folder."""
    p = Path(path)
    if p.is_dir():
        found = sorted(p.glob("*.zip"), key=lambda f: f.stat().st_mtime)
        if not found:
            raise DataError(f"resume_from: no checkpoint archives (*.zip) in {p}")
        return found[-1]
    if not p.exists():
        raise DataError(f"resume_from: {p} does not exist")
    return p
