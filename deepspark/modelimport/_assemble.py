"""Turning a parsed Keras model into a deepspark config: layers in order (Sequential) or vertices (Functional),
shape inference as it goes, and a loss-carrying head on every output.

A Keras model ends in an ordinary layer; a deepspark network ends in one that carries a loss. A final
``Dense`` becomes ``Output`` (``RnnOutput`` on sequences) with the same weights, a final ``Activation``
becomes a ``LossLayer`` with that activation, and anything else gets a parameter-free ``LossLayer`` after
it (images flattened channels-last first, so outputs match Keras value for value).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from deepspark.config.graph import GraphConfig, GraphVertex, LayerVertex
from deepspark.config.input_types import InputType
from deepspark.config.layers import Activation, Dense, Flatten, Layer, LossLayer, Output, RnnOutput
from deepspark.config.names import Loss
from deepspark.config.network import NetworkConfig, plan_layer
from deepspark.config.updaters import Updater
from deepspark.errors import ConfigError, ModelImportError
from deepspark.modelimport._convert_base import Context, Converted, Converter
from deepspark.modelimport._convert_conv import CONV_CONVERTERS
from deepspark.modelimport._convert_core import CORE_CONVERTERS
from deepspark.modelimport._convert_merge import MERGE_CONVERTERS
from deepspark.modelimport._convert_recurrent import RECURRENT_CONVERTERS
from deepspark.modelimport._layer_config import KerasLayer, Notes
from deepspark.modelimport._topology import KerasModel, input_shape
from deepspark.modelimport._training import output_loss

CONVERTERS: dict[str, Converter] = {**CORE_CONVERTERS, **CONV_CONVERTERS, **RECURRENT_CONVERTERS, **MERGE_CONVERTERS}
SUPPORTED_LAYERS: frozenset[str] = frozenset(CONVERTERS)
"""The Keras layer classes the importer converts (``InputLayer`` is read as the network's input)."""


@dataclass(frozen=True)
class Placed:
    """A converted Keras layer and the deepspark layer names its parts got, by role."""

    keras: KerasLayer
    converted: Converted
    names: dict[str, str]
    output_type: InputType


@dataclass
class Assembly:
    """The config being built and what the weight loader and the report need."""

    placed: list[Placed] = field(default_factory=list)
    input_types: dict[str, InputType] = field(default_factory=dict)


def keras_input_type(shape: tuple[int | None, ...] | None, where: str) -> InputType:
    """The deepspark input type of a Keras example shape: (F,) vectors, (T, F) sequences, (H, W, C) images."""
    if shape is None:
        raise ModelImportError(f"{where}: the file does not say the input shape; pass input_type=")
    if len(shape) == 2 and shape[1] is not None:
        return InputType.recurrent(shape[1], shape[0])
    if None in shape:
        raise ModelImportError(f"{where}: input shape {list(shape)} has unknown sizes; pass input_type=")
    dims = [int(d) for d in shape if d is not None]
    if len(dims) == 1:
        return InputType.feed_forward(dims[0])
    if len(dims) == 3:
        return InputType.channels_last(dims[0], dims[1], dims[2])
    raise ModelImportError(f"{where}: inputs of shape {list(shape)} are not supported (1-D, 2-D or 3-D examples only)")


def _convert(layer: KerasLayer, types: tuple[InputType, ...], notes: Notes) -> Converted:
    try:
        return CONVERTERS[layer.class_name](layer, Context(types, notes))
    except ConfigError as e:
        raise layer.error(str(e)) from None


def _plan(layer: KerasLayer, spec: Layer, t: InputType) -> InputType:
    try:
        return plan_layer(0, spec, t, "").output_type
    except ConfigError as e:
        raise layer.error(f"{type(spec).__name__} cannot follow {t.describe()}: {e.message}") from None


def _name(keras: KerasLayer, role: str) -> str:
    return keras.name if role == "" else f"{keras.name}/{role}"


# -------------------------------------------------------------------------------------------- heads


def _head_layer(layer: Layer, t_in: InputType, loss_for: Callable[[str], Loss]) -> Layer | None:
    """The loss-carrying replacement of a final layer, or None when a LossLayer must be appended instead."""
    if t_in.form not in ("feed_forward", "recurrent"):
        return None
    head: Layer
    if isinstance(layer, Dense):
        loss = loss_for(layer.activation)
        if t_in.form == "feed_forward":
            head = Output(n_out=layer.n_out, activation=layer.activation, loss=loss, has_bias=layer.has_bias)
        else:
            head = RnnOutput(n_out=layer.n_out, activation=layer.activation, loss=loss, has_bias=layer.has_bias)
    elif isinstance(layer, Activation):
        head = LossLayer(activation=layer.activation, loss=loss_for(layer.activation))
    else:
        return None
    return replace(
        head,
        name=layer.name,
        dropout=layer.dropout,
        l1=layer.l1,
        l2=layer.l2,
        weight_decay=layer.weight_decay,
        weight_init=layer.weight_init,
    )


def _appended_head(name: str, t: InputType, loss: Loss) -> list[Layer]:
    out: list[Layer] = []
    if t.form == "convolutional":
        out.append(Flatten(layout="channels_last", name=f"{name}/flatten"))
    out.append(LossLayer(activation="identity", loss=loss, name=f"{name}/loss"))
    return out


# ----------------------------------------------------------------------------------------- sequential


def sequential_config(
    model: KerasModel, input_type: InputType, updater: Updater, training: Mapping[str, Any] | None, notes: Notes
) -> tuple[NetworkConfig, Assembly]:
    """A ``NetworkConfig`` for a Sequential model."""
    input_name = next((k.name for k in model.layers if k.class_name == "InputLayer"), "input")
    asm = Assembly(input_types={input_name: input_type})
    layers: list[Layer] = []
    inputs: list[InputType] = []
    t = input_type
    for keras in model.layers:
        if keras.class_name == "InputLayer":
            continue
        conv = _convert(keras, (t,), notes)
        if conv.vertex is not None or not conv.parts:
            raise keras.error("a merge layer cannot appear in a Sequential model")
        names = {}
        for part in conv.parts:
            spec = replace(part.layer, name=_name(keras, part.role))
            inputs.append(t)
            t = _plan(keras, spec, t)
            layers.append(spec)
            names[part.role] = spec.name or ""
        asm.placed.append(Placed(keras, conv, names, t))
    out_name = model.outputs[0]

    def loss_for(activation: str) -> Loss:
        return output_loss(training, out_name, 0, activation, notes)

    head = _head_layer(layers[-1], inputs[-1], loss_for)
    if head is not None:
        layers[-1] = head
    else:
        layers.extend(_appended_head(out_name, t, loss_for("identity")))
    try:
        config = NetworkConfig(layers=tuple(layers), input_type=input_type, updater=updater)
    except ConfigError as e:
        raise ModelImportError(f"the converted network is not valid: {e}") from None
    return config, asm


# ----------------------------------------------------------------------------------------- functional


def _topological(model: KerasModel) -> list[KerasLayer]:
    pending = {layer.name: set(layer.inbound) for layer in model.layers}
    by_name = {layer.name: layer for layer in model.layers}
    order: list[KerasLayer] = []
    while pending:
        ready = [n for n, deps in pending.items() if not deps]
        if not ready:
            raise ModelImportError(f"the model's layers form a cycle among {sorted(pending)}")
        for n in ready:
            del pending[n]
            order.append(by_name[n])
        for deps in pending.values():
            deps.difference_update(ready)
    return order


def functional_config(
    model: KerasModel,
    overrides: tuple[InputType, ...] | None,
    updater: Updater,
    training: Mapping[str, Any] | None,
    notes: Notes,
) -> tuple[GraphConfig, Assembly]:
    """A ``GraphConfig`` for a Functional model (multi-input, multi-output, no shared layers)."""
    asm = Assembly()
    by_name = {layer.name: layer for layer in model.layers}
    if overrides is not None and len(overrides) != len(model.inputs):
        raise ModelImportError(f"input_type: the model has {len(model.inputs)} inputs {list(model.inputs)}")
    for i, name in enumerate(model.inputs):
        if by_name[name].class_name != "InputLayer":
            raise ModelImportError(f"input {name!r} is a {by_name[name].class_name}, not an InputLayer")
        shape = input_shape({"config": by_name[name].config})
        asm.input_types[name] = overrides[i] if overrides else keras_input_type(shape, f"input {name!r}")
    types: dict[str, InputType] = dict(asm.input_types)
    layer_input: dict[str, InputType] = {}  # per layer vertex: the type its layer receives
    vertices: list[GraphVertex] = []
    reads: dict[str, list[int]] = {}
    for keras in _topological(model):
        if keras.class_name == "InputLayer":
            if keras.name not in asm.input_types:
                raise keras.error("an InputLayer that is not one of the model's inputs")
            continue
        if not keras.inbound:
            raise keras.error("reads nothing")
        in_types = tuple(types[s] for s in keras.inbound)
        conv = _convert(keras, in_types, notes)
        if conv.vertex is not None:
            if any(t.form == "channels_last" for t in in_types):
                raise keras.error("merging raw image inputs is not supported; put a layer before the merge")
            try:
                types[keras.name] = conv.vertex.output_type(in_types)
            except ConfigError as e:
                raise keras.error(e.message) from None
            vertices.append(conv.vertex)
            asm.placed.append(Placed(keras, conv, {}, types[keras.name]))
            continue
        if len(keras.inbound) != 1:
            raise keras.error(f"takes one input, got {len(keras.inbound)}: {list(keras.inbound)}")
        source, t = keras.inbound[0], in_types[0]
        names = {}
        for part in conv.parts:
            name = _name(keras, part.role)
            layer_input[name] = t
            t = _plan(keras, part.layer, t)
            vertices.append(LayerVertex(name=name, inputs=(source,), layer=part.layer))
            names[part.role], source = name, name
        types[keras.name] = t
        asm.placed.append(Placed(keras, conv, names, t))
    for i, v in enumerate(vertices):
        for s in v.inputs:
            reads.setdefault(s, []).append(i)
    outputs = [
        _functional_head(name, k, vertices, types, layer_input, reads, training, notes)
        for k, name in enumerate(model.outputs)
    ]
    try:
        config = GraphConfig(
            inputs=model.inputs,
            input_types=tuple(asm.input_types[n] for n in model.inputs),
            vertices=tuple(vertices),
            outputs=tuple(outputs),
            updater=updater,
        )
    except ConfigError as e:
        raise ModelImportError(f"the converted graph is not valid: {e}") from None
    return config, asm


def _functional_head(
    name: str,
    index: int,
    vertices: list[GraphVertex],
    types: dict[str, InputType],
    layer_input: dict[str, InputType],
    reads: dict[str, list[int]],
    training: Mapping[str, Any] | None,
    notes: Notes,
) -> str:
    """Give output ``name`` a loss (replacing or appending a vertex); returns the output vertex's name."""
    if name in types and name not in {v.name for v in vertices}:
        raise ModelImportError(f"output {name!r} is a model input; an output must be computed by a layer")

    def loss_for(activation: str) -> Loss:
        return output_loss(training, name, index, activation, notes)

    at = next(i for i, v in enumerate(vertices) if v.name == name)
    vertex = vertices[at]
    if isinstance(vertex, LayerVertex) and not reads.get(name):
        head = _head_layer(vertex.layer, layer_input[name], loss_for)
        if head is not None:
            vertices[at] = replace(vertex, layer=head)
            return name
    source = name
    for layer in _appended_head(name, types[name], loss_for("identity")):
        vertex_name = layer.name or ""
        vertices.append(LayerVertex(name=vertex_name, inputs=(source,), layer=replace(layer, name=None)))
        source = vertex_name
    return source
