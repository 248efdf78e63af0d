"""Shape layer specs: flatten, reshape and permute, in channels-first or channels-last (Keras) reading order.

deepspark holds images as (channels, height, width). A model built elsewhere (Keras, TensorFlow) reads and
writes image values in (height, width, channels) order; ``layout="channels_last"`` makes these layers
behave that way, so an imported ``Flatten`` feeds the next ``Dense`` its values in the order its weights
were trained on, without permuting any weight.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

from deepspark.config._spec import check, register
from deepspark.config.input_types import InputType
from deepspark.config.layers._base import Layer
from deepspark.errors import ConfigError

Layout = Literal["channels_first", "channels_last"]
"""How image values are ordered when a shape layer reads or writes them: (c, h, w) or (h, w, c)."""

_SHAPED_FORMS: tuple[str, ...] = ("feed_forward", "convolutional", "recurrent")


def example_shape(t: InputType, layout: str) -> tuple[int, ...]:
    """The per-example shape of ``t`` as a layer with ``layout`` reads it (recurrent: (timesteps, size))."""
    if t.form == "convolutional":
        if layout == "channels_last":
            return (t.height, t.width, t.channels)
        return (t.channels, t.height, t.width)
    if t.form == "recurrent":
        if t.timesteps is None:
            raise ConfigError(f"needs a known number of time steps, got {t.describe()}")
        return (t.timesteps, t.size)
    return (t.size,)


def type_of_shape(shape: tuple[int, ...], layout: str) -> InputType:
    """The input type of per-example arrays of ``shape``: 1 axis ff, 2 axes (time, features), 3 axes an image."""
    if len(shape) == 1:
        return InputType.feed_forward(shape[0])
    if len(shape) == 2:
        return InputType.recurrent(shape[1], shape[0])
    if layout == "channels_last":
        return InputType.convolutional(shape[0], shape[1], shape[2])
    return InputType.convolutional(shape[1], shape[2], shape[0])


@register("flatten")
@dataclass(frozen=True, kw_only=True, slots=True)
class Flatten(Layer):
    """Flattens each example to a vector: images in ``layout`` order, sequences time step after time step.

    Example:
        >>> Flatten(layout="channels_last").output_type(InputType.convolutional(4, 4, 8)).describe()
        'ff(128)'
    """

    ACCEPTS: ClassVar[tuple[str, ...]] = _SHAPED_FORMS

    layout: Layout = "channels_first"

    def output_type(self, input_type: InputType) -> InputType:
        if input_type.form == "recurrent" and input_type.timesteps is None:
            raise self._incompatible(input_type, "flattening needs a known number of time steps")
        size = input_type.flat_size() * (input_type.timesteps or 1)
        return InputType.feed_forward(size)


@register("reshape")
@dataclass(frozen=True, kw_only=True, slots=True)
class Reshape(Layer):
    """Reshapes each example to ``shape`` (1 axis: a vector, 2: (time, features), 3: an image in ``layout``).

    Values are read in ``layout`` order and written in the same order, as ``numpy.reshape`` would on a
    (h, w, c) array for ``channels_last``.

    Example:
        >>> Reshape(shape=(7, 7, 4), layout="channels_last").output_type(InputType.feed_forward(196)).describe()
        'conv(4x7x7)'
    """

    ACCEPTS: ClassVar[tuple[str, ...]] = _SHAPED_FORMS

    shape: tuple[int, ...]
    layout: Layout = "channels_first"

    def _validate(self) -> None:
        Layer._validate(self)
        check(1 <= len(self.shape) <= 3, "shape", f"expected 1 to 3 axes, got {list(self.shape)}")
        for i, v in enumerate(self.shape):
            check(v > 0, f"shape[{i}]", f"expected positive values, got {v!r}")

    def output_type(self, input_type: InputType) -> InputType:
        try:
            given = math.prod(example_shape(input_type, self.layout))
        except ConfigError as e:
            raise self._incompatible(input_type, e.message) from None
        wanted = math.prod(self.shape)
        if given != wanted:
            raise ConfigError(
                f"cannot reshape {input_type.describe()} ({given} values) to {list(self.shape)} ({wanted} values)",
                "shape",
            )
        return type_of_shape(self.shape, self.layout)


@register("permute")
@dataclass(frozen=True, kw_only=True, slots=True)
class Permute(Layer):
    """Reorders the axes of each example; ``dims`` counts axes from 1 (the batch axis is never moved).

    The axes are those of the example in ``layout`` order: (time, features) for sequences, (h, w, c) for
    images with ``channels_last``.

    Example:
        >>> Permute(dims=(2, 1)).output_type(InputType.recurrent(3, 5)).describe()
        'rnn(3x5)'
    """

    ACCEPTS: ClassVar[tuple[str, ...]] = ("convolutional", "recurrent")

    dims: tuple[int, ...]
    layout: Layout = "channels_first"

    def _validate(self) -> None:
        Layer._validate(self)
        n = len(self.dims)
        check(
            sorted(self.dims) == list(range(1, n + 1)),
            "dims",
            f"expected a permutation of 1..{n}, got {list(self.dims)}",
        )

    def output_type(self, input_type: InputType) -> InputType:
        try:
            shape = example_shape(input_type, self.layout)
        except ConfigError as e:
            raise self._incompatible(input_type, e.message) from None
        if len(shape) != len(self.dims):
            raise ConfigError(
                f"{input_type.describe()} has {len(shape)} axes but dims has {len(self.dims)}: {list(self.dims)}",
                "dims",
            )
        return type_of_shape(tuple(shape[d - 1] for d in self.dims), self.layout)
