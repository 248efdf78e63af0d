"""``deepspark demo`` on Spark as a user runs it: says what data it uses, no Spark chatter, Ctrl-C stops it quickly.

One subprocess in its own session; Ctrl-C is simulated the way a terminal sends it, SIGINT to the whole
foreground process group (the driver, and the JVM and Python workers below it).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.spark, pytest.mark.slow]

START_DEADLINE_S = 900.0
"""Spark start and the first round, on a loaded 2-core machine (a quiet one: ~15 s)."""

STOP_DEADLINE_S = 10.0
"""A hang guard: the demo stops in about a second (the figure is printed); only a hang fails here."""


class _Output:
    """Collects a stream from a reader thread; ``seen`` is set once ``needle`` appeared."""

    def __init__(self, stream: object, needle: str) -> None:
        self.text = ""
        self.needle = needle
        self.seen = threading.Event()
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream: object) -> None:
        fd = stream.fileno()  # type: ignore[attr-defined]
        while chunk := os.read(fd, 4096):
            self.text += chunk.decode(errors="replace")
            if self.needle in self.text:
                self.seen.set()


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def test_cli_demo_ctrl_c_during_training_stops_quickly_with_one_line(tmp_path: Path) -> None:
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable)
    proc = subprocess.Popen(
        [sys.executable, "-m", "deepspark.cli", "demo", "--master", "local[2]", "--epochs", "1000",
         "--output", str(tmp_path / "out")],
        cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out = _Output(proc.stdout, "training on Spark")
        err = _Output(proc.stderr, "] round 1/")  # the progress bar: training has started
        end = time.monotonic() + START_DEADLINE_S
        while not err.seen.wait(0.2):
            assert proc.poll() is None, f"the demo exited ({proc.returncode}) before training:\n{err.text[-3000:]}"
            assert time.monotonic() < end, f"no training round within {START_DEADLINE_S:.0f} s:\n{err.text[-3000:]}"
        before = err.text
        start = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        code = proc.wait(STOP_DEADLINE_S)
        stopped_s = time.monotonic() - start
        out.thread.join(STOP_DEADLINE_S)
        err.thread.join(STOP_DEADLINE_S)
        print(f"demo stopped {stopped_s:.2f} s after Ctrl-C (load avg {os.getloadavg()[0]:.1f})")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert code == 130
    after = err.text[len(before) :].replace("\r", "\n")
    lines = [line for line in after.splitlines() if line.strip() and not line.startswith("[")]  # no progress bars
    assert lines == ["deepspark demo: interrupted"], after
    assert "Traceback" not in err.text and "py4j" not in err.text
    # it said what data it trains on, and Spark's startup chatter went to the log file, not the terminal
    assert "data: scikit-learn's bundled handwritten digits" in out.text
    assert all(line.startswith("[") for line in before.replace("\r", "\n").splitlines() if line.strip()), before
    log = tmp_path / "out" / "spark.log"
    assert f"Spark's own log: {log}" in out.text
    assert log.is_file()
    # the JVM and Python workers follow the driver out (the JVM exits when its stdin closes)
    end = time.monotonic() + 60
    while not _group_gone(proc.pid) and time.monotonic() < end:
        threading.Event().wait(0.1)
    gone = _group_gone(proc.pid)
    if not gone:
        os.killpg(proc.pid, signal.SIGKILL)
    assert gone, "Spark's JVM outlived the interrupted demo"
