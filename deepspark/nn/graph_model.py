"""The torch module a ``GraphConfig`` compiles to: layer vertices as compiled layers, the rest as tensor ops.

It speaks the same protocol as ``SequentialModel`` (``heads``, ``forward_preouts``, ``param_roles``,
``init_params``), so ``Network`` trains a graph exactly as it trains a stack.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deepspark.config.graph import (
    ElementWise,
    GraphConfig,
    GraphVertex,
    L2Normalize,
    LayerVertex,
    Merge,
    Scale,
    Stack,
    Subset,
    Unstack,
    VertexPlan,
)
from deepspark.config.graph_vertices import Dot
from deepspark.config.layers import Embedding, EmbeddingSequence
from deepspark.errors import DataError
from deepspark.nn.functional import activation_fn
from deepspark.nn.layers import CompiledLayer, Masked, OutputLayer, preprocess
from deepspark.nn.model import TORCH_DTYPES, Head, ParamRole, build_layer, layer_roles


def _first_mask(ins: list[Masked]) -> Tensor | None:
    return next((m for _, m in ins if m is not None), None)


def _merge(plan: VertexPlan, ins: list[Masked]) -> Masked:
    dim = 1 if plan.output_type.form == "convolutional" else -1
    return torch.cat([x for x, _ in ins], dim=dim), _first_mask(ins)


def _elementwise(plan: VertexPlan, ins: list[Masked]) -> Masked:
    op = cast(ElementWise, plan.vertex).op
    xs = [x for x, _ in ins]
    y = xs[0]
    if op == "subtract":
        y = xs[0] - xs[1]
    elif op == "product":
        for x in xs[1:]:
            y = y * x
    elif op == "max":
        for x in xs[1:]:
            y = torch.maximum(y, x)
    else:  # add, average
        for x in xs[1:]:
            y = y + x
        if op == "average":
            y = y / len(xs)
    return y, _first_mask(ins)


def _subset(plan: VertexPlan, ins: list[Masked]) -> Masked:
    v = cast(Subset, plan.vertex)
    x, mask = ins[0]
    if plan.output_type.form == "convolutional":
        return x[:, v.start : v.end], mask
    return x[..., v.start : v.end], mask


def _scale(plan: VertexPlan, ins: list[Masked]) -> Masked:
    x, mask = ins[0]
    return x * cast(Scale, plan.vertex).factor, mask


def _stack(plan: VertexPlan, ins: list[Masked]) -> Masked:
    xs = [x for x, _ in ins]
    if all(m is None for _, m in ins):
        return torch.cat(xs), None
    masks = [torch.ones(x.shape[:2], dtype=torch.float32, device=x.device) if m is None else m for x, m in ins]
    return torch.cat(xs), torch.cat(masks)


def _unstack(plan: VertexPlan, ins: list[Masked]) -> Masked:
    v = cast(Unstack, plan.vertex)
    x, mask = ins[0]
    n = x.shape[0]
    if n % v.count:
        raise DataError(f"vertex {v.name!r}: a batch of {n} rows cannot be unstacked into {v.count} equal parts")
    part = slice(v.index * (n // v.count), (v.index + 1) * (n // v.count))
    return x[part], None if mask is None else mask[part]


def _l2_normalize(plan: VertexPlan, ins: list[Masked]) -> Masked:
    x, mask = ins[0]
    eps = cast(L2Normalize, plan.vertex).eps
    if plan.output_type.form == "convolutional":
        return F.normalize(x.reshape(x.shape[0], -1), dim=1, eps=eps).reshape(x.shape), mask
    return F.normalize(x, dim=-1, eps=eps), mask


def _dot(plan: VertexPlan, ins: list[Masked]) -> Masked:
    (a, _), (b, _) = ins
    if cast(Dot, plan.vertex).normalize:
        a, b = F.normalize(a, dim=-1, eps=1e-12), F.normalize(b, dim=-1, eps=1e-12)
    return (a * b).sum(dim=-1, keepdim=True), None


VERTEX_OPS: dict[type[GraphVertex], Callable[[VertexPlan, list[Masked]], Masked]] = {
    Merge: _merge,
    ElementWise: _elementwise,
    Subset: _subset,
    Scale: _scale,
    Stack: _stack,
    Unstack: _unstack,
    L2Normalize: _l2_normalize,
    Dot: _dot,
}
"""How each parameter-free vertex kind computes its output (activation, mask) from its inputs'."""


