"""Executor side of parameter averaging: the round task of ``transport="spark"`` and the stage trainer of
``transport="collective"``. Both fit ``averaging_frequency`` minibatches per round and average parameters
(and updater state) over the workers that fitted; the collective one does it with all-reduces inside one
barrier stage, the Spark one by returning a ``RoundResult`` to a ``treeAggregate``.

A round task is a pure function of (broadcast parameters, partition data, task spec): a retried task computes
exactly the same result, which is what makes Spark's task retry the fault tolerance of the Spark transport.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from deepspark.data._arrow import ColumnSpec
from deepspark.spark._executor import (
    Minibatches,
    ModelShipment,
    attempt_number,
    epoch_order,
    freeze_setup,
    has_block,
    load_model,
    worker_block,
    worker_reading,
)
from deepspark.spark._probes import gc_monitor
from deepspark.spark.events import PHASE_AVERAGE, PHASE_GC, PhaseTimer, encode_events


@dataclass(frozen=True, kw_only=True, slots=True)
class RoundTask:
    """What every worker needs for one round of the Spark transport (parameters travel in ``model``)."""

    fit_id: str
    spec: ColumnSpec
    model: ModelShipment
    epoch: int
    round: int
    iteration: int
    first_batch: int
    num_batches: int
    batch_size: int
    seed: int
    prefetch: int = 0
    collect_stats: bool = False
    worker_stats: bool = False


@dataclass
class RoundResult:
    """One round's sums over the workers that fitted (as ``eval/``: ``merge`` combines two partial results).

    ``params`` and ``updater`` are sums of the workers' flat buffers; divide by ``workers`` to average.
    """

    workers: int
    params: np.ndarray
    updater: np.ndarray | None
    score_sum: float
    minibatches: int
    examples: int
    events: bytes = b""
    readings: tuple[bytes, ...] = ()

    def merge(self, other: RoundResult) -> RoundResult:
        """Add ``other`` into this result (in place: no second parameter-sized buffer) and return it."""
        self.params += other.params
        if self.updater is not None and other.updater is not None:
            self.updater += other.updater
        self.workers += other.workers
        self.score_sum += other.score_sum
        self.minibatches += other.minibatches
        self.examples += other.examples
        self.events += other.events
        self.readings += other.readings
        return self


def merge_results(a: RoundResult | None, b: RoundResult | None) -> RoundResult | None:
    """The ``treeAggregate`` operator over partial round results (None: no worker fitted yet)."""
    if a is None:
        return b
    if b is None:
        return a
    return a.merge(b)


ROUND_SCHEMA = (
    "workers int, dtype string, params binary, updater binary, score_sum double, minibatches long, examples long, "
    "events binary, reading binary"
)


def fit_round_arrow(task: RoundTask, batches: Iterator[Any]) -> Iterator[Any]:
    """``mapInArrow`` body: this worker's round over its cached Arrow blocks; its result leaves as one Arrow row."""
    import pyarrow as pa

    from deepspark.spark._executor import partition_index

    for result in fit_round(task, partition_index(), batches):
        updater = b"" if result.updater is None else result.updater.tobytes()
        yield pa.RecordBatch.from_pydict(
            {
                "workers": pa.array([1], pa.int32()),
                "dtype": pa.array([str(result.params.dtype)], pa.string()),
                "params": pa.array([result.params.tobytes()], pa.binary()),
                "updater": pa.array([updater], pa.binary()),
                "score_sum": pa.array([result.score_sum], pa.float64()),
                "minibatches": pa.array([result.minibatches], pa.int64()),
                "examples": pa.array([result.examples], pa.int64()),
                "events": pa.array([result.events], pa.binary()),
                "reading": pa.array([result.readings[0] if result.readings else b""], pa.binary()),
            }
        )


def result_from_row(row: Any) -> RoundResult:
    """A worker's round result from its Arrow row (the input of the ``treeAggregate``)."""
    params = np.frombuffer(row["params"], dtype=np.dtype(row["dtype"])).copy()
    updater = bytes(row["updater"])
    return RoundResult(
        workers=int(row["workers"]),
        params=params,
        updater=np.frombuffer(updater, dtype=params.dtype).copy() if updater else None,
        score_sum=float(row["score_sum"]),
        minibatches=int(row["minibatches"]),
        examples=int(row["examples"]),
        events=bytes(row["events"]),
        readings=(bytes(row["reading"]),) if row["reading"] else (),
    )


