"""Parametric activation layer specs: leaky, exponential and clipped ReLUs, and PReLU with a learned slope.

The named activations (``Activation(activation="leakyrelu")``) have fixed constants; these layers carry
theirs as fields (Keras' ``LeakyReLU(negative_slope=0.3)``, ``ReLU(max_value=6)``), and ``PRelu`` learns
its slopes as parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

from deepspark.config._spec import check, check_non_negative, check_positive, register
from deepspark.config.input_types import InputType
from deepspark.config.layers._base import Layer
from deepspark.errors import ConfigError


@register("leaky_relu")
@dataclass(frozen=True, kw_only=True, slots=True)
class LeakyRelu(Layer):
    """``x`` for ``x >= 0``, ``slope * x`` below.

    Example:
        >>> LeakyRelu(slope=0.3).slope
        0.3
    """

    slope: float = 0.01

    def _validate(self) -> None:
        Layer._validate(self)
        check_non_negative(self, "slope")


@register("elu")
@dataclass(frozen=True, kw_only=True, slots=True)
class Elu(Layer):
    """Exponential linear unit: ``x`` for ``x > 0``, ``alpha * (exp(x) - 1)`` below."""

    alpha: float = 1.0

    def _validate(self) -> None:
        Layer._validate(self)
        check_non_negative(self, "alpha")


@register("relu")
@dataclass(frozen=True, kw_only=True, slots=True)
class Relu(Layer):
    """A ReLU with a ceiling, a threshold and a slope below it (Keras' ``ReLU`` layer).

    ``max_value`` for ``x >= max_value``, ``x`` for ``threshold <= x < max_value``, and
    ``negative_slope * (x - threshold)`` below the threshold. ``Relu(max_value=6.0)`` is ReLU6.
    """

    max_value: float | None = None
    negative_slope: float = 0.0
    threshold: float = 0.0

    def _validate(self) -> None:
        Layer._validate(self)
        check_positive(self, "max_value")
        check_non_negative(self, "negative_slope")
        if self.max_value is not None:
            check(
                self.threshold < self.max_value,
                "threshold",
                f"expected a threshold below max_value ({self.max_value}), got {self.threshold}",
            )


@register("prelu")
@dataclass(frozen=True, kw_only=True, slots=True)
class PRelu(Layer):
    """ReLU whose negative slope is learned: one slope per value of the example, except along ``shared_axes``.

    Axes count from 1 over the example's own shape: (channels, height, width) for images, (time, features)
    for sequences, (features,) for vectors. ``PRelu(shared_axes=(2, 3))`` learns one slope per channel.
    Slopes start at 0 (plain ReLU), as in Keras.
    """

    shared_axes: tuple[int, ...] = ()

    def _validate(self) -> None:
        Layer._validate(self)
        for i, axis in enumerate(self.shared_axes):
            check(axis >= 1, f"shared_axes[{i}]", f"expected an axis >= 1 (axis 0 is the batch), got {axis}")
        check(
            len(set(self.shared_axes)) == len(self.shared_axes),
            "shared_axes",
            f"expected distinct axes, got {list(self.shared_axes)}",
        )

    def alpha_shape(self, input_type: InputType) -> tuple[int, ...]:
        """The shape of the learned slopes for ``input_type``: its example shape with shared axes set to 1."""
        shape = [1 if d is None else d for d in input_type.shape()]
        for axis in self.shared_axes:
            shape[axis - 1] = 1
        return tuple(shape)

    def output_type(self, input_type: InputType) -> InputType:
        rank = len(input_type.shape())
        for i, axis in enumerate(self.shared_axes):
            if axis > rank:
                raise ConfigError(
                    f"axis {axis} does not exist: {input_type.describe()} has {rank} axes", f"shared_axes[{i}]"
                )
        if input_type.form == "recurrent" and input_type.timesteps is None and 1 not in self.shared_axes:
            raise self._incompatible(input_type, "variable-length sequences need shared_axes to include 1 (time)")
        return input_type