class GraphModel(nn.Module):
    """A compiled ``GraphConfig``: a compiled layer per layer vertex, run with the other vertices in topological order.

    Layers sit in ``layers`` in declaration order (parameter names ``layers.<i>.<param>``, ``i`` indexing
    ``GraphConfig.layers``), so the flat buffer's layout follows the config's vertex list.

    Example:
        >>> model = GraphModel(conf)                                  # doctest: +SKIP
        >>> probs, = model(torch.randn(8, 4), torch.randn(8, 3))      # doctest: +SKIP
    """

    def __init__(self, config: GraphConfig) -> None:
        super().__init__()
        self.dtype = TORCH_DTYPES[config.dtype]
        self.config = config
        self.plans = config.plan()
        self.layer_plans = config.layer_plans()
        vertex_of = {p.layer.index: p.index for p in self.plans if p.layer is not None}
        self.compiled: list[CompiledLayer] = [
            build_layer(p, self.dtype, f"vertices[{vertex_of[p.index]}].layer") for p in self.layer_plans
        ]
        self.layers = nn.ModuleList(self.compiled)
        self.layer_names = [p.name for p in self.layer_plans]
        self.input_names = config.inputs
        self.output_names = config.outputs
        by_name = {p.name: p for p in self.plans}
        self.heads: list[Head] = []
        for name in config.outputs:
            plan = by_name[name]
            out = self._layer(plan)
            if not isinstance(out, OutputLayer):  # pragma: no cover - GraphConfig validates this
                raise TypeError(f"output {name!r} must carry a loss")
            t = plan.output_type
            self.heads.append(Head(out.loss_name, out.activation_name, t.size, t.form == "recurrent"))
        self.input_vocab: list[int | None] = [self._vocab(name) for name in config.inputs]

    def _vocab(self, input_name: str) -> int | None:
        """The smallest vocabulary of the embedding layers reading graph input ``input_name`` directly."""
        sizes = [
            p.vertex.layer.vocab_size
            for p in self.plans
            if isinstance(p.vertex, LayerVertex)
            and isinstance(p.vertex.layer, (Embedding, EmbeddingSequence))
            and input_name in p.vertex.inputs
        ]
        return min(sizes) if sizes else None

    def _layer(self, plan: VertexPlan) -> CompiledLayer:
        if plan.layer is None:  # pragma: no cover - callers pass layer vertices only
            raise TypeError(f"vertex {plan.name!r} is not a layer vertex")
        return self.compiled[plan.layer.index]

    def init_params(self, default_scheme: str, gen: torch.Generator) -> None:
        """Initialize every layer from ``gen`` in declaration order, each with its own or the default scheme."""
        for plan, layer in zip(self.layer_plans, self.compiled, strict=True):
            layer.init_params(plan.layer.weight_init or default_scheme, gen)

    def forward_preouts(
        self, inputs: Sequence[Tensor], masks: Sequence[Tensor | None]
    ) -> list[tuple[Tensor, Tensor | None]]:
        """Pre-activation output and its mask for each head, in ``outputs`` order."""
        if len(inputs) != len(self.input_names):
            raise DataError(
                f"the graph takes {len(self.input_names)} inputs {list(self.input_names)}, got {len(inputs)}"
            )
        padded = [*masks, *[None] * (len(inputs) - len(masks))]
        values: dict[str, Masked] = {
            name: (x, m) for name, x, m in zip(self.input_names, inputs, padded[: len(inputs)], strict=True)
        }
        preouts: dict[str, tuple[Tensor, Tensor | None]] = {}
        for plan in self.plans:
            ins = [values[s] for s in plan.vertex.inputs]
            if plan.layer is None:
                values[plan.name] = VERTEX_OPS[type(plan.vertex)](plan, ins)
                continue
            layer = self._layer(plan)
            x, mask = ins[0]
            x = preprocess(plan.layer.preprocessor, x, plan.layer)
            if isinstance(layer, OutputLayer):
                if layer.input_dropout > 0.0 and self.training:
                    x = F.dropout(x, layer.input_dropout, True)
                preouts[plan.name] = (layer.preout(x), mask)
            else:
                values[plan.name] = layer(x, mask)
        return [preouts[name] for name in self.output_names]

    def param_roles(self) -> dict[str, ParamRole]:
        """Role of every parameter and buffer, keyed by its ``named_parameters`` name."""
        return layer_roles(self.compiled, self.layer_names)

    def forward(self, *inputs: Tensor, masks: Sequence[Tensor | None] = ()) -> list[Tensor]:
        """Activated outputs, one per graph output (what ``Network.output`` returns), for inputs in ``inputs`` order."""
        preouts = self.forward_preouts(list(inputs), list(masks))
        return [activation_fn(h.activation)(p) for h, (p, _) in zip(self.heads, preouts, strict=True)]
