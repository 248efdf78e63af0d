"""Compiled parametric activations: leaky ReLU, ELU, clipped/thresholded ReLU, and PReLU with learned slopes."""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor

from deepspark.config.layers import Elu, Layer, LeakyRelu, PRelu, Relu
from deepspark.config.network import LayerPlan
from deepspark.nn.layers import CompiledLayer, Masked


class LeakyReluLayer(CompiledLayer):
    def __init__(self, plan: LayerPlan, dtype: torch.dtype) -> None:
        super().__init__(plan, dtype)
        self.slope = cast(LeakyRelu, plan.layer).slope

    def run(self, x: Tensor, mask: Tensor | None) -> Masked:
        return F.leaky_relu(x, self.slope), mask


class EluLayer(CompiledLayer):
    def __init__(self, plan: LayerPlan, dtype: torch.dtype) -> None:
        super().__init__(plan, dtype)
        self.alpha = cast(Elu, plan.layer).alpha

    def run(self, x: Tensor, mask: Tensor | None) -> Masked:
        return F.elu(x, self.alpha), mask


class ReluLayer(CompiledLayer):
    """``clip(x if x > threshold else 0, 0, max_value) - negative_slope * relu(threshold - x)``."""

    def __init__(self, plan: LayerPlan, dtype: torch.dtype) -> None:
        super().__init__(plan, dtype)
        spec = cast(Relu, plan.layer)
        self.max_value = spec.max_value
        self.slope = spec.negative_slope
        self.threshold = spec.threshold

    def run(self, x: Tensor, mask: Tensor | None) -> Masked:
        pos = F.relu(x) if self.threshold == 0.0 else x * (x > self.threshold).to(x.dtype)
        if self.max_value is not None:
            pos = pos.clamp(0.0, self.max_value)
        if self.slope == 0.0:
            return pos, mask
        return pos - self.slope * F.relu(self.threshold - x), mask


class PReluLayer(CompiledLayer):
    """``relu(x) - alpha * relu(-x)`` with ``alpha`` learned (zero-initialized, never regularized)."""

    def __init__(self, plan: LayerPlan, dtype: torch.dtype) -> None:
        super().__init__(plan, dtype)
        self.alpha = self._param(*cast(PRelu, plan.layer).alpha_shape(plan.input_type))

    def run(self, x: Tensor, mask: Tensor | None) -> Masked:
        return F.relu(x) - self.alpha * F.relu(-x), mask


ACTIVATION_BUILDERS: dict[type[Layer], type[CompiledLayer]] = {
    LeakyRelu: LeakyReluLayer,
    Elu: EluLayer,
    Relu: ReluLayer,
    PRelu: PReluLayer,
}
