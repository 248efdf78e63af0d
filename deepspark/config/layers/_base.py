"""The layer family base: common per-layer fields, the forms a layer accepts, and output-type inference."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from deepspark.config._spec import Spec, check_non_negative, check_probability
from deepspark.config.input_types import InputType
from deepspark.config.names import WeightInit
from deepspark.errors import ConfigError

ALL_FORMS: tuple[str, ...] = ("feed_forward", "convolutional", "convolutional_flat", "recurrent")


@dataclass(frozen=True, kw_only=True, slots=True)
class Layer(Spec):
    """Fields every layer has. ``None`` means "use the network's default".

    Attributes:
        name: optional display name (summaries, stats); defaults to ``layer{i}``.
        dropout: probability of zeroing each INPUT value of this layer while training (PyTorch's
            convention: 0.1 drops 10 %; DL4J's ``dropOut`` was a retain probability).
        l1, l2, weight_decay: per-layer regularization overriding the network's; applied to weights, not biases.
        weight_init: per-layer initialization overriding the network's.
    """

    kind = "layer"
    ACCEPTS: ClassVar[tuple[str, ...]] = ALL_FORMS
    HAS_LOSS: ClassVar[bool] = False

    name: str | None = None
    dropout: float = 0.0
    l1: float | None = None
    l2: float | None = None
    weight_decay: float | None = None
    weight_init: WeightInit | None = None

    def _validate(self) -> None:
        check_probability(self, "dropout")
        check_non_negative(self, "l1", "l2", "weight_decay")

    def output_type(self, input_type: InputType) -> InputType:
        """The type this layer emits for ``input_type`` (already converted to an accepted form)."""
        return input_type

    def _incompatible(self, input_type: InputType, why: str) -> ConfigError:
        return ConfigError(f"{type(self).__name__} cannot take input {input_type.describe()}: {why}")


def check_output_units(layer: Layer) -> None:
    """An output layer's softmax needs two or more units: over one unit it is the constant 1.0."""
    if getattr(layer, "n_out", None) == 1 and getattr(layer, "activation", None) == "softmax":
        raise ConfigError(
            "softmax over n_out=1 unit is always 1.0, so the network cannot learn: for a binary output use "
            "activation='sigmoid' with loss='xent', or n_out=2 with softmax and loss='mcxent'",
            "activation",
        )
