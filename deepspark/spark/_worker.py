"""Executor-side code of parameter averaging: plain top-level functions of one frozen task spec.

A round task is a pure function of (broadcast parameters, partition data, task spec): a retried task
computes exactly the same result, which is what makes Spark's task retry our fault tolerance.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from deepspark.data._arrow import ColumnSpec, blocks_to_arrays
from deepspark.data.dataset import DataSet
from deepspark.data.iterators import AsyncIterator
from deepspark.errors import DataError
from deepspark.spark.stats import PhaseEvent, encode_events

_NETWORKS: dict[str, Any] = {}  # config hash -> Network, reused while the Python worker process lives
_DATA: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}  # (fit id, worker) -> decoded block


@dataclass(frozen=True)
class RoundTask:
    """What every worker needs for one averaging round (the parameters travel as a broadcast)."""

    fit_id: str
    config_json: str
    spec: ColumnSpec
    dtype: str  # of the flat buffers on the wire: the network's own
    epoch: int
    round: int
    iteration: int
    first_batch: int
    num_batches: int
    batch_size: int
    seed: int
    with_updater: bool
    collect_stats: bool
    prefetch: int = 0  # minibatches sliced ahead on a thread (ParameterAveraging.worker_prefetch)
    worker_stats: bool = False  # send this worker's readings (memory, GC, throughput) back as JSON for listeners
    normalizer_json: str | None = None  # the network's normalizer, applied once when the block is decoded


RoundResult = tuple[int, np.ndarray, "np.ndarray | None", float, int, int, tuple[bytes, ...], tuple[bytes, ...]]
"""(workers, params sum, updater state sum, score sum, minibatches, examples, encoded phase events,
per-worker readings as JSON bytes: see ``worker_reading``)."""


def epoch_order(seed: int, epoch: int, worker: int, n: int) -> np.ndarray:
    """The example order a worker uses in an epoch (worker 0 matches ``Network.fit``'s shuffle)."""
    import torch

    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch + 7919 * worker)
    return torch.randperm(n, generator=gen).numpy()


def _network(config_json: str) -> Any:
    key = hashlib.sha256(config_json.encode()).hexdigest()
    net = _NETWORKS.get(key)
    if net is None:
        from deepspark.config._spec import Spec
        from deepspark.nn import Network

        _NETWORKS.clear()  # one model per process: a new config replaces the old one
        net = Network(Spec.from_json(config_json))  # type: ignore[arg-type]
        _NETWORKS[key] = net
    return net


def network_from_broadcast(
    config_json: str, dtype: str, params_bc: Any, updater_bc: Any, record: Callable[[str, float], None]
) -> Any:
    """The process's cached network for ``config_json``, loaded with the broadcast parameters and updater
    state (zeroed when none was sent); records ``broadcast_get`` and ``model_init``."""
    t0 = time.time()
    params = np.frombuffer(params_bc.value, dtype=np.dtype(dtype))
    state = np.frombuffer(updater_bc.value, dtype=np.dtype(dtype)) if updater_bc is not None else None
    record("broadcast_get", t0)
    t0 = time.time()
    net = _network(config_json)
    net.set_params(params)
    if state is not None:
        net.set_updater_state(state)
    else:
        net.updater.state.zero_()
    record("model_init", t0)
    return net


class _RoundMinibatches:
    """The minibatches one worker fits in one round, sliced from its cached block in epoch order."""

    def __init__(self, task: RoundTask, order: np.ndarray, x: np.ndarray, y: np.ndarray) -> None:
        self.task, self.order, self.x, self.y = task, order, x, y

    def __iter__(self) -> Iterator[DataSet]:
        bs = self.task.batch_size
        for b in range(self.task.first_batch, self.task.first_batch + self.task.num_batches):
            idx = self.order[b * bs : (b + 1) * bs]
            if len(idx) == 0:
                return
            yield DataSet(features=self.x[idx], labels=self.y[idx])


