"""Compiled recurrent layers on (N, T, F) input; variable-length sequences are packed by their masks."""

from __future__ import annotations

from typing import cast

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from deepspark.config.layers import GRU, LSTM, Bidirectional, LastTimeStep, Layer, RnnOutput, SimpleRnn
from deepspark.config.network import LayerPlan
from deepspark.nn.gru_reset_before import gru_reset_before
from deepspark.nn.init import init_weight
from deepspark.nn.layers import CompiledLayer, Masked, OutputDense


class RecurrentLayer(CompiledLayer):
    """SimpleRnn, LSTM, GRU, optionally bidirectional. Masked (right-padded) sequences are packed so
    padding never leaks into the hidden state, in either direction."""

    def __init__(self, plan: LayerPlan, dtype: torch.dtype) -> None:
        super().__init__(plan, dtype)
        spec = plan.layer
        self.mode = "forward"
        self.return_sequences = True
        if isinstance(spec, Bidirectional):
            self.mode = spec.mode
            self.return_sequences = spec.return_sequences
            spec = spec.layer
        inner = cast("SimpleRnn | LSTM | GRU", spec)
        self.reset_before = isinstance(inner, GRU) and not inner.reset_after
        kwargs = {"batch_first": True, "bidirectional": self.mode != "forward", "dtype": dtype}
        size, hidden = plan.input_type.size, inner.n_out
        self.forget_bias = inner.forget_gate_bias_init if isinstance(inner, LSTM) else None
        # Built on the meta device, then given empty CPU storage: no global RNG draws (the network
        # initializes from its seeded generator). nn.utils.skip_init refuses RNN classes (*args signature).
        kwargs["device"] = "meta"
        rnn: nn.RNNBase
        if isinstance(inner, LSTM):
            rnn = nn.LSTM(size, hidden, **kwargs)
        elif isinstance(inner, GRU):
            rnn = nn.GRU(size, hidden, **kwargs)
        else:
            rnn = nn.RNN(size, hidden, nonlinearity=inner.activation, **kwargs)
        self.rnn: nn.Module = rnn.to_empty(device="cpu")
        self.hidden = hidden

    def weight_names(self) -> tuple[str, ...]:
        return tuple(f"rnn.{n}" for n, _ in self.rnn.named_parameters() if n.startswith("weight"))

    def init_params(self, scheme: str, gen: torch.Generator) -> None:
        for name, p in self.rnn.named_parameters():
            if name.startswith("weight"):
                init_weight(p.data, scheme, gen)
            else:
                p.data.zero_()
                if self.forget_bias is not None and name.startswith("bias_ih"):
                    p.data[self.hidden : 2 * self.hidden] = self.forget_bias

    def _sequence(self, x: Tensor, mask: Tensor | None) -> Tensor:
        """Per-step outputs (N, T, directions * hidden); padded steps are zeros."""
        if self.reset_before:
            p = dict(self.rnn.named_parameters())
            outs = [gru_reset_before(x, p["weight_ih_l0"], p["weight_hh_l0"], p["bias_ih_l0"], mask)]
            if self.mode != "forward":
                w = ("weight_ih_l0_reverse", "weight_hh_l0_reverse", "bias_ih_l0_reverse")
                outs.append(gru_reset_before(x, p[w[0]], p[w[1]], p[w[2]], mask, reverse=True))
            return torch.cat(outs, dim=-1)
        if mask is None:
            y: Tensor = self.rnn(x)[0]
            return y
        lengths = mask.sum(dim=1).to(torch.int64).clamp_min(1).cpu()
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.rnn(packed)
        y, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return y

    def run(self, x: Tensor, mask: Tensor | None) -> Masked:
        y = self._sequence(x, mask)
        if self.mode == "forward":
            return y, mask
        fwd, bwd = y[..., : self.hidden], y[..., self.hidden :]
        if not self.return_sequences:  # forward's last valid step, backward's first: both read everything
            fwd, bwd, mask = last_valid_step(fwd, mask), bwd[:, 0], None
        if self.mode == "concat":
            return torch.cat([fwd, bwd], dim=-1), mask
        if self.mode == "add":
            return fwd + bwd, mask
        if self.mode == "mul":
            return fwd * bwd, mask
        return (fwd + bwd) * 0.5, mask


def last_valid_step(x: Tensor, mask: Tensor | None) -> Tensor:
    """Each sequence's last step that the mask marks valid (the last step when there is no mask)."""
    if mask is None:
        return x[:, -1]
    last = (mask.sum(dim=1).to(torch.int64) - 1).clamp_min(0)
    return x.gather(1, last.view(-1, 1, 1).expand(-1, 1, x.shape[2])).squeeze(1)


class LastTimeStepLayer(CompiledLayer):
    """Each sequence's last valid step (by mask) -> feed-forward; consumes the mask."""

    def run(self, x: Tensor, mask: Tensor | None) -> Masked:
        return last_valid_step(x, mask), None


RECURRENT_BUILDERS: dict[type[Layer], type[CompiledLayer]] = {
    SimpleRnn: RecurrentLayer,
    LSTM: RecurrentLayer,
    GRU: RecurrentLayer,
    Bidirectional: RecurrentLayer,
    RnnOutput: OutputDense,
    LastTimeStep: LastTimeStepLayer,
}
