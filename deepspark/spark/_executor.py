"""What every deepspark task shares on an executor: the model it is shipped, the training block it keeps, the
minibatch tensors it feeds torch, and the readings it sends back.

A model crosses to the executors as a ``ModelShipment``: config JSON and normalizer JSON inside the task, the
flat parameters (and updater state) as broadcasts of raw bytes in the network's dtype. The compiled network is
cached per Python worker and keyed by its config, so training rounds, barrier stages, ``predict`` and the Spark
ML ``transform`` all reuse one network per process and copy new parameters in once per shipment.

Training blocks (a worker's examples, decoded from the Arrow binary blocks ``_prepare`` cached) are kept per
Python worker for the whole fit: a round or stage that finds its block here only drains what the JVM sends.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from deepspark.data._arrow import ColumnSpec, blocks_to_arrays
from deepspark.errors import ConfigError, DataError
from deepspark.spark._placement import Placement, current_task_device, driver_placement

if TYPE_CHECKING:
    import pyarrow as pa

    from deepspark.nn import Network

_MODELS: dict[str, tuple[Network, str]] = {}  # config hash @ device -> (network, shipment key of its params)
_MODEL_CACHE_SIZE = 2  # enough to predict while evaluating; bounded memory
_NORMALIZERS: dict[str, Any] = {}  # normalizer JSON hash -> normalizer
_BLOCKS: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}  # (fit id, worker) -> features, labels


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelShipment:
    """A model on its way to the executors (see the module docstring).

    Attributes:
        config_json: the network's config (any root config type: the registry tag says which).
        dtype: the flat buffers' dtype on the wire (the network's own).
        key: unique per shipped parameter set: a Python worker copies the parameters in once per key.
        params: a ``Broadcast`` of the flat parameters' bytes.
        updater: a ``Broadcast`` of the flat updater state's bytes, or None (the state is zeroed then).
        normalizer_json: the network's normalizer, applied to features on the executors, or None.
        placement: where each task computes (the GPU Spark assigned it, or the CPU).
    """

    config_json: str
    dtype: str
    key: str
    params: Any
    updater: Any = None
    normalizer_json: str | None = None
    placement: Placement = field(default_factory=Placement)

    def fetch(self) -> None:
        """Bring the broadcasts' bytes into this process (executor side; later reads are free)."""
        _ = self.params.value
        if self.updater is not None:
            _ = self.updater.value

    def unpersist(self) -> None:
        """Drop the broadcasts from the executors (driver side, once the job that used them is done)."""
        self.params.unpersist()
        if self.updater is not None:
            self.updater.unpersist()


def ship(sc: Any, net: Network, *, with_updater: bool, key: str) -> ModelShipment:
    """Broadcast ``net``'s flat parameters (and updater state) once; driver side."""
    if net.config is None:
        from deepspark.errors import DeepSparkError

        raise DeepSparkError(
            "this network wraps a torch module (Network.from_module) and has no config to send to the executors; "
            "describe the module as ModuleConfig(factory='package.module:function', ...)"
        )
    params = net.flat.params.detach().cpu().numpy()
    updater = net.updater.state.detach().cpu().numpy() if with_updater and net.updater.state.numel() else None
    return ModelShipment(
        config_json=net.config.to_json(indent=None),
        dtype=str(params.dtype),
        key=key,
        params=sc.broadcast(params.tobytes()),
        updater=None if updater is None else sc.broadcast(updater.tobytes()),
        normalizer_json=None if net.normalizer is None else net.normalizer.to_json(),
        placement=driver_placement(sc),
    )


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def load_model(shipment: ModelShipment, *, training: bool = False) -> Network:
    """The process's network for ``shipment.config_json`` holding the shipped parameters.

    Inference copies the parameters in once per shipment and leaves them untouched. A training task always
    copies them (and the shipped updater state, zeroed when none was shipped): it will change them, so the
    cache then marks the network as holding no shipment.
    """
    device = current_task_device(shipment.placement)
    key = f"{_hash(shipment.config_json)}@{device}"
    cached = _MODELS.pop(key, None)
    if cached is None:
        from deepspark.config.root import config_from_json
        from deepspark.nn import Network

        while len(_MODELS) >= _MODEL_CACHE_SIZE:
            _MODELS.pop(next(iter(_MODELS)))
        config = config_from_json(shipment.config_json)
        try:
            built = Network(config, device=device)  # type: ignore[arg-type]
        except ConfigError as e:
            if device == "cpu":
                raise
            raise ConfigError(
                f"Spark assigned this task GPU {device!r} ({shipment.placement.resource!r} resource), but: "
                f"{e.message}; "
                "or set spark.deepspark.device=cpu to train on the executors' CPUs",
                e.path,
            ) from e
        cached = (built, "")
    net, loaded = cached
    if training or loaded != shipment.key:
        net.set_params(np.frombuffer(shipment.params.value, dtype=np.dtype(shipment.dtype)))
    if training:
        if shipment.updater is not None:
            net.set_updater_state(np.frombuffer(shipment.updater.value, dtype=np.dtype(shipment.dtype)))
        else:
            net.updater.state.zero_()
    _MODELS[key] = (net, "" if training else shipment.key)
    return net