def fit_round(
    task: RoundTask, params_bc: Any, updater_bc: Any, index: int, rows: Iterator[Any]
) -> Iterator[RoundResult]:
    """Fit ``task.num_batches`` minibatches of this worker's shuffled block, starting at ``first_batch``."""
    from pyspark import TaskContext

    ctx = TaskContext.get()
    attempt = ctx.attemptNumber() if ctx is not None else 0  # > 0 when Spark retried this task
    host, pid = socket.gethostname(), os.getpid()
    events: list[PhaseEvent] = []

    def record(phase: str, start: float, **detail: Any) -> None:
        if task.collect_stats:
            events.append(
                PhaseEvent(
                    phase=phase,
                    side="worker",
                    worker=index,
                    host=host,
                    pid=pid,
                    start=start,
                    duration=time.time() - start,
                    round=task.round,
                    attempt=attempt,
                    detail=detail,
                )
            )

    net = network_from_broadcast(task.config_json, task.dtype, params_bc, updater_bc, record)
    net.iteration, net.epoch = task.iteration, task.epoch

    t0 = time.time()
    key = (task.fit_id, index)
    data = _DATA.get(key)
    if data is None:
        for stale in [k for k in _DATA if k[0] != task.fit_id]:  # keep this fit's blocks: tasks move between
            del _DATA[stale]  # Python workers, and a worker that saw both partitions should hit for both
        x, y = blocks_to_arrays(rows, task.spec)
        if y is None:
            raise DataError("the training blocks carry no labels; pass label_col")
        x = normalized(x, task.spec, task.normalizer_json)
        data = (x, y)
        _DATA[key] = data
    else:
        for _ in rows:  # the cached copy is used; drain the input the JVM sends
            pass
    x_all, y_all = data
    record("data_fetch", t0, examples=len(x_all))

    n = len(x_all)
    order = epoch_order(task.seed, task.epoch, index, n)
    score_sum, batches, examples = 0.0, 0, 0
    t_fit = time.perf_counter()
    minibatches: Iterable[DataSet] = _RoundMinibatches(task, order, x_all, y_all)
    prefetcher = AsyncIterator(minibatches, queue_size=task.prefetch) if task.prefetch > 0 else None
    try:  # with prefetch, the next minibatches are sliced on a thread while torch computes (it releases the GIL)
        for mb in prefetcher if prefetcher is not None else minibatches:
            t0 = time.time()
            score = net.fit_batch(_tensors(net, task.spec, mb))
            score_sum += float(score)
            batches += 1
            examples += mb.num_examples
            record("fit", t0, examples=mb.num_examples)
    finally:
        if prefetcher is not None:
            prefetcher.close()
    if batches == 0:
        return
    yield (
        1,
        net.params(),
        net.updater_state() if task.with_updater else None,
        score_sum,
        batches,
        examples,
        (encode_events(events),) if task.collect_stats else (),
        (worker_reading(index, examples, batches, time.perf_counter() - t_fit, score_sum),)
        if task.worker_stats
        else (),
    )


def normalized(x: np.ndarray, spec: ColumnSpec, normalizer_json: str | None) -> np.ndarray:
    """A decoded training block with the network's normalizer applied (once per fit, not per round)."""
    if normalizer_json is None:
        return x
    if spec.feature_kind == "sequence":  # packed rows (padded steps + mask): a column normalizer would be wrong
        raise DataError(
            "the network carries a normalizer, which Spark training does not apply to sequence inputs yet; "
            "normalize the sequence column before fit, and set network.normalizer = None"
        )
    from deepspark.data.normalizers import normalizer_from_json
    from deepspark.data.spark_normalizers import apply_normalizer

    return apply_normalizer(normalizer_from_json(normalizer_json), x).astype(x.dtype, copy=False)


def worker_reading(index: int, examples: int, minibatches: int, fit_seconds: float, score_sum: float) -> bytes:
    """This worker's round as JSON (never pickle): throughput, mean score, RSS, torch memory, GC counters."""
    import json

    from deepspark.spark._probes import process_reading

    reading = {
        "worker": index,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "examples": examples,
        "minibatches": minibatches,
        "fit_seconds": fit_seconds,
        "score": score_sum / max(minibatches, 1),
        **process_reading(),
    }
    return json.dumps(reading).encode()


def _tensors(net: Any, spec: ColumnSpec, mb: DataSet) -> tuple[Any, Any, Any, Any]:
    """A minibatch as the tensors ``fit_batch`` takes; sequence rows are unpacked into steps and masks first."""
    import torch

    if spec.feature_kind == "sequence":
        from deepspark.data._sequence_arrow import unpack

        mb = unpack(spec, mb.features, mb.labels)
    labels = torch.from_numpy(np.ascontiguousarray(mb.labels))
    if labels.is_floating_point():
        labels = labels.to(net.dtype)

    def mask(m: np.ndarray | None) -> Any:
        return None if m is None else torch.from_numpy(np.ascontiguousarray(m)).to(torch.float32)

    features = torch.from_numpy(np.ascontiguousarray(mb.features)).to(net.dtype)
    return features, labels, mask(mb.features_mask), mask(mb.labels_mask)


def add_results(a: RoundResult | None, b: RoundResult | None) -> RoundResult | None:
    """Combine two partial round results (the treeAggregate operator); sums in place into ``a``."""
    if a is None:
        return b
    if b is None:
        return a
    params = a[1]
    params += b[1]
    upd = a[2]
    if upd is not None and b[2] is not None:
        upd += b[2]
    return (a[0] + b[0], params, upd, a[3] + b[3], a[4] + b[4], a[5] + b[5], a[6] + b[6], a[7] + b[7])
