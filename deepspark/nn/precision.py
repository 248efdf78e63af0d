"""Mixed precision for one network: ``torch.autocast`` around the forward pass and, for fp16, loss scaling.

The master weights, gradients and updater state stay in the network's dtype (float32): autocast only runs the
forward (and so the backward) in bf16/fp16 where torch deems it safe, and the loss is computed in float32.
fp16's narrow range needs the loss scaled up before backward and the gradient scaled back after
(``LossScaler``: torch's ``GradScaler`` rule, applied to the one flat gradient buffer, no optimizer needed).
With ``precision="fp32"`` nothing is wrapped: training is bit-identical to a network without this module.
"""

from __future__ import annotations

import contextlib
import math

import torch
from torch import Tensor

AUTOCAST_DTYPES: dict[str, torch.dtype] = {"bf16": torch.bfloat16, "fp16": torch.float16}


class LossScaler:
    """Dynamic loss scaling (``torch.amp.GradScaler``'s rule) on a flat gradient buffer.

    ``scale`` multiplies the loss before backward; ``unscale_`` divides the gradient back in place and checks it
    with one float64 sum. A non-finite gradient zeroes the buffer, halves the scale and reports the step as
    skipped; ``growth_interval`` finite steps in a row double the scale.

    Example:
        >>> scaler = LossScaler(init_scale=4.0)
        >>> grads = torch.tensor([4.0, -8.0])
        >>> scaler.unscale_(grads), grads.tolist()
        (True, [1.0, -2.0])
    """

    def __init__(
        self,
        init_scale: float = 2.0**16,
        growth_factor: float = 2.0,
        backoff_factor: float = 0.5,
        growth_interval: int = 2000,
    ) -> None:
        self.value = init_scale
        self.growth_factor, self.backoff_factor, self.growth_interval = growth_factor, backoff_factor, growth_interval
        self.good_steps = 0
        self.skipped = 0

    def scale(self, loss: Tensor) -> Tensor:
        """The loss to call ``backward`` on."""
        return loss * self.value

    def unscale_(self, grads: Tensor) -> bool:
        """Undo the scale in ``grads`` (in place); False (and ``grads`` zeroed) when they overflowed."""
        grads.mul_(1.0 / self.value)
        if not math.isfinite(float(torch.sum(grads, dtype=torch.float64))):
            grads.zero_()
            self.value *= self.backoff_factor
            self.good_steps = 0
            self.skipped += 1
            return False
        self.good_steps += 1
        if self.good_steps >= self.growth_interval:
            self.value *= self.growth_factor
            self.good_steps = 0
        return True


class MixedPrecision:
    """The autocast context and (fp16) loss scaler of one network on one device type."""

    def __init__(self, precision: str, device_type: str) -> None:
        self.precision = precision
        self.device_type = device_type
        self.dtype: torch.dtype | None = AUTOCAST_DTYPES.get(precision)
        self.scaler: LossScaler | None = LossScaler() if precision == "fp16" else None

    @property
    def enabled(self) -> bool:
        """Whether the forward pass runs in a lower precision."""
        return self.dtype is not None

    def autocast(self) -> contextlib.AbstractContextManager[object]:
        """``torch.autocast`` for bf16/fp16; a no-op context for fp32."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)


__all__ = ["AUTOCAST_DTYPES", "LossScaler", "MixedPrecision"]
