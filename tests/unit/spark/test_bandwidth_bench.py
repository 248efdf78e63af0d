"""``bench/bench_bandwidth.py`` at its smallest setting: two gloo ranks in two network namespaces joined by a
veth pair limited to 100 Mbit/s, each driving the Spark trainer's real per-step exchange (dense and threshold)
for a few steps. Skips, with the bench's own reason, where namespaces cannot be created (not root, no
iproute2, a container without CAP_NET_ADMIN). About 20 s on a busy 2-core machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
BENCH = ROOT / "bench" / "bench_bandwidth.py"
MNIST = ROOT.parent / "shared" / "data" / "mnist"
STEPS = 20

pytestmark = pytest.mark.slow


def _mnist() -> Path:
    folder = Path(os.environ.get("DEEPSPARK_MNIST", MNIST))
    if not any(folder.glob("t10k-images*")):
        pytest.skip(f"MNIST IDX files not found in {folder} (set DEEPSPARK_MNIST)")
    return folder


def test_threshold_moves_under_a_fiftieth_of_dense_bytes_through_a_limited_link(tmp_path: Path) -> None:
    out = tmp_path / "bandwidth.json"
    cmd = [sys.executable, str(BENCH), "--rates", "100mbit", "--steps", str(STEPS), "--warmup", "2"]
    cmd += ["--compute-steps", "3", "--timeout", "90", "--mnist", str(_mnist()), "--json", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    stdout, stderr = proc.communicate(timeout=120)
    if stdout.startswith("skipped:"):
        pytest.skip(stdout.strip())
    assert proc.returncode == 0, stderr[-3000:]

    # the namespaces the bench made (named after its pid) are gone
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert f"dsbw{proc.pid % 100000}" not in listed

    runs = json.loads(out.read_text())["runs"]
    assert [r["rate"] for r in runs] == ["100mbit"]
    ranks = runs[0]["ranks"]
    assert [r["rank"] for r in ranks] == [0, 1]
    for rank in ranks:
        dense, threshold = rank["dense"], rank["threshold"]
        assert dense["steps"] == threshold["steps"] == STEPS  # both exchanges ran every step on both ranks
        assert dense["bytes_sent_per_step"] == 4 * rank["n_params"]  # ring all-reduce of 2: n floats out
        assert threshold["bytes_sent_per_step"] < dense["bytes_sent_per_step"] / 50
        assert 0 < threshold["sparsity_mean"] < 0.05
        assert dense["samples_per_s"] > 0 and threshold["samples_per_s"] > 0
    assert "| 100mbit | dense |" in stdout and "| 100mbit | threshold |" in stdout
    assert "scaling model (10 Gbit/s)" in stdout
