"""Spark GPU scheduling without a GPU: a custom discovery script hands out fake addresses on ``local-cluster`` and
every task must pick the device Spark assigned it (``TaskContext.resources()["gpu"]``), never ``cuda:0`` by habit.

The cluster runs in a child process (one Python process holds one SparkContext, and this suite's is elsewhere).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.cluster

PROBE = Path(__file__).with_name("gpu_probe.py")


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    folder = tmp_path_factory.mktemp("gpus")
    script = folder / "discover_gpus.sh"
    script.write_text('#!/bin/sh\necho \'{"name": "gpu", "addresses": ["0", "1"]}\'\n', encoding="ascii")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable,
           "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_LOCAL_HOSTNAME": "localhost"}
    done = subprocess.run([sys.executable, str(PROBE), str(script)], capture_output=True, text=True, timeout=300,
                          env=env, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, f"probe failed ({done.returncode}):\n{done.stdout}\n{done.stderr[-3000:]}"
    return json.loads(lines[-1][len("RESULT "):])  # type: ignore[no-any-return]


def _picks(probe: dict[str, object], job: str) -> list[tuple[str, list[str]]]:
    """(device picked, addresses Spark handed) per task of one job."""
    return [(device, addresses) for _, device, addresses in probe[job]]  # type: ignore[attr-defined]


@pytest.mark.parametrize("job", ["plain", "barrier"])
def test_each_task_picks_the_gpu_address_spark_assigned_it(probe: dict[str, object], job: str) -> None:
    assert probe["placement"] == ["auto", 1.0]
    picks = _picks(probe, job)
    assert all(device == f"cuda:{addresses[0]}" and len(addresses) == 1 for device, addresses in picks)
    assert sorted(device for device, _ in picks) == ["cuda:0", "cuda:1"]  # two ranks on one host: two GPUs


@pytest.mark.skipif(torch.cuda.is_available(), reason="the fake addresses may name real GPUs here")
def test_predict_task_refuses_the_assigned_gpu_when_torch_has_no_cuda(probe: dict[str, object]) -> None:
    error = str(probe["predict_error"])
    assert "Spark assigned this task GPU 'cuda:" in error and "torch sees no CUDA device" in error
    assert "spark.deepspark.device=cpu" in error
