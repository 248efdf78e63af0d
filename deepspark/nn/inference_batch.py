"""How many rows one inference forward pass takes when the caller leaves ``batch_size`` to the network."""

from __future__ import annotations

from typing import TYPE_CHECKING

from deepspark.config.graph import GraphConfig
from deepspark.config.network import NetworkConfig
from deepspark.errors import DataError

if TYPE_CHECKING:
    from deepspark.nn.network import Network


INFERENCE_CACHE_BYTES = 4 << 20
"""What the widest layer output of one CPU forward pass may take, when the batch is left to the network."""
INFERENCE_ROWS = (32, 1024)
"""The smallest and largest batch the network picks for itself (1,024: the batch an accelerator gets)."""


def inference_batch_size(net: Network) -> int:
    """Rows per forward pass when the caller leaves ``batch_size`` to the network (``batch_size=None``).

    On CPU a forward pass runs fastest while its activations stay in the processor's cache: a LeNet-style
    network (46 KB of first-convolution output per row) ran 12,400 rows/s on one thread in batches of 64 and
    7,300 in batches of 1,024 (``bench/bench_inference.py``). So the batch is the largest power of two whose
    widest layer output (input included) fits in ``INFERENCE_CACHE_BYTES``, within ``INFERENCE_ROWS``. A
    network on an accelerator, or one whose shapes are not known (built from a torch module), gets the largest.
    """
    low, high = INFERENCE_ROWS
    config = net.config
    if net.device.type != "cpu":
        return high
    if isinstance(config, GraphConfig):
        types = [*config.input_types, *(p.output_type for p in config.layer_plans())]
    elif isinstance(config, NetworkConfig):
        types = [config.input_type, *(p.output_type for p in config.plan())]
    else:
        return high
    item = net.flat.params.element_size()
    widest = max(t.flat_size() * (t.timesteps or 1) for t in types) * item
    rows = high
    while rows > low and rows * widest > INFERENCE_CACHE_BYTES:
        rows //= 2
    return rows


def checked_batch_size(batch_size: int | None) -> int | None:
    """``batch_size`` as given when it is a positive int, or None (the network picks); otherwise a DataError."""
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise DataError(f"batch_size: expected a positive int, or None to size it to the network; got {batch_size!r}")
    return batch_size


__all__ = ["INFERENCE_CACHE_BYTES", "INFERENCE_ROWS", "checked_batch_size", "inference_batch_size"]
