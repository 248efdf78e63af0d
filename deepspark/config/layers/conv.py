"""Convolutional layer specs: 1-D/2-D convolution, deconvolution, pooling, up-sampling, padding, cropping."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

from deepspark.config._spec import check, check_non_negative_tuple, check_positive, check_positive_tuple, register
from deepspark.config.input_types import InputType
from deepspark.config.layers._base import Layer
from deepspark.config.names import Activation as ActivationName
from deepspark.errors import ConfigError

ConvolutionMode = Literal["truncate", "same"]
"""``truncate``: no implicit padding, output floor((in + 2p - d(k-1) - 1) / s) + 1.
``same``: padded so that output = ceil(in / s) (asymmetric padding where needed, as TensorFlow does)."""

Pooling = Literal["max", "avg", "pnorm"]


def conv_out(size: int, kernel: int, stride: int, padding: int, dilation: int, mode: str) -> int:
    """Output length of a convolution or pooling along one axis."""
    if mode == "same":
        return math.ceil(size / stride)
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _check_positive_out(layer: Layer, input_type: InputType, sizes: tuple[int, ...]) -> None:
    if any(s <= 0 for s in sizes):
        raise layer._incompatible(
            input_type, f"the output would be {'x'.join(map(str, sizes))}; use a smaller kernel/stride or more padding"
        )


def _check_groups(n_out: int, groups: int) -> None:
    check(n_out % groups == 0, "groups", f"n_out ({n_out}) must be a multiple of groups, got {groups}")


def _check_group_input(layer: Layer, input_type: InputType, channels: int) -> None:
    groups: int = layer.groups  # type: ignore[attr-defined]
    if channels % groups:
        raise layer._incompatible(input_type, f"its {channels} input channels do not split into {groups} groups")


@register("conv1d")
@dataclass(frozen=True, kw_only=True, slots=True)
class Conv1D(Layer):
    """1-D convolution over the time axis of recurrent input (time, features) -> (time', n_out)."""

    ACCEPTS: ClassVar[tuple[str, ...]] = ("recurrent",)

    n_out: int
    kernel: int = 3
    stride: int = 1
    padding: int = 0
    dilation: int = 1
    convolution_mode: ConvolutionMode = "truncate"
    activation: ActivationName = "identity"
    has_bias: bool = True
    groups: int = 1

    def _validate(self) -> None:
        Layer._validate(self)
        check_positive(self, "n_out", "kernel", "stride", "dilation", "groups")
        check(self.padding >= 0, "padding", f"expected an int >= 0, got {self.padding}")
        _check_groups(self.n_out, self.groups)

    def output_type(self, input_type: InputType) -> InputType:
        _check_group_input(self, input_type, input_type.size)
        t = input_type.timesteps
        if t is None:
            return InputType.recurrent(self.n_out, None)
        out = conv_out(t, self.kernel, self.stride, self.padding, self.dilation, self.convolution_mode)
        _check_positive_out(self, input_type, (out,))
        return InputType.recurrent(self.n_out, out)


@register("conv2d")
@dataclass(frozen=True, kw_only=True, slots=True)
class Conv2D(Layer):
    """2-D convolution over (channels, height, width) input.

    Example:
        >>> Conv2D(n_out=20, kernel=(5, 5), activation="relu").kernel
        (5, 5)
    """

    ACCEPTS: ClassVar[tuple[str, ...]] = ("convolutional",)

    n_out: int
    kernel: tuple[int, int] = (3, 3)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    convolution_mode: ConvolutionMode = "truncate"
    activation: ActivationName = "identity"
    has_bias: bool = True
    groups: int = 1

    def _validate(self) -> None:
        Layer._validate(self)
        check_positive(self, "n_out", "groups")
        check_positive_tuple(self, "kernel", "stride", "dilation")
        check_non_negative_tuple(self, "padding")
        _check_groups(self.n_out, self.groups)

    def output_type(self, input_type: InputType) -> InputType:
        _check_group_input(self, input_type, input_type.channels)
        h = conv_out(
            input_type.height, self.kernel[0], self.stride[0], self.padding[0], self.dilation[0], self.convolution_mode
        )
        w = conv_out(
            input_type.width, self.kernel[1], self.stride[1], self.padding[1], self.dilation[1], self.convolution_mode
        )
        _check_positive_out(self, input_type, (h, w))
        return InputType.convolutional(h, w, self.n_out)


@register("deconv2d")
@dataclass(frozen=True, kw_only=True, slots=True)
class Deconv2D(Layer):
    """Transposed 2-D convolution: output = (in - 1) * stride - 2 * padding + kernel.

    ``convolution_mode="same"`` gives output = in * stride instead, cropping the full transposed convolution
    the way TensorFlow and Keras do (more is cropped at the start when the excess is odd).
    """

    ACCEPTS: ClassVar[tuple[str, ...]] = ("convolutional",)

    n_out: int
    kernel: tuple[int, int] = (2, 2)
    stride: tuple[int, int] = (2, 2)
    padding: tuple[int, int] = (0, 0)
    activation: ActivationName = "identity"
    has_bias: bool = True
    convolution_mode: ConvolutionMode = "truncate"

    def _validate(self) -> None:
        Layer._validate(self)
        check_positive(self, "n_out")
        check_positive_tuple(self, "kernel", "stride")
        check_non_negative_tuple(self, "padding")
        if self.convolution_mode == "same":
            check(self.padding == (0, 0), "padding", f"'same' mode computes its own padding, got {self.padding}")

    def output_type(self, input_type: InputType) -> InputType:
        if self.convolution_mode == "same":
            h, w = input_type.height * self.stride[0], input_type.width * self.stride[1]
            return InputType.convolutional(h, w, self.n_out)
        h = (input_type.height - 1) * self.stride[0] - 2 * self.padding[0] + self.kernel[0]
        w = (input_type.width - 1) * self.stride[1] - 2 * self.padding[1] + self.kernel[1]
        _check_positive_out(self, input_type, (h, w))
        return InputType.convolutional(h, w, self.n_out)


@register("subsampling1d")
@dataclass(frozen=True, kw_only=True, slots=True)
class Subsampling1D(Layer):
    """1-D pooling over the time axis of recurrent input."""

    ACCEPTS: ClassVar[tuple[str, ...]] = ("recurrent",)

    kernel: int = 2
    stride: int = 2
    padding: int = 0
    pooling: Pooling = "max"
    pnorm: int = 2
    convolution_mode: ConvolutionMode = "truncate"

    def _validate(self) -> None:
        Layer._validate(self)
        check_positive(self, "kernel", "stride", "pnorm")
        check(self.padding >= 0, "padding", f"expected an int >= 0, got {self.padding}")
        check(
            self.padding * 2 <= self.kernel,
            "padding",
            f"padding must be at most half the kernel ({self.kernel}), got {self.padding}",
        )

    def output_type(self, input_type: InputType) -> InputType:
        t = input_type.timesteps
        if t is None:
            return input_type
        out = conv_out(t, self.kernel, self.stride, self.padding, 1, self.convolution_mode)
        _check_positive_out(self, input_type, (out,))
        return InputType.recurrent(input_type.size, out)


@register("subsampling2d")
@dataclass(frozen=True, kw_only=True, slots=True)
class Subsampling2D(Layer):
    """2-D pooling (max, average or p-norm) over (channels, height, width) input."""

    ACCEPTS: ClassVar[tuple[str, ...]] = ("convolutional",)

    kernel: tuple[int, int] = (2, 2)
    stride: tuple[int, int] = (2, 2)
    padding: tuple[int, int] = (0, 0)
    pooling: Pooling = "max"
    pnorm: int = 2
    convolution_mode: ConvolutionMode = "truncate"

    def _validate(self) -> None:
        Layer._validate(self)
        check_positive(self, "pnorm")
        check_positive_tuple(self, "kernel", "stride")
        check_non_negative_tuple(self, "padding")
        for i in range(2):
            if self.padding[i] * 2 > self.kernel[i]:
                raise ConfigError(
                    f"padding must be at most half the kernel ({self.kernel[i]}), got {self.padding[i]}",
                    f"padding[{i}]",
                )

    def output_type(self, input_type: InputType) -> InputType:
        h = conv_out(input_type.height, self.kernel[0], self.stride[0], self.padding[0], 1, self.convolution_mode)
        w = conv_out(input_type.width, self.kernel[1], self.stride[1], self.padding[1], 1, self.convolution_mode)
        _check_positive_out(self, input_type, (h, w))
        return InputType.convolutional(h, w, input_type.channels)


Subsampling = Subsampling2D
"""DL4J's name for 2-D pooling."""


@register("upsampling2d")
@dataclass(frozen=True, kw_only=True, slots=True)
class Upsampling2D(Layer):
    """Repeats each pixel ``size`` times along height and width (nearest neighbour)."""

    ACCEPTS: ClassVar[tuple[str, ...]] = ("convolutional",)

    size: tuple[int, int] = (2, 2)

    def _validate(self) -> None:
        Layer._validate(self)
        check_positive_tuple(self, "size")

    def output_type(self, input_type: InputType) -> InputType:
        t = input_type
        return InputType.convolutional(t.height * self.size[0], t.width * self.size[1], t.channels)


@register("zero_padding2d")
@dataclass(frozen=True, kw_only=True, slots=True)
class ZeroPadding2D(Layer):
    """Pads images with zeros: ``padding`` = (top, bottom, left, right)."""

    ACCEPTS: ClassVar[tuple[str, ...]] = ("convolutional",)

    padding: tuple[int, int, int, int] = (1, 1, 1, 1)

    def _validate(self) -> None:
        Layer._validate(self)
        check_non_negative_tuple(self, "padding")

    def output_type(self, input_type: InputType) -> InputType:
        t, p = input_type, self.padding
        return InputType.convolutional(t.height + p[0] + p[1], t.width + p[2] + p[3], t.channels)


@register("cropping2d")
@dataclass(frozen=True, kw_only=True, slots=True)
class Cropping2D(Layer):
    """Crops image borders: ``cropping`` = (top, bottom, left, right)."""

    ACCEPTS: ClassVar[tuple[str, ...]] = ("convolutional",)

    cropping: tuple[int, int, int, int] = (0, 0, 0, 0)

    def _validate(self) -> None:
        Layer._validate(self)
        check_non_negative_tuple(self, "cropping")

    def output_type(self, input_type: InputType) -> InputType:
        t, c = input_type, self.cropping
        h, w = t.height - c[0] - c[1], t.width - c[2] - c[3]
        _check_positive_out(self, input_type, (h, w))
        return InputType.convolutional(h, w, t.channels)


@register("global_pooling")
@dataclass(frozen=True, kw_only=True, slots=True)
class GlobalPooling(Layer):
    """Pools over all spatial positions (images) or all time steps (sequences, mask-aware) -> feed-forward."""

    ACCEPTS: ClassVar[tuple[str, ...]] = ("convolutional", "recurrent")

    pooling: Literal["max", "avg", "sum", "pnorm"] = "max"
    pnorm: int = 2

    def _validate(self) -> None:
        Layer._validate(self)
        check_positive(self, "pnorm")

    def output_type(self, input_type: InputType) -> InputType:
        if input_type.form == "convolutional":
            return InputType.feed_forward(input_type.channels)
        return InputType.feed_forward(input_type.size)
