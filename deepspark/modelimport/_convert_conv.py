"""Converters for Keras' convolution, pooling, padding, cropping and up-sampling layers (channels-last only).

Keras stores convolution kernels as (kernel..., in, out) and deepspark as (out, in, kernel...); the
image layout change itself happens once at the network's input (see ``InputType.channels_last``).
"""

from __future__ import annotations

import numpy as np

from deepspark.config.layers import (
    Conv1D,
    Conv2D,
    Cropping1D,
    Cropping2D,
    Deconv2D,
    GlobalPooling,
    Subsampling1D,
    Subsampling2D,
    Upsampling1D,
    Upsampling2D,
    ZeroPadding1D,
    ZeroPadding2D,
)
from deepspark.modelimport._convert_base import (
    Context,
    Converted,
    Converter,
    Part,
    WeightSpec,
    activated,
    activation,
    simple,
    with_settings,
)
from deepspark.modelimport._layer_config import KerasLayer

Params = dict[str, dict[str, np.ndarray]]


def _mode(layer: KerasLayer, *extra: str) -> str:
    return layer.choice("padding", ("valid", "same", *extra), "valid")


def _needs(layer: KerasLayer, ctx: Context, form: str) -> None:
    if ctx.input.form != form:
        what = "an image (batch, height, width, channels)" if form == "convolutional" else "a (batch, time, features)"
        raise layer.error(f"expects {what} input, got {ctx.input.describe()}")


def _bias(use_bias: bool, n: int) -> list[WeightSpec]:
    return [WeightSpec("bias", (n,))] if use_bias else []


