"""Converters for Keras' core layers: Dense, activations, dropout, shape layers, normalization, embeddings."""

from __future__ import annotations

import math

import numpy as np

from deepspark.config.layers import (
    Activation,
    BatchNorm,
    Dense,
    Dropout,
    Elu,
    EmbeddingSequence,
    Flatten,
    LayerNorm,
    LeakyRelu,
    Masking,
    Permute,
    PRelu,
    Relu,
    Reshape,
    SpatialDropout,
)
from deepspark.config.layers.shape import example_shape
from deepspark.errors import ConfigError
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


def _last_axis(layer: KerasLayer, ctx: Context) -> None:
    """Normalization layers: only the last (feature/channel) axis, as Keras' default ``axis=-1``."""
    rank = len(ctx.input.shape()) + 1  # with the batch axis
    axis = layer.raw("axis", -1)
    if isinstance(axis, list) and len(axis) == 1:
        axis = axis[0]
    if axis not in (-1, rank - 1):
        raise layer.error(f"axis={layer.raw('axis')!r} is not supported: only the last (feature/channel) axis")


def dense(layer: KerasLayer, ctx: Context) -> Converted:
    t = ctx.input
    if t.form not in ("feed_forward", "recurrent"):
        raise layer.error(f"Dense on {t.describe()} input is not supported; add a Flatten or a global pooling first")
    units = layer.integer("units")
    use_bias = layer.flag("use_bias", True)
    act, extra = activation(layer)
    main = with_settings(Dense(n_out=units, activation=act, has_bias=use_bias), layer, ctx.notes)  # type: ignore[arg-type]
    role = "" if extra is None else "linear"
    weights = [WeightSpec("kernel", (t.size, units))] + ([WeightSpec("bias", (units,))] if use_bias else [])

    def params(arrays: list[np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
        out = {"weight": arrays[0].T}
        if use_bias:
            out["bias"] = arrays[1]
        return {role: out}

    return Converted(parts=activated(main, extra), weights=tuple(weights), params=params)


def activation_layer(layer: KerasLayer, ctx: Context) -> Converted:
    act, extra = activation(layer)
    return simple(extra if extra is not None else Activation(activation=act))  # type: ignore[arg-type]


def dropout(layer: KerasLayer, ctx: Context) -> Converted:
    if layer.has("noise_shape"):
        ctx.notes.add(f"{layer.where()}: noise_shape is not imported; plain dropout is used")
    return simple(Dropout(rate=layer.number("rate")))


def spatial_dropout(layer: KerasLayer, ctx: Context) -> Converted:
    layer.channels_last()
    return simple(SpatialDropout(rate=layer.number("rate")))


def flatten(layer: KerasLayer, ctx: Context) -> Converted:
    layer.channels_last()
    return simple(Flatten(layout="channels_last"))


def reshape(layer: KerasLayer, ctx: Context) -> Converted:
    target = layer.raw("target_shape")
    if not isinstance(target, (list, tuple)) or not all(isinstance(v, int) and not isinstance(v, bool) for v in target):
        raise layer.error(f"target_shape must be a list of ints, got {target!r}")
    try:
        total = math.prod(example_shape(ctx.input, "channels_last"))
    except ConfigError as e:
        raise layer.error(e.message) from None
    if list(target).count(-1) == 1:
        known = math.prod(v for v in target if v != -1)
        if known <= 0 or total % known:
            raise layer.error(f"cannot reshape {total} values to {list(target)}")
        target = [total // known if v == -1 else v for v in target]
    return simple(Reshape(shape=tuple(target), layout="channels_last"))


def permute(layer: KerasLayer, ctx: Context) -> Converted:
    dims = layer.raw("dims")
    if not isinstance(dims, (list, tuple)):
        raise layer.error(f"dims must be a list of axes, got {dims!r}")
    if ctx.input.form == "feed_forward":
        return simple(Activation(activation="identity"))
    return simple(Permute(dims=tuple(dims), layout="channels_last"))


def _size(ctx: Context) -> int:
    t = ctx.input
    return t.channels if t.form == "convolutional" else t.size


def batch_normalization(layer: KerasLayer, ctx: Context) -> Converted:
    _last_axis(layer, ctx)
    if layer.flag("renorm", False):
        raise layer.error("renorm=True is not supported")
    center, scale = layer.flag("center", True), layer.flag("scale", True)
    n = _size(ctx)
    spec = BatchNorm(decay=layer.number("momentum", 0.99), eps=layer.number("epsilon", 1e-3))
    if not center and not scale:
        spec = BatchNorm(decay=spec.decay, eps=spec.eps, lock_gamma_beta=True)
    elif not (center and scale):
        ctx.notes.add(f"{layer.where()}: the fixed {'beta=0' if scale else 'gamma=1'} becomes trainable in deepspark")
    names = [*(["gamma"] if scale else []), *(["beta"] if center else []), "moving_mean", "moving_variance"]

    def params(arrays: list[np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
        got = dict(zip(names, arrays, strict=True))
        out = {"running_mean": got["moving_mean"], "running_var": got["moving_variance"]}
        if center or scale:
            out["gamma"] = got.get("gamma", np.ones(n, np.float32))
            out["beta"] = got.get("beta", np.zeros(n, np.float32))
        return {"": out}

    return Converted(parts=(Part("", spec),), weights=tuple(WeightSpec(k, (n,)) for k in names), params=params)


def layer_normalization(layer: KerasLayer, ctx: Context) -> Converted:
    _last_axis(layer, ctx)
    if ctx.input.form == "convolutional":
        raise layer.error(
            "on images Keras normalizes each pixel over its channels, deepspark's LayerNorm over (c, h, w): "
            "not supported"
        )
    if layer.flag("rms_scaling", False):
        raise layer.error("rms_scaling=True is not supported")
    center, scale = layer.flag("center", True), layer.flag("scale", True)
    if not scale:
        ctx.notes.add(f"{layer.where()}: the fixed gamma=1 becomes trainable in deepspark")
    n = _size(ctx)
    names = [*(["gamma"] if scale else []), *(["beta"] if center else [])]

    def params(arrays: list[np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
        got = dict(zip(names, arrays, strict=True))
        out = {"gain": got.get("gamma", np.ones(n, np.float32))}
        if center:
            out["bias"] = got["beta"]
        return {"": out}

    spec = LayerNorm(eps=layer.number("epsilon", 1e-3), has_bias=center)
    return Converted(parts=(Part("", spec),), weights=tuple(WeightSpec(k, (n,)) for k in names), params=params)


def embedding(layer: KerasLayer, ctx: Context) -> Converted:
    if ctx.input.form != "feed_forward":
        raise layer.error(f"expects (batch, time) integer input, got {ctx.input.describe()}")
    vocab, dim = layer.integer("input_dim"), layer.integer("output_dim")
    spec = EmbeddingSequence(vocab_size=vocab, n_out=dim, mask_zero=layer.flag("mask_zero", False))
    spec = with_settings(spec, layer, ctx.notes, "embeddings_initializer")  # type: ignore[assignment]

    def params(arrays: list[np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
        return {"": {"weight": arrays[0]}}

    return Converted(parts=(Part("", spec),), weights=(WeightSpec("embeddings", (vocab, dim)),), params=params)


def masking(layer: KerasLayer, ctx: Context) -> Converted:
    return simple(Masking(mask_value=layer.number("mask_value", 0.0)))


def leaky_relu(layer: KerasLayer, ctx: Context) -> Converted:
    key = "negative_slope" if layer.has("negative_slope") else "alpha"
    return simple(LeakyRelu(slope=layer.number(key, 0.3)))


def elu(layer: KerasLayer, ctx: Context) -> Converted:
    return simple(Elu(alpha=layer.number("alpha", 1.0)))


def relu(layer: KerasLayer, ctx: Context) -> Converted:
    top = layer.optional_float("max_value")
    slope, threshold = layer.number("negative_slope", 0.0), layer.number("threshold", 0.0)
    if slope == 0.0 and threshold == 0.0 and top in (None, 6.0):
        return simple(Activation(activation="relu" if top is None else "relu6"))
    return simple(Relu(max_value=top, negative_slope=slope, threshold=threshold))


def softmax(layer: KerasLayer, ctx: Context) -> Converted:
    _last_axis(layer, ctx)
    return simple(Activation(activation="softmax"))


def prelu(layer: KerasLayer, ctx: Context) -> Converted:
    t = ctx.input
    shared = layer.raw("shared_axes", [])
    shared = [shared] if isinstance(shared, int) else shared
    rank = len(t.shape())
    if not isinstance(shared, list) or not all(isinstance(a, int) and 1 <= a <= rank for a in shared):
        raise layer.error(f"shared_axes must list axes 1..{rank}, got {layer.raw('shared_axes')!r}")
    conv = t.form == "convolutional"
    ours = tuple(sorted({a % 3 + 1 for a in shared})) if conv else tuple(sorted(set(shared)))  # (h, w, c) -> (c, h, w)
    spec = PRelu(shared_axes=ours)
    keras_shape = list(example_shape(t, "channels_last")) if conv else [1 if d is None else d for d in t.shape()]
    for a in shared:
        keras_shape[a - 1] = 1

    def params(arrays: list[np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
        alpha = arrays[0].transpose(2, 0, 1) if conv else arrays[0]
        return {"": {"alpha": alpha}}

    return Converted(parts=(Part("", spec),), weights=(WeightSpec("alpha", tuple(keras_shape)),), params=params)


CORE_CONVERTERS: dict[str, Converter] = {
    "Dense": dense,
    "Activation": activation_layer,
    "Dropout": dropout,
    "SpatialDropout1D": spatial_dropout,
    "SpatialDropout2D": spatial_dropout,
    "Flatten": flatten,
    "Reshape": reshape,
    "Permute": permute,
    "BatchNormalization": batch_normalization,
    "LayerNormalization": layer_normalization,
    "Embedding": embedding,
    "Masking": masking,
    "LeakyReLU": leaky_relu,
    "PReLU": prelu,
    "ELU": elu,
    "ReLU": relu,
    "Softmax": softmax,
}
