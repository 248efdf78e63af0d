"""GraphConfig: JSON round trip over every vertex kind, validation messages with field paths, shape inference."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from deepspark.config import (
    LSTM,
    Conv2D,
    Dense,
    Dot,
    ElementWise,
    GlobalPooling,
    GraphConfig,
    GraphVertex,
    InputType,
    L2Normalize,
    LayerVertex,
    Merge,
    NetworkConfig,
    Output,
    Scale,
    Sgd,
    Spec,
    Stack,
    Subset,
    Unstack,
    registered,
)
from deepspark.errors import ConfigError

FF4 = InputType.feed_forward(4)


def _lv(name: str, source: str, layer: Any) -> LayerVertex:
    return LayerVertex(name=name, inputs=(source,), layer=layer)


def _every_kind() -> GraphConfig:
    """A siamese-style graph that uses every vertex kind once or more."""
    return GraphConfig(
        inputs=("a", "b"),
        input_types=(FF4, FF4),
        vertices=(
            _lv("da", "a", Dense(n_out=8, activation="relu")),
            _lv("db", "b", Dense(n_out=8, activation="tanh")),
            Merge(name="m", inputs=("da", "db")),
            Subset(name="s", inputs=("m",), start=0, end=8),
            ElementWise(name="res", inputs=("s", "da"), op="add"),
            Scale(name="half", inputs=("res",), factor=0.5),
            Stack(name="st", inputs=("half", "db")),
            _lv("shared", "st", Dense(n_out=6, activation="relu")),
            Unstack(name="u0", inputs=("shared",), index=0, count=2),
            Unstack(name="u1", inputs=("shared",), index=1, count=2),
            ElementWise(name="diff", inputs=("u0", "u1"), op="subtract"),
            L2Normalize(name="norm", inputs=("diff",)),
            _lv("out", "norm", Output(n_out=3)),
            Dot(name="sim", inputs=("da", "db"), normalize=True),
            _lv("aux", "sim", Output(n_out=1, activation="identity", loss="mse")),
        ),
        outputs=("out", "aux"),
        updater=Sgd(learning_rate=0.05),
        seed=7,
        l2=1e-4,
    )


def _simple(**overrides: Any) -> dict[str, Any]:
    """The dict form of a small valid graph, for tests that break one thing."""
    base = GraphConfig(
        inputs=("x",),
        input_types=(FF4,),
        vertices=(_lv("dense1", "x", Dense(n_out=5)), _lv("out", "dense1", Output(n_out=2))),
        outputs=("out",),
    ).to_dict()
    base.update(overrides)
    return base


def _vertex(v: GraphVertex) -> dict[str, Any]:
    return v.to_dict()


def test_graph_config_every_vertex_kind_round_trips_exactly() -> None:
    conf = _every_kind()
    text = conf.to_json()
    again = GraphConfig.from_json(text)
    assert again == conf
    assert again.to_json() == text
    used = {v.tag for v in conf.vertices}
    assert used == set(registered(GraphVertex)), "the round-trip graph must use every registered vertex kind"


def test_graph_config_generic_spec_reader_returns_graph() -> None:
    conf = _every_kind()
    assert json.loads(conf.to_json())["type"] == "graph"
    assert Spec.from_json(conf.to_json()) == conf  # what the model archive reader uses


def test_graph_config_training_defaults_match_network_config() -> None:
    graph_fields = {f.name: f for f in dataclasses.fields(GraphConfig)}
    for f in dataclasses.fields(NetworkConfig):
        if f.name in ("layers", "input_type"):
            continue
        g = graph_fields[f.name]
        assert g.default == f.default, f.name
        if f.default_factory is not dataclasses.MISSING:
            assert g.default_factory() == f.default_factory(), f.name  # type: ignore[misc]


@pytest.mark.parametrize(
    ("data", "path", "phrase"),
    [
        pytest.param(
            _simple(
                vertices=[_vertex(_lv("dense1", "x", Dense(n_out=5))), _vertex(_lv("out", "dens1", Output(n_out=2)))]
            ),
            "vertices[1].inputs[0]",
            "unknown vertex or input 'dens1'; did you mean 'dense1'?",
            id="unknown-input",
        ),
        pytest.param(
            _simple(vertices=[_vertex(_lv("x", "x", Dense(n_out=5))), _vertex(_lv("out", "x", Output(n_out=2)))]),
            "vertices[0].name",
            "duplicate name 'x', already used by inputs[0]",
            id="vertex-named-like-input",
        ),
        pytest.param(
            _simple(
                vertices=[
                    _vertex(_lv("dense1", "x", Dense(n_out=5))),
                    _vertex(_lv("dense1", "dense1", Dense(n_out=5))),
                    _vertex(_lv("out", "dense1", Output(n_out=2))),
                ]
            ),
            "vertices[1].name",
            "duplicate name 'dense1', already used by vertices[0]",
            id="duplicate-vertex",
        ),
        pytest.param(
            _simple(inputs=["x", "x"], input_types=[FF4.to_dict(), FF4.to_dict()]),
            "inputs[1]",
            "duplicate name 'x'",
            id="duplicate-input",
        ),
        pytest.param(
            _simple(
                vertices=[
                    _vertex(ElementWise(name="p", inputs=("x", "r"), op="add")),
                    _vertex(_lv("q", "p", Dense(n_out=4))),
                    _vertex(_lv("r", "q", Dense(n_out=4))),
                    _vertex(_lv("out", "q", Output(n_out=2))),
                ]
            ),
            "vertices[0].inputs",
            "the graph has a cycle: p -> q -> r -> p",
            id="cycle",
        ),
        pytest.param(
            _simple(outputs=["dense1"]),
            "outputs[0]",
            "an output must be a LayerVertex whose layer carries a loss (Output, RnnOutput or LossLayer), got Dense",
            id="output-without-loss",
        ),
        pytest.param(
            _simple(outputs=["outt"]),
            "outputs[0]",
            "unknown vertex 'outt'; did you mean 'out'?",
            id="unknown-output",
        ),
        pytest.param(
            _simple(
                vertices=[
                    _vertex(_lv("dense1", "x", Output(n_out=5))),
                    _vertex(_lv("out", "x", Output(n_out=2))),
                ]
            ),
            "vertices[0].layer",
            "Output carries a loss, so 'dense1' must be listed in outputs",
            id="loss-layer-not-output",
        ),
        pytest.param(
            _simple(
                vertices=[
                    _vertex(_lv("dense1", "x", Output(n_out=5))),
                    _vertex(_lv("out", "dense1", Output(n_out=2))),
                ],
                outputs=["dense1", "out"],
            ),
            "vertices[1].inputs[0]",
            "'dense1' is an output (loss) vertex and cannot feed other vertices",
            id="output-feeds-vertex",
        ),
        pytest.param(
            _simple(inputs=["x", "y"], input_types=[FF4.to_dict(), FF4.to_dict()]),
            "inputs[1]",
            "graph input 'y' feeds no vertex",
            id="unused-input",
        ),
        pytest.param(
            _simple(
                vertices=[
                    _vertex(_lv("dense1", "x", Dense(n_out=5))),
                    _vertex(_lv("dead", "x", Dense(n_out=5))),
                    _vertex(_lv("out", "dense1", Output(n_out=2))),
                ]
            ),
            "vertices[1]",
            "vertex 'dead' feeds nothing and is not an output",
            id="dead-vertex",
        ),
        pytest.param(
            _simple(
                inputs=["x", "img"],
                input_types=[FF4.to_dict(), InputType.convolutional(4, 4, 2).to_dict()],
                vertices=[
                    _vertex(Merge(name="m", inputs=("x", "img"))),
                    _vertex(_lv("out", "m", Output(n_out=2))),
                ],
            ),
            "vertices[0].inputs",
            "Merge needs inputs of one form (conv: same height and width; rnn: same time steps), got ff(4) from 'x', "
            "conv(2x4x4) from 'img'",
            id="merge-ff-with-conv",
        ),
        pytest.param(
            _simple(
                vertices=[
                    _vertex(_lv("dense1", "x", Dense(n_out=5))),
                    _vertex(ElementWise(name="sum", inputs=("x", "dense1"), op="add")),
                    _vertex(_lv("out", "sum", Output(n_out=2))),
                ]
            ),
            "vertices[1].inputs",
            "ElementWise 'add' needs inputs of the same type, got ff(4) from 'x', ff(5) from 'dense1'",
            id="elementwise-size-mismatch",
        ),
        pytest.param(
            _simple(
                vertices=[
                    _vertex(Subset(name="s", inputs=("x",), start=1, end=6)),
                    _vertex(_lv("out", "s", Output(n_out=2))),
                ]
            ),
            "vertices[0].end",
            "expected at most 4 (the features of ff(4)), got 6",
            id="subset-out-of-range",
        ),
        pytest.param(
            _simple(input_types=[]),
            "input_types",
            "expected one input type per graph input (1), got 0",
            id="missing-input-type",
        ),
        pytest.param(_simple(outputs=[]), "outputs", "expected at least one output", id="no-outputs"),
        pytest.param(_simple(l2=-1.0), "l2", "expected a number >= 0, got -1.0", id="training-field"),
        pytest.param(
            _simple(vertices=[{"type": "merg", "name": "m", "inputs": ["x"]}]),
            "vertices[0].type",
            "'merg'; did you mean 'merge'?",
            id="unknown-vertex-tag",
        ),
        pytest.param(
            _simple(
                vertices=[
                    {"type": "elementwise", "name": "e", "inputs": ["x", "x", "x"], "op": "subtract"},
                    _vertex(_lv("out", "e", Output(n_out=2))),
                ]
            ),
            "vertices[0].inputs",
            "subtract takes exactly 2 inputs, got 3",
            id="subtract-three-inputs",
        ),
        pytest.param(
            _simple(
                vertices=[
                    {"type": "merge", "name": "m", "inputs": ["x"]},
                    _vertex(_lv("out", "m", Output(n_out=2))),
                ]
            ),
            "vertices[0].inputs",
            "Merge takes at least 2 inputs, got 1",
            id="merge-one-input",
        ),
        pytest.param(
            _simple(
                vertices=[
                    {"type": "layer_vertex", "name": "d", "inputs": ["x", "x"], "layer": Dense(n_out=3).to_dict()},
                    _vertex(_lv("out", "d", Output(n_out=2))),
                ]
            ),
            "vertices[0].inputs",
            "LayerVertex takes exactly 1 input(s), got 2",
            id="layer-two-inputs",
        ),
        pytest.param(
            _simple(
                vertices=[
                    _vertex(_lv("dense1", "x", Dense(n_out=5))),
                    _vertex(_lv("conv", "dense1", Conv2D(n_out=2))),
                    _vertex(_lv("out", "conv", Output(n_out=2))),
                ]
            ),
            "vertices[1].layer",
            "Conv2D takes convolutional input but receives ff(5)",
            id="layer-type-mismatch",
        ),
    ],
)
def test_graph_config_invalid_graph_raises_config_error_naming_path(
    data: dict[str, Any], path: str, phrase: str
) -> None:
    with pytest.raises(ConfigError) as info:
        GraphConfig.from_dict(data)
    assert info.value.path == path
    assert phrase in info.value.message


def test_graph_config_merge_of_dense_branches_adds_sizes() -> None:
    conf = GraphConfig(
        inputs=("a", "b"),
        input_types=(FF4, InputType.feed_forward(3)),
        vertices=(
            _lv("da", "a", Dense(n_out=8)),
            _lv("db", "b", Dense(n_out=5)),
            Merge(name="m", inputs=("da", "db")),
            _lv("out", "m", Output(n_out=2)),
        ),
        outputs=("out",),
    )
    plans = {p.name: p for p in conf.plan()}
    assert plans["m"].input_types == (InputType.feed_forward(8), InputType.feed_forward(5))
    assert plans["m"].output_type == InputType.feed_forward(13)
    assert plans["out"].layer is not None and plans["out"].layer.input_type == InputType.feed_forward(13)
    assert conf.output_types() == (InputType.feed_forward(2),)


def test_graph_config_conv_branches_merge_by_channels_then_flatten() -> None:
    conf = GraphConfig(
        inputs=("img",),
        input_types=(InputType.convolutional_flat(8, 8, 1),),
        vertices=(
            _lv("c3", "img", Conv2D(n_out=4, kernel=(3, 3), padding=(1, 1))),
            _lv("c5", "img", Conv2D(n_out=6, kernel=(5, 5), padding=(2, 2))),
            Merge(name="m", inputs=("c3", "c5")),
            _lv("out", "m", Output(n_out=3)),
        ),
        outputs=("out",),
    )
    plans = {p.name: p for p in conf.plan()}
    assert plans["c3"].preprocessor == "flat_to_cnn"
    assert plans["m"].output_type == InputType.convolutional(8, 8, 10)
    assert plans["m"].preprocessor == ""
    assert plans["out"].preprocessor == "cnn_to_ff"
    assert plans["out"].layer is not None and plans["out"].layer.input_type == InputType.feed_forward(640)


def test_graph_config_conv_merge_with_different_sizes_names_both_types() -> None:
    with pytest.raises(ConfigError, match=r"conv\(4x8x8\) from 'c3', conv\(6x4x4\) from 'c5'") as info:
        GraphConfig(
            inputs=("img",),
            input_types=(InputType.convolutional(8, 8, 1),),
            vertices=(
                _lv("c3", "img", Conv2D(n_out=4, kernel=(3, 3), padding=(1, 1))),
                _lv("c5", "img", Conv2D(n_out=6, kernel=(5, 5))),
                Merge(name="m", inputs=("c3", "c5")),
                _lv("out", "m", Output(n_out=3)),
            ),
            outputs=("out",),
        )
    assert info.value.path == "vertices[2].inputs"


def test_graph_config_residual_add_keeps_type_and_orders_topologically() -> None:
    # Declared out of order on purpose: the residual add is listed before the branch it reads.
    conf = GraphConfig(
        inputs=("x",),
        input_types=(FF4,),
        vertices=(
            _lv("out", "res", Output(n_out=2)),
            ElementWise(name="res", inputs=("x", "h2"), op="add"),
            _lv("h2", "h1", Dense(n_out=4)),
            _lv("h1", "x", Dense(n_out=7, activation="relu")),
        ),
        outputs=("out",),
    )
    assert conf.topological_order() == ("h1", "h2", "res", "out")
    plans = {p.name: p for p in conf.plan()}
    assert plans["res"].output_type == FF4
    # layers follow declaration order; ParamRole.layer and summaries index this tuple
    assert [type(layer).__name__ for layer in conf.layers] == ["Output", "Dense", "Dense"]
    assert [p.name for p in conf.layer_plans()] == ["out", "h2", "h1"]
    assert [p.index for p in conf.layer_plans()] == [0, 1, 2]


def test_graph_config_recurrent_merge_adds_sizes_and_keeps_timesteps() -> None:
    conf = GraphConfig(
        inputs=("s", "t"),
        input_types=(InputType.recurrent(3, 6), InputType.recurrent(2)),
        vertices=(
            _lv("l1", "s", LSTM(n_out=5)),
            Merge(name="m", inputs=("l1", "t")),
            _lv("pool", "m", GlobalPooling()),
            _lv("out", "pool", Output(n_out=2)),
        ),
        outputs=("out",),
    )
    plans = {p.name: p for p in conf.plan()}
    assert plans["m"].output_type == InputType.recurrent(7, 6)


def test_graph_config_subset_scale_stack_unstack_l2_shapes() -> None:
    conf = _every_kind()
    plans = {p.name: p for p in conf.plan()}
    assert plans["m"].output_type == InputType.feed_forward(16)
    assert plans["s"].output_type == InputType.feed_forward(8)
    assert plans["st"].output_type == InputType.feed_forward(8)
    assert plans["u1"].output_type == InputType.feed_forward(6)
    assert plans["norm"].output_type == InputType.feed_forward(6)
    assert conf.output_types() == (InputType.feed_forward(3), InputType.feed_forward(1))


@pytest.mark.parametrize(
    ("make", "path", "phrase"),
    [
        (lambda: Subset(name="s", inputs=("x",), start=3, end=3), "end", "expected an int > start (3), got 3"),
        (lambda: Unstack(name="u", inputs=("x",), index=2, count=2), "index", "expected 0 <= index < count (2)"),
        (lambda: L2Normalize(name="n", inputs=("x",), eps=0.0), "eps", "expected a positive number"),
        (lambda: Merge(name="", inputs=("x", "y")), "name", "expected a non-empty name"),
        (lambda: ElementWise(name="e", inputs=("x", "y"), op="min"), "op", "expected one of"),
    ],
    ids=["subset-empty", "unstack-index", "l2-eps", "empty-name", "elementwise-op"],
)
def test_graph_vertex_invalid_field_raises_config_error(make: Any, path: str, phrase: str) -> None:
    with pytest.raises(ConfigError) as info:
        make()
    assert info.value.path == path
    assert phrase in info.value.message