def fit_round(task: RoundTask, index: int, batches: Iterator[Any]) -> Iterator[RoundResult]:
    """Fit ``task.num_batches`` minibatches of this worker's shuffled block, starting at ``first_batch``."""
    timer = PhaseTimer("worker", index, enabled=task.collect_stats, attempt=attempt_number())
    t0 = time.time()
    task.model.fetch()
    timer("broadcast_get", t0, task.round)
    t0 = time.time()
    net = load_model(task.model, training=True)
    net.iteration, net.epoch = task.iteration, task.epoch
    if net.device.type != "cpu":  # the GPU Spark assigned this task: say so now if the batches will not fit
        net.check_device_memory(task.batch_size)
    timer("model_init", t0, task.round)
    t0 = time.time()
    fresh = not has_block(task.fit_id, index)
    x, y = worker_block(task.fit_id, index, task.spec, task.model.normalizer_json, batches)
    timer("data_fetch", t0, task.round, examples=len(x))
    if fresh:  # this process just decoded the block: keep it (and the network) out of the collector's scans
        freeze_setup()
    monitor = gc_monitor()
    gc_before = monitor.seconds
    feeder = Minibatches(net, task.spec, x, y, task.batch_size, task.prefetch)
    feeder.order = epoch_order(task.seed, task.epoch, index, len(x))
    score_sum, fitted, examples = 0.0, 0, 0
    t_fit = time.perf_counter()
    for batch, size in feeder.batches(task.first_batch, task.num_batches):
        t0 = time.time()
        score_sum += float(net.fit_batch(batch))
        fitted += 1
        examples += size
        timer("fit", t0, task.round, examples=size)
    timer.record(PHASE_GC, time.time(), monitor.seconds - gc_before, round=task.round)
    if fitted == 0:
        return
    reading = worker_reading(index, examples, fitted, time.perf_counter() - t_fit, score_sum)
    yield RoundResult(
        workers=1,
        params=net.params(),
        updater=net.updater_state() if task.model.updater is not None else None,
        score_sum=score_sum,
        minibatches=fitted,
        examples=examples,
        events=encode_events(timer.events) if task.collect_stats else b"",
        readings=(reading,) if task.worker_stats else (),
    )


class AveragingTrainer:
    """The collective transport's stage trainer: local minibatches, then an all-reduce average, every round.

    Rounds follow the Spark transport exactly: an epoch has ``ceil(ceil(longest / batch) / frequency)`` rounds;
    in round r each rank fits its minibatches ``r * frequency ..`` (fewer, or none, when its block is shorter);
    the parameters (and, with ``save_updater``, the updater state) become the mean over the ranks that fitted.
    All buffers are the network's own: the average is computed in place.
    """

    def __init__(self, net: Any, master: Any, world: int, state: dict[str, float], timer: PhaseTimer) -> None:
        import torch

        self.net, self.world, self.timer = net, world, timer
        self.frequency = int(master.averaging_frequency)
        self.save_updater = bool(master.save_updater) and net.updater.state.numel() > 0
        self.score_sum, self.steps, self.examples, self.seconds = 0.0, 0, 0, 0.0
        self.bytes_sent = self.bytes_received = self.elements_sent = 0
        self._sums = torch.zeros(2, dtype=torch.float64, device=net.device)  # ranks that fitted, their minibatches
        self._round = 0

    def agree_max(self, value: int) -> int:
        import torch
        import torch.distributed as dist

        t = torch.tensor([value], dtype=torch.int64, device=self.net.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return int(t[0])

    def train_epoch(self, feeder: Minibatches, longest: int) -> None:
        rounds = -(-feeder.batches_in(longest) // self.frequency)
        mine = feeder.batches_in()
        for r in range(rounds):
            first = r * self.frequency
            count = max(0, min(self.frequency, mine - first))
            start_iteration = self.net.iteration
            score_sum, fitted, examples = 0.0, 0, 0
            t_round = time.time()
            if not self.save_updater:  # the Spark transport ships no updater state then: each round starts at zero
                self.net.updater.state.zero_()
            for batch, size in feeder.batches(first, count):
                t0 = time.time()
                score_sum += float(self.net.fit_batch(batch))
                fitted += 1
                examples += size
                self.timer("fit", t0, self._round, examples=size)
            self.seconds += time.time() - t_round
            self.score_sum += score_sum  # this rank's own counts: the driver sums every rank's report
            self.steps += fitted
            self.examples += examples
            self._average(fitted, start_iteration)

    def _average(self, fitted: int, start_iteration: int) -> None:
        import torch.distributed as dist

        t0 = time.time()
        net = self.net
        params = net.flat.params
        if fitted == 0:
            params.zero_()  # a rank without minibatches this round contributes nothing to the mean
        works = [dist.all_reduce(params, async_op=True)]
        updater = net.updater.state
        if self.save_updater:
            if fitted == 0:
                updater.zero_()
            works.append(dist.all_reduce(updater, async_op=True))
        sums = self._sums
        sums[0], sums[1] = 1.0 if fitted else 0.0, fitted
        works.append(dist.all_reduce(sums, async_op=True))
        for work in works:
            work.wait()
        ranks, minibatches = float(sums[0]), int(sums[1])
        params.div_(ranks)
        if self.save_updater:
            updater.div_(ranks)
        net.iteration = start_iteration + -(-minibatches // int(ranks))  # minibatches per worker, rounded up
        wire = 2 * (self.world - 1) * (params.numel() + (updater.numel() if self.save_updater else 0))
        wire = wire * params.element_size() // self.world
        self.bytes_sent += wire
        self.bytes_received += wire
        self.timer(PHASE_AVERAGE, t0, self._round, bytes_sent=wire, workers=int(ranks))
        self._round += 1

    def finish(self) -> None:
        """Every round ended with an average: the ranks are identical at the epoch's end already."""

    def state(self) -> dict[str, float]:
        return {}

    def rank_state(self) -> Any:
        """Nothing: every round ends with an average, so no rank keeps state of its own."""
        return None

    def restore_rank_state(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass
