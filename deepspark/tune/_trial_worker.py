"""Executor side of a search: train one trial for a chunk of epochs, as a plain function of one frozen spec.

A trial runs as a sequence of short Spark jobs, one per chunk of epochs that ends where the pruner may decide
(ASHA's rungs: epochs 1, 3, 9... for a reduction factor 3; every epoch for other pruners; all epochs at once
without a pruner). Between chunks the trial's model state travels back to the driver as safetensors bytes
(flat parameters + flat updater state + the epoch/iteration counters; never a pickled module), the driver
reports the per-epoch scores to Optuna and asks the pruner, and only then launches the next chunk with that
state. A pruned trial's remaining epochs are never run, any chunk may land on any free slot, and one trial's
job can be cancelled (its tag) without touching the others. The cost is one Spark job plus one state round
trip per chunk: in the MNIST acceptance run (``bench/acceptance_tune.py``: 24 trials, 38 chunks, MLPs of up to
0.7M parameters) the driver saw a median 2.4 s (quartile 1.7 s) per chunk beyond the task's own time, on a 2-core
machine shared at load average ~35; the first chunk of each Python worker also pays the worker's start and
imports. A long task asking the driver whether to continue would save those jobs but would need a channel from
executors to the driver, and could not move a trial to another slot or survive a lost executor mid-trial.

Every error inside a chunk (a config that does not compile, NaN data, a metric the network cannot produce) is
caught here and returned as the result's ``error`` text: Spark never sees a failed task, so it never retries a
trial, and the driver records it as a failed trial while the search goes on.
"""

from __future__ import annotations

import os
import socket
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from deepspark.nn.listeners import IterationInfo, TrainingListener
from deepspark.tune._data import TrialData, unpack

_DATA: dict[str, TrialData] = {}  # data id -> decoded arrays, kept while this Python worker lives
_LOADS = [0]  # how many times this process decoded a data buffer (reported back, so tests can count)
MAX_ERROR_CHARS = 4000


@dataclass(frozen=True, kw_only=True, slots=True)
class ChunkSpec:
    """One chunk of one trial: which config, from which epoch to which, scored how."""

    data_id: str
    trial: int
    config_json: str
    start_epoch: int
    end_epoch: int
    batch_size: int
    metric: str


@dataclass(frozen=True, kw_only=True, slots=True)
class ChunkResult:
    """What a chunk sends back: per-epoch scores and training losses, the model state, or the error text."""

    trial: int
    scores: tuple[float, ...]
    losses: tuple[float, ...]
    state: bytes
    error: str
    host: str
    pid: int
    start: float
    end: float
    data_loads: int


def encode_state(params: np.ndarray, updater: np.ndarray, epoch: int, iteration: int) -> bytes:
    """A network's trainable state as safetensors bytes."""
    from safetensors.numpy import save

    tensors = {"params": np.ascontiguousarray(params)}
    if updater.size:
        tensors["updater"] = np.ascontiguousarray(updater)
    return bytes(save(tensors, metadata={"epoch": str(epoch), "iteration": str(iteration)}))


def restore_state(net: Any, state: bytes) -> None:
    """Load ``encode_state`` bytes into a freshly built network of the same config."""
    tensors, meta = decode_state(state)
    net.set_params(tensors["params"])
    if "updater" in tensors:
        net.set_updater_state(tensors["updater"])
    net.epoch = int(meta["epoch"])
    net.iteration = int(meta["iteration"])


def decode_state(state: bytes) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """``encode_state`` bytes back to arrays and the counters (safetensors' header metadata)."""
    import json
    import struct

    from safetensors.numpy import load

    (header_len,) = struct.unpack("<Q", state[:8])
    meta = json.loads(state[8 : 8 + header_len]).get("__metadata__", {})
    return load(state), meta


def _data(data_id: str, data_bc: Any) -> TrialData:
    data = _DATA.get(data_id)
    if data is None:
        _DATA.clear()  # one search's data per process: a new search replaces the old one
        data = unpack(data_bc.value)
        _DATA[data_id] = data
        _LOADS[0] += 1
    return data


class _LossMeter(TrainingListener):
    """A training listener that averages the minibatch scores of one epoch."""

    def __init__(self) -> None:
        self.total = 0.0
        self.count = 0

    def iteration_done(self, net: Any, info: IterationInfo) -> None:
        self.total += float(info.score)
        self.count += 1


def train_chunk(spec: ChunkSpec, data: TrialData, state: bytes) -> tuple[tuple[float, ...], tuple[float, ...], bytes]:
    """Build the network, restore ``state`` (if any), train epochs ``start_epoch..end_epoch``; scores per epoch."""
    from deepspark.config._spec import Spec
    from deepspark.nn import Network
    from deepspark.tune.metrics import compute_metric

    net = Network(Spec.from_json(spec.config_json))  # type: ignore[arg-type]
    if state:
        restore_state(net, state)
    meter = _LossMeter()
    net.add_listeners(meter)
    scores, losses = [], []
    for _ in range(spec.start_epoch, spec.end_epoch):
        meter.total, meter.count = 0.0, 0
        net.fit(data.x_train, data.y_train, epochs=1, batch_size=spec.batch_size)
        losses.append(meter.total / max(meter.count, 1))
        scores.append(compute_metric(net, spec.metric, data.x_val, data.y_val))
    return tuple(scores), tuple(losses), encode_state(net.params(), net.updater_state(), net.epoch, net.iteration)


def run_chunk(spec: ChunkSpec, data_bc: Any, rows: Iterator[bytes]) -> Iterator[ChunkResult]:
    """mapPartitions body: the partition holds one element, the trial's state bytes (empty for a new trial)."""
    start = time.time()
    state = b"".join(rows)
    scores: tuple[float, ...] = ()
    losses: tuple[float, ...] = ()
    new_state, error = b"", ""
    try:
        data = _data(spec.data_id, data_bc)
        scores, losses, new_state = train_chunk(spec, data, state)
    except Exception as e:  # a trial's own failure: recorded by the driver, never retried by Spark
        text = "".join(traceback.format_exception_only(type(e), e)).strip()
        where = traceback.extract_tb(e.__traceback__)[-1:]
        loc = f" (at {where[0].filename}:{where[0].lineno})" if where else ""
        error = (text + loc)[:MAX_ERROR_CHARS]
    yield ChunkResult(
        trial=spec.trial,
        scores=scores,
        losses=losses,
        state=new_state,
        error=error,
        host=socket.gethostname(),
        pid=os.getpid(),
        start=start,
        end=time.time(),
        data_loads=_LOADS[0],
    )
