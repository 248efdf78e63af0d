"""Imported Keras models compute what Keras computes: ``import_keras(path).output(x) == model.predict(x)``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deepspark.config import GraphConfig, NetworkConfig
from deepspark.modelimport import SUPPORTED_LAYERS, import_keras, inspect_keras
from deepspark.nn import Network

CASES = [
    "mlp",
    "cnn",
    "conv_more",
    "conv1d",
    "activations",
    "shapes",
    "recurrent",
    "bidirectional",
    "embedding",
    "textcnn",
    "sequence_out",
    "image_out",
    "multi_io",
    "residual",
]


def _outputs(net: Network, xs: list[np.ndarray]) -> list[np.ndarray]:
    out = net.output(xs if len(xs) > 1 else xs[0])
    return [np.asarray(o) for o in (out if isinstance(out, list) else [out])]


def _assert_same(ours: list[np.ndarray], keras: list[np.ndarray]) -> None:
    assert len(ours) == len(keras)
    for a, b in zip(ours, keras, strict=True):
        assert a.size == b.size, f"{a.shape} vs {b.shape}"
        np.testing.assert_allclose(a.reshape(b.shape), b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("fmt", ["keras", "h5"])
@pytest.mark.parametrize("name", CASES)
def test_import_keras_output_equals_predict(keras_cases: dict[str, Any], name: str, fmt: str, seed: int) -> None:
    case = keras_cases[name]
    xs = case.inputs(np.random.default_rng(seed), 6)
    net = import_keras(case.path(fmt))
    _assert_same(_outputs(net, xs), case.predict(xs))


def test_import_keras_cases_cover_every_supported_layer(keras_cases: dict[str, Any]) -> None:
    used = set()
    for case in keras_cases.values():
        for layer in case.model.layers:
            used.add(type(layer).__name__)
            inner = getattr(layer, "layer", None) or getattr(layer, "forward_layer", None)
            if inner is not None:
                used.add(type(inner).__name__)
    assert used >= SUPPORTED_LAYERS, f"no equivalence case for {sorted(SUPPORTED_LAYERS - used)}"


def test_import_keras_sequential_and_functional_config_kinds(keras_cases: dict[str, Any]) -> None:
    assert isinstance(import_keras(keras_cases["cnn"].keras_path).config, NetworkConfig)
    graph = import_keras(keras_cases["multi_io"].keras_path).config
    assert isinstance(graph, GraphConfig)
    assert graph.inputs == ("a", "b", "c")
    assert graph.outputs == ("cls", "reg")


def test_import_keras_compiled_losses_and_optimizer_carried_over(keras_cases: dict[str, Any]) -> None:
    mlp = import_keras(keras_cases["mlp"].keras_path).config
    assert isinstance(mlp, NetworkConfig)
    head = mlp.layers[-1]
    assert type(head).__name__ == "Output" and head.loss == "mcxent" and head.activation == "softmax"  # type: ignore[attr-defined]
    assert mlp.updater.tag == "adam" and mlp.updater.learning_rate == pytest.approx(2e-3)  # type: ignore[attr-defined]
    assert mlp.layers[0].l2 == pytest.approx(2e-3)  # Keras L2(1e-3) penalizes 1e-3 * w^2 = 0.5 * 2e-3 * w^2
    graph = import_keras(keras_cases["multi_io"].h5_path).config
    assert isinstance(graph, GraphConfig)
    losses = {v.name: v.layer.loss for v in graph.vertices if v.name in graph.outputs}  # type: ignore[attr-defined]
    assert losses == {"cls": "mcxent", "reg": "mse"}
    assert graph.updater.tag == "rmsprop"
    conv1d = import_keras(keras_cases["conv1d"].keras_path).config
    assert conv1d.layers[-1].loss == "xent"  # type: ignore[attr-defined]


def test_import_keras_output_that_feeds_another_layer_gets_a_loss_vertex(keras_cases: dict[str, Any]) -> None:
    config = import_keras(keras_cases["residual"].keras_path).config
    assert isinstance(config, GraphConfig)
    assert config.outputs == ("probs", "features/loss")


def test_inspect_keras_table_lists_every_layer_and_the_conversion(keras_cases: dict[str, Any]) -> None:
    result = inspect_keras(keras_cases["conv_more"].keras_path)
    table = result.table()
    for layer in keras_cases["conv_more"].model.layers:
        assert layer.name in table
    assert "Conv2D + Conv2D" in table  # SeparableConv2D: depthwise, then pointwise
    assert f"trainable parameters: {result.network.flat.n_trainable:,}" in table
    assert result.format == "keras" and result.keras_version.startswith("3.")


def test_import_keras_parameter_count_matches_keras(keras_cases: dict[str, Any]) -> None:
    # (recurrent layers differ on purpose: PyTorch keeps a second, recurrent bias that Keras folds into one)
    for name in ("mlp", "cnn", "conv_more", "conv1d", "activations", "shapes", "residual"):
        case = keras_cases[name]
        net = import_keras(case.keras_path)
        assert net.flat.n_trainable == case.model.count_params() - _non_trainable(case.model), name


def _non_trainable(model: Any) -> int:
    return sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)


def test_import_keras_network_trains_saves_and_loads(keras_cases: dict[str, Any], tmp_path: Path, seed: int) -> None:
    case = keras_cases["cnn"]
    net = import_keras(case.h5_path)
    rng = np.random.default_rng(seed)
    (x,) = case.inputs(rng, 16)
    y = rng.integers(0, 4, 16)
    before = net.score(x, y)
    net.fit(x, y, epochs=3, batch_size=8)
    assert net.score(x, y) < before
    net.save(tmp_path / "imported.zip")
    again = Network.load(tmp_path / "imported.zip")
    np.testing.assert_allclose(again.output(x), net.output(x), rtol=1e-6, atol=1e-6)


def test_import_keras_flat_rows_accepted_for_image_inputs(keras_cases: dict[str, Any], seed: int) -> None:
    """Image inputs also come as flat rows in (height, width, channels) order, as a Spark column holds them."""
    case = keras_cases["cnn"]
    (x,) = case.inputs(np.random.default_rng(seed), 5)
    net = import_keras(case.keras_path)
    np.testing.assert_allclose(net.output(x.reshape(5, -1)), net.output(x), rtol=0, atol=0)


def test_import_keras_keras2_h5_layout_and_inbound_nodes(
    keras_cases: dict[str, Any], keras2_copy: Any, seed: int
) -> None:
    """Keras 2 writers: nested-list inbound_nodes, batch_input_shape, 'layer/kernel:0' weight names."""
    for name in ("multi_io", "cnn", "bidirectional"):
        case = keras_cases[name]
        path = keras2_copy(case.h5_path)
        xs = case.inputs(np.random.default_rng(seed), 4)
        result = inspect_keras(path)
        assert result.keras_version.startswith("2.")
        _assert_same(_outputs(result.network, xs), case.predict(xs))
