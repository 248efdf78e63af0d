"""Counting a config's parameters without allocating them: the network is built on PyTorch's meta device."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from deepspark.config.graph import GraphConfig
from deepspark.config.network import NetworkConfig


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
