"""``deepspark export``: an archive of a module-based network to ONNX (checked in onnxruntime) or safetensors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deepspark.cli.main import main
from deepspark.config import ModuleConfig
from deepspark.nn import Network


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    conf = ModuleConfig(factory="deepspark_testmodels.resnet:mlp", kwargs={"n_in": 6, "n_out": 4}, input_shape=(6,),
                        n_out=4, loss="mcxent", seed=1)
    path = tmp_path_factory.mktemp("export") / "mlp.zip"
    Network(conf).save(path)
    return path


def test_cli_export_onnx_writes_a_checked_model(archive: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ort = pytest.importorskip("onnxruntime")
    assert main(["export", str(archive)]) == 0
    out = capsys.readouterr().out
    assert "checked in onnxruntime: max abs difference to torch" in out
    onnx_path = archive.with_suffix(".onnx")
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).normal(size=(3, 6)).astype(np.float32)
    np.testing.assert_allclose(session.run(None, {"features": x})[0], Network.load(archive).output(x), atol=1e-5)


def test_cli_export_torch_writes_safetensors(archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "out" / "mlp.safetensors"
    assert main(["export", str(archive), "--format", "torch", "--output", str(target)]) == 0
    assert target.exists() and "torch state dict" in capsys.readouterr().out


def test_cli_export_missing_archive_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(tmp_path / "nope.zip")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("deepspark export: error:") and len(err.strip().splitlines()) == 1
