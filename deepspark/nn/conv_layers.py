"""Compiled convolutional layers: convolutions, pooling, resizing and global pooling (mask-aware)."""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor

from deepspark.config.layers import (
    Conv1D,
    Conv2D,
    Cropping2D,
    Deconv2D,
    GlobalPooling,
    Layer,
    Subsampling1D,
    Subsampling2D,
    Upsampling2D,
    ZeroPadding2D,
)
from deepspark.config.network import LayerPlan
from deepspark.nn.functional import activation_fn
from deepspark.nn.init import init_weight
from deepspark.nn.layers import CompiledLayer, Masked


def same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """(before, after) padding that makes the output ceil(size / stride) long, extra on the after side."""
    out = -(-size // stride)
    total = max((out - 1) * stride + dilation * (kernel - 1) + 1 - size, 0)
    return total // 2, total - total // 2


def _pool_mask(mask: Tensor | None, kernel: int, stride: int, padding: int, dilation: int, same: bool) -> Tensor | None:
    """A time-step mask after a 1-D convolution/pooling: a step is valid when any input step under it was."""
    if mask is None:
        return None
    m = mask.to(torch.float32).unsqueeze(1)
    # Padded positions are invalid steps (zeros); padding explicitly also lifts max_pool1d's padding <= k/2 limit.
    m = F.pad(m, same_padding(m.shape[-1], kernel, stride, dilation) if same else (padding, padding))
    m = F.max_pool1d(m, kernel, stride, 0, dilation)
    return m.squeeze(1).to(mask.dtype)


def _avg_excluding_pad(x: Tensor, pad: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...]) -> Tensor:
    """Average pooling over explicitly padded input whose divisor counts only the real values."""
    pool = F.avg_pool2d if x.dim() == 4 else F.avg_pool1d
    ones = F.pad(torch.ones((1, 1, *x.shape[2:]), dtype=x.dtype, device=x.device), pad)
    return pool(F.pad(x, pad), kernel, stride) / pool(ones, kernel, stride)  # type: ignore[operator]


def _runs_channels_last(x: Tensor) -> bool:
    """Whether a 2-D convolution of ``x`` runs channels-last (NHWC): on CPU, outside any tracer or compiler.

    oneDNN's channels-last convolution and pooling kernels beat the NCHW ones on CPU, for training as for
    inference: a LeNet-style network trained 1.40x faster (``bench/bench_fit.py``) and ran its inference
    1.86x faster on one thread (``bench/bench_inference.py``). Only the activations' memory layout changes:
    the parameters keep their NCHW shape and layout in the flat buffer (the weight is restrided per call, a
    copy of kilobytes whose gradient flows back into the flat buffer), and a later flatten reads the logical
    NCHW order, so a network's archive, its ``Dense`` weights and its results (to float rounding) are the
    same. CUDA keeps NCHW, where cuDNN's choice is its own; traced and exported graphs keep the plain layout.
    """
    return (
        x.device.type == "cpu"
        and not torch.jit.is_tracing()  # type: ignore[attr-defined,no-untyped-call]
        and not torch.compiler.is_compiling()
    )


def _as_channels_last(t: Tensor) -> Tensor:
    """``t`` stored NHWC. Restrided explicitly when it is not already: with one channel, ``contiguous(
    memory_format=torch.channels_last)`` keeps NCHW strides and the convolution then stays on the NCHW path."""
    if t.stride(1) == 1 and t.is_contiguous(memory_format=torch.channels_last):
        return t
    return torch.empty_like(t, memory_format=torch.channels_last).copy_(t)


