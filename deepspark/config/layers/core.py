"""Feed-forward layer specs: dense, output and loss layers, normalization, dropout, activation, embeddings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from deepspark.config._spec import check_positive, check_probability, register
from deepspark.config.input_types import InputType
from deepspark.config.layers._base import Layer, check_output_units
from deepspark.config.names import Activation as ActivationName
from deepspark.config.names import Loss


@register("dense")
@dataclass(frozen=True, kw_only=True, slots=True)
class Dense(Layer):
    """Fully connected layer; on recurrent input it is applied at every time step.

    Example:
        >>> Dense(n_out=256, activation="relu").n_out
        256
    """

    ACCEPTS: ClassVar[tuple[str, ...]] = ("feed_forward", "recurrent")

    n_out: int
    activation: ActivationName = "identity"
    has_bias: bool = True

    def _validate(self) -> None:
        Layer._validate(self)
        check_positive(self, "n_out")

    def output_type(self, input_type: InputType) -> InputType:
        if input_type.form == "recurrent":
            return InputType.recurrent(self.n_out, input_type.timesteps)
        return InputType.feed_forward(self.n_out)


@register("output")
@dataclass(frozen=True, kw_only=True, slots=True)
class Output(Layer):
    """Dense layer with a loss: the last layer of a classifier or regressor.

    Example:
        >>> Output(n_out=10, activation="softmax", loss="mcxent").loss
        'mcxent'
    """

    ACCEPTS: ClassVar[tuple[str, ...]] = ("feed_forward",)
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
        return InputType.feed_forward(self.n_out)


@register("loss")
@dataclass(frozen=True, kw_only=True, slots=True)
class LossLayer(Layer):
    """A parameter-free output layer: applies ``activation`` to its input and scores it with ``loss``."""

    ACCEPTS: ClassVar[tuple[str, ...]] = ("feed_forward", "recurrent")
    HAS_LOSS: ClassVar[bool] = True

    activation: ActivationName = "identity"
    loss: Loss = "mse"


@register("activation")
@dataclass(frozen=True, kw_only=True, slots=True)
class Activation(Layer):
    """Applies an activation function element-wise (softmax over the feature axis)."""

    activation: ActivationName = "relu"


@register("dropout")
@dataclass(frozen=True, kw_only=True, slots=True)
class Dropout(Layer):
    """Zeroes each value with probability ``rate`` while training (inverted dropout); identity at inference."""

    rate: float = 0.5

    def _validate(self) -> None:
        Layer._validate(self)
        check_probability(self, "rate")


@register("batch_norm")
@dataclass(frozen=True, kw_only=True, slots=True)
class BatchNorm(Layer):
    """Batch normalization: per feature (feed-forward, recurrent) or per channel (convolutional).

    Running statistics follow DL4J: ``running = decay * running + (1 - decay) * batch``. They are part of
    the network's flat parameter buffer (after the trainable values), so averaging and saving cover them.
    """

    ACCEPTS: ClassVar[tuple[str, ...]] = ("feed_forward", "convolutional", "recurrent")

    decay: float = 0.9
    eps: float = 1e-5
    lock_gamma_beta: bool = False

    def _validate(self) -> None:
        Layer._validate(self)
        check_probability(self, "decay")
        check_positive(self, "eps")


@register("layer_norm")
@dataclass(frozen=True, kw_only=True, slots=True)
class LayerNorm(Layer):
    """Layer normalization over the feature axis (over channels, height and width for images)."""

    ACCEPTS: ClassVar[tuple[str, ...]] = ("feed_forward", "convolutional", "recurrent")

    eps: float = 1e-5
    has_bias: bool = True

    def _validate(self) -> None:
        Layer._validate(self)
        check_positive(self, "eps")


@register("embedding")
@dataclass(frozen=True, kw_only=True, slots=True)
class Embedding(Layer):
    """Looks up a learned vector per integer index. Input: one index per example (feed-forward of size 1)."""

    ACCEPTS: ClassVar[tuple[str, ...]] = ("feed_forward",)

    vocab_size: int
    n_out: int
    activation: ActivationName = "identity"
    has_bias: bool = False

    def _validate(self) -> None:
        Layer._validate(self)
        check_positive(self, "vocab_size", "n_out")

    def output_type(self, input_type: InputType) -> InputType:
        if input_type.size != 1:
            raise self._incompatible(input_type, "expects one index per example (size 1); use EmbeddingSequence")
        return InputType.feed_forward(self.n_out)


@register("embedding_sequence")
@dataclass(frozen=True, kw_only=True, slots=True)
class EmbeddingSequence(Layer):
    """Embeds a sequence of indices: input ff(T) or rnn(T x 1) of indices, output rnn(T x n_out).

    ``mask_zero``: index 0 is padding; the layer emits a mask that recurrent layers, ``LastTimeStep`` and
    ``GlobalPooling`` honour (pad at the end of each sequence).
    """

    ACCEPTS: ClassVar[tuple[str, ...]] = ("feed_forward", "recurrent")

    vocab_size: int
    n_out: int
    activation: ActivationName = "identity"
    has_bias: bool = False
    mask_zero: bool = False

    def _validate(self) -> None:
        Layer._validate(self)
        check_positive(self, "vocab_size", "n_out")

    def output_type(self, input_type: InputType) -> InputType:
        if input_type.form == "feed_forward":
            return InputType.recurrent(self.n_out, input_type.size)
        if input_type.size != 1:
            raise self._incompatible(input_type, "expects one index per time step (size 1)")
        return InputType.recurrent(self.n_out, input_type.timesteps)
