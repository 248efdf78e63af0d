"""Gradient post-processing around the updater: normalization, L1/L2 before it, weight decay after it.

Per-element coefficients (network default or per-layer override; weights only, never biases) are built
once as flat buffers, so each step is a handful of fused in-place ops over the whole gradient buffer.
"""

from __future__ import annotations

import torch
from torch import Tensor

from deepspark.config.graph import GraphConfig
from deepspark.config.module import ModuleConfig
from deepspark.config.network import NetworkConfig
from deepspark.nn.flat import FlatBuffers
from deepspark.nn.model import ParamRole


class GradientPostProcessor:
    """Applies DL4J's order: gradient normalization, then L1/L2 into the gradient, updater, then weight decay."""

    def __init__(
        self,
        flat: FlatBuffers,
        layer_ranges: list[tuple[int, int]],
        param_ranges: list[tuple[int, int]],
        normalization: str = "none",
        threshold: float = 1.0,
        l1: Tensor | None = None,
        l2: Tensor | None = None,
        weight_decay: Tensor | None = None,
    ) -> None:
        self.flat = flat
        self.layer_ranges = layer_ranges
        self.param_ranges = param_ranges
        self.normalization = normalization
        self.threshold = threshold
        self.l1, self.l2, self.wd = l1, l2, weight_decay
        needs_scratch = l1 is not None or l2 is not None
        self.scratch = torch.empty_like(flat.grads) if needs_scratch else None
        self._zero = torch.zeros((), dtype=flat.params.dtype, device=flat.params.device)

    @classmethod
    def from_config(
        cls, config: NetworkConfig | GraphConfig | ModuleConfig, flat: FlatBuffers, roles: dict[str, ParamRole]
    ) -> GradientPostProcessor:
        """Coefficient buffers and normalization groups for a compiled config (``role.layer`` indexes its layers)."""
        n = flat.n_trainable
        coef = {key: torch.zeros(n, dtype=flat.params.dtype, device=flat.params.device)
                for key in ("l1", "l2", "weight_decay")}
        used = dict.fromkeys(coef, False)
        layer_spans: dict[int, list[int]] = {}
        param_ranges = []
        for seg in flat.segments:
            if not seg.trainable:
                continue
            role = roles[seg.name]
            span = layer_spans.setdefault(role.layer, [seg.offset, seg.offset + seg.numel])
            span[0], span[1] = min(span[0], seg.offset), max(span[1], seg.offset + seg.numel)
            param_ranges.append((seg.offset, seg.offset + seg.numel))
            if not role.is_weight:
                continue
            layer = config.layers[role.layer]
            for key in coef:
                own = getattr(layer, key)
                value = own if own is not None else getattr(config, key)
                if value > 0:
                    coef[key][seg.offset : seg.offset + seg.numel] = value
                    used[key] = True
        return cls(
            flat,
            [(a, b) for a, b in layer_spans.values()],
            param_ranges,
            config.gradient_normalization,
            config.gradient_normalization_threshold,
            coef["l1"] if used["l1"] else None,
            coef["l2"] if used["l2"] else None,
            coef["weight_decay"] if used["weight_decay"] else None,
        )

    def regularization_score(self) -> Tensor:
        """0.5 * sum(l2 * w^2) + sum(l1 * |w|) over weights (what DL4J adds to the score)."""
        if self.scratch is None:
            return self._zero
        w = self.flat.trainable.detach()
        total = self._zero
        if self.l2 is not None:
            torch.mul(self.l2, w, out=self.scratch)
            total = total + 0.5 * torch.dot(self.scratch, w)
        if self.l1 is not None:
            torch.abs(w, out=self.scratch)
            total = total + torch.dot(self.scratch, self.l1)
        return total

    @torch.no_grad()
    def before_update(self, learning_rate: float) -> None:
        """Normalize the gradient, then add the L1/L2 gradients."""
        g = self.flat.grads
        mode, t = self.normalization, self.threshold
        if mode == "clip_element_wise":
            g.clamp_(-t, t)
        elif mode != "none":
            ranges = self.layer_ranges if mode.endswith("per_layer") else self.param_ranges
            for a, b in ranges:
                part = g[a:b]
                norm = torch.linalg.vector_norm(part)
                if mode.startswith("clip"):
                    part.mul_(t / norm.clamp_min(t))
                else:
                    part.div_(norm.clamp_min(1e-12))
        w = self.flat.trainable
        if self.l2 is not None:
            g.addcmul_(self.l2, w)
        if self.l1 is not None and self.scratch is not None:
            torch.sign(w, out=self.scratch)
            g.addcmul_(self.l1, self.scratch)

    @torch.no_grad()
    def after_update(self, learning_rate: float) -> None:
        """Add decoupled weight decay to the update: update += lr * wd * w."""
        if self.wd is not None:
            self.flat.grads.addcmul_(self.wd, self.flat.trainable, value=learning_rate)