class Conv2DLayer(CompiledLayer):
    WEIGHTS = ("weight",)

    def __init__(self, plan: LayerPlan, dtype: torch.dtype) -> None:
        super().__init__(plan, dtype)
        spec = cast(Conv2D, plan.layer)
        c_in = plan.input_type.channels
        self.weight = self._param(spec.n_out, c_in // spec.groups, *spec.kernel)
        self.bias = self._param(spec.n_out) if spec.has_bias else None
        self.stride = spec.stride
        self.dilation = spec.dilation
        self.groups = spec.groups
        self.act = activation_fn(spec.activation)
        self.pad: tuple[int, int, int, int] | None = None
        self.padding = spec.padding
        if spec.convolution_mode == "same":
            t = plan.input_type
            ph = same_padding(t.height, spec.kernel[0], spec.stride[0], spec.dilation[0])
            pw = same_padding(t.width, spec.kernel[1], spec.stride[1], spec.dilation[1])
            self.pad = (pw[0], pw[1], ph[0], ph[1])
            self.padding = (0, 0)

    def run(self, x: Tensor, mask: Tensor | None) -> Masked:
        if self.pad is not None:
            x = F.pad(x, self.pad)
        weight: Tensor = self.weight
        if _runs_channels_last(x):  # the output stays NHWC: pooling and the next convolution run NHWC too
            x, weight = _as_channels_last(x), _as_channels_last(weight)
        y = F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        return self.act(y), mask


class Conv1DLayer(CompiledLayer):
    """1-D convolution over time on (N, T, F) input; the mask is pooled the same way."""

    WEIGHTS = ("weight",)

    def __init__(self, plan: LayerPlan, dtype: torch.dtype) -> None:
        super().__init__(plan, dtype)
        spec = cast(Conv1D, plan.layer)
        self.spec1 = spec
        self.weight = self._param(spec.n_out, plan.input_type.size // spec.groups, spec.kernel)
        self.bias = self._param(spec.n_out) if spec.has_bias else None
        self.act = activation_fn(spec.activation)

    def run(self, x: Tensor, mask: Tensor | None) -> Masked:
        s = self.spec1
        y = x.transpose(1, 2)
        padding = s.padding
        if s.convolution_mode == "same":
            y = F.pad(y, same_padding(y.shape[-1], s.kernel, s.stride, s.dilation))
            padding = 0
        y = F.conv1d(y, self.weight, self.bias, s.stride, padding, s.dilation, s.groups)
        mask = _pool_mask(mask, s.kernel, s.stride, s.padding, s.dilation, s.convolution_mode == "same")
        return self.act(y.transpose(1, 2)), mask


def same_transpose_window(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(start, end) of the ``size * stride`` outputs a "same" transposed convolution keeps out of the full
    ``(size - 1) * stride + kernel`` ones; ``end`` past the full length means zeros are appended (kernel < stride).

    TensorFlow/JAX semantics: the ``stride + kernel - 2`` padding splits with the larger half first, capped
    at ``kernel - 1``.
    """
    total = stride + kernel - 2
    before = min(total // 2 + total % 2, kernel - 1)
    start = kernel - 1 - before
    return start, start + size * stride


class Deconv2DLayer(CompiledLayer):
    WEIGHTS = ("weight",)

    def __init__(self, plan: LayerPlan, dtype: torch.dtype) -> None:
        super().__init__(plan, dtype)
        spec = cast(Deconv2D, plan.layer)
        self.weight = self._param(plan.input_type.channels, spec.n_out, *spec.kernel)
        self.bias = self._param(spec.n_out) if spec.has_bias else None
        self.stride = spec.stride
        self.padding = spec.padding
        self.act = activation_fn(spec.activation)
        self.window: tuple[tuple[int, int], tuple[int, int]] | None = None
        if spec.convolution_mode == "same":
            t = plan.input_type
            self.window = (
                same_transpose_window(t.height, spec.kernel[0], spec.stride[0]),
                same_transpose_window(t.width, spec.kernel[1], spec.stride[1]),
            )

    def init_params(self, scheme: str, gen: torch.Generator) -> None:
        c_in, c_out, kh, kw = self.weight.shape
        init_weight(self.weight.data, scheme, gen, fan=(c_in * kh * kw, c_out * kh * kw))
        if self.bias is not None:
            self.bias.data.zero_()

    def run(self, x: Tensor, mask: Tensor | None) -> Masked:
        if self.window is None:
            return self.act(F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding)), mask
        (top, bottom), (left, right) = self.window
        y = F.conv_transpose2d(x, self.weight, None, self.stride)
        y = F.pad(y, (-left, right - y.shape[3], -top, bottom - y.shape[2]))  # negative pads crop
        if self.bias is not None:
            y = y + self.bias.view(1, -1, 1, 1)
        return self.act(y), mask


def _pnorm_pool(x: Tensor, p: int, kernel: tuple[int, ...], stride: tuple[int, ...]) -> Tensor:
    pool = F.avg_pool2d if x.dim() == 4 else F.avg_pool1d
    k = 1
    for v in kernel:
        k *= v
    return (pool(x.abs().pow(p), kernel, stride) * k).pow(1.0 / p)  # type: ignore[operator]


class Subsampling2DLayer(CompiledLayer):
    def __init__(self, plan: LayerPlan, dtype: torch.dtype) -> None:
        super().__init__(plan, dtype)
        self.spec2 = cast(Subsampling2D, plan.layer)
        s, t = self.spec2, plan.input_type
        self.pad: tuple[int, int, int, int] | None = None
        self.padding = s.padding
        if s.convolution_mode == "same":
            ph = same_padding(t.height, s.kernel[0], s.stride[0], 1)
            pw = same_padding(t.width, s.kernel[1], s.stride[1], 1)
            self.pad = (pw[0], pw[1], ph[0], ph[1])
            self.padding = (0, 0)
        elif s.pooling == "pnorm" and any(s.padding):
            self.pad = (s.padding[1], s.padding[1], s.padding[0], s.padding[0])
            self.padding = (0, 0)

    def run(self, x: Tensor, mask: Tensor | None) -> Masked:
        s = self.spec2
        if self.pad is not None and s.pooling == "avg":
            return _avg_excluding_pad(x, self.pad, s.kernel, s.stride), mask
        if self.pad is not None:
            x = F.pad(x, self.pad, value=float("-inf") if s.pooling == "max" else 0.0)
        if s.pooling == "max":
            return F.max_pool2d(x, s.kernel, s.stride, self.padding), mask
        if s.pooling == "avg":
            return F.avg_pool2d(x, s.kernel, s.stride, self.padding, count_include_pad=False), mask
        return _pnorm_pool(x, s.pnorm, s.kernel, s.stride), mask


class Subsampling1DLayer(CompiledLayer):
    def __init__(self, plan: LayerPlan, dtype: torch.dtype) -> None:
        super().__init__(plan, dtype)
        self.spec1 = cast(Subsampling1D, plan.layer)

    def run(self, x: Tensor, mask: Tensor | None) -> Masked:
        s = self.spec1
        y = x.transpose(1, 2)
        same = s.convolution_mode == "same"
        pads = same_padding(y.shape[-1], s.kernel, s.stride, 1) if same else (s.padding, s.padding)
        if s.pooling == "max":
            y = F.max_pool1d(F.pad(y, pads, value=float("-inf")), s.kernel, s.stride)
        elif s.pooling == "avg":
            y = _avg_excluding_pad(y, pads, (s.kernel,), (s.stride,))
        else:
            y = _pnorm_pool(F.pad(y, pads), s.pnorm, (s.kernel,), (s.stride,))
        mask = _pool_mask(mask, s.kernel, s.stride, s.padding, 1, same)
        return y.transpose(1, 2), mask


class Upsampling2DLayer(CompiledLayer):
    def __init__(self, plan: LayerPlan, dtype: torch.dtype) -> None:
        super().__init__(plan, dtype)
        self.size = cast(Upsampling2D, plan.layer).size

    def run(self, x: Tensor, mask: Tensor | None) -> Masked:
        return x.repeat_interleave(self.size[0], dim=2).repeat_interleave(self.size[1], dim=3), mask


class ZeroPadding2DLayer(CompiledLayer):
    def __init__(self, plan: LayerPlan, dtype: torch.dtype) -> None:
        super().__init__(plan, dtype)
        top, bottom, left, right = cast(ZeroPadding2D, plan.layer).padding
        self.pad = (left, right, top, bottom)

    def run(self, x: Tensor, mask: Tensor | None) -> Masked:
        return F.pad(x, self.pad), mask


class Cropping2DLayer(CompiledLayer):
    def __init__(self, plan: LayerPlan, dtype: torch.dtype) -> None:
        super().__init__(plan, dtype)
        self.crop = cast(Cropping2D, plan.layer).cropping

    def run(self, x: Tensor, mask: Tensor | None) -> Masked:
        top, bottom, left, right = self.crop
        return x[:, :, top : x.shape[2] - bottom, left : x.shape[3] - right], mask


class GlobalPoolingLayer(CompiledLayer):
    """Pools images over (H, W) and sequences over valid time steps; consumes the mask."""

    def __init__(self, plan: LayerPlan, dtype: torch.dtype) -> None:
        super().__init__(plan, dtype)
        spec = cast(GlobalPooling, plan.layer)
        self.pooling = spec.pooling
        self.p = spec.pnorm

    def run(self, x: Tensor, mask: Tensor | None) -> Masked:
        if x.dim() == 4:
            x = x.flatten(2).transpose(1, 2)  # (N, H*W, C): pool over positions like time steps
            mask = None
        m = None if mask is None else mask.to(x.dtype).unsqueeze(-1)
        if self.pooling == "max":
            if m is None:
                return x.amax(dim=1), None
            y = x.masked_fill(m == 0, float("-inf")).amax(dim=1)
            return torch.where(m.sum(dim=1) > 0, y, torch.zeros_like(y)), None  # fully masked -> 0, not -inf
        xm = x if m is None else x * m
        if self.pooling == "sum":
            return xm.sum(dim=1), None
        if self.pooling == "avg":
            count = x.shape[1] if m is None else m.sum(dim=1).clamp_min(1.0)
            return xm.sum(dim=1) / count, None
        return xm.abs().pow(self.p).sum(dim=1).pow(1.0 / self.p), None


CONV_BUILDERS: dict[type[Layer], type[CompiledLayer]] = {
    Conv1D: Conv1DLayer,
    Conv2D: Conv2DLayer,
    Deconv2D: Deconv2DLayer,
    Subsampling1D: Subsampling1DLayer,
    Subsampling2D: Subsampling2DLayer,
    Upsampling2D: Upsampling2DLayer,
    ZeroPadding2D: ZeroPadding2DLayer,
    Cropping2D: Cropping2DLayer,
    GlobalPooling: GlobalPoolingLayer,
}
