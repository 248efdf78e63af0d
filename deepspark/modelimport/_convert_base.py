"""What a layer converter returns, and the Keras activations, initializers and regularizers it maps.

A converter turns one Keras layer into deepspark layer specs (``Part``s, or a graph vertex for merge
layers), declares the weights it expects in the file (Keras names and shapes, checked before any array
is read), and converts those arrays to deepspark's layouts (Dense kernels transposed, convolution kernels
HWIO -> OIHW, recurrent gates reordered).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from deepspark.config.graph import GraphVertex
from deepspark.config.input_types import InputType
from deepspark.config.layers import Layer, LeakyRelu
from deepspark.config.names import ACTIVATIONS
from deepspark.modelimport._layer_config import KerasLayer, Notes

Arrays = dict[str, np.ndarray]
"""Parameter name -> array in deepspark's layout, for one emitted layer."""


@dataclass(frozen=True)
class Part:
    """One deepspark layer a Keras layer becomes; ``role`` "" carries the Keras layer's own name."""

    role: str
    layer: Layer


@dataclass(frozen=True)
class WeightSpec:
    """A weight the Keras layer stores: its Keras name (for messages) and the shape its config implies."""

    name: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Converted:
    """The deepspark side of one Keras layer (see the module docstring)."""

    parts: tuple[Part, ...] = ()
    vertex: GraphVertex | None = None
    weights: tuple[WeightSpec, ...] = ()
    params: Callable[[list[np.ndarray]], dict[str, Arrays]] | None = None
    """Keras arrays (in ``weights`` order) -> {role: {parameter name: array}}."""


@dataclass(frozen=True)
class Context:
    """What every converter may need besides the layer: the input types it reads and the warning list."""

    inputs: tuple[InputType, ...]
    notes: Notes

    @property
    def input(self) -> InputType:
        """The single input's type; channels-last graph inputs are seen as the (C, H, W) images they become."""
        t = self.inputs[0]
        if t.form == "channels_last":
            return InputType.convolutional(t.height, t.width, t.channels)
        return t


Converter = Callable[[KerasLayer, Context], Converted]

_ACTIVATIONS: dict[str, str] = {
    "linear": "identity",
    "relu": "relu",
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    "softmax": "softmax",
    "elu": "elu",
    "selu": "selu",
    "gelu": "gelu",
    "swish": "swish",
    "silu": "swish",
    "softplus": "softplus",
    "relu6": "relu6",
    "hard_sigmoid": "hardsigmoid",
}
_BUILTIN_MODULES = ("keras.activations", "keras.src.activations", "keras.src.activations.activations")

KERAS_LOSSES: dict[str, str] = {
    "categorical_crossentropy": "mcxent",
    "sparse_categorical_crossentropy": "mcxent",
    "binary_crossentropy": "xent",
    "mean_squared_error": "mse",
    "mse": "mse",
    "mean_absolute_error": "mae",
    "mae": "mae",
    "mean_absolute_percentage_error": "mape",
    "mape": "mape",
    "hinge": "hinge",
    "squared_hinge": "squared_hinge",
    "kl_divergence": "kl_divergence",
    "kld": "kl_divergence",
    "kullback_leibler_divergence": "kl_divergence",
    "poisson": "poisson",
    "cosine_similarity": "cosine_proximity",
}

_INITIALIZERS: dict[str, str] = {
    "glorot_uniform": "xavier_uniform",
    "glorot_normal": "xavier",
    "he_normal": "he",
    "he_uniform": "relu_uniform",
    "lecun_normal": "lecun_normal",
    "lecun_uniform": "lecun_uniform",
    "zeros": "zero",
    "ones": "ones",
    "identity": "identity",
}


