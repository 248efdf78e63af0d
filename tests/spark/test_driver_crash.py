"""The driver process killed mid-fit (SIGKILL of a subprocess holding its own SparkContext), then the fit resumed
from its checkpoints: the final parameters equal an uninterrupted run's, bit for bit, for both masters, with
gradient sharing's threshold state (tau, each rank's residual) carried through the checkpoint."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from deepspark.config import Adam, Dense, InputType, NetworkConfig, Output
from deepspark.spark import GradientSharing, ParameterAveraging, SparkNetwork, TrainingMaster
from deepspark.spark._trainer_state import load_trainer_state, state_path

from .crash_fit import frame

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

EPOCHS = 4
KILL_AFTER = 2
"""The driver is killed once the checkpoint of this epoch exists (the fit goes on to ``EPOCHS``)."""
DEADLINE_S = 180.0
"""For the crashing driver to start Spark and write that checkpoint (a busy machine needs the most)."""

CRASH_SCRIPT = Path(__file__).with_name("crash_fit.py")


def _conf(seed: int) -> NetworkConfig:
    return NetworkConfig(
        seed=seed,
        updater=Adam(learning_rate=5e-3),
        input_type=InputType.feed_forward(12),
        layers=(Dense(n_out=64, activation="relu"), Output(n_out=3)),
    )


def _data(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 12)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.5)
    return x, y


class CrashingDriver:
    """The fit in a driver subprocess with a checkpoint every epoch; a watcher thread SIGKILLs the driver's
    process group (Python driver, JVM, Python workers) as soon as the checkpoint of epoch ``KILL_AFTER`` exists,
    so the test's own process can train meanwhile."""

    def __init__(self, tmp: Path, conf: NetworkConfig, master: TrainingMaster, x: np.ndarray, y: np.ndarray) -> None:
        np.savez(tmp / "data.npz", x=x, y=y)
        (tmp / "config.json").write_text(conf.to_json())
        (tmp / "master.json").write_text(master.to_json())
        self.checkpoints = tmp / "ckpt"
        self.log = tmp / "driver.log"
        args = [tmp / "data.npz", tmp / "config.json", tmp / "master.json", self.checkpoints, EPOCHS]
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, str(CRASH_SCRIPT), *map(str, args)],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        self.killed_after = ""
        self.watcher = threading.Thread(target=self._watch, daemon=True)
        self.watcher.start()

    def _watch(self) -> None:
        target = self.checkpoints / f"checkpoint_epoch{KILL_AFTER:04d}.zip"
        pause = threading.Event()
        deadline = time.monotonic() + DEADLINE_S
        while not target.exists() and self.process.poll() is None and time.monotonic() < deadline:
            pause.wait(0.005)
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.killed_after = target.name if target.exists() else ""

    def wait(self) -> Path:
        """The checkpoint folder, once the driver was killed mid-fit (asserted)."""
        self.watcher.join()
        code = self.process.wait(30)
        assert self.killed_after, (
            f"the driver wrote no checkpoint of epoch {KILL_AFTER} (exit code {code}):\n"
            + self.log.read_text(errors="replace")[-3000:]
        )
        assert code == -signal.SIGKILL, f"the driver was not killed (exit code {code})"
        written = sorted(p.name for p in self.checkpoints.glob("*.zip"))
        assert f"checkpoint_epoch{EPOCHS:04d}.zip" not in written, f"the driver finished before the kill: {written}"
        return self.checkpoints

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(30)


@pytest.mark.parametrize(
    "master",
    [
        ParameterAveraging(num_workers=2, batch_size_per_worker=16, averaging_frequency=3, seed=4),
        GradientSharing(num_workers=2, batch_size_per_worker=16, seed=4),  # threshold encoding
    ],
    ids=["parameter_averaging", "gradient_sharing_threshold"],
)
def test_driver_killed_mid_fit_resume_from_checkpoints_equals_uninterrupted(
    spark: SparkSession, master: TrainingMaster, tmp_path: Path, seed: int
) -> None:
    x, y = _data(seed, 1600)
    driver = CrashingDriver(tmp_path, _conf(seed), master, x, y)  # starts Spark while this process trains
    try:
        df = frame(spark, x, y).persist()
        straight = SparkNetwork(spark, _conf(seed), master).fit(df, epochs=EPOCHS)
        checkpoints = driver.wait()
    finally:
        driver.stop()
    newest = max(checkpoints.glob("*.zip"), key=lambda p: p.stat().st_mtime)
    done = int(newest.stem.removeprefix("checkpoint_epoch"))
    assert KILL_AFTER <= done < EPOCHS
    resumed = SparkNetwork(spark, _conf(seed), master).fit(df, epochs=EPOCHS - done, resume_from=checkpoints)
    assert (resumed.epoch, resumed.iteration) == (straight.epoch, straight.iteration)
    np.testing.assert_array_equal(resumed.params(), straight.params(), err_msg=f"seed {seed}")
    np.testing.assert_array_equal(resumed.updater_state(), straight.updater_state())

    if isinstance(master, GradientSharing):
        # the checkpoint carried tau and both ranks' residuals; without them the resumed fit is not the same
        saved = load_trainer_state(state_path(newest), resumed.flat.n_trainable, np.float32)
        assert saved.epoch == done and saved.scalars["tau"] > 0 and len(saved.ranks) == 2
        assert all(np.abs(r).sum() > 0 for r in saved.ranks)
        bare = tmp_path / "bare"
        bare.mkdir()
        shutil.copy(newest, bare / newest.name)
        blind = SparkNetwork(spark, _conf(seed), master).fit(df, epochs=EPOCHS - done, resume_from=bare)
        assert not np.array_equal(blind.params(), straight.params())
    df.unpersist()
