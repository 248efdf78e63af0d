"""Activations and losses by name, as torch functions; losses are fused with their activation when stable."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

_EPS = 1e-7


def _softmax(x: Tensor) -> Tensor:
    return F.softmax(x, dim=1 if x.dim() == 4 else -1)


def _identity(x: Tensor) -> Tensor:
    return x


def _leaky(x: Tensor) -> Tensor:
    return F.leaky_relu(x, 0.01)


ACTIVATION_FNS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": F.relu,
    "relu6": F.relu6,
    "leakyrelu": _leaky,
    "elu": F.elu,
    "selu": F.selu,
    "gelu": F.gelu,
    "swish": F.silu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "hardsigmoid": F.hardsigmoid,
    "softmax": _softmax,
    "softplus": F.softplus,
    "identity": _identity,
}

CLASSIFICATION_LOSSES = frozenset({"mcxent", "negativeloglikelihood"})


def activation_fn(name: str) -> Callable[[Tensor], Tensor]:
    """The torch function for an activation name (names are validated by the config)."""
    return ACTIVATION_FNS[name]


def per_example_loss(loss: str, activation: str, preout: Tensor, labels: Tensor) -> Tensor:
    """Loss per example (per time step for sequences): shape ``preout.shape[:-1]``.

    ``labels`` are class indices (int64, one fewer dims than ``preout``) for the classification losses,
    else arrays shaped like ``preout``. Softmax + cross-entropy and sigmoid + binary cross-entropy are
    computed from the pre-activations (log-sum-exp), which is both faster and numerically stable.
    """
    if loss in CLASSIFICATION_LOSSES:
        if activation == "softmax":
            logp = F.log_softmax(preout, dim=-1)
        else:
            logp = torch.log(activation_fn(activation)(preout).clamp_min(_EPS))
        if labels.dtype == torch.int64:
            return -logp.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
        return -(labels * logp).sum(-1)
    if loss == "xent":
        if activation == "sigmoid":
            return F.binary_cross_entropy_with_logits(preout, labels, reduction="none").sum(-1)
        out = activation_fn(activation)(preout).clamp(_EPS, 1 - _EPS)
        return -(labels * torch.log(out) + (1 - labels) * torch.log1p(-out)).sum(-1)
    out = activation_fn(activation)(preout)
    diff = out - labels
    if loss == "mse":
        return (diff * diff).mean(-1)
    if loss == "l2":
        return (diff * diff).sum(-1)
    if loss == "mae":
        return diff.abs().mean(-1)
    if loss == "l1":
        return diff.abs().sum(-1)
    if loss in ("hinge", "squared_hinge"):
        signed = torch.where(labels > 0, 1.0, -1.0).to(out.dtype)  # 0/1 labels become -1/+1
        margin = (1 - signed * out).clamp_min(0)
        return (margin if loss == "hinge" else margin * margin).sum(-1)
    if loss == "kl_divergence":
        y = labels.clamp_min(_EPS)
        return (labels * (torch.log(y) - torch.log(out.clamp_min(_EPS)))).sum(-1)
    if loss == "cosine_proximity":
        return -F.cosine_similarity(out, labels, dim=-1, eps=_EPS)
    if loss == "poisson":
        return (out - labels * torch.log(out.clamp_min(_EPS))).sum(-1)
    if loss == "mape":
        return (diff.abs() / labels.abs().clamp_min(_EPS)).mean(-1) * 100.0
    raise ValueError(f"unknown loss {loss!r}")  # pragma: no cover - names are validated by the config


def mean_loss(per_example: Tensor, mask: Tensor | None) -> Tensor:
    """Average over examples (and valid time steps when a mask is given)."""
    if mask is None:
        return per_example.mean()
    m = mask.to(per_example.dtype)
    return (per_example * m).sum() / m.sum().clamp_min(1.0)
