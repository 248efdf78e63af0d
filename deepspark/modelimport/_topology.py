"""The structure of a Keras model config: Sequential or Functional, its layers, inputs, outputs and wiring.

Both ``inbound_nodes`` formats are read: Keras 2's nested lists ``[[["dense", 0, 0, {}], ...]]`` and
Keras 3's ``{"args": [{"class_name": "__keras_tensor__", "config": {"keras_history": [...]}}], ...}``.
Every layer's class is checked here, before any weight is read: ``Lambda`` layers (Python code) and
custom classes are refused by name, and their payload is never looked at.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from deepspark.errors import ModelFormatError, ModelImportError
from deepspark.modelimport._layer_config import KerasLayer

_CODE_LAYERS = ("Lambda", "TFOpLambda", "SlicingOpLambda")
_MODELS = ("Sequential", "Functional", "Model")
_KERAS_MODULES = ("keras", "tf_keras", "tensorflow.keras", "tensorflow.python.keras")


@dataclass(frozen=True)
class KerasModel:
    """A parsed Keras model: ``layers`` in config order (InputLayers included), input and output layer names."""

    kind: str  # "sequential" or "functional"
    name: str
    layers: tuple[KerasLayer, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    input_shape: tuple[int | None, ...] | None  # Sequential: the example shape (no batch axis), if the file has it


def _check_class(entry: Mapping[str, Any], where: str, supported: frozenset[str]) -> str:
    """The entry's class name, after refusing code-carrying, custom and unsupported classes."""
    cls = entry.get("class_name")
    if not isinstance(cls, str):
        raise ModelFormatError(f"{where}: missing class_name")
    name = entry.get("config", {}).get("name", "?") if isinstance(entry.get("config"), Mapping) else "?"
    label = f"{where} {name!r} ({cls})"
    if cls in _CODE_LAYERS:
        raise ModelImportError(
            f"{label} holds Python code; deepspark never runs code from a model file. Rebuild that step from "
            "supported layers (or compute it outside the model) and save the model again"
        )
    if cls in _MODELS:
        raise ModelImportError(f"{label} is a nested model; save the inner model's layers in one flat model")
    registered, module = entry.get("registered_name"), entry.get("module")
    custom = (isinstance(registered, str) and registered not in (cls, "")) or (
        isinstance(module, str) and not module.startswith(_KERAS_MODULES)
    )
    if custom:
        raise ModelImportError(
            f"{label} is a custom object ({registered or module!r}); custom classes are never imported or run"
        )
    if cls not in supported:
        raise ModelImportError(
            f"{label} is not supported by the Keras importer; supported layers: {', '.join(sorted(supported))}"
        )
    for key in ("layer", "backward_layer"):  # wrappers: check what they wrap, too
        inner = entry.get("config", {}).get(key) if isinstance(entry.get("config"), Mapping) else None
        if isinstance(inner, Mapping):
            _check_class(inner, f"{label} wraps", supported)
    return cls


def _tensor_refs(value: Any) -> Iterator[list[Any]]:
    """Every ``keras_history`` triple in a Keras 3 node's args, in order."""
    if isinstance(value, Mapping):
        if value.get("class_name") == "__keras_tensor__":
            cfg = value.get("config")
            history = cfg.get("keras_history") if isinstance(cfg, Mapping) else None
            if isinstance(history, list):
                yield history
            return
        for v in value.values():
            yield from _tensor_refs(v)
    elif isinstance(value, list):
        for v in value:
            yield from _tensor_refs(v)


def _inbound(layer: Mapping[str, Any], where: str) -> tuple[str, ...]:
    nodes = layer.get("inbound_nodes", [])
    if not isinstance(nodes, list):
        raise ModelFormatError(f"{where}: inbound_nodes must be a list")
    if len(nodes) > 1:
        raise ModelImportError(f"{where} is called {len(nodes)} times (a shared layer); shared layers are unsupported")
    if not nodes:
        return ()
    node = nodes[0]
    refs = list(_tensor_refs(node.get("args", []))) if isinstance(node, Mapping) else node
    if not isinstance(refs, list):
        raise ModelFormatError(f"{where}: cannot read inbound_nodes")
    names = []
    for ref in refs:
        if not isinstance(ref, list) or len(ref) < 3 or not isinstance(ref[0], str):
            raise ModelFormatError(f"{where}: cannot read the inbound reference {ref!r}")
        if ref[1] != 0 or ref[2] != 0:
            raise ModelImportError(
                f"{where} reads output {ref[2]} of call {ref[1]} of {ref[0]!r}; only single-output layers called "
                "once are supported"
            )
        names.append(ref[0])
    return tuple(names)


