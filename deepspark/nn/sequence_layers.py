"""Compiled sequence layers on (N, T, F) input: time padding, cropping, up-sampling, masking; spatial dropout."""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor

from deepspark.config.layers import Cropping1D, Layer, Masking, SpatialDropout, Upsampling1D, ZeroPadding1D
from deepspark.config.network import LayerPlan
from deepspark.nn.layers import CompiledLayer, Masked


class ZeroPadding1DLayer(CompiledLayer):
    """Zero steps before/after; they count as real (zero) steps in the mask, as a convolution would see them."""

    def __init__(self, plan: LayerPlan, dtype: torch.dtype) -> None:
        super().__init__(plan, dtype)
        self.pad = cast(ZeroPadding1D, plan.layer).padding

    def run(self, x: Tensor, mask: Tensor | None) -> Masked:
        y = F.pad(x, (0, 0, self.pad[0], self.pad[1]))
        return y, None if mask is None else F.pad(mask, self.pad, value=1.0)


class Cropping1DLayer(CompiledLayer):
    def __init__(self, plan: LayerPlan, dtype: torch.dtype) -> None:
        super().__init__(plan, dtype)
        self.crop = cast(Cropping1D, plan.layer).cropping

    def run(self, x: Tensor, mask: Tensor | None) -> Masked:
        end = x.shape[1] - self.crop[1]
        return x[:, self.crop[0] : end], None if mask is None else mask[:, self.crop[0] : end]


class Upsampling1DLayer(CompiledLayer):
    def __init__(self, plan: LayerPlan, dtype: torch.dtype) -> None:
        super().__init__(plan, dtype)
        self.size = cast(Upsampling1D, plan.layer).size

    def run(self, x: Tensor, mask: Tensor | None) -> Masked:
        y = x.repeat_interleave(self.size, dim=1)
        return y, None if mask is None else mask.repeat_interleave(self.size, dim=1)


class MaskingLayer(CompiledLayer):
    """A step is padding when all its features equal ``mask_value``; padding steps are zeroed."""

    def __init__(self, plan: LayerPlan, dtype: torch.dtype) -> None:
        super().__init__(plan, dtype)
        self.value = cast(Masking, plan.layer).mask_value

    def run(self, x: Tensor, mask: Tensor | None) -> Masked:
        keep = (x != self.value).any(dim=-1).to(x.dtype)
        if mask is not None:
            keep = keep * mask.to(x.dtype)
        return x * keep.unsqueeze(-1), keep


class SpatialDropoutLayer(CompiledLayer):
    def __init__(self, plan: LayerPlan, dtype: torch.dtype) -> None:
        super().__init__(plan, dtype)
        self.rate = cast(SpatialDropout, plan.layer).rate

    def run(self, x: Tensor, mask: Tensor | None) -> Masked:
        if not self.training or self.rate == 0.0:
            return x, mask
        # one keep/drop draw per (example, channel): over all pixels of images, over all steps of sequences
        shape = (x.shape[0], x.shape[1], 1, 1) if x.dim() == 4 else (x.shape[0], 1, x.shape[2])
        keep = torch.empty(shape, dtype=x.dtype, device=x.device).bernoulli_(1.0 - self.rate) / (1.0 - self.rate)
        return x * keep, mask


SEQUENCE_BUILDERS: dict[type[Layer], type[CompiledLayer]] = {
    ZeroPadding1D: ZeroPadding1DLayer,
    Cropping1D: Cropping1DLayer,
    Upsampling1D: Upsampling1DLayer,
    Masking: MaskingLayer,
    SpatialDropout: SpatialDropoutLayer,
}
