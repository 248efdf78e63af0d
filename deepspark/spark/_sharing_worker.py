"""Executor side of gradient sharing: one barrier task = one rank training its epochs in lockstep with its peers.

``run_stage`` is a plain top-level function of one frozen ``StageTask``. Every rank starts from the same
broadcast parameters, runs the same number of steps (agreed in the group, so an unequal partition never
leaves a peer waiting in a collective), and applies the same sum of encoded updates, so the replicas stay
identical; rank 0 sends the parameters back at the end of the stage. The per-step exchange itself lives in
``_sharing_trainer``.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from deepspark.data._arrow import ColumnSpec, blocks_to_arrays
from deepspark.data.dataset import DataSet
from deepspark.errors import DataError
from deepspark.spark import _rendezvous
from deepspark.spark._sharing_trainer import Recorder, Trainer
from deepspark.spark._worker import (
    _DATA,
    _tensors,
    epoch_order,
    network_from_broadcast,
    normalized,
    worker_reading,
)
from deepspark.spark.masters import GradientSharing
from deepspark.spark.stats import encode_events

PHASE_RENDEZVOUS = "rendezvous"


@dataclass(frozen=True)
class StageTask:
    """What every rank needs for one epoch (the parameters travel as a broadcast)."""

    fit_id: str
    config_json: str
    spec: ColumnSpec
    dtype: str
    master: GradientSharing
    epoch: int  # the first epoch of the stage
    iteration: int
    tau: float | None  # the threshold the previous epoch ended with; None = the algorithm's first
    store_host: str
    store_port: int
    prefix: str  # unique per stage attempt: keys of an aborted attempt never meet the next one's
    world_size: int
    attempt: int
    collect_stats: bool
    worker_stats: bool = False  # send this rank's readings (memory, GC, throughput) back as JSON for listeners
    normalizer_json: str | None = None  # the network's normalizer, applied once when the block is decoded
    epochs: int = 1  # epochs this stage trains (GradientSharing.epochs_per_stage, fewer for the last stage)


RESULT_SCHEMA = (
    "rank int, params binary, updater binary, score_sum double, steps long, examples long, tau double, "
    "bytes_sent long, bytes_received long, elements_sent long, events binary, reading binary"
)


@dataclass(frozen=True)
class StageResult:
    """One rank's report; only rank 0 carries the parameters and updater state."""

    rank: int
    params: bytes | None
    updater: bytes | None
    score_sum: float
    steps: int
    examples: int
    tau: float
    bytes_sent: int
    bytes_received: int
    elements_sent: int
    events: bytes
    reading: bytes = b""  # worker_reading JSON, for driver-side listeners


def run_arrow_stage(task: StageTask, params_bc: Any, updater_bc: Any, batches: Iterator[Any]) -> Iterator[Any]:
    """``mapInArrow(..., barrier=True)`` body: the cached blocks arrive as Arrow batches, the report leaves as one."""
    import pyarrow as pa
    from pyspark import TaskContext

    ctx = TaskContext.get()
    index = ctx.partitionId() if ctx is not None else 0
    if (task.fit_id, index) in _DATA:  # converted in an earlier epoch: only drain what the JVM sends
        rows: Iterator[Any] = iter(())
        for _ in batches:
            pass
    else:
        rows = (row for batch in batches for row in batch.to_pylist())
    for result in run_stage(task, params_bc, updater_bc, index, rows):
        yield pa.RecordBatch.from_pylist([dataclasses.asdict(result)], schema=_result_arrow_schema())


def _result_arrow_schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            ("rank", pa.int32()),
            ("params", pa.binary()),
            ("updater", pa.binary()),
            ("score_sum", pa.float64()),
            ("steps", pa.int64()),
            ("examples", pa.int64()),
            ("tau", pa.float64()),
            ("bytes_sent", pa.int64()),
            ("bytes_received", pa.int64()),
            ("elements_sent", pa.int64()),
            ("events", pa.binary()),
            ("reading", pa.binary()),
        ]
    )