def conv2d(layer: KerasLayer, ctx: Context) -> Converted:
    layer.channels_last()
    _needs(layer, ctx, "convolutional")
    c = ctx.input.channels
    filters, groups = layer.integer("filters"), layer.integer("groups", 1)
    kernel, stride = layer.integers("kernel_size", 2), layer.integers("strides", 2, 1)
    dilation = layer.integers("dilation_rate", 2, 1)
    use_bias = layer.flag("use_bias", True)
    act, extra = activation(layer)
    spec = Conv2D(
        n_out=filters,
        kernel=kernel,  # type: ignore[arg-type]
        stride=stride,  # type: ignore[arg-type]
        dilation=dilation,  # type: ignore[arg-type]
        groups=groups,
        convolution_mode="same" if _mode(layer) == "same" else "truncate",
        activation=act,  # type: ignore[arg-type]
        has_bias=use_bias,
    )
    role = "" if extra is None else "linear"

    def params(arrays: list[np.ndarray]) -> Params:
        out = {"weight": arrays[0].transpose(3, 2, 0, 1)}
        if use_bias:
            out["bias"] = arrays[1]
        return {role: out}

    weights = [WeightSpec("kernel", (*kernel, c // groups, filters)), *_bias(use_bias, filters)]
    main = with_settings(spec, layer, ctx.notes)
    return Converted(parts=activated(main, extra), weights=tuple(weights), params=params)


def conv1d(layer: KerasLayer, ctx: Context) -> Converted:
    layer.channels_last()
    _needs(layer, ctx, "recurrent")
    f = ctx.input.size
    filters, groups = layer.integer("filters"), layer.integer("groups", 1)
    (kernel,), (stride,) = layer.integers("kernel_size", 1), layer.integers("strides", 1, 1)
    (dilation,) = layer.integers("dilation_rate", 1, 1)
    use_bias = layer.flag("use_bias", True)
    mode = _mode(layer, "causal")
    act, extra = activation(layer)
    spec = Conv1D(
        n_out=filters,
        kernel=kernel,
        stride=stride,
        dilation=dilation,
        groups=groups,
        convolution_mode="same" if mode == "same" else "truncate",
        activation=act,  # type: ignore[arg-type]
        has_bias=use_bias,
    )
    role = "" if extra is None else "linear"
    parts = activated(with_settings(spec, layer, ctx.notes), extra)
    if mode == "causal":  # left-pad so step t only sees steps <= t
        parts = (Part("causal_pad", ZeroPadding1D(padding=((kernel - 1) * dilation, 0))), *parts)

    def params(arrays: list[np.ndarray]) -> Params:
        out = {"weight": arrays[0].transpose(2, 1, 0)}
        if use_bias:
            out["bias"] = arrays[1]
        return {role: out}

    weights = [WeightSpec("kernel", (kernel, f // groups, filters)), *_bias(use_bias, filters)]
    return Converted(parts=parts, weights=tuple(weights), params=params)


def conv2d_transpose(layer: KerasLayer, ctx: Context) -> Converted:
    layer.channels_last()
    _needs(layer, ctx, "convolutional")
    c = ctx.input.channels
    filters = layer.integer("filters")
    kernel, stride = layer.integers("kernel_size", 2), layer.integers("strides", 2, 1)
    if layer.integers("dilation_rate", 2, 1) != (1, 1) or layer.has("output_padding"):
        raise layer.error("dilation_rate and output_padding are not supported")
    mode = _mode(layer)
    if mode == "valid" and any(s > k for s, k in zip(stride, kernel, strict=True)):
        raise layer.error(f"padding='valid' with strides {stride} larger than kernel_size {kernel} is not supported")
    use_bias = layer.flag("use_bias", True)
    act, extra = activation(layer)
    spec = Deconv2D(
        n_out=filters,
        kernel=kernel,  # type: ignore[arg-type]
        stride=stride,  # type: ignore[arg-type]
        convolution_mode="same" if mode == "same" else "truncate",
        activation=act,  # type: ignore[arg-type]
        has_bias=use_bias,
    )
    role = "" if extra is None else "linear"

    def params(arrays: list[np.ndarray]) -> Params:
        out = {"weight": arrays[0].transpose(3, 2, 0, 1)}
        if use_bias:
            out["bias"] = arrays[1]
        return {role: out}

    weights = [WeightSpec("kernel", (*kernel, filters, c)), *_bias(use_bias, filters)]
    parts = activated(with_settings(spec, layer, ctx.notes), extra)
    return Converted(parts=parts, weights=tuple(weights), params=params)


def _depthwise(kernel: np.ndarray) -> np.ndarray:
    """(kh, kw, in, multiplier) -> (in * multiplier, 1, kh, kw); output channel c * multiplier + m."""
    kh, kw, c, m = kernel.shape
    out: np.ndarray = kernel.reshape(kh, kw, c * m).transpose(2, 0, 1)[:, None]
    return out


def _depthwise_spec(layer: KerasLayer, c: int, use_bias: bool, act: str = "identity") -> tuple[Conv2D, int]:
    mult = layer.integer("depth_multiplier", 1)
    spec = Conv2D(
        n_out=c * mult,
        kernel=layer.integers("kernel_size", 2),  # type: ignore[arg-type]
        stride=layer.integers("strides", 2, 1),  # type: ignore[arg-type]
        dilation=layer.integers("dilation_rate", 2, 1),  # type: ignore[arg-type]
        groups=c,
        convolution_mode="same" if _mode(layer) == "same" else "truncate",
        activation=act,  # type: ignore[arg-type]
        has_bias=use_bias,
    )
    return spec, mult


def depthwise_conv2d(layer: KerasLayer, ctx: Context) -> Converted:
    layer.channels_last()
    _needs(layer, ctx, "convolutional")
    c = ctx.input.channels
    use_bias = layer.flag("use_bias", True)
    act, extra = activation(layer)
    spec, mult = _depthwise_spec(layer, c, use_bias, act)
    role = "" if extra is None else "linear"

    def params(arrays: list[np.ndarray]) -> Params:
        out = {"weight": _depthwise(arrays[0])}
        if use_bias:
            out["bias"] = arrays[1]
        return {role: out}

    weights = [WeightSpec("depthwise_kernel", (*spec.kernel, c, mult)), *_bias(use_bias, c * mult)]
    main = with_settings(spec, layer, ctx.notes, "depthwise_initializer")
    return Converted(parts=activated(main, extra), weights=tuple(weights), params=params)


def separable_conv2d(layer: KerasLayer, ctx: Context) -> Converted:
    """A depthwise convolution (no bias) followed by a 1x1 convolution (bias, activation)."""
    layer.channels_last()
    _needs(layer, ctx, "convolutional")
    c = ctx.input.channels
    filters = layer.integer("filters")
    use_bias = layer.flag("use_bias", True)
    act, extra = activation(layer)
    depthwise, mult = _depthwise_spec(layer, c, False)
    pointwise = Conv2D(n_out=filters, kernel=(1, 1), activation=act, has_bias=use_bias)  # type: ignore[arg-type]
    role = "" if extra is None else "linear"

    def params(arrays: list[np.ndarray]) -> Params:
        point = {"weight": arrays[1].transpose(3, 2, 0, 1)}
        if use_bias:
            point["bias"] = arrays[2]
        return {"depthwise": {"weight": _depthwise(arrays[0])}, role: point}

    weights = [
        WeightSpec("depthwise_kernel", (*depthwise.kernel, c, mult)),
        WeightSpec("pointwise_kernel", (1, 1, c * mult, filters)),
        *_bias(use_bias, filters),
    ]
    point = with_settings(pointwise, layer, ctx.notes, "pointwise_initializer")
    parts = (Part("depthwise", depthwise), *activated(point, extra))
    return Converted(parts=parts, weights=tuple(weights), params=params)


def _pooling(kind: str, dims: int) -> Converter:
    def convert(layer: KerasLayer, ctx: Context) -> Converted:
        layer.channels_last()
        _needs(layer, ctx, "convolutional" if dims == 2 else "recurrent")
        size = layer.integers("pool_size", dims, 2)
        stride = layer.integers("strides", dims, size) if layer.has("strides") else size
        mode = "same" if _mode(layer) == "same" else "truncate"
        if dims == 2:
            return simple(Subsampling2D(kernel=size, stride=stride, pooling=kind, convolution_mode=mode))  # type: ignore[arg-type]
        return simple(Subsampling1D(kernel=size[0], stride=stride[0], pooling=kind, convolution_mode=mode))  # type: ignore[arg-type]

    return convert


def _global_pooling(kind: str) -> Converter:
    def convert(layer: KerasLayer, ctx: Context) -> Converted:
        layer.channels_last()
        if layer.flag("keepdims", False):
            raise layer.error("keepdims=True is not supported")
        return simple(GlobalPooling(pooling=kind))  # type: ignore[arg-type]

    return convert


def zero_padding2d(layer: KerasLayer, ctx: Context) -> Converted:
    layer.channels_last()
    (top, bottom), (left, right) = layer.pairs("padding", 2, 1)
    return simple(ZeroPadding2D(padding=(top, bottom, left, right)))


def zero_padding1d(layer: KerasLayer, ctx: Context) -> Converted:
    ((before, after),) = layer.pairs("padding", 1, 1)
    return simple(ZeroPadding1D(padding=(before, after)))


def cropping2d(layer: KerasLayer, ctx: Context) -> Converted:
    layer.channels_last()
    (top, bottom), (left, right) = layer.pairs("cropping", 2, 0)
    return simple(Cropping2D(cropping=(top, bottom, left, right)))


def cropping1d(layer: KerasLayer, ctx: Context) -> Converted:
    ((before, after),) = layer.pairs("cropping", 1, 1)
    return simple(Cropping1D(cropping=(before, after)))


def upsampling2d(layer: KerasLayer, ctx: Context) -> Converted:
    layer.channels_last()
    layer.choice("interpolation", ("nearest",), "nearest")
    return simple(Upsampling2D(size=layer.integers("size", 2, 2)))  # type: ignore[arg-type]


def upsampling1d(layer: KerasLayer, ctx: Context) -> Converted:
    (size,) = layer.integers("size", 1, 2)
    return simple(Upsampling1D(size=size))


CONV_CONVERTERS: dict[str, Converter] = {
    "Conv1D": conv1d,
    "Conv2D": conv2d,
    "Conv2DTranspose": conv2d_transpose,
    "DepthwiseConv2D": depthwise_conv2d,
    "SeparableConv2D": separable_conv2d,
    "MaxPooling1D": _pooling("max", 1),
    "MaxPooling2D": _pooling("max", 2),
    "AveragePooling1D": _pooling("avg", 1),
    "AveragePooling2D": _pooling("avg", 2),
    "GlobalMaxPooling1D": _global_pooling("max"),
    "GlobalMaxPooling2D": _global_pooling("max"),
    "GlobalAveragePooling1D": _global_pooling("avg"),
    "GlobalAveragePooling2D": _global_pooling("avg"),
    "ZeroPadding1D": zero_padding1d,
    "ZeroPadding2D": zero_padding2d,
    "Cropping1D": cropping1d,
    "Cropping2D": cropping2d,
    "UpSampling1D": upsampling1d,
    "UpSampling2D": upsampling2d,
}
