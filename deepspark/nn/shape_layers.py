"""Compiled shape layers: flatten, reshape, permute; images are read in the spec's layout and stored as (N, C, H, W)."""

from __future__ import annotations

from typing import cast

import torch
from torch import Tensor

from deepspark.config.layers import Flatten, Layer, Permute, Reshape
from deepspark.config.network import LayerPlan
from deepspark.nn.layers import CompiledLayer, Masked


def to_layout(x: Tensor, layout: str) -> Tensor:
    """An (N, C, H, W) batch as the spec's layout sees it ((N, H, W, C) for channels_last); other ranks as is."""
    if x.dim() == 4 and layout == "channels_last":
        return x.permute(0, 2, 3, 1)
    return x


def from_layout(x: Tensor, layout: str) -> Tensor:
    """The inverse of ``to_layout``: an image batch in the spec's layout back to (N, C, H, W), contiguous."""
    if x.dim() == 4 and layout == "channels_last":
        return x.permute(0, 3, 1, 2).contiguous()
    return x


class FlattenLayer(CompiledLayer):
    def __init__(self, plan: LayerPlan, dtype: torch.dtype) -> None:
        super().__init__(plan, dtype)
        self.layout = cast(Flatten, plan.layer).layout

    def run(self, x: Tensor, mask: Tensor | None) -> Masked:
        return to_layout(x, self.layout).reshape(x.shape[0], -1), None


class ReshapeLayer(CompiledLayer):
    def __init__(self, plan: LayerPlan, dtype: torch.dtype) -> None:
        super().__init__(plan, dtype)
        spec = cast(Reshape, plan.layer)
        self.layout = spec.layout
        self.shape = spec.shape

    def run(self, x: Tensor, mask: Tensor | None) -> Masked:
        y = to_layout(x, self.layout).reshape(x.shape[0], *self.shape)
        return from_layout(y, self.layout), None


class PermuteLayer(CompiledLayer):
    def __init__(self, plan: LayerPlan, dtype: torch.dtype) -> None:
        super().__init__(plan, dtype)
        spec = cast(Permute, plan.layer)
        self.layout = spec.layout
        self.dims = (0, *spec.dims)

    def run(self, x: Tensor, mask: Tensor | None) -> Masked:
        y = to_layout(x, self.layout).permute(*self.dims)
        keeps_time = x.dim() == 3 and self.dims == (0, 1, 2)
        return from_layout(y.contiguous(), self.layout), mask if keeps_time else None


SHAPE_BUILDERS: dict[type[Layer], type[CompiledLayer]] = {
    Flatten: FlattenLayer,
    Reshape: ReshapeLayer,
    Permute: PermuteLayer,
}
