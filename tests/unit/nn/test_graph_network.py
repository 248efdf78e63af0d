"""Graph networks: compiled GraphModel behind Network — training, flat buffers, equivalence with stacks, I/O forms."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch

from deepspark.config import (
    LSTM,
    Conv2D,
    Dense,
    ElementWise,
    GlobalPooling,
    GraphConfig,
    InputType,
    L2Normalize,
    Layer,
    LayerVertex,
    Merge,
    NetworkConfig,
    Output,
    RnnOutput,
    Scale,
    Sgd,
    Stack,
    Subsampling2D,
    Subset,
    Unstack,
)
from deepspark.errors import DataError
from deepspark.nn import Network
from deepspark.nn.graph_model import GraphModel


def _lv(name: str, source: str, layer: Layer) -> LayerVertex:
    return LayerVertex(name=name, inputs=(source,), layer=layer)


def _two_in_two_out(seed: int, **kwargs: Any) -> GraphConfig:
    """Inputs a (ff 4) and b (ff 3); a classifier head over the merged branches and a regression head off b."""
    return GraphConfig(
        inputs=("a", "b"),
        input_types=(InputType.feed_forward(4), InputType.feed_forward(3)),
        vertices=(
            _lv("da", "a", Dense(n_out=8, activation="tanh")),
            _lv("db", "b", Dense(n_out=6, activation="tanh")),
            Merge(name="m", inputs=("da", "db")),
            _lv("cls", "m", Output(n_out=3)),
            _lv("reg", "db", Output(n_out=2, activation="identity", loss="mse")),
        ),
        outputs=("cls", "reg"),
        seed=seed,
        updater=Sgd(learning_rate=0.1),
        **kwargs,
    )


def _two_data(seed: int, n: int = 64) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed + 2000)
    a = rng.standard_normal((n, 4)).astype(np.float32)
    b = rng.standard_normal((n, 3)).astype(np.float32)
    cls = (a[:, 0] + b[:, 0] > 0).astype(np.int64) + (a[:, 1] > 0.7).astype(np.int64)
    reg = np.stack([b[:, 1] - b[:, 2], 0.5 * b[:, 0]], axis=1).astype(np.float32)
    return [a, b], [cls, reg]


def _every_kind(seed: int) -> GraphConfig:
    return GraphConfig(
        inputs=("a", "b"),
        input_types=(InputType.feed_forward(4), InputType.feed_forward(4)),
        vertices=(
            _lv("da", "a", Dense(n_out=8, activation="relu")),
            _lv("db", "b", Dense(n_out=8, activation="tanh")),
            Merge(name="m", inputs=("da", "db")),
            Subset(name="s", inputs=("m",), start=4, end=12),
            ElementWise(name="res", inputs=("s", "da"), op="add"),
            ElementWise(name="mx", inputs=("res", "db"), op="max"),
            ElementWise(name="pr", inputs=("mx", "db"), op="product"),
            ElementWise(name="av", inputs=("pr", "da"), op="average"),
            Scale(name="half", inputs=("av",), factor=0.5),
            Stack(name="st", inputs=("half", "db")),
            _lv("shared", "st", Dense(n_out=6, activation="relu")),
            Unstack(name="u0", inputs=("shared",), index=0, count=2),
            Unstack(name="u1", inputs=("shared",), index=1, count=2),
            ElementWise(name="diff", inputs=("u0", "u1"), op="subtract"),
            L2Normalize(name="norm", inputs=("diff",)),
            _lv("out", "norm", Output(n_out=3)),
        ),
        outputs=("out",),
        seed=seed,
    )


def test_graph_network_two_inputs_two_outputs_loss_decreases(seed: int) -> None:
    x, y = _two_data(seed)
    net = Network(_two_in_two_out(seed))
    before = net.score(x, y)
    net.fit(x, y, epochs=15, batch_size=16)
    after = net.score(x, y)
    assert np.isfinite(after)
    assert after < 0.8 * before, (before, after)


def test_graph_network_loss_is_sum_of_output_losses(seed: int) -> None:
    x, y = _two_data(seed, n=16)
    net = Network(_two_in_two_out(seed))
    probs, pred = net.output(x)
    p = torch.from_numpy(probs)
    cls_loss = float(-torch.log(p[torch.arange(16), torch.from_numpy(y[0])]).mean())
    reg_loss = float(((pred - y[1]) ** 2).mean())
    assert net.score(x, y) == pytest.approx(cls_loss + reg_loss, rel=1e-5)


def test_graph_network_params_and_grads_are_views_into_flat_buffers(seed: int) -> None:
    x, y = _two_data(seed, n=16)
    net = Network(_two_in_two_out(seed))
    net.fit(x, y, epochs=1, batch_size=8)
    params = list(net.model.parameters())
    assert params
    for p in params:
        assert net.flat.contains(p.data)
        assert p.grad is not None and net.flat.contains(p.grad)
    assert sum(p.numel() for p in params) == net.flat.n_trainable == net.num_params()
    net.flat.params.zero_()  # writing the buffer is writing the module
    assert all(float(p.detach().abs().sum()) == 0.0 for p in params)


def test_graph_network_output_list_per_output_and_forward_agrees(seed: int) -> None:
    x, _ = _two_data(seed, n=10)
    net = Network(_two_in_two_out(seed))
    out = net.output(x)
    assert isinstance(out, list) and [o.shape for o in out] == [(10, 3), (10, 2)]
    np.testing.assert_allclose(out[0].sum(axis=1), 1.0, rtol=1e-5)
    model = net.model
    assert isinstance(model, GraphModel)
    model.eval()
    with torch.no_grad():
        direct = model(*(torch.from_numpy(a) for a in x))
    for o, d in zip(out, direct, strict=True):
        np.testing.assert_allclose(o, d.numpy(), rtol=1e-6)


def test_graph_network_param_roles_name_vertices_and_weights(seed: int) -> None:
    net = Network(_two_in_two_out(seed))
    roles = net.roles
    assert roles["layers.0.weight"].layer_name == "da" and roles["layers.0.weight"].is_weight
    assert not roles["layers.0.bias"].is_weight
    assert {r.layer_name for r in roles.values()} == {"da", "db", "cls", "reg"}
    assert [h.n_out for h in net.heads] == [3, 2]


@dataclass(frozen=True)
class Chain:
    """A sequential stack and its input type, to be rebuilt as a chain-shaped graph."""

    input_type: InputType
    layers: tuple[Layer, ...]
    shape: tuple[int, ...]  # per-example feature shape
    n_classes: int


STACKS = {
    "dense": Chain(
        InputType.feed_forward(5),
        (Dense(n_out=7, activation="relu"), Dense(n_out=4, activation="tanh"), Output(n_out=3)),
        (5,),
        3,
    ),
    "conv": Chain(
        InputType.convolutional_flat(6, 6, 1),
        (
            Conv2D(n_out=3, kernel=(3, 3), activation="relu"),
            Subsampling2D(kernel=(2, 2), stride=(2, 2)),
            Output(n_out=2),
        ),
        (36,),
        2,
    ),
    "lstm": Chain(InputType.recurrent(3, 4), (LSTM(n_out=5), RnnOutput(n_out=2)), (4, 3), 2),
}


@pytest.mark.parametrize("case", sorted(STACKS))
def test_graph_network_chain_equals_sequential_with_copied_params(case: str, seed: int) -> None:
    spec = STACKS[case]
    seq = NetworkConfig(input_type=spec.input_type, layers=spec.layers, seed=seed)
    names = [f"v{i}" for i in range(len(spec.layers))]
    graph = GraphConfig(
        inputs=("x",),
        input_types=(spec.input_type,),
        vertices=tuple(
            _lv(name, "x" if i == 0 else names[i - 1], layer)
            for i, (name, layer) in enumerate(zip(names, spec.layers, strict=True))
        ),
        outputs=(names[-1],),
        seed=seed + 1,  # different init: equality must come from the copied params
    )
    seq_net, graph_net = Network(seq), Network(graph)
    assert graph_net.num_params() == seq_net.num_params()
    assert not np.array_equal(graph_net.params(), seq_net.params())
    graph_net.set_params(seq_net.params())
    x = np.random.default_rng(seed).standard_normal((6, *spec.shape)).astype(np.float32)
    np.testing.assert_allclose(graph_net.output(x), seq_net.output(x), rtol=1e-6, atol=1e-7)
    # same data, same updater, same params: one training step stays in lockstep
    y = np.random.default_rng(seed + 1).integers(0, spec.n_classes, (6, 4) if case == "lstm" else 6)
    seq_net.fit(x, y, batch_size=6, shuffle=False)
    graph_net.fit(x, y, batch_size=6, shuffle=False)
    np.testing.assert_allclose(graph_net.params(), seq_net.params(), rtol=1e-5, atol=1e-6)


def test_graph_network_every_vertex_kind_fits_and_stays_finite(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = [rng.standard_normal((12, 4)).astype(np.float32) for _ in range(2)]
    y = rng.integers(0, 3, 12)
    net = Network(_every_kind(seed))
    start = net.params()
    net.fit(x, y, epochs=2, batch_size=6)
    assert np.isfinite(net.params()).all()
    assert not np.array_equal(start, net.params())
    out = net.output(x)
    assert isinstance(out, np.ndarray) and out.shape == (12, 3)


def test_graph_network_vertex_ops_compute_expected_values(seed: int) -> None:
    """Check the parameter-free vertices numerically against numpy on a graph with identity-like layers."""
    conf = GraphConfig(
        inputs=("a", "b"),
        input_types=(InputType.feed_forward(3), InputType.feed_forward(3)),
        vertices=(
            Merge(name="m", inputs=("a", "b")),
            Subset(name="s", inputs=("m",), start=2, end=5),
            ElementWise(name="d", inputs=("s", "a"), op="subtract"),
            Scale(name="sc", inputs=("d",), factor=3.0),
            Stack(name="st", inputs=("sc", "b")),
            Unstack(name="u", inputs=("st",), index=1, count=2),
            ElementWise(name="mx", inputs=("u", "sc"), op="max"),
            L2Normalize(name="n", inputs=("mx",)),
            _lv("out", "n", Output(n_out=3, activation="identity", loss="mse")),
        ),
        outputs=("out",),
    )
    net = Network(conf)
    weights = np.zeros(net.num_params(), np.float32)
    weights[:9] = np.eye(3, dtype=np.float32).ravel()  # identity projection, zero bias
    net.set_params(weights)
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((5, 3)).astype(np.float32), rng.standard_normal((5, 3)).astype(np.float32)
    sc = 3.0 * (np.concatenate([a, b], 1)[:, 2:5] - a)
    mx = np.maximum(b, sc)
    expected = mx / np.linalg.norm(mx, axis=1, keepdims=True)
    np.testing.assert_allclose(net.output([a, b]), expected, rtol=1e-5, atol=1e-6)


def test_graph_network_conv_residual_and_channel_merge_trains(seed: int) -> None:
    conf = GraphConfig(
        inputs=("img",),
        input_types=(InputType.convolutional_flat(6, 6, 1),),
        vertices=(
            _lv("c1", "img", Conv2D(n_out=4, kernel=(3, 3), padding=(1, 1), activation="relu")),
            _lv("c2", "c1", Conv2D(n_out=4, kernel=(3, 3), padding=(1, 1))),
            ElementWise(name="res", inputs=("c1", "c2"), op="add"),
            Merge(name="m", inputs=("res", "c1")),
            _lv("pool", "m", GlobalPooling()),
            _lv("out", "pool", Output(n_out=2)),
        ),
        outputs=("out",),
        seed=seed,
    )
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((8, 36)).astype(np.float32)
    y = rng.integers(0, 2, 8)
    net = Network(conf)
    net.fit(x, y, epochs=2, batch_size=4)
    assert np.isfinite(net.score(x, y))
    assert "res" in net.summary() and "Merge" in net.summary()


def test_graph_network_recurrent_merge_uses_first_mask(seed: int) -> None:
    conf = GraphConfig(
        inputs=("s", "t"),
        input_types=(InputType.recurrent(3), InputType.recurrent(2)),
        vertices=(
            _lv("l1", "s", LSTM(n_out=4)),
            Merge(name="m", inputs=("l1", "t")),
            _lv("out", "m", RnnOutput(n_out=2)),
        ),
        outputs=("out",),
        seed=seed,
    )
    rng = np.random.default_rng(seed)
    s = rng.standard_normal((4, 5, 3)).astype(np.float32)
    t = rng.standard_normal((4, 5, 2)).astype(np.float32)
    y = rng.integers(0, 2, (4, 5))
    mask = np.ones((4, 5), np.float32)
    mask[:, 3:] = 0
    y_changed = y.copy()
    y_changed[:, 3:] = 1 - y_changed[:, 3:]
    net = Network(conf)
    net.fit([s, t], y, epochs=1, batch_size=4, features_mask=[mask, None])
    a = net.params()
    net2 = Network(conf)
    net2.fit([s, t], y_changed, epochs=1, batch_size=4, features_mask=[mask, None])
    np.testing.assert_array_equal(a, net2.params())  # labels at masked steps never reach the loss


def test_graph_network_per_layer_l2_applies_to_that_vertex_only(seed: int) -> None:
    conf = _two_in_two_out(seed)
    vertices = list(conf.vertices)
    vertices[1] = _lv("db", "b", Dense(n_out=6, activation="tanh", l2=0.5))
    net = Network(GraphConfig(**{**_fields(conf), "vertices": tuple(vertices)}))
    l2 = net.post.l2
    assert l2 is not None
    for seg in net.flat.segments:
        values = l2[seg.offset : seg.offset + seg.numel]
        expected = 0.5 if seg.name == "layers.1.weight" else 0.0
        assert torch.all(values == expected), seg.name


def _fields(conf: GraphConfig) -> dict[str, Any]:
    return {name: getattr(conf, name) for name in conf.__dataclass_fields__}


def test_graph_network_single_input_accepts_array_list_and_iterator(seed: int) -> None:
    conf = GraphConfig(
        inputs=("x",),
        input_types=(InputType.feed_forward(4),),
        vertices=(_lv("h", "x", Dense(n_out=5, activation="relu")), _lv("out", "h", Output(n_out=3))),
        outputs=("out",),
        seed=seed,
    )
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((12, 4)).astype(np.float32)
    y = rng.integers(0, 3, 12)
    a, b, c = Network(conf), Network(conf), Network(conf)
    a.fit(x, y, batch_size=6, shuffle=False)
    b.fit([x], [y], batch_size=6, shuffle=False)

    @dataclass
    class Batch:
        features: Any
        labels: Any

    c.fit([Batch([x[:6]], [y[:6]]), Batch(x[6:], y[6:])])
    np.testing.assert_array_equal(a.params(), b.params())
    np.testing.assert_allclose(a.params(), c.params(), rtol=1e-6)
    assert isinstance(a.output(x), np.ndarray)
    assert a.evaluate(x, y).accuracy() >= 0.0


def test_graph_network_evaluate_scores_first_output(seed: int) -> None:
    x, y = _two_data(seed, n=20)
    net = Network(_two_in_two_out(seed))
    ev = net.evaluate(x, y)
    probs = net.output(x)[0]
    assert ev.accuracy() == pytest.approx(float(np.mean(probs.argmax(1) == y[0])))


@pytest.mark.parametrize(
    ("x", "phrase"),
    [
        (lambda x: x[0], "the graph has 2 of them ['a', 'b']; pass a list"),
        (lambda x: [x[0]], "expected a list of 2 arrays, one per ['a', 'b'], got 1"),
        (lambda x: [x[0], x[1][:5]], "features of 'b' have 5 rows but the first input's have 20"),
        (lambda x: [x[0], x[0]], "features of 'b' have shape (20, 4)"),
    ],
    ids=["bare-array", "too-few", "row-mismatch", "wrong-shape"],
)
def test_graph_network_bad_inputs_raise_data_error(x: Any, phrase: str, seed: int) -> None:
    xs, ys = _two_data(seed, n=20)
    net = Network(_two_in_two_out(seed))
    with pytest.raises(DataError) as info:
        net.fit(x(xs), ys)
    assert phrase in str(info.value)


def test_graph_network_summary_and_memory_report_cover_vertices(seed: int) -> None:
    net = Network(_two_in_two_out(seed))
    text = net.summary()
    for name in ("da", "db", "m", "cls", "reg"):
        assert name in text
    assert "da ff(8) + db ff(6) -> ff(14)" in text
    assert f"total params: {net.num_params():,}" in text
    report = net.memory_report(batch_size=10)
    assert report.input == (4 + 3) * 10 * 4
    assert [name for name, _ in report.activations] == ["da", "db", "cls", "reg"]
