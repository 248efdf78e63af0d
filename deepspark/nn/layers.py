"""Compiled feed-forward layers and the shared base every compiled layer derives from.

A compiled layer is a ``torch.nn.Module`` built from one ``LayerPlan`` (the spec plus its inferred input
and output types). Parameters are created empty (no global RNG draws) and initialized by the network
from its seeded generator, so a fixed seed gives the same weights on every machine.
"""

from __future__ import annotations

from typing import ClassVar, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deepspark.config.layers import (
    Activation,
    BatchNorm,
    Dense,
    Dropout,
    Embedding,
    EmbeddingSequence,
    Layer,
    LayerNorm,
    LossLayer,
    Output,
)
from deepspark.config.network import LayerPlan
from deepspark.nn.functional import activation_fn
from deepspark.nn.init import init_weight

Masked = tuple[Tensor, "Tensor | None"]


class CompiledLayer(nn.Module):
    """Base of compiled layers: input dropout, then ``run``; masks travel alongside the activations.

    Subclasses list their weight parameters in ``WEIGHTS`` (regularized, initialized with the weight-init
    scheme); every other parameter is a bias-like one (zero-initialized, not regularized) unless the
    subclass overrides ``init_params``.
    """

    WEIGHTS: ClassVar[tuple[str, ...]] = ()

    def __init__(self, plan: LayerPlan, dtype: torch.dtype) -> None:
        super().__init__()
        self.plan = plan
        self.spec: Layer = plan.layer
        self.dtype = dtype
        self.input_dropout = plan.layer.dropout

    def _param(self, *shape: int) -> nn.Parameter:
        return nn.Parameter(torch.empty(*shape, dtype=self.dtype))

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Masked:
        if self.input_dropout > 0.0 and self.training:
            x = F.dropout(x, self.input_dropout, True)
        return self.run(x, mask)

    def run(self, x: Tensor, mask: Tensor | None) -> Masked:
        """The layer's computation on (dropped-out) input."""
        return x, mask

    def weight_names(self) -> tuple[str, ...]:
        """Names of parameters that are weights (regularized); the rest are biases, gains, etc."""
        return self.WEIGHTS

    def init_params(self, scheme: str, gen: torch.Generator) -> None:
        """Initialize weights with ``scheme`` and everything else with zeros."""
        weights = set(self.weight_names())
        for name, p in self.named_parameters(recurse=False):
            if name in weights:
                init_weight(p.data, scheme, gen)
            else:
                p.data.zero_()


class OutputLayer(CompiledLayer):
    """A compiled layer with a loss: exposes pre-activations so the loss can fuse softmax/sigmoid."""

    activation_name: str = "identity"
    loss_name: str = "mse"

    def preout(self, x: Tensor) -> Tensor:
        """Pre-activation output (logits for classifiers)."""
        return x

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Masked:
        if self.input_dropout > 0.0 and self.training:
            x = F.dropout(x, self.input_dropout, True)
        return activation_fn(self.activation_name)(self.preout(x)), mask


class DenseLayer(CompiledLayer):
    WEIGHTS = ("weight",)

    def __init__(self, plan: LayerPlan, dtype: torch.dtype) -> None:
        super().__init__(plan, dtype)
        spec = cast(Dense, plan.layer)
        self.weight = self._param(spec.n_out, plan.input_type.size)
        self.bias = self._param(spec.n_out) if spec.has_bias else None
        self.act = activation_fn(spec.activation)

    def run(self, x: Tensor, mask: Tensor | None) -> Masked:
        return self.act(F.linear(x, self.weight, self.bias)), mask


class OutputDense(OutputLayer):
    """``Output`` and ``RnnOutput``: a dense projection scored by a loss."""

    WEIGHTS = ("weight",)

    def __init__(self, plan: LayerPlan, dtype: torch.dtype) -> None:
        super().__init__(plan, dtype)
        spec = plan.layer
        n_out: int = spec.n_out  # type: ignore[attr-defined]
        self.weight = self._param(n_out, plan.input_type.size)
        self.bias = self._param(n_out) if spec.has_bias else None  # type: ignore[attr-defined]
        self.activation_name = spec.activation  # type: ignore[attr-defined]
        self.loss_name = spec.loss  # type: ignore[attr-defined]

    def preout(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)


class LossOnly(OutputLayer):
    def __init__(self, plan: LayerPlan, dtype: torch.dtype) -> None:
        super().__init__(plan, dtype)
        spec = cast(LossLayer, plan.layer)
        self.activation_name = spec.activation
        self.loss_name = spec.loss


class ActivationLayer(CompiledLayer):
    def __init__(self, plan: LayerPlan, dtype: torch.dtype) -> None:
        super().__init__(plan, dtype)
        self.act = activation_fn(cast(Activation, plan.layer).activation)

    def run(self, x: Tensor, mask: Tensor | None) -> Masked:
        return self.act(x), mask


class DropoutLayer(CompiledLayer):
    def __init__(self, plan: LayerPlan, dtype: torch.dtype) -> None:
        super().__init__(plan, dtype)
        self.rate = cast(Dropout, plan.layer).rate

    def run(self, x: Tensor, mask: Tensor | None) -> Masked:
        return F.dropout(x, self.rate, self.training), mask