def normalizer(normalizer_json: str | None) -> Any:
    """The normalizer a shipment carries, decoded once per Python worker (None for none)."""
    if normalizer_json is None:
        return None
    key = _hash(normalizer_json)
    norm = _NORMALIZERS.get(key)
    if norm is None:
        from deepspark.data.normalizers import normalizer_from_json

        while len(_NORMALIZERS) >= _MODEL_CACHE_SIZE:
            _NORMALIZERS.pop(next(iter(_NORMALIZERS)))
        norm = normalizer_from_json(normalizer_json)
        _NORMALIZERS[key] = norm
    return norm


def normalized(x: np.ndarray, spec: ColumnSpec, normalizer_json: str | None) -> np.ndarray:
    """Features with the network's normalizer applied (training blocks: once per fit, not per round)."""
    norm = normalizer(normalizer_json)
    if norm is None:
        return x
    if spec.feature_kind == "sequence":  # packed rows (padded steps + mask): a column normalizer would be wrong
        raise DataError(
            "the network carries a normalizer, which Spark training does not apply to sequence inputs yet; "
            "normalize the sequence column before fit, and set network.normalizer = None"
        )
    from deepspark.data.spark_normalizers import apply_normalizer

    return apply_normalizer(norm, x).astype(x.dtype, copy=False)


def arrow_blocks(batches: Iterable[pa.RecordBatch]) -> Iterator[dict[str, Any]]:
    """The block rows of Arrow batches as ``{part, n, x, y}`` with zero-copy buffers (one dict per block)."""
    for batch in batches:
        if batch.num_rows == 0:
            continue
        parts = batch.column("part").to_numpy() if "part" in batch.schema.names else None
        counts = batch.column("n").to_numpy()
        xs, ys = batch.column("x"), batch.column("y")
        for i in range(batch.num_rows):
            y = ys[i]
            yield {
                "part": None if parts is None else int(parts[i]),
                "n": int(counts[i]),
                "x": xs[i].as_buffer(),
                "y": None if not y.is_valid else y.as_buffer(),
            }


def has_block(fit_id: str, worker: int) -> bool:
    """Whether this process holds ``worker``'s block of fit ``fit_id`` already."""
    return (fit_id, worker) in _BLOCKS


def worker_block(
    fit_id: str, worker: int, spec: ColumnSpec, normalizer_json: str | None, batches: Iterable[pa.RecordBatch]
) -> tuple[np.ndarray, np.ndarray]:
    """This worker's training examples, decoded from its Arrow blocks once per fit and kept across rounds.

    On a hit the input is only drained (the JVM sends it anyway, and an undrained input stops the Python
    worker from being reused). Blocks of other fits are dropped on a miss.
    """
    key = (fit_id, worker)
    data = _BLOCKS.get(key)
    if data is not None:
        for _ in batches:
            pass
        return data
    for stale in [k for k in _BLOCKS if k[0] != fit_id]:  # keep this fit's blocks: a Python worker that runs
        del _BLOCKS[stale]  # several workers' tasks over the fit hits for each of them
    x, y = blocks_to_arrays(arrow_blocks(batches), spec)
    if y is None:
        raise DataError("the training blocks carry no labels; pass label_col")
    data = (normalized(x, spec, normalizer_json), y)
    _BLOCKS[key] = data
    return data


def epoch_order(seed: int, epoch: int, worker: int, n: int) -> np.ndarray:
    """The example order a worker uses in an epoch (worker 0 matches ``Network.fit``'s shuffle)."""
    import torch

    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch + 7919 * worker)
    return torch.randperm(n, generator=gen).numpy()


