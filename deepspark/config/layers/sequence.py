"""Sequence layer specs: padding, cropping and up-sampling along time, masking, and spatial (per-channel) dropout."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from deepspark.config._spec import check_non_negative_tuple, check_positive, check_probability, register
from deepspark.config.input_types import InputType
from deepspark.config.layers._base import Layer


@register("zero_padding1d")
@dataclass(frozen=True, kw_only=True, slots=True)
class ZeroPadding1D(Layer):
    """Adds zero time steps to sequences: ``padding`` = (before, after).

    Example:
        >>> ZeroPadding1D(padding=(2, 0)).output_type(InputType.recurrent(3, 5)).describe()
        'rnn(7x3)'
    """

    ACCEPTS: ClassVar[tuple[str, ...]] = ("recurrent",)

    padding: tuple[int, int] = (1, 1)

    def _validate(self) -> None:
        Layer._validate(self)
        check_non_negative_tuple(self, "padding")

    def output_type(self, input_type: InputType) -> InputType:
        t = input_type.timesteps
        return InputType.recurrent(input_type.size, None if t is None else t + sum(self.padding))


@register("cropping1d")
@dataclass(frozen=True, kw_only=True, slots=True)
class Cropping1D(Layer):
    """Drops time steps at both ends of sequences: ``cropping`` = (start, end)."""

    ACCEPTS: ClassVar[tuple[str, ...]] = ("recurrent",)

    cropping: tuple[int, int] = (1, 1)

    def _validate(self) -> None:
        Layer._validate(self)
        check_non_negative_tuple(self, "cropping")

    def output_type(self, input_type: InputType) -> InputType:
        t = input_type.timesteps
        if t is None:
            return input_type
        out = t - sum(self.cropping)
        if out <= 0:
            raise self._incompatible(input_type, f"cropping {list(self.cropping)} leaves {out} time steps")
        return InputType.recurrent(input_type.size, out)


@register("upsampling1d")
@dataclass(frozen=True, kw_only=True, slots=True)
class Upsampling1D(Layer):
    """Repeats each time step ``size`` times."""

    ACCEPTS: ClassVar[tuple[str, ...]] = ("recurrent",)

    size: int = 2

    def _validate(self) -> None:
        Layer._validate(self)
        check_positive(self, "size")

    def output_type(self, input_type: InputType) -> InputType:
        t = input_type.timesteps
        return InputType.recurrent(input_type.size, None if t is None else t * self.size)


@register("masking")
@dataclass(frozen=True, kw_only=True, slots=True)
class Masking(Layer):
    """Marks time steps whose features all equal ``mask_value`` as padding and zeroes them.

    The mask travels with the activations: recurrent layers skip the padded steps, ``LastTimeStep`` and
    ``GlobalPooling`` ignore them. Padding goes at the end of each sequence.
    """

    ACCEPTS: ClassVar[tuple[str, ...]] = ("recurrent",)

    mask_value: float = 0.0


@register("spatial_dropout")
@dataclass(frozen=True, kw_only=True, slots=True)
class SpatialDropout(Layer):
    """Dropout of whole channels (images) or whole features across all time steps (sequences) while training.

    Neighbouring pixels or steps are strongly correlated, so dropping single values regularizes little;
    dropping a channel everywhere does (Tompson et al., 2015). Identity at inference.
    """

    ACCEPTS: ClassVar[tuple[str, ...]] = ("convolutional", "recurrent")

    rate: float = 0.5

    def _validate(self) -> None:
        Layer._validate(self)
        check_probability(self, "rate")