def _endpoints(value: Any, key: str) -> tuple[str, ...]:
    """``input_layers``/``output_layers``: one ``[name, 0, 0]`` triple or a list of them."""
    if isinstance(value, list) and len(value) == 3 and isinstance(value[0], str) and isinstance(value[1], int):
        value = [value]
    if not isinstance(value, list) or not value:
        raise ModelFormatError(f"{key} must list [name, node, tensor] triples, got {value!r}")
    names = []
    for ref in value:
        if not isinstance(ref, list) or len(ref) != 3 or not isinstance(ref[0], str):
            raise ModelImportError(f"{key}: {ref!r} is not a [name, node, tensor] triple (nested inputs/outputs?)")
        names.append(ref[0])
    return tuple(names)


def _shape(value: Any) -> tuple[int | None, ...] | None:
    if not isinstance(value, list) or len(value) < 2:
        return None
    dims = value[1:]
    if not all(d is None or (isinstance(d, int) and not isinstance(d, bool) and d > 0) for d in dims):
        raise ModelImportError(f"input shape {value!r} must hold positive ints or null")
    return tuple(dims)


def input_shape(layer: Mapping[str, Any]) -> tuple[int | None, ...] | None:
    """The example shape an InputLayer (or a first layer carrying ``batch_input_shape``) declares."""
    cfg = layer.get("config")
    if not isinstance(cfg, Mapping):
        return None
    return _shape(cfg.get("batch_shape", cfg.get("batch_input_shape")))


def parse_model(config: Mapping[str, Any], supported: frozenset[str], keras_major: int) -> KerasModel:
    """Parse a model config, refusing unsupported structures and classes before anything else is read."""
    cls = config.get("class_name")
    body = config.get("config")
    if cls not in _MODELS:
        raise ModelImportError(f"the file holds a {cls!r}, not a Sequential or Functional model")
    if isinstance(body, list):  # Keras <= 2.2 Sequential: the config is the layer list itself
        body = {"layers": body}
    if not isinstance(body, Mapping) or not isinstance(body.get("layers"), list):
        raise ModelFormatError("the model config has no layer list")
    entries = body["layers"]
    allowed = supported | {"InputLayer"}
    for i, entry in enumerate(entries):  # class check first: nothing of a refused layer is read
        if not isinstance(entry, Mapping):
            raise ModelFormatError(f"layers[{i}] is not a JSON object")
        _check_class(entry, f"layers[{i}]", allowed)
    sequential = cls == "Sequential"
    layers = []
    for i, entry in enumerate(entries):
        cfg = entry.get("config")
        if not isinstance(cfg, Mapping) or not isinstance(cfg.get("name", entry.get("name")), str):
            raise ModelFormatError(f"layers[{i}] ({entry['class_name']}) has no name")
        name = cfg.get("name", entry.get("name"))
        inbound = () if sequential else _inbound(entry, f"layer {name!r}")
        layers.append(KerasLayer(name, entry["class_name"], cfg, inbound, keras_major))
    names = [layer.name for layer in layers]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ModelFormatError(f"layer names repeat: {dupes}")
    model_name = str(body.get("name", "model"))
    if sequential:
        shape = next((input_shape(e) for e in entries if input_shape(e) is not None), None)
        if shape is None:
            shape = _shape(body.get("build_input_shape"))
        body_layers = [layer for layer in layers if layer.class_name != "InputLayer"]
        if not body_layers:
            raise ModelImportError("the Sequential model has no layers")
        return KerasModel("sequential", model_name, tuple(layers), (), (body_layers[-1].name,), shape)
    inputs = _endpoints(body.get("input_layers"), "input_layers")
    outputs = _endpoints(body.get("output_layers"), "output_layers")
    known = set(names)
    for name in (*inputs, *outputs, *(s for layer in layers for s in layer.inbound)):
        if name not in known:
            raise ModelFormatError(f"the model refers to an unknown layer {name!r}")
    if len(set(outputs)) != len(outputs):
        raise ModelImportError(f"output_layers lists a layer twice: {list(outputs)}")
    return KerasModel("functional", model_name, tuple(layers), inputs, outputs, None)
