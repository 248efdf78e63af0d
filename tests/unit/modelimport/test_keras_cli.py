"""``deepspark import-keras``: the layer table, warnings, the archive it writes, and exit code 2 on refusal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deepspark.cli.main import main
from deepspark.nn import Network


def test_cli_import_keras_prints_table_and_writes_equivalent_archive(
    keras_cases: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str], seed: int
) -> None:
    case = keras_cases["residual"]
    out = tmp_path / "residual.zip"
    assert main(["import-keras", str(case.h5_path), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "(Keras 3." in text and "h5 format" in text
    for layer in case.model.layers:
        assert layer.name in text
    assert "BatchNorm" in text and "ElementWise" in text and "Output" in text
    assert "features/loss" in text and "LossLayer" in text  # the loss head added to an output that feeds on
    assert "warning: output 'probs': the file names no loss" in text
    assert f"wrote {out}" in text
    xs = case.inputs(np.random.default_rng(seed), 3)
    ours = Network.load(out).output(xs[0])
    for a, b in zip(ours, case.predict(xs), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_cli_import_keras_default_output_next_to_model(keras_cases: dict[str, Any], tmp_path: Path) -> None:
    src = tmp_path / "mlp.keras"
    src.write_bytes(keras_cases["mlp"].keras_path.read_bytes())
    assert main(["import-keras", str(src)]) == 0
    assert (tmp_path / "mlp.zip").is_file()


def test_cli_import_keras_refused_file_exit_2_with_reason(
    quiet_keras: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    L = quiet_keras.layers
    path = tmp_path / "noise.keras"
    quiet_keras.Sequential([quiet_keras.Input((3,)), L.GaussianNoise(0.1, name="noise"), L.Dense(2)]).save(path)
    assert main(["import-keras", str(path), "-o", str(tmp_path / "x.zip")]) == 2
    err = capsys.readouterr().err
    assert "deepspark import-keras: error:" in err and "'noise' (GaussianNoise) is not supported" in err
    assert not (tmp_path / "x.zip").exists()
