"""``GraphConfig``: a network as a directed acyclic graph of vertices (DL4J's ComputationGraph), with shape inference.

A graph has named inputs, vertices that each read one or more named inputs or vertices, and named outputs
(loss-carrying layer vertices). Layer vertices wrap any layer spec and get the same automatic preprocessors
as ``NetworkConfig``; the other vertices combine or reshape activations without parameters.

Rules this module enforces (every violation is a ``ConfigError`` naming the field):

- names are unique across graph inputs and vertices; every referenced name exists (closest name suggested);
- the graph is acyclic (a cycle is named, e.g. ``a -> b -> a``);
- outputs are layer vertices whose layer carries a loss (``Output``, ``RnnOutput``, ``LossLayer``); a
  loss layer may only be an output, and an output may not feed other vertices;
- nothing is dead: every graph input feeds some vertex and every vertex is an output or feeds another
  (an unused branch is almost always a wiring typo, and its parameters would never train);
- parameter-free vertices see ``convolutional_flat`` activations as ``feed_forward`` (they are flat arrays).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar, Literal

from deepspark.config._spec import Spec, check, check_positive, register, suggest
from deepspark.config.input_types import CONVOLUTIONAL, CONVOLUTIONAL_FLAT, FEED_FORWARD, InputType, convert
from deepspark.config.layers import Layer
from deepspark.config.network import LayerPlan, TrainingSettings, plan_layer
from deepspark.errors import ConfigError

_LOSS_LAYERS = "Output, RnnOutput or LossLayer"


def _flat(t: InputType) -> InputType:
    """Flattened images are flat arrays to every parameter-free vertex."""
    return convert(t, FEED_FORWARD) if t.form == CONVOLUTIONAL_FLAT else t


def _listing(types: tuple[InputType, ...], sources: tuple[str, ...]) -> str:
    return ", ".join(f"{t.describe()} from {s!r}" for t, s in zip(types, sources, strict=True))


def _same_steps(types: tuple[InputType, ...]) -> bool:
    known = {t.timesteps for t in types if t.timesteps is not None}
    return len(known) <= 1


def _steps(types: tuple[InputType, ...]) -> int | None:
    return next((t.timesteps for t in types if t.timesteps is not None), None)


@dataclass(frozen=True, kw_only=True, slots=True)
class GraphVertex(Spec):
    """Fields every vertex has: its ``name`` and the names of the graph inputs or vertices it reads."""

    kind = "graph vertex"
    MIN_INPUTS: ClassVar[int] = 1
    MAX_INPUTS: ClassVar[int | None] = 1

    name: str
    inputs: tuple[str, ...]

    def _validate(self) -> None:
        check(self.name != "", "name", "expected a non-empty name")
        n, lo, hi = len(self.inputs), self.MIN_INPUTS, self.MAX_INPUTS
        if hi == lo:
            check(n == lo, "inputs", f"{type(self).__name__} takes exactly {lo} input(s), got {n}: {list(self.inputs)}")
        check(n >= lo, "inputs", f"{type(self).__name__} takes at least {lo} inputs, got {n}: {list(self.inputs)}")

    def output_type(self, input_types: tuple[InputType, ...]) -> InputType:
        """The type this vertex emits for its inputs' types (in ``inputs`` order); errors name ``inputs``."""
        return _flat(input_types[0])


@register("layer_vertex")
@dataclass(frozen=True, kw_only=True, slots=True)
class LayerVertex(GraphVertex):
    """A layer in the graph; the reshape its single input needs is inserted automatically.

    The vertex ``name`` names the layer in summaries and parameter roles (the layer's own ``name`` is unused).

    Example:
        >>> LayerVertex(name="hidden", inputs=("x",), layer=Dense(n_out=16)).layer.n_out
        16
    """

    layer: Layer

    def output_type(self, input_types: tuple[InputType, ...]) -> InputType:
        return plan_layer(0, self.layer, input_types[0], "layer").output_type


