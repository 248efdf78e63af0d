"""`deepspark demo` and `deepspark train` on Spark, run as the user runs them: a separate process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from deepspark.config import Dense, InputType, NetworkConfig, Output

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

pytestmark = pytest.mark.slow


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable)
    return subprocess.run(
        [sys.executable, "-m", "deepspark.cli", *args], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=600, check=False,
    )


def test_cli_demo_on_spark_writes_archive_timeline_and_prints_advice(tmp_path: Path) -> None:
    result = _run(["demo", "--master", "local[2]", "--epochs", "2", "--output", str(tmp_path)], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Accuracy" in result.stdout
    assert "advice:" in result.stdout
    if "[warning]" in result.stdout:  # the demo explains why its tiny data earns warnings
        assert "the digits set is tiny" in result.stdout
    assert "data: scikit-learn's bundled handwritten digits" in result.stdout
    assert "log4j" not in result.stderr and "WARN" not in result.stderr  # Spark's log went to spark.log
    assert (tmp_path / "spark.log").is_file()
    assert "round" in result.stderr  # the progress bar
    assert (tmp_path / "digits-cnn.zip").stat().st_size > 1000
    html = (tmp_path / "timeline.html").read_text()
    assert "worker 1" in html


def test_cli_train_from_parquet_writes_archive(spark: SparkSession, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 4))
    pdf_rows = [(row.tolist(), int(row[0] > 0)) for row in x]
    spark.createDataFrame(pdf_rows, "features array<double>, label int").write.parquet(str(tmp_path / "data"))
    conf = NetworkConfig(input_type=InputType.feed_forward(4), layers=(Dense(n_out=8, activation="relu"),
                                                                    Output(n_out=2)))
    (tmp_path / "conf.json").write_text(conf.to_json())
    result = _run(
        ["train", "--config", "conf.json", "--data", "data", "--master", "local[2]", "--epochs", "2",
         "--output", "model.zip"],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "model.zip").exists()
    meta = json.loads(__import__("zipfile").ZipFile(tmp_path / "model.zip").read("metadata.json"))
    assert meta["epoch"] == 2
    # evaluate reads the same Spark-written Parquet folder; a second train refuses to replace the model
    from deepspark.cli.main import main

    assert main(["evaluate", str(tmp_path / "model.zip"), "--data", str(tmp_path / "data")]) == 0
    before = (tmp_path / "model.zip").read_bytes()
    again = ["train", "--config", str(tmp_path / "conf.json"), "--data", str(tmp_path / "data"),
             "--output", str(tmp_path / "model.zip")]
    assert main(again) == 2
    assert (tmp_path / "model.zip").read_bytes() == before


def test_cli_train_missing_config_exits_2_with_one_line(tmp_path: Path) -> None:
    result = _run(["train", "--config", "nope.json", "--data", "x.parquet"], tmp_path)
    assert result.returncode == 2
    assert "nope.json" in result.stderr and "Traceback" not in result.stderr
