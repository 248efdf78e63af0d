"""Recurrent layer specs: simple RNN, LSTM, GRU, bidirectional wrapper, per-step output, last time step."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from deepspark.config._spec import check_positive, register
from deepspark.config.input_types import InputType
from deepspark.config.layers._base import Layer, check_output_units
from deepspark.config.names import Activation as ActivationName
from deepspark.config.names import Loss
from deepspark.errors import ConfigError


@dataclass(frozen=True, kw_only=True, slots=True)
class _Recurrent(Layer):
    ACCEPTS: ClassVar[tuple[str, ...]] = ("recurrent",)

    n_out: int

    def _validate(self) -> None:
        Layer._validate(self)
        check_positive(self, "n_out")

    def output_type(self, input_type: InputType) -> InputType:
        return InputType.recurrent(self.n_out, input_type.timesteps)


@register("simple_rnn")
@dataclass(frozen=True, kw_only=True, slots=True)
class SimpleRnn(_Recurrent):
    """Elman RNN: h_t = act(W x_t + U h_{t-1} + b); ``activation`` is tanh or relu."""

    activation: Literal["tanh", "relu"] = "tanh"


@register("lstm")
@dataclass(frozen=True, kw_only=True, slots=True)
class LSTM(_Recurrent):
    """Long short-term memory (sigmoid gates, tanh cell), emitting the hidden state at every step.

    Example:
        >>> LSTM(n_out=64).n_out
        64
    """

    forget_gate_bias_init: float = 1.0


@register("gru")
@dataclass(frozen=True, kw_only=True, slots=True)
class GRU(_Recurrent):
    """Gated recurrent unit, emitting the hidden state at every step.

    ``reset_after`` (PyTorch's and Keras' default) applies the reset gate after the recurrent matrix
    product; ``False`` applies it before, as in Cho et al. (2014) and Keras' ``reset_after=False``.
    """

    reset_after: bool = True


@register("bidirectional")
@dataclass(frozen=True, kw_only=True, slots=True)
class Bidirectional(Layer):
    """Runs a recurrent layer forwards and backwards; ``mode`` combines the two outputs.

    ``return_sequences=False`` emits one vector per sequence (feed-forward): the forward pass's last valid
    step combined with the backward pass's first step, each having read the whole sequence. (Taking the
    last step of the sequence output instead would give a backward pass that saw a single step.)
    """

    ACCEPTS: ClassVar[tuple[str, ...]] = ("recurrent",)

    layer: Layer
    mode: Literal["concat", "add", "mul", "average"] = "concat"
    return_sequences: bool = True

    def _validate(self) -> None:
        Layer._validate(self)
        if not isinstance(self.layer, _Recurrent):
            raise ConfigError(f"expected SimpleRnn, LSTM or GRU, got {type(self.layer).__name__}", "layer")
        for name in ("name", "dropout", "l1", "l2", "weight_decay", "weight_init"):
            value = getattr(self.layer, name)
            if value not in (None, 0.0):  # the wrapper compiles as one layer: only its own settings apply
                raise ConfigError(
                    f"the wrapped layer's own {name} would be ignored, got {value!r}; set it on Bidirectional instead",
                    f"layer.{name}",
                )

    def output_type(self, input_type: InputType) -> InputType:
        inner = self.layer.output_type(input_type)
        size = inner.size * 2 if self.mode == "concat" else inner.size
        if not self.return_sequences:
            return InputType.feed_forward(size)
        return InputType.recurrent(size, inner.timesteps)


@register("rnn_output")
@dataclass(frozen=True, kw_only=True, slots=True)
class RnnOutput(Layer):
    """Dense + loss at every time step (padded steps masked out of the loss)."""

    ACCEPTS: ClassVar[tuple[str, ...]] = ("recurrent",)
    HAS_LOSS: ClassVar[bool] = True

    n_out: int
    activation: ActivationName = "softmax"
    loss: Loss = "mcxent"
    has_bias: bool = True

    def _validate(self) -> None:
        Layer._validate(self)
        check_positive(self, "n_out")
        check_output_units(self)

    def output_type(self, input_type: InputType) -> InputType:
        return InputType.recurrent(self.n_out, input_type.timesteps)


@register("last_time_step")
@dataclass(frozen=True, kw_only=True, slots=True)
class LastTimeStep(Layer):
    """Keeps each sequence's last (unmasked) time step: rnn(T x F) -> ff(F)."""

    ACCEPTS: ClassVar[tuple[str, ...]] = ("recurrent",)

    def output_type(self, input_type: InputType) -> InputType:
        return InputType.feed_forward(input_type.size)
