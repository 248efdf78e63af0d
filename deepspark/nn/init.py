"""Weight initialization by name (DL4J's schemes), drawn from an explicit generator for reproducibility."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight: Linear (out, in); conv (out, in, *kernel); transposed conv (in, out, *k)."""
    if len(shape) < 2:
        return shape[0], shape[0]
    receptive = math.prod(shape[2:]) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


@torch.no_grad()
def init_weight(w: Tensor, scheme: str, gen: torch.Generator, fan: tuple[int, int] | None = None) -> None:
    """Fill ``w`` in place with ``scheme``."""
    fan_in, fan_out = fan if fan is not None else fans(tuple(w.shape))
    if scheme == "xavier":
        w.normal_(0.0, math.sqrt(2.0 / (fan_in + fan_out)), generator=gen)
    elif scheme == "xavier_uniform":
        a = math.sqrt(6.0 / (fan_in + fan_out))
        w.uniform_(-a, a, generator=gen)
    elif scheme in ("relu", "he"):
        w.normal_(0.0, math.sqrt(2.0 / fan_in), generator=gen)
    elif scheme == "relu_uniform":
        a = math.sqrt(6.0 / fan_in)
        w.uniform_(-a, a, generator=gen)
    elif scheme == "lecun_normal":
        w.normal_(0.0, math.sqrt(1.0 / fan_in), generator=gen)
    elif scheme == "lecun_uniform":
        a = math.sqrt(3.0 / fan_in)
        w.uniform_(-a, a, generator=gen)
    elif scheme == "normal":
        w.normal_(0.0, 1.0 / math.sqrt(fan_in), generator=gen)
    elif scheme == "uniform":
        a = 1.0 / math.sqrt(fan_in)
        w.uniform_(-a, a, generator=gen)
    elif scheme == "zero":
        w.zero_()
    elif scheme == "ones":
        w.fill_(1.0)
    elif scheme == "identity":
        w.zero_()
        if w.dim() == 2:
            n = min(w.shape)
            w[:n, :n] += torch.eye(n, dtype=w.dtype)
        else:
            torch.nn.init.dirac_(w)
    else:  # pragma: no cover - names are validated by the config
        raise ValueError(f"unknown weight init {scheme!r}")
