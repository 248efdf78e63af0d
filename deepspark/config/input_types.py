"""``InputType``: the shape of what flows into a layer, and the preprocessors inserted between forms.

Shape inference is why a config never needs ``n_in``: the network's input type is threaded through the
layers, each computing its output type, and where a layer needs another form (a dense layer after a
convolution, a convolution after flat pixels) a preprocessor is inserted, as DL4J's ``setInputType`` does.
Layouts follow PyTorch: convolutional is (channels, height, width), recurrent is (time, features).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from deepspark.config._spec import Spec, check, register

Form = Literal["feed_forward", "convolutional", "convolutional_flat", "recurrent", "channels_last"]

FEED_FORWARD: Form = "feed_forward"
CONVOLUTIONAL: Form = "convolutional"
CONVOLUTIONAL_FLAT: Form = "convolutional_flat"
RECURRENT: Form = "recurrent"
CHANNELS_LAST: Form = "channels_last"


@register("input_type")
@dataclass(frozen=True, kw_only=True, slots=True)
class InputType(Spec):
    """The per-example shape entering a layer (the batch axis is never part of it).

    Build one with the constructors rather than the fields.

    Example:
        >>> InputType.convolutional_flat(28, 28, 1).shape()
        (784,)
    """

    kind = "input type"

    form: Form
    size: int = 0
    height: int = 0
    width: int = 0
    channels: int = 0
    timesteps: int | None = None

    def _validate(self) -> None:
        if self.form in (FEED_FORWARD, RECURRENT):
            check(self.size > 0, "size", f"expected a positive int, got {self.size}")
        else:
            for name in ("height", "width", "channels"):
                value = getattr(self, name)
                check(value > 0, name, f"expected a positive int, got {value}")
        if self.timesteps is not None:
            check(self.timesteps > 0, "timesteps", f"expected a positive int or None, got {self.timesteps}")

    @staticmethod
    def feed_forward(size: int) -> InputType:
        """Flat feature vectors of ``size`` values."""
        return InputType(form=FEED_FORWARD, size=size)

    @staticmethod
    def convolutional(height: int, width: int, channels: int) -> InputType:
        """Images as (channels, height, width) arrays."""
        return InputType(form=CONVOLUTIONAL, height=height, width=width, channels=channels)

    @staticmethod
    def convolutional_flat(height: int, width: int, channels: int = 1) -> InputType:
        """Images stored flat (``height*width*channels`` values, channel-major), reshaped for convolutions."""
        return InputType(form=CONVOLUTIONAL_FLAT, height=height, width=width, channels=channels)

    @staticmethod
    def channels_last(height: int, width: int, channels: int) -> InputType:
        """Images as (height, width, channels) arrays (Keras/TensorFlow layout), permuted once to
        (channels, height, width) before the first layer; flat rows hold ``h*w*c`` values in that order."""
        return InputType(form=CHANNELS_LAST, height=height, width=width, channels=channels)

    @staticmethod
    def recurrent(size: int, timesteps: int | None = None) -> InputType:
        """Sequences as (time, features) arrays; ``timesteps=None`` for variable length."""
        return InputType(form=RECURRENT, size=size, timesteps=timesteps)

    def shape(self) -> tuple[int | None, ...]:
        """Per-example array shape: (size,), (c, h, w), (h*w*c,), (timesteps, size) or (h, w, c) for channels-last."""
        if self.form == FEED_FORWARD:
            return (self.size,)
        if self.form == CONVOLUTIONAL:
            return (self.channels, self.height, self.width)
        if self.form == CONVOLUTIONAL_FLAT:
            return (self.height * self.width * self.channels,)
        if self.form == CHANNELS_LAST:
            return (self.height, self.width, self.channels)
        return (self.timesteps, self.size)

    def flat_size(self) -> int:
        """Values per example (per time step for recurrent input)."""
        if self.form in (FEED_FORWARD, RECURRENT):
            return self.size
        return self.height * self.width * self.channels

    def describe(self) -> str:
        """Short text such as ``conv(1x28x28)`` for summaries and messages."""
        if self.form == FEED_FORWARD:
            return f"ff({self.size})"
        if self.form == CONVOLUTIONAL:
            return f"conv({self.channels}x{self.height}x{self.width})"
        if self.form == CONVOLUTIONAL_FLAT:
            return f"conv_flat({self.height}x{self.width}x{self.channels})"
        if self.form == CHANNELS_LAST:
            return f"conv_nhwc({self.height}x{self.width}x{self.channels})"
        t = "?" if self.timesteps is None else str(self.timesteps)
        return f"rnn({t}x{self.size})"


# Preprocessors: (from form, to form) -> tag. "" means the data already fits (only the type changes).
PREPROCESSORS: dict[tuple[str, str], str] = {
    (CONVOLUTIONAL_FLAT, CONVOLUTIONAL): "flat_to_cnn",
    (CONVOLUTIONAL_FLAT, FEED_FORWARD): "",
    (CONVOLUTIONAL, FEED_FORWARD): "cnn_to_ff",
    (FEED_FORWARD, RECURRENT): "ff_to_rnn",
    (CONVOLUTIONAL, RECURRENT): "cnn_to_rnn",
    (CHANNELS_LAST, CONVOLUTIONAL): "nhwc_to_cnn",
}


def convert(input_type: InputType, target: str) -> InputType:
    """The type ``input_type`` becomes after the preprocessor to form ``target``."""
    t = input_type
    if target == CONVOLUTIONAL:
        return InputType.convolutional(t.height, t.width, t.channels)
    if target == FEED_FORWARD:
        return InputType.feed_forward(t.flat_size())
    if target == RECURRENT:
        if t.form == CONVOLUTIONAL:  # time runs along the width (CRNN convention)
            return InputType.recurrent(t.channels * t.height, t.width)
        return InputType.recurrent(t.flat_size(), 1)
    raise ValueError(f"no conversion to {target}")  # pragma: no cover - PREPROCESSORS guards this