class BatchNormLayer(CompiledLayer):
    """Batch norm whose running statistics are buffers (they join the flat buffer after the trainables)."""

    def __init__(self, plan: LayerPlan, dtype: torch.dtype) -> None:
        super().__init__(plan, dtype)
        spec = cast(BatchNorm, plan.layer)
        t = plan.input_type
        n = t.channels if t.form == "convolutional" else t.size
        self.momentum = 1.0 - spec.decay
        self.eps = spec.eps
        self.gamma = None if spec.lock_gamma_beta else self._param(n)
        self.beta = None if spec.lock_gamma_beta else self._param(n)
        self.running_mean: Tensor
        self.running_var: Tensor
        self.register_buffer("running_mean", torch.zeros(n, dtype=dtype))
        self.register_buffer("running_var", torch.ones(n, dtype=dtype))

    def init_params(self, scheme: str, gen: torch.Generator) -> None:
        if self.gamma is not None and self.beta is not None:
            self.gamma.data.fill_(1.0)
            self.beta.data.zero_()

    def run(self, x: Tensor, mask: Tensor | None) -> Masked:
        recurrent = x.dim() == 3
        if recurrent:
            x = x.transpose(1, 2)
        y = F.batch_norm(
            x, self.running_mean, self.running_var, self.gamma, self.beta, self.training, self.momentum, self.eps
        )
        return (y.transpose(1, 2) if recurrent else y), mask


class LayerNormLayer(CompiledLayer):
    def __init__(self, plan: LayerPlan, dtype: torch.dtype) -> None:
        super().__init__(plan, dtype)
        spec = cast(LayerNorm, plan.layer)
        t = plan.input_type
        self.conv = t.form == "convolutional"
        n = t.channels if self.conv else t.size
        self.eps = spec.eps
        self.gain = self._param(n)
        self.bias = self._param(n) if spec.has_bias else None

    def init_params(self, scheme: str, gen: torch.Generator) -> None:
        self.gain.data.fill_(1.0)
        if self.bias is not None:
            self.bias.data.zero_()

    def run(self, x: Tensor, mask: Tensor | None) -> Masked:
        if not self.conv:
            return F.layer_norm(x, (x.shape[-1],), self.gain, self.bias, self.eps), mask
        y = F.layer_norm(x, tuple(x.shape[1:]), None, None, self.eps) * self.gain.view(1, -1, 1, 1)
        if self.bias is not None:
            y = y + self.bias.view(1, -1, 1, 1)
        return y, mask


class EmbeddingLayer(CompiledLayer):
    """Index lookup; indices arrive as floats in the feature array and are validated by the network."""

    WEIGHTS = ("weight",)

    def __init__(self, plan: LayerPlan, dtype: torch.dtype) -> None:
        super().__init__(plan, dtype)
        spec = cast("Embedding | EmbeddingSequence", plan.layer)
        self.vocab_size = spec.vocab_size
        self.weight = self._param(spec.vocab_size, spec.n_out)
        self.bias = self._param(spec.n_out) if spec.has_bias else None
        self.act = activation_fn(spec.activation)
        self.sequence = isinstance(spec, EmbeddingSequence)
        self.mask_zero = isinstance(spec, EmbeddingSequence) and spec.mask_zero

    def init_params(self, scheme: str, gen: torch.Generator) -> None:
        init_weight(self.weight.data, scheme, gen, fan=(self.vocab_size, self.weight.shape[1]))
        if self.bias is not None:
            self.bias.data.zero_()

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Masked:  # no input dropout on indices
        idx = x.long()
        # sequences: (N, T) from (N, T) or (N, T, 1); single lookups: (N,)
        idx = idx.reshape(idx.shape[0], -1) if self.sequence else idx.reshape(-1)
        y = F.embedding(idx, self.weight)
        if self.bias is not None:
            y = y + self.bias
        if self.mask_zero:  # index 0 is padding: emit the mask the next layers honour
            keep = (idx != 0).to(y.dtype)
            mask = keep if mask is None else keep * mask.to(y.dtype)
        return self.act(y), mask


def _preprocess(tag: str, x: Tensor, plan: LayerPlan) -> Tensor:
    """Apply the reshape the config inserted before a layer (see ``config.input_types.PREPROCESSORS``)."""
    if tag == "flat_to_cnn":
        t = plan.input_type
        return x.reshape(x.shape[0], t.channels, t.height, t.width)
    if tag == "nhwc_to_cnn":  # Keras/TensorFlow images (N, H, W, C) -> (N, C, H, W), once at the input
        t = plan.input_type
        return x.reshape(x.shape[0], t.height, t.width, t.channels).permute(0, 3, 1, 2)
    if tag == "cnn_to_ff":
        return x.reshape(x.shape[0], -1)
    if tag == "ff_to_rnn":
        return x.unsqueeze(1)
    if tag == "cnn_to_rnn":  # (N, C, H, W) -> (N, W, C*H): time runs along the width
        n, c, h, w = x.shape
        return x.permute(0, 3, 1, 2).reshape(n, w, c * h)
    return x


preprocess = _preprocess

FEED_FORWARD_BUILDERS: dict[type[Layer], type[CompiledLayer]] = {
    Dense: DenseLayer,
    Output: OutputDense,
    LossLayer: LossOnly,
    Activation: ActivationLayer,
    Dropout: DropoutLayer,
    BatchNorm: BatchNormLayer,
    LayerNorm: LayerNormLayer,
    Embedding: EmbeddingLayer,
    EmbeddingSequence: EmbeddingLayer,
}