def _local_data(task: StageTask, index: int, rows: Iterator[Any]) -> tuple[np.ndarray, np.ndarray]:
    """This partition's block, converted once per fit and kept in the Python worker across epochs."""
    key = (task.fit_id, index)
    data = _DATA.get(key)
    if data is None:
        for stale in [k for k in _DATA if k[0] != task.fit_id]:
            del _DATA[stale]
        x, y = blocks_to_arrays(rows, task.spec)
        if y is None:
            raise DataError("the training blocks carry no labels; pass label_col")
        data = (normalized(x, task.spec, task.normalizer_json), y)
        _DATA[key] = data
    else:
        for _ in rows:  # drain what the JVM sends, or the Python worker is not reused
            pass
    return data


def _minibatches(
    x: np.ndarray, y: np.ndarray, order: np.ndarray, steps: int, bs: int, longest: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``steps`` minibatches in epoch order; a shorter partition wraps around so every rank runs every step."""
    n = len(order)
    for s in range(steps):
        positions = np.arange(s * bs, min((s + 1) * bs, longest)) % n
        idx = order[positions]
        yield x[idx], y[idx]


def run_stage(
    task: StageTask, params_bc: Any, updater_bc: Any, index: int, rows: Iterator[Any]
) -> Iterator[StageResult]:
    """Train one epoch as rank ``index`` of the barrier stage and report (see module docstring)."""

    from deepspark.data.iterators import AsyncIterator

    record = Recorder(task.collect_stats, index, task.attempt)
    net = network_from_broadcast(
        task.config_json, task.dtype, params_bc, updater_bc, lambda phase, t0: record(phase, t0, task.iteration)
    )
    net.iteration, net.epoch = task.iteration, task.epoch

    t0 = time.time()
    x_all, y_all = _local_data(task, index, rows)
    record("data_fetch", t0, task.iteration, examples=len(x_all))
    if len(x_all) == 0:
        raise DataError(
            f"worker {index} received no training rows; with repartition='never' every input partition needs rows"
        )

    t0 = time.time()
    master = task.master
    member = _rendezvous.join(
        task.store_host,
        task.store_port,
        task.prefix,
        index,
        task.world_size,
        master.backend,
        master.collective_timeout,
    )
    record(PHASE_RENDEZVOUS, t0, task.iteration, backend=member.backend)
    trainer: Trainer | None = None
    try:
        trainer = Trainer(net, master, member.world_size, task.tau, record)
        longest = trainer.agree_max(len(x_all))
        bs = master.batch_size_per_worker
        steps = math.ceil(longest / bs)
        for epoch in range(task.epoch, task.epoch + task.epochs):
            net.epoch = epoch
            order = epoch_order(master.seed, epoch, index, len(x_all))
            batches: Any = _minibatches(x_all, y_all, order, steps, bs, longest)
            prefetcher: Any = (
                AsyncIterator(batches, queue_size=master.worker_prefetch) if master.worker_prefetch else None
            )
            try:
                for xb, yb in prefetcher if prefetcher is not None else batches:
                    trainer.step(_tensors(net, task.spec, DataSet(features=xb, labels=yb)), len(xb))
            finally:
                if prefetcher is not None:
                    prefetcher.close()
        trainer.finish()
    finally:
        if trainer is not None:
            trainer.close()
        _rendezvous.leave()
    yield StageResult(
        rank=index,
        params=net.params().tobytes() if index == 0 else None,
        updater=net.updater_state().tobytes() if index == 0 else None,
        score_sum=trainer.score_sum,
        steps=trainer.steps,
        examples=trainer.examples,
        tau=trainer.tau,
        bytes_sent=trainer.bytes_sent,
        bytes_received=trainer.bytes_received,
        elements_sent=trainer.elements_sent,
        events=encode_events(record.events) if task.collect_stats else b"",
        reading=worker_reading(index, trainer.examples, trainer.steps, trainer.seconds, trainer.score_sum)
        if task.worker_stats
        else b"",
    )