def snake(name: str) -> str:
    """Keras' class-name-to-snake-case rule (``BatchNormalization`` -> ``batch_normalization``, ``Conv2D`` ->
    ``conv2d``): how Keras 3 names a layer's weight group and how initializers are serialized."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def activation(layer: KerasLayer, key: str = "activation") -> tuple[str, Layer | None]:
    """A Keras activation as (deepspark activation name, extra layer to append or None).

    ``leaky_relu`` (Keras 3: slope 0.2) has no fixed-slope name here, so it becomes a ``LeakyRelu`` layer
    after an identity-activated layer. Custom activation functions are refused (nothing is evaluated).
    """
    value = layer.raw(key, "linear")
    if isinstance(value, Mapping):
        module, cfg = value.get("module"), value.get("config")
        if value.get("class_name") != "function" or module not in _BUILTIN_MODULES or not isinstance(cfg, str):
            raise layer.error(
                f"{key} is a custom function ({value.get('registered_name') or value.get('class_name')!r}); "
                "custom code is never run by the importer: use a built-in activation"
            )
        value = cfg
    if not isinstance(value, str):
        raise layer.error(f"{key} must be an activation name, got {value!r}")
    if value == "leaky_relu":
        return "identity", LeakyRelu(slope=0.2)
    if value == "hard_sigmoid" and layer.keras_major < 3:
        raise layer.error("Keras 2's hard_sigmoid (0.2 * x + 0.5, clipped) is not supported; Keras 3's is")
    name = _ACTIVATIONS.get(value)
    if name is None or name not in ACTIVATIONS:
        raise layer.error(f"{key}={value!r} is not supported; supported: {', '.join(sorted(_ACTIVATIONS))}, leaky_relu")
    return name, None


def initializer(layer: KerasLayer, key: str, notes: Notes) -> str | None:
    """The deepspark weight init matching a Keras initializer (used only if the network is re-initialized)."""
    value = layer.config.get(key)
    if value is None:
        return None
    name = value.get("class_name") if isinstance(value, Mapping) else value
    if not isinstance(name, str):
        return None
    mapped = _INITIALIZERS.get(snake(name)) or _INITIALIZERS.get(name)
    if mapped is None:
        notes.add(
            f"initializer {name!r} has no deepspark equivalent: imported weights are unaffected, but re-initializing "
            "the network uses its default weight_init"
        )
    return mapped


def regularization(layer: KerasLayer, notes: Notes) -> dict[str, float]:
    """Per-layer ``l1``/``l2`` from a Keras kernel regularizer (deepspark's l2 = 2 x Keras' l2: 0.5 * l2 * w^2)."""
    for key in ("bias_regularizer", "activity_regularizer", "recurrent_regularizer"):
        if layer.config.get(key) is not None:
            notes.add(f"{layer.where()}: {key} is not imported (deepspark regularizes weights only)")
    for key in ("kernel_constraint", "bias_constraint", "recurrent_constraint"):
        if layer.config.get(key) is not None:
            notes.add(f"{layer.where()}: {key} is not imported (deepspark has no weight constraints)")
    reg = layer.config.get("kernel_regularizer")
    if reg is None:
        return {}
    cfg = reg.get("config") if isinstance(reg, Mapping) else None
    if not isinstance(cfg, Mapping) or reg.get("class_name") not in ("L1", "L2", "L1L2", "l1", "l2", "l1_l2"):
        notes.add(f"{layer.where()}: kernel_regularizer {reg!r} is not imported")
        return {}
    out: dict[str, float] = {}
    for key, scale in (("l1", 1.0), ("l2", 2.0)):
        value = cfg.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            out[key] = float(value) * scale
    return out


def with_settings(layer: Layer, keras: KerasLayer, notes: Notes, init_key: str = "kernel_initializer") -> Layer:
    """``layer`` with the weight init and L1/L2 the Keras layer declared."""
    changes: dict[str, Any] = dict(regularization(keras, notes))
    init = initializer(keras, init_key, notes)
    if init is not None:
        changes["weight_init"] = init
    return replace(layer, **changes) if changes else layer


def activated(main: Layer, extra: Layer | None) -> tuple[Part, ...]:
    """The parts of a layer whose activation may need a layer of its own (``leaky_relu``)."""
    if extra is None:
        return (Part("", main),)
    return (Part("linear", main), Part("", extra))


def simple(*layers: Layer) -> Converted:
    """A parameter-free conversion: the last layer carries the Keras name."""
    parts = [Part(f"step{i}", layer) for i, layer in enumerate(layers[:-1])]
    return Converted(parts=(*parts, Part("", layers[-1])))