def tensors(net: Network, spec: ColumnSpec, x: np.ndarray, y: np.ndarray) -> tuple[Any, Any, Any, Any]:
    """A minibatch as the tensors ``fit_batch`` takes; sequence rows are unpacked into steps and masks first."""
    import torch

    fmask = lmask = None
    if spec.feature_kind == "sequence":
        from deepspark.data._sequence_arrow import unpack

        mb = unpack(spec, x, y)
        x, fmask, lmask = mb.features, mb.features_mask, mb.labels_mask
        y = mb.labels if mb.labels is not None else y
    labels = torch.from_numpy(np.ascontiguousarray(y))
    if labels.is_floating_point():
        labels = labels.to(net.dtype)

    def mask(m: np.ndarray | None) -> Any:
        return None if m is None else torch.from_numpy(np.ascontiguousarray(m)).to(torch.float32)

    features = torch.from_numpy(np.ascontiguousarray(x)).to(net.dtype)
    return features, labels, mask(fmask), mask(lmask)


def freeze_setup() -> None:
    """Move everything setup allocated (network, blocks, imports) out of the garbage collector's sight.

    Python's collector rescans every tracked object in the oldest generation when it runs; after a fit's
    setup that is the whole model and torch's module tree. ``gc.freeze`` parks them in a permanent
    generation, so the collections that per-step temporaries trigger stay cheap (DL4J's workspaces lesson).
    """
    gc.collect()
    gc.freeze()


def worker_reading(index: int, examples: int, minibatches: int, fit_seconds: float, score_sum: float) -> bytes:
    """This worker's round as JSON (never pickle): throughput, mean score, RSS, torch memory, GC counters."""
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


def partition_index() -> int:
    """The Spark partition this task reads (0 outside a task)."""
    from pyspark import TaskContext

    ctx = TaskContext.get()
    return 0 if ctx is None else int(ctx.partitionId())


def attempt_number() -> int:
    """This task's attempt number: > 0 when Spark retried it (0 outside a task)."""
    from pyspark import TaskContext

    ctx = TaskContext.get()
    return 0 if ctx is None else int(ctx.attemptNumber())


class Minibatches:
    """The minibatch tensors one worker trains on, sliced from its block in each epoch's order.

    ``batches(first, count, wrap)`` yields ``(tensors, size)`` for minibatches ``first .. first + count - 1``
    of the epoch. With ``wrap`` a worker whose block is shorter than ``longest`` examples wraps around to its
    own beginning, so every rank runs the same number of steps (lockstep collectives never wait on a rank
    that ran out); without it, minibatches past the block's end are simply not there. With ``prefetch`` > 0
    the next minibatches are sliced on a thread while torch computes (it releases the GIL).
    """

    def __init__(
        self, net: Network, spec: ColumnSpec, x: np.ndarray, y: np.ndarray, batch_size: int, prefetch: int
    ) -> None:
        self.net, self.spec, self.x, self.y = net, spec, x, y
        self.batch_size, self.prefetch = batch_size, prefetch
        self.order = np.arange(len(x))

    def __len__(self) -> int:
        return len(self.x)

    def batches_in(self, longest: int | None = None) -> int:
        """Minibatches in an epoch of ``longest`` examples (this block's own length by default)."""
        n = len(self.x) if longest is None else longest
        return -(-n // self.batch_size)

    def _sliced(self, first: int, count: int, longest: int | None) -> Iterator[tuple[Any, int]]:
        bs, n = self.batch_size, len(self.order)
        end = n if longest is None else longest
        for b in range(first, first + count):
            start = b * bs
            if start >= end:
                return
            positions = np.arange(start, min(start + bs, end))
            idx = self.order[positions % n] if longest is not None else self.order[positions]
            yield tensors(self.net, self.spec, self.x[idx], self.y[idx]), len(idx)

    def batches(self, first: int, count: int, *, longest: int | None = None) -> Iterator[tuple[Any, int]]:
        """Minibatches ``first .. first + count - 1``; ``longest`` set means wrap around up to that many examples."""
        sliced = self._sliced(first, count, longest)
        if self.prefetch <= 0:
            yield from sliced
            return
        from deepspark.data.iterators import AsyncIterator

        prefetcher = AsyncIterator(sliced, queue_size=self.prefetch)  # type: ignore[arg-type]
        try:
            yield from prefetcher  # type: ignore[misc]
        finally:
            prefetcher.close()
