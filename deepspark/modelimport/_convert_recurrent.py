"""Converters for Keras' recurrent layers: SimpleRNN, LSTM, GRU (both reset_after forms), Bidirectional,
TimeDistributed.

Keras stores a recurrent layer as ``kernel`` (in, gates * units), ``recurrent_kernel`` (units, gates *
units) and one bias; PyTorch as transposed ``weight_ih``/``weight_hh`` and two biases. LSTM gates are in
the same order (i, f, c/g, o) in both; GRU gates are (z, r, h) in Keras and (r, z, n) in PyTorch, and a
``reset_after`` GRU's bias holds an input row and a recurrent row.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from deepspark.config.layers import GRU, LSTM, Bidirectional, LastTimeStep, Layer, SimpleRnn
from deepspark.modelimport._convert_base import Context, Converted, Converter, Part, WeightSpec, with_settings
from deepspark.modelimport._convert_core import activation_layer, dense, dropout
from deepspark.modelimport._layer_config import KerasLayer

Params = dict[str, dict[str, np.ndarray]]
_GATES = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}
_MERGE_MODES = {"concat": "concat", "sum": "add", "mul": "mul", "ave": "average"}


def _gru_order(m: np.ndarray) -> np.ndarray:
    """Keras GRU gate blocks (z, r, h) along the last axis -> PyTorch's (r, z, n)."""
    z, r, h = np.split(m, 3, axis=-1)
    return np.concatenate([r, z, h], axis=-1)


class _Cell:
    """One recurrent layer's settings, checked, and how its arrays become PyTorch's."""

    def __init__(self, layer: KerasLayer, ctx: Context, *, wrapped: bool = False) -> None:
        if ctx.input.form != "recurrent":
            raise layer.error(f"expects (batch, time, features) input, got {ctx.input.describe()}")
        for key in ("return_state", "stateful") + (() if wrapped else ("go_backwards",)):
            if layer.flag(key, False):
                raise layer.error(f"{key}=True is not supported")
        self.layer = layer
        self.kind = layer.class_name
        self.units = layer.integer("units")
        self.size = ctx.input.size
        self.use_bias = layer.flag("use_bias", True)
        self.return_sequences = layer.flag("return_sequences", False)
        self.reset_after = self.kind == "GRU" and layer.flag("reset_after", layer.keras_major >= 2)
        act = layer.raw("activation", "tanh")
        if self.kind == "SimpleRNN":
            if act not in ("tanh", "relu"):
                raise layer.error(f"activation={act!r} is not supported; SimpleRNN takes tanh or relu")
        elif act != "tanh" or layer.raw("recurrent_activation", "sigmoid") != "sigmoid":
            raise layer.error(
                f"activation={act!r}, recurrent_activation={layer.raw('recurrent_activation')!r} are not supported; "
                "only tanh and sigmoid (the Keras defaults)"
            )
        self.activation = act
        if not self.use_bias:
            ctx.notes.add(f"{layer.where()}: use_bias=False: deepspark's biases start at zero but are trainable")
        if layer.number("recurrent_dropout", 0.0) > 0:
            ctx.notes.add(f"{layer.where()}: recurrent_dropout is not imported")
        self.dropout = layer.number("dropout", 0.0)

    def spec(self) -> Layer:
        u = self.units
        spec: Layer
        if self.kind == "LSTM":
            spec = LSTM(n_out=u)
        elif self.kind == "GRU":
            spec = GRU(n_out=u, reset_after=self.reset_after)
        else:
            spec = SimpleRnn(n_out=u, activation=self.activation)  # type: ignore[arg-type]
        return spec

    def weights(self, prefix: str = "") -> list[WeightSpec]:
        g = _GATES[self.kind] * self.units
        out = [WeightSpec(f"{prefix}kernel", (self.size, g)), WeightSpec(f"{prefix}recurrent_kernel", (self.units, g))]
        if self.use_bias:
            out.append(WeightSpec(f"{prefix}bias", (2, g) if self.reset_after else (g,)))
        return out

    def n_arrays(self) -> int:
        return 3 if self.use_bias else 2

    def torch_params(self, arrays: list[np.ndarray], suffix: str = "") -> dict[str, np.ndarray]:
        g = _GATES[self.kind] * self.units
        kernel, recurrent = arrays[0], arrays[1]
        zeros = np.zeros(g, np.float32)
        bias_ih, bias_hh = (arrays[2], zeros) if self.use_bias else (zeros, zeros)
        if self.reset_after and self.use_bias:
            bias_ih, bias_hh = arrays[2][0], arrays[2][1]
        if self.kind == "GRU":
            kernel, recurrent = _gru_order(kernel), _gru_order(recurrent)
            bias_ih, bias_hh = _gru_order(bias_ih), _gru_order(bias_hh)
        return {
            f"rnn.weight_ih_l0{suffix}": kernel.T,
            f"rnn.weight_hh_l0{suffix}": recurrent.T,
            f"rnn.bias_ih_l0{suffix}": bias_ih,
            f"rnn.bias_hh_l0{suffix}": bias_hh,
        }


