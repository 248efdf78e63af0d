"""``NetworkConfig``: a sequential network as one frozen spec, with shape inference over its layers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from deepspark.config._spec import check, check_non_negative, check_positive, check_seed, register
from deepspark.config.input_types import CONVOLUTIONAL_FLAT, PREPROCESSORS, InputType, convert
from deepspark.config.layers import Layer
from deepspark.config.names import WeightInit
from deepspark.config.root import RootConfig
from deepspark.config.updaters import Adam, Updater
from deepspark.errors import ConfigError

FORMAT_VERSION = 1
"""Version of the JSON layout written by ``to_json``; readers refuse newer ones."""

Precision = Literal["fp32", "bf16", "fp16"]
"""Arithmetic of the forward pass: ``fp32``; ``bf16`` or ``fp16`` run it under ``torch.autocast`` (the master
weights, gradients and updater state stay in ``dtype``; fp16 adds loss scaling and needs CUDA)."""


def check_precision_dtype(precision: str, dtype: str) -> None:
    """Mixed precision keeps float32 master weights: refuse it with ``dtype="float64"``."""
    check(
        precision == "fp32" or dtype == "float32",
        "precision",
        f"{precision} mixed precision keeps float32 master weights, but dtype is {dtype!r}: use dtype='float32', "
        "or precision='fp32'",
    )


GradientNormalization = Literal[
    "none",
    "clip_element_wise",
    "clip_l2_per_layer",
    "clip_l2_per_param_type",
    "renormalize_l2_per_layer",
    "renormalize_l2_per_param_type",
]
"""DL4J's gradient normalizations. ``clip_*`` use ``gradient_normalization_threshold``; ``renormalize_*``
divide the layer's (or each parameter's) gradient by its L2 norm."""


@dataclass(frozen=True, slots=True)
class LayerPlan:
    """One step of shape inference: the preprocessor inserted before a layer and the types around it."""

    index: int
    name: str
    layer: Layer
    preprocessor: str  # "" when none is needed
    input_type: InputType  # after the preprocessor
    output_type: InputType


def plan_layer(index: int, layer: Layer, current: InputType, path: str) -> LayerPlan:
    """Convert ``current`` to a form ``layer`` accepts, then infer its output type."""
    preprocessor = ""
    converted = current
    if current.form not in layer.ACCEPTS:
        for target in layer.ACCEPTS:
            tag = PREPROCESSORS.get((current.form, target))
            if tag is not None:
                preprocessor = tag
                converted = convert(current, target)
                break
        else:
            hint = ""
            if current.form == "recurrent" and "feed_forward" in layer.ACCEPTS:
                hint = "; add LastTimeStep or GlobalPooling before it, or use RnnOutput for per-step outputs"
            raise ConfigError(
                f"{type(layer).__name__} takes {' or '.join(layer.ACCEPTS)} input but receives "
                f"{current.describe()}{hint}",
                path,
            )
    try:
        out = layer.output_type(converted)
    except ConfigError as e:
        raise e.with_prefix(path) from None
    name = layer.name or f"layer{index}"
    return LayerPlan(index, name, layer, preprocessor, converted, out)


@dataclass(frozen=True, kw_only=True, slots=True)
class TrainingSettings(RootConfig):
    """The training fields and defaults every network config shares (see ``NetworkConfig`` for each one)."""

    kind = "network config"

    updater: Updater = field(default_factory=Adam)
    seed: int = 0
    l1: float = 0.0
    l2: float = 0.0
    weight_decay: float = 0.0
    weight_init: WeightInit = "xavier"
    gradient_normalization: GradientNormalization = "none"
    gradient_normalization_threshold: float = 1.0
    dtype: Literal["float32", "float64"] = "float32"
    precision: Precision = "fp32"
    format_version: int = FORMAT_VERSION

    def _validate(self) -> None:
        check(
            self.format_version <= FORMAT_VERSION,
            "format_version",
            f"config format {self.format_version} is newer than this deepspark supports ({FORMAT_VERSION}): "
            "upgrade deepspark",
        )
        check(self.format_version >= 1, "format_version", f"expected a positive int, got {self.format_version}")
        check_non_negative(self, "l1", "l2", "weight_decay")
        check_seed(self)
        check_positive(self, "gradient_normalization_threshold")
        check_precision_dtype(self.precision, self.dtype)


@register("network")
@dataclass(frozen=True, kw_only=True, slots=True)
class NetworkConfig(TrainingSettings):
    """A sequential network: input type, layers, updater and training defaults.

    ``n_in`` is never given: it is inferred from ``input_type`` through the layers, and the reshapes
    between convolutional, flat and recurrent layers are inserted automatically. The last layer must
    carry a loss (``Output``, ``RnnOutput`` or ``LossLayer``).

    Example:
        >>> conf = NetworkConfig(
        ...     input_type=InputType.feed_forward(4),
        ...     layers=(Dense(n_out=8, activation="relu"), Output(n_out=3)))
        >>> NetworkConfig.from_json(conf.to_json()) == conf
        True
    """

    kind = "network config"

    layers: tuple[Layer, ...]
    input_type: InputType

    def _validate(self) -> None:
        TrainingSettings._validate(self)
        check(len(self.layers) > 0, "layers", "expected at least one layer (the last one with a loss)")
        last = self.layers[-1]
        check(
            last.HAS_LOSS,
            f"layers[{len(self.layers) - 1}]",
            f"the last layer must carry a loss (Output, RnnOutput or LossLayer), got {type(last).__name__}",
        )
        for i, layer in enumerate(self.layers[:-1]):
            check(
                not layer.HAS_LOSS,
                f"layers[{i}]",
                f"{type(layer).__name__} carries a loss and may only be the last layer; use Dense instead",
            )
        names = [layer.name for layer in self.layers if layer.name]
        dupes = sorted({n for n in names if names.count(n) > 1})
        check(not dupes, "layers", f"layer names must be unique, repeated: {dupes}")
        self.plan()  # shape inference errors surface at construction

    def plan(self) -> list[LayerPlan]:
        """Shape inference over the stack: per layer, its preprocessor and input/output types."""
        current = self.input_type
        plans = []
        for i, layer in enumerate(self.layers):
            p = plan_layer(i, layer, current, f"layers[{i}]")
            plans.append(p)
            current = p.output_type
        return plans

    def output_type(self) -> InputType:
        """The type the network emits."""
        return self.plan()[-1].output_type

    def is_flat_input(self) -> bool:
        """Whether examples arrive as flat vectors (feed-forward or flattened images)."""
        return self.input_type.form in ("feed_forward", CONVOLUTIONAL_FLAT)
