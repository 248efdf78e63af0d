"""Networks built from ModuleConfig / TorchLayer: flat buffers, training, archives, and every bad module."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from deepspark.config import (
    Adam,
    Dense,
    ElementWise,
    GraphConfig,
    InputType,
    LayerVertex,
    ModuleConfig,
    NetworkConfig,
    Output,
    TorchLayer,
)
from deepspark.errors import ConfigError, DataError, DeepSparkError, ModelFormatError
from deepspark.nn import Network

RESNET = "deepspark_testmodels.resnet:small_resnet"
MODELS = "deepspark_testmodels.resnet"


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Any:
    """Small convolutions run fastest on one thread, and a shared 2-core machine punishes two (10-50x)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def resnet_conf(seed: int = 0, **over: Any) -> ModuleConfig:
    fields: dict[str, Any] = dict(
        factory=RESNET, kwargs={"classes": 3, "channels": 4}, input_shape=(1, 8, 8), n_out=3, loss="mcxent",
        updater=Adam(learning_rate=1e-2), seed=seed,
    )
    return ModuleConfig(**{**fields, **over})


def blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """8x8 images: class k has a bright 3x3 blob in region k (left, middle, right) plus noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    x = rng.normal(0.0, 0.3, size=(n, 1, 8, 8)).astype(np.float32)
    for i, k in enumerate(y):
        col = [0, 3, 5][k]
        x[i, 0, 2:5, col : col + 3] += 2.0
    return x.reshape(n, 64), y


def test_module_network_params_and_batchnorm_stats_are_views_of_the_flat_buffer() -> None:
    net = Network(resnet_conf())
    module = net.model.module  # type: ignore[union-attr]
    for p in module.parameters():
        assert net.flat.contains(p) and net.flat.contains(p.grad)
    names = [s.name for s in net.flat.segments if not s.trainable]
    assert any(n.endswith("running_mean") for n in names) and any(n.endswith("running_var") for n in names)
    assert all(s.trainable for s in net.flat.segments[: len(list(module.parameters()))])
    before = net.params()
    x, y = blobs(32, 0)
    net.fit(x, y, epochs=1, batch_size=16, verbose=0)
    tail = slice(net.flat.n_trainable, net.num_params())
    assert not np.array_equal(before[tail], net.params()[tail]), "batch-norm running stats did not move"
    bn = module.stem[1]
    np.testing.assert_array_equal(bn.running_mean.numpy(), net.params()[tail][: bn.running_mean.numel()])


def test_module_network_learns_and_is_reproducible_from_the_seed(seed: int) -> None:
    x, y = blobs(240, seed)
    state = torch.random.get_rng_state()
    a, b = Network(resnet_conf(seed)), Network(resnet_conf(seed))
    assert torch.equal(state, torch.random.get_rng_state()), "building a module moved the global RNG"
    np.testing.assert_array_equal(a.params(), b.params())
    assert not np.array_equal(a.params(), Network(resnet_conf(seed + 1)).params())
    a.fit(x, y, epochs=6, batch_size=16, verbose=0)
    b.fit(x, y, epochs=6, batch_size=16, verbose=0)
    np.testing.assert_array_equal(a.params(), b.params())
    xt, yt = blobs(150, seed + 100)
    assert a.evaluate(xt, yt).accuracy() >= 0.9
    assert a.output(xt.reshape(-1, 1, 8, 8)).shape == (150, 3)  # (N, c, h, w) arrays work too


def test_module_network_save_load_continue_equals_uninterrupted(tmp_path: Path, seed: int) -> None:
    x, y = blobs(64, seed)
    straight = Network(resnet_conf(seed))
    straight.fit(x, y, epochs=3, batch_size=16, verbose=0)
    first = Network(resnet_conf(seed))
    first.fit(x, y, epochs=1, batch_size=16, verbose=0)
    first.save(tmp_path / "mid.zip")
    resumed = Network.load(tmp_path / "mid.zip")
    assert resumed.config == resnet_conf(seed)
    resumed.fit(x, y, epochs=2, batch_size=16, verbose=0)
    np.testing.assert_allclose(resumed.params(), straight.params(), atol=1e-6)
    np.testing.assert_allclose(resumed.output(x), straight.output(x), atol=1e-6)


def _rewrite_config(src: Path, dst: Path, **changes: Any) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            data = zin.read(name)
            if name == "config.json":
                conf = json.loads(data)
                conf.update(changes)
                data = json.dumps(conf).encode()
            zout.writestr(name, data)


def test_archive_factory_that_builds_other_shapes_names_factory_and_first_tensor(tmp_path: Path) -> None:
    Network(resnet_conf()).save(tmp_path / "a.zip")
    _rewrite_config(tmp_path / "a.zip", tmp_path / "b.zip", kwargs={"classes": 3, "channels": 6})
    with pytest.raises(ModelFormatError) as info:
        Network.load(tmp_path / "b.zip")
    text = str(info.value)
    assert f"factory '{RESNET}'" in text
    assert "'layers.0.module.stem.0.weight' (4, 1, 3, 3) in the archive" in text
    assert "(6, 1, 3, 3)" in text


def test_archive_factory_not_importable_is_model_format_error_naming_it(tmp_path: Path) -> None:
    Network(resnet_conf()).save(tmp_path / "a.zip")
    _rewrite_config(tmp_path / "a.zip", tmp_path / "b.zip", factory="vanished_package.models:net")
    with pytest.raises(ModelFormatError, match=r"factory 'vanished_package\.models:net'.*cannot import"):
        Network.load(tmp_path / "b.zip")


@pytest.mark.parametrize(
    ("factory", "over", "path", "text"),
    [
        ("not_a_package_xyz.models:net", {}, "factory", "cannot import 'not_a_package_xyz.models'"),
        (f"{MODELS}:smal_resnet", {}, "factory", "did you mean 'small_resnet'"),
        (f"{MODELS}:not_a_module", {}, "factory", "returned a dict, not a torch.nn.Module"),
        (f"{MODELS}:no_parameters", {}, "factory", "without trainable parameters"),
        (f"{MODELS}:on_meta_device", {}, "factory", "meta device"),
        (f"{MODELS}:cumulative_batch_norm", {}, "factory", "momentum=None"),
        (f"{MODELS}:mlp", {"n_out": 5}, "n_out", "per example [3]) but n_out says 5; set n_out=3"),
        (f"{MODELS}:mlp", {"input_shape": (5,)}, "input_shape", "fails on a batch of shape (2, 5)"),
        (f"{MODELS}:mlp", {"kwargs": {"bogus": 1}}, "kwargs", "unexpected keyword argument 'bogus'"),
        ("torch.nn:Module", {}, "factory", "without trainable parameters"),
    ],
)
def test_bad_module_is_config_error_naming_the_field(factory: str, over: dict[str, Any], path: str, text: str) -> None:
    fields: dict[str, Any] = {"factory": factory, "input_shape": (4,), "n_out": 3, "loss": "mse", **over}
    with pytest.raises(ConfigError) as info:
        Network(ModuleConfig(**fields))
    assert info.value.path == path
    assert text in str(info.value)


def test_input_width_that_does_not_match_the_data_is_data_error_naming_input_shape() -> None:
    net = Network(resnet_conf())
    with pytest.raises(DataError, match="change input_shape"):
        net.fit(np.zeros((4, 60), np.float32), np.zeros(4, np.int64), verbose=0)


def test_frozen_parameters_travel_in_the_flat_buffer_but_never_change() -> None:
    net = Network(ModuleConfig(factory=f"{MODELS}:frozen_encoder", input_shape=(4,), n_out=3, loss="mse"))
    frozen = [s for s in net.flat.segments if s.name.startswith("layers.0.module.0.")]
    assert frozen and not any(s.trainable for s in frozen)
    before = net.params()
    rng = np.random.default_rng(0)
    net.fit(rng.normal(size=(16, 4)).astype(np.float32), rng.normal(size=(16, 3)).astype(np.float32), verbose=0)
    after = net.params()
    for s in frozen:
        part = slice(s.offset, s.offset + s.numel)
        np.testing.assert_array_equal(after[part], before[part])
    assert not np.array_equal(net.params()[: net.flat.n_trainable], before[: net.flat.n_trainable])


def test_torch_layer_between_built_in_layers_and_in_a_residual_graph_trains() -> None:
    mine = TorchLayer(factory=f"{MODELS}:mlp", kwargs={"n_in": 6, "hidden": 5, "n_out": 6}, n_out=6, l2=1e-3)
    stack = NetworkConfig(input_type=InputType.feed_forward(4), layers=(Dense(n_out=6), mine, Output(n_out=2)))
    graph = GraphConfig(
        inputs=("x",), input_types=(InputType.feed_forward(4),),
        vertices=(LayerVertex(name="d", inputs=("x",), layer=Dense(n_out=6, activation="relu")),
                  LayerVertex(name="mine", inputs=("d",), layer=mine),
                  ElementWise(name="res", inputs=("d", "mine"), op="add"),
                  LayerVertex(name="out", inputs=("res",), layer=Output(n_out=2))),
        outputs=("out",),
    )
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    for conf in (stack, graph):
        net = Network(conf)
        assert net.post.l2 is not None  # the TorchLayer's own l2 reaches its weights
        before = net.params()
        history = net.fit(x, y, epochs=2, batch_size=8, verbose=0)
        assert len(history["loss"]) == 2 and not np.array_equal(before, net.params())


def test_torch_layer_compile_error_is_located_under_its_layer() -> None:
    bad = TorchLayer(factory=f"{MODELS}:mlp", n_out=4)  # mlp() returns 3 features
    with pytest.raises(ConfigError) as info:
        Network(NetworkConfig(input_type=InputType.feed_forward(4), layers=(bad, Output(n_out=2))))
    assert info.value.path == "layers[0].n_out"
    graph = GraphConfig(
        inputs=("x",), input_types=(InputType.feed_forward(4),),
        vertices=(LayerVertex(name="m", inputs=("x",), layer=bad), LayerVertex(name="o", inputs=("m",),
                                                                               layer=Output(n_out=2))),
        outputs=("o",),
    )
    with pytest.raises(ConfigError) as info:
        Network(graph)
    assert info.value.path == "vertices[0].layer.n_out"


def test_from_module_keeps_working_and_says_how_to_get_a_saveable_network(tmp_path: Path) -> None:
    from deepspark_testmodels.resnet import mlp

    net = Network.from_module(mlp(), loss="mcxent", n_out=3)
    rng = np.random.default_rng(0)
    net.fit(rng.normal(size=(8, 4)).astype(np.float32), rng.integers(0, 3, 8), verbose=0)
    with pytest.raises(DeepSparkError, match=r"ModuleConfig\(factory="):
        net.save(tmp_path / "m.zip")
    with pytest.raises(ConfigError, match="ModuleConfig"):
        Network(mlp())  # type: ignore[arg-type]