def recurrent(layer: KerasLayer, ctx: Context) -> Converted:
    cell = _Cell(layer, ctx)
    spec = with_settings(cell.spec(), layer, ctx.notes)
    if cell.dropout:
        spec = _with_dropout(spec, cell.dropout)
    role = "" if cell.return_sequences else "sequence"

    def params(arrays: list[np.ndarray]) -> Params:
        return {role: cell.torch_params(arrays)}

    parts = (Part("", spec),) if cell.return_sequences else (Part("sequence", spec), Part("", LastTimeStep()))
    return Converted(parts=parts, weights=tuple(cell.weights()), params=params)


def _with_dropout(spec: Layer, rate: float) -> Layer:
    return replace(spec, dropout=rate)


def bidirectional(layer: KerasLayer, ctx: Context) -> Converted:
    inner = layer.inner()
    if inner.class_name not in _GATES:
        raise layer.error(f"wraps {inner.class_name}; only SimpleRNN, LSTM and GRU are supported")
    cell = _Cell(inner, ctx, wrapped=True)
    back = layer.config.get("backward_layer")
    if back is not None:
        cfg = back.get("config") if isinstance(back, dict) else None
        if (
            not isinstance(cfg, dict)
            or back.get("class_name") != inner.class_name
            or cfg.get("units") != cell.units
            or cfg.get("use_bias", True) != cell.use_bias
            or cfg.get("reset_after", cell.reset_after) != cell.reset_after
        ):
            raise layer.error("a backward_layer that differs from the forward layer is not supported")
    mode = layer.raw("merge_mode", "concat")
    if mode not in _MERGE_MODES:
        raise layer.error(f"merge_mode={mode!r} is not supported; supported: {', '.join(_MERGE_MODES)}")
    spec: Layer = Bidirectional(
        layer=cell.spec(), mode=_MERGE_MODES[mode], return_sequences=cell.return_sequences  # type: ignore[arg-type]
    )
    spec = with_settings(spec, inner, ctx.notes)
    if cell.dropout:
        spec = _with_dropout(spec, cell.dropout)
    n = cell.n_arrays()

    def params(arrays: list[np.ndarray]) -> Params:
        return {"": {**cell.torch_params(arrays[:n]), **cell.torch_params(arrays[n:], "_reverse")}}

    weights = (*cell.weights("forward_"), *cell.weights("backward_"))
    return Converted(parts=(Part("", spec),), weights=weights, params=params)


_TIME_DISTRIBUTED: dict[str, Converter] = {"Dense": dense, "Dropout": dropout, "Activation": activation_layer}


def time_distributed(layer: KerasLayer, ctx: Context) -> Converted:
    """``TimeDistributed(Dense)``: deepspark's Dense already applies to every step of a sequence."""
    inner = layer.inner()
    convert = _TIME_DISTRIBUTED.get(inner.class_name)
    if convert is None:
        raise layer.error(f"wraps {inner.class_name}; supported: {', '.join(_TIME_DISTRIBUTED)}")
    if ctx.input.form != "recurrent":
        raise layer.error(f"expects (batch, time, features) input, got {ctx.input.describe()}")
    return convert(inner, ctx)


RECURRENT_CONVERTERS: dict[str, Converter] = {
    "SimpleRNN": recurrent,
    "LSTM": recurrent,
    "GRU": recurrent,
    "Bidirectional": bidirectional,
    "TimeDistributed": time_distributed,
}
