"""Converters for Keras' merge layers (functional models only): they become parameter-free graph vertices."""

from __future__ import annotations

from deepspark.config.graph import ElementWise, Merge
from deepspark.config.graph_vertices import Dot
from deepspark.modelimport._convert_base import Context, Converted, Converter
from deepspark.modelimport._layer_config import KerasLayer

_OPS = {"Add": "add", "Subtract": "subtract", "Multiply": "product", "Average": "average", "Maximum": "max"}


def _inbound(layer: KerasLayer, ctx: Context) -> tuple[str, ...]:
    if len(layer.inbound) < 2:
        raise layer.error(f"a merge layer needs at least 2 inputs, got {list(layer.inbound)}")
    return layer.inbound


def elementwise(layer: KerasLayer, ctx: Context) -> Converted:
    op = _OPS[layer.class_name]
    return Converted(vertex=ElementWise(name=layer.name, inputs=_inbound(layer, ctx), op=op))  # type: ignore[arg-type]


def concatenate(layer: KerasLayer, ctx: Context) -> Converted:
    inputs = _inbound(layer, ctx)
    rank = len(ctx.input.shape()) + 1
    axis = layer.raw("axis", -1)
    if axis not in (-1, rank - 1):
        raise layer.error(f"axis={axis!r} is not supported: only the last (feature/channel) axis")
    return Converted(vertex=Merge(name=layer.name, inputs=inputs))


def dot(layer: KerasLayer, ctx: Context) -> Converted:
    inputs = _inbound(layer, ctx)
    axes = layer.raw("axes", -1)
    if isinstance(axes, list) and len(set(axes)) == 1:
        axes = axes[0]
    if len(inputs) != 2 or axes not in (-1, 1) or ctx.input.form != "feed_forward":
        raise layer.error("only the dot product of two vectors (axes=1 or -1) is supported")
    return Converted(vertex=Dot(name=layer.name, inputs=inputs, normalize=layer.flag("normalize", False)))


MERGE_CONVERTERS: dict[str, Converter] = {
    **dict.fromkeys(_OPS, elementwise),
    "Concatenate": concatenate,
    "Dot": dot,
}