@register("merge")
@dataclass(frozen=True, kw_only=True, slots=True)
class Merge(GraphVertex):
    """Concatenates inputs along the feature axis: ff and rnn sizes add, conv channels add (same h and w).

    Recurrent inputs need the same number of time steps; the merged mask is the first input's mask.
    """

    MIN_INPUTS: ClassVar[int] = 2
    MAX_INPUTS: ClassVar[int | None] = None

    def output_type(self, input_types: tuple[InputType, ...]) -> InputType:
        types = tuple(_flat(t) for t in input_types)
        first = types[0]
        same_form = all(t.form == first.form for t in types)
        if same_form and first.form == CONVOLUTIONAL:
            same_form = all((t.height, t.width) == (first.height, first.width) for t in types)
        if not same_form or not _same_steps(types):
            raise ConfigError(
                f"Merge needs inputs of one form (conv: same height and width; rnn: same time steps), got "
                f"{_listing(types, self.inputs)}; flatten convolutional branches first (GlobalPooling or Dense)",
                "inputs",
            )
        if first.form == CONVOLUTIONAL:
            return InputType.convolutional(first.height, first.width, sum(t.channels for t in types))
        size = sum(t.size for t in types)
        return InputType.recurrent(size, _steps(types)) if first.form == "recurrent" else InputType.feed_forward(size)


@register("elementwise")
@dataclass(frozen=True, kw_only=True, slots=True)
class ElementWise(GraphVertex):
    """Combines inputs of one type value by value: ``add``, ``product``, ``average``, ``max`` or ``subtract``.

    ``subtract`` takes exactly two inputs (first minus second). A residual connection is an ``add``.
    """

    MIN_INPUTS: ClassVar[int] = 2
    MAX_INPUTS: ClassVar[int | None] = None

    op: Literal["add", "product", "average", "max", "subtract"]

    def _validate(self) -> None:
        GraphVertex._validate(self)
        if self.op == "subtract":
            check(len(self.inputs) == 2, "inputs", f"subtract takes exactly 2 inputs, got {len(self.inputs)}")

    def output_type(self, input_types: tuple[InputType, ...]) -> InputType:
        types = tuple(_flat(t) for t in input_types)
        shapes = {(t.form, t.size, t.channels, t.height, t.width) for t in types}
        if len(shapes) > 1 or not _same_steps(types):
            raise ConfigError(
                f"ElementWise {self.op!r} needs inputs of the same type, got {_listing(types, self.inputs)}", "inputs"
            )
        return replace(types[0], timesteps=_steps(types))


@register("subset")
@dataclass(frozen=True, kw_only=True, slots=True)
class Subset(GraphVertex):
    """Keeps features ``start`` up to but excluding ``end`` (Python slicing; DL4J's ``to`` is inclusive).

    The range is over the feature axis: ff and rnn sizes, conv channels.
    """

    start: int
    end: int

    def _validate(self) -> None:
        GraphVertex._validate(self)
        check(self.start >= 0, "start", f"expected an int >= 0, got {self.start}")
        check(self.end > self.start, "end", f"expected an int > start ({self.start}), got {self.end}")

    def output_type(self, input_types: tuple[InputType, ...]) -> InputType:
        t = _flat(input_types[0])
        size = t.channels if t.form == CONVOLUTIONAL else t.size
        check(self.end <= size, "end", f"expected at most {size} (the features of {t.describe()}), got {self.end}")
        n = self.end - self.start
        if t.form == CONVOLUTIONAL:
            return replace(t, channels=n)
        return replace(t, size=n)


@register("scale")
@dataclass(frozen=True, kw_only=True, slots=True)
class Scale(GraphVertex):
    """Multiplies its input by a constant ``factor``."""

    factor: float


@register("stack")
@dataclass(frozen=True, kw_only=True, slots=True)
class Stack(GraphVertex):
    """Stacks inputs of one type along the batch axis (N each -> k*N), e.g. to share layers across inputs.

    Undo it with ``Unstack``; a loss on a stacked batch would need k*N labels.
    """

    MIN_INPUTS: ClassVar[int] = 2
    MAX_INPUTS: ClassVar[int | None] = None

    def output_type(self, input_types: tuple[InputType, ...]) -> InputType:
        types = tuple(_flat(t) for t in input_types)
        if len({replace(t, timesteps=None) for t in types}) > 1 or not _same_steps(types):
            raise ConfigError(f"Stack needs inputs of the same type, got {_listing(types, self.inputs)}", "inputs")
        return replace(types[0], timesteps=_steps(types))


@register("unstack")
@dataclass(frozen=True, kw_only=True, slots=True)
class Unstack(GraphVertex):
    """The ``index``-th of ``count`` equal slices of the batch axis (the inverse of ``Stack``)."""

    index: int
    count: int

    def _validate(self) -> None:
        GraphVertex._validate(self)
        check(self.count >= 1, "count", f"expected a positive int, got {self.count}")
        check(0 <= self.index < self.count, "index", f"expected 0 <= index < count ({self.count}), got {self.index}")


