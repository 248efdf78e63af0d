"""Counting a config's parameters without allocating them: the network is built on PyTorch's meta device."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from deepspark.config.graph import GraphConfig
from deepspark.config.network import NetworkConfig
from deepspark.errors import ConfigError


@dataclass(frozen=True)
class ParamCount:
    """Trainable values, and everything the flat buffer holds (trainables plus batch-norm running statistics)."""

    trainable: int
    total: int


def count_params(config: NetworkConfig | GraphConfig) -> ParamCount:
    """Parameter counts of ``config`` as compiled, from shapes alone (a VGG16 costs no memory to count).

    Example:
        >>> count_params(conf).trainable      # doctest: +SKIP
        138357544
    """
    from deepspark.nn.graph_model import GraphModel
    from deepspark.nn.model import SequentialModel

    with torch.device("meta"):
        model = GraphModel(config) if isinstance(config, GraphConfig) else SequentialModel(config)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    buffers = sum(b.numel() for b in model.buffers() if b.is_floating_point())
    return ParamCount(int(trainable), int(trainable + buffers))


def flat_size(config: NetworkConfig | GraphConfig) -> int:
    """How many values the compiled network's flat parameter buffer holds at most (every parameter and
    floating buffer, frozen ones included), from shapes alone: the bound an archive's params must fit."""
    from deepspark.nn.graph_model import GraphModel
    from deepspark.nn.model import SequentialModel

    with torch.device("meta"):
        model = GraphModel(config) if isinstance(config, GraphConfig) else SequentialModel(config)
    params = sum(p.numel() for p in model.parameters())
    buffers = sum(b.numel() for b in model.buffers() if b.is_floating_point())
    return int(params + buffers)


_CHECK_ABOVE = 256 * 2**20  # estimates under this are never compared with free memory


def available_memory() -> int | None:
    """Bytes this machine can still hand out (``MemAvailable``, else free pages), or None when unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (OSError, ValueError, AttributeError):
        return None


def check_memory(config: NetworkConfig | GraphConfig) -> None:
    """Refuse, before anything is allocated, a network whose parameters, gradients and updater state would not
    fit in the memory this machine has available; the message carries the estimate."""
    try:
        n = flat_size(config)
    except (ConfigError, RuntimeError, NotImplementedError):  # a TorchLayer factory that refuses the meta device
        return
    itemsize = 8 if config.dtype == "float64" else 4
    state = config.updater.state_size(n)
    estimate = (2 * n + state) * itemsize
    if estimate < _CHECK_ABOVE:
        return
    available = available_memory()
    if available is None or estimate <= available:
        return
    gib = 2**30
    raise ConfigError(
        f"the network needs about {estimate / gib:.1f} GiB ({n:,} {config.dtype} parameters, as many gradients "
        f"and {state:,} values of {type(config.updater).__name__} state) but this machine has "
        f"{available / gib:.1f} GiB available: shrink the largest layers (n_out, kernel sizes, vocab_size)",
        "layers",
    )
