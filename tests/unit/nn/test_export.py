"""Export for serving: ONNX run in onnxruntime equals torch (1e-5), torch state dicts rebuild the module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from deepspark.config import (
    BatchNorm,
    Conv2D,
    Dense,
    InputType,
    ModuleConfig,
    NetworkConfig,
    Output,
    Subsampling,
)
from deepspark.errors import DeepSparkError, ModelFormatError
from deepspark.nn import Network
from deepspark.nn.export import load_torch

ort = pytest.importorskip("onnxruntime")

RESNET = "deepspark_testmodels.resnet:small_resnet"


def lenet() -> NetworkConfig:
    return NetworkConfig(
        seed=3, input_type=InputType.convolutional_flat(12, 12, 1),
        layers=(Conv2D(n_out=4, kernel=(3, 3), activation="relu"), Subsampling(kernel=(2, 2), stride=(2, 2)),
                BatchNorm(), Dense(n_out=16, activation="relu"), Output(n_out=5)),
    )


def resnet() -> ModuleConfig:
    return ModuleConfig(factory=RESNET, kwargs={"classes": 5, "channels": 4}, input_shape=(1, 12, 12), n_out=5,
                        loss="mcxent", seed=3)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[Network, Any]]]:
    """Both networks trained a little (batch-norm statistics moved) and exported once."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(48, 144)).astype(np.float32)
    y = rng.integers(0, 5, size=48)
    out: dict[str, tuple[Network, Any]] = {}
    folder = tmp_path_factory.mktemp("export")
    for name, conf in (("lenet", lenet()), ("resnet", resnet())):
        net = Network(conf)
        net.fit(x, y, epochs=1, batch_size=16, verbose=0)
        out[name] = (net, net.export_onnx(folder / f"{name}.onnx"))
    yield out
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", ["lenet", "resnet"])
def test_onnx_in_onnxruntime_equals_torch(trained: dict[str, tuple[Network, Any]], name: str, seed: int) -> None:
    net, result = trained[name]
    assert result.max_abs_diff is not None and result.max_abs_diff <= 1e-5
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["features"]
    for n in (1, 37):  # the batch axis is dynamic
        x = np.random.default_rng(seed).normal(size=(n, 144)).astype(np.float32)
        (probs,) = session.run(None, {"features": x})
        assert probs.shape == (n, 5)
        np.testing.assert_allclose(probs, net.output(x), rtol=0, atol=1e-5)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_export_torch_is_the_modules_own_state_dict(trained: dict[str, tuple[Network, Any]], tmp_path: Path) -> None:
    from deepspark_testmodels.resnet import small_resnet
    from safetensors import safe_open
    from safetensors.torch import load_file

    net, _ = trained["resnet"]
    path = net.export_torch(tmp_path / "resnet.safetensors")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    assert meta["factory"] == RESNET and meta["input_shape"] == "[1, 12, 12]"
    plain = small_resnet(classes=5, channels=4)
    plain.load_state_dict(load_file(str(path)))  # keys are the module's own: no deepspark needed to serve it
    x = np.random.default_rng(1).normal(size=(6, 144)).astype(np.float32)
    logits = plain.eval()(torch.from_numpy(x).reshape(-1, 1, 12, 12))
    np.testing.assert_allclose(torch.softmax(logits, 1).detach().numpy(), net.output(x), atol=1e-6)
    rebuilt = load_torch(path)
    np.testing.assert_allclose(rebuilt(torch.from_numpy(x).reshape(-1, 1, 12, 12)).detach().numpy(),
                               logits.detach().numpy(), atol=1e-6)


def test_export_torch_of_built_in_layers_round_trips(trained: dict[str, tuple[Network, Any]], tmp_path: Path) -> None:
    net, _ = trained["lenet"]
    model = load_torch(net.export_torch(tmp_path / "lenet.safetensors"))
    x = np.random.default_rng(2).normal(size=(4, 144)).astype(np.float32)
    np.testing.assert_allclose(model(torch.from_numpy(x)).detach().numpy(), net.output(x), atol=1e-6)
    assert not any(net.flat.contains(p) for p in model.parameters()), "the export shares the network's buffers"


def test_load_torch_rejects_other_files(tmp_path: Path) -> None:
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(ModelFormatError, match="not a readable safetensors file"):
        load_torch(tmp_path / "junk.safetensors")
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(ModelFormatError, match="not written by export_torch"):
        load_torch(tmp_path / "plain.safetensors")


def test_export_of_a_from_module_network_says_what_to_use(tmp_path: Path) -> None:
    net = Network.from_module(torch.nn.Linear(4, 2), loss="mse", n_out=2)
    with pytest.raises(DeepSparkError, match="ModuleConfig"):
        net.export_onnx(tmp_path / "m.onnx")