@register("l2_normalize")
@dataclass(frozen=True, kw_only=True, slots=True)
class L2Normalize(GraphVertex):
    """Scales each example to unit L2 norm: ``x / max(||x||, eps)``.

    The norm runs over the feature axis for ff (and per time step for rnn), over (c, h, w) for conv.
    """

    eps: float = 1e-8

    def _validate(self) -> None:
        GraphVertex._validate(self)
        check_positive(self, "eps")


@dataclass(frozen=True, slots=True)
class VertexPlan:
    """Shape inference for one vertex: the types it reads and emits, and for layers their ``LayerPlan``.

    ``index`` is the vertex's position in ``GraphConfig.vertices``; ``layer.index`` (layer vertices only)
    is its position in ``GraphConfig.layers``, the index ``ParamRole.layer`` and summaries use.
    """

    index: int
    name: str
    vertex: GraphVertex
    input_types: tuple[InputType, ...]
    output_type: InputType
    layer: LayerPlan | None = None

    @property
    def preprocessor(self) -> str:
        """The reshape inserted before a layer vertex's layer ("" when none, always "" for other vertices)."""
        return "" if self.layer is None else self.layer.preprocessor


@register("graph")
@dataclass(frozen=True, kw_only=True, slots=True)
class GraphConfig(TrainingSettings):
    """A DAG network: named inputs with their types, vertices, and loss-carrying outputs.

    Training fields (updater, seed, l1, l2, ...) mean the same as in ``NetworkConfig``. Vertices may be
    listed in any order; they run in ``topological_order()``. Per-layer settings, ``ParamRole.layer`` and
    summaries index ``layers`` (the layer vertices in declaration order).

    Example:
        >>> conf = GraphConfig(
        ...     inputs=("a", "b"),
        ...     input_types=(InputType.feed_forward(4), InputType.feed_forward(3)),
        ...     vertices=(LayerVertex(name="da", inputs=("a",), layer=Dense(n_out=8)),
        ...               LayerVertex(name="db", inputs=("b",), layer=Dense(n_out=8)),
        ...               Merge(name="m", inputs=("da", "db")),
        ...               LayerVertex(name="out", inputs=("m",), layer=Output(n_out=2))),
        ...     outputs=("out",))
        >>> conf.plan()[2].output_type.describe()
        'ff(16)'
    """

    kind = "graph config"

    inputs: tuple[str, ...]
    input_types: tuple[InputType, ...]
    vertices: tuple[GraphVertex, ...]
    outputs: tuple[str, ...]

    def _validate(self) -> None:
        TrainingSettings._validate(self)
        self._check_names()
        self._check_outputs()
        self.topological_order()  # names the cycle, if any
        self._check_unused()
        self.plan()  # shape inference errors surface at construction

    def _check_names(self) -> None:
        check(len(self.inputs) > 0, "inputs", "expected at least one graph input name")
        check(len(self.vertices) > 0, "vertices", "expected at least one vertex (the outputs are vertices)")
        check(
            len(self.input_types) == len(self.inputs),
            "input_types",
            f"expected one input type per graph input ({len(self.inputs)}), got {len(self.input_types)}",
        )
        owner: dict[str, str] = {}
        for i, name in enumerate(self.inputs):
            check(name != "", f"inputs[{i}]", "expected a non-empty name")
            check(name not in owner, f"inputs[{i}]", f"duplicate name {name!r}, already used by {owner.get(name)}")
            owner[name] = f"inputs[{i}]"
        for i, v in enumerate(self.vertices):
            check(
                v.name not in owner,
                f"vertices[{i}].name",
                f"duplicate name {v.name!r}, already used by {owner.get(v.name)}",
            )
            owner[v.name] = f"vertices[{i}]"
        for i, v in enumerate(self.vertices):
            for j, source in enumerate(v.inputs):
                if source not in owner:  # (the suggestion is costly: only build it for the error)
                    raise ConfigError(
                        f"unknown vertex or input {source!r}; {suggest(source, owner)}", f"vertices[{i}].inputs[{j}]"
                    )

    def _check_outputs(self) -> None:
        check(len(self.outputs) > 0, "outputs", f"expected at least one output (a LayerVertex with {_LOSS_LAYERS})")
        by_name = {v.name: v for v in self.vertices}
        for i, name in enumerate(self.outputs):
            if name not in by_name:
                raise ConfigError(f"unknown vertex {name!r}; {suggest(name, by_name)}", f"outputs[{i}]")
            check(name not in self.outputs[:i], f"outputs[{i}]", f"{name!r} is listed twice")
            v = by_name[name]
            got = type(v.layer).__name__ if isinstance(v, LayerVertex) else type(v).__name__
            check(
                isinstance(v, LayerVertex) and v.layer.HAS_LOSS,
                f"outputs[{i}]",
                f"an output must be a LayerVertex whose layer carries a loss ({_LOSS_LAYERS}), got {got} {name!r}",
            )
        for i, v in enumerate(self.vertices):
            if isinstance(v, LayerVertex) and v.layer.HAS_LOSS and v.name not in self.outputs:
                raise ConfigError(
                    f"{type(v.layer).__name__} carries a loss, so {v.name!r} must be listed in outputs; "
                    "use Dense for a hidden layer",
                    f"vertices[{i}].layer",
                )
            for j, source in enumerate(v.inputs):
                check(
                    source not in self.outputs,
                    f"vertices[{i}].inputs[{j}]",
                    f"{source!r} is an output (loss) vertex and cannot feed other vertices; read its input instead",
                )

    def _check_unused(self) -> None:
        read = {s for v in self.vertices for s in v.inputs}
        for i, name in enumerate(self.inputs):
            check(name in read, f"inputs[{i}]", f"graph input {name!r} feeds no vertex; connect it or remove it")
        for i, v in enumerate(self.vertices):
            check(
                v.name in read or v.name in self.outputs,
                f"vertices[{i}]",
                f"vertex {v.name!r} feeds nothing and is not an output; connect it, list it in outputs, or remove it",
            )

    def topological_order(self) -> tuple[str, ...]:
        """Vertex names in an order where every vertex follows its inputs (ties keep declaration order)."""
        index = {v.name: i for i, v in enumerate(self.vertices)}
        pending = {v.name: {s for s in v.inputs if s in index} for v in self.vertices}
        order: list[str] = []
        while True:
            ready = [n for n, deps in pending.items() if not deps]
            if not ready:
                break
            for n in ready:
                del pending[n]
                order.append(n)
            for deps in pending.values():
                deps.difference_update(ready)
        if pending:
            raise self._cycle_error(pending, index)
        return tuple(order)

    def _cycle_error(self, pending: dict[str, set[str]], index: dict[str, int]) -> ConfigError:
        start = min(pending, key=index.__getitem__)
        walk = [start]
        while True:  # follow inputs backwards until a name repeats: that loop is a cycle
            nxt = min(pending[walk[-1]], key=index.__getitem__)
            if nxt in walk:
                loop = [*walk[walk.index(nxt) :], nxt]
                break
            walk.append(nxt)
        flow = " -> ".join(reversed(loop))
        first = min(loop, key=index.__getitem__)
        return ConfigError(
            f"the graph has a cycle: {flow}; remove one of these connections", f"vertices[{index[first]}].inputs"
        )

    def plan(self) -> list[VertexPlan]:
        """Shape inference over the graph, one ``VertexPlan`` per vertex in topological order."""
        by_name = {v.name: (i, v) for i, v in enumerate(self.vertices)}
        layer_index = {v.name: k for k, v in enumerate(v for v in self.vertices if isinstance(v, LayerVertex))}
        types: dict[str, InputType] = dict(zip(self.inputs, self.input_types, strict=True))
        plans: list[VertexPlan] = []
        for name in self.topological_order():
            i, v = by_name[name]
            ins = tuple(types[s] for s in v.inputs)
            layer: LayerPlan | None = None
            if isinstance(v, LayerVertex):
                layer = replace(plan_layer(layer_index[name], v.layer, ins[0], f"vertices[{i}].layer"), name=name)
                out = layer.output_type
            else:
                try:
                    out = v.output_type(ins)
                except ConfigError as e:
                    raise e.with_prefix(f"vertices[{i}]") from None
            types[name] = out
            plans.append(VertexPlan(i, name, v, ins, out, layer))
        return plans

    @property
    def layers(self) -> tuple[Layer, ...]:
        """The layer specs of the layer vertices, in declaration order (``ParamRole.layer`` indexes this)."""
        return tuple(v.layer for v in self.vertices if isinstance(v, LayerVertex))

    def layer_plans(self) -> list[LayerPlan]:
        """The ``LayerPlan`` of every layer vertex, ordered as ``layers`` (each named after its vertex)."""
        plans = [p.layer for p in self.plan() if p.layer is not None]
        return sorted(plans, key=lambda p: p.index)

    def output_types(self) -> tuple[InputType, ...]:
        """The type each output emits, in ``outputs`` order."""
        by_name = {p.name: p.output_type for p in self.plan()}
        return tuple(by_name[n] for n in self.outputs)
