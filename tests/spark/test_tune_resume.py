"""`deepspark tune` as a user runs it (own process, local[1]), killed mid-search, then resumed from the journal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import optuna
import pytest

from deepspark.config import Adam, Dense, InputType, NetworkConfig, Output
from deepspark.tune import Choice, IntRange, LogUniform, Search, SearchSettings, Space
from deepspark.tune.template import TemplateBuild

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

pytestmark = pytest.mark.slow


def _template() -> dict:
    conf = NetworkConfig(
        updater=Adam(learning_rate=0.01),
        input_type=InputType.feed_forward(6),
        layers=(Dense(n_out=4, activation="relu"), Output(n_out=3)),
    )
    data = conf.to_dict()
    data["updater"]["learning_rate"] = {"$param": "lr"}
    data["layers"] = [
        {"$repeat": "layers", "item": {**data["layers"][0], "n_out": {"$param": "units"}}},
        data["layers"][1],
    ]
    return data


def _study(journal: Path) -> optuna.Study:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return optuna.load_study(study_name="deepspark-search", storage=JournalStorage(JournalFileBackend(str(journal))))


def test_cli_search_killed_mid_search_resumes_and_runs_only_the_remaining_trials(
    spark: SparkSession, tmp_path: Path
) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 6)).astype(np.float32)
    y = ((x[:, 0] + x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 0.8)).astype(np.int64)
    pdf = __import__("pandas").DataFrame({"features": list(x), "label": y})
    train, val = spark.createDataFrame(pdf.iloc[:2500]), spark.createDataFrame(pdf.iloc[2500:])
    train.write.parquet(str(tmp_path / "train.parquet"))
    val.write.parquet(str(tmp_path / "val.parquet"))
    space = Space.of({"lr": LogUniform(1e-3, 1e-1), "units": Choice([4, 8]), "layers": IntRange(1, 2)})
    settings = SearchSettings(
        metric="accuracy", sampler="random", pruner="none", max_trials=6, max_epochs=3, parallelism=1, seed=5
    )
    config = tmp_path / "search.json"
    config.write_text(json.dumps({"space": space.to_dict(), "network": _template(), "search": settings.to_dict()}))
    journal = tmp_path / "s.journal"
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable)
    cmd = [
        sys.executable,
        "-m",
        "deepspark.cli",
        "tune",
        "--config",
        str(config),
        "--data",
        str(tmp_path / "train.parquet"),
        "--validation",
        str(tmp_path / "val.parquet"),
        "--master",
        "local[1]",
        "--storage",
        str(journal),
    ]
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    deadline = time.monotonic() + 300
    done_before: dict[int, float] = {}
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if journal.exists():
                trials = _study(journal).get_trials(deepcopy=False)
                done_before = {t.number: t.value for t in trials if t.state.name == "COMPLETE"}
                if len(done_before) >= 2 and any(t.state.name == "RUNNING" for t in trials):
                    break
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and its JVM, as a crash would
        _, err = proc.communicate(timeout=60)
    assert 2 <= len(done_before) < 6, f"the search was not caught mid-way: {done_before}; stderr: {err[-2000:]}"
    assert "trials |" in err  # the progress bar
    killed = [t for t in _study(journal).get_trials(deepcopy=False) if t.state.name == "RUNNING"]
    assert killed, "a trial should have been running when the driver died"

    result = Search(
        spark,
        TemplateBuild(_template()),
        space,
        storage=journal,
        **{k: v for k, v in settings.to_dict().items() if k != "type"},
    ).fit(spark.read.parquet(str(tmp_path / "train.parquet")), spark.read.parquet(str(tmp_path / "val.parquet")))
    trials = result.trials()
    counted = [t for t in trials if t.state.is_finished() and "interrupted" not in t.user_attrs]
    assert len(counted) == 6  # max_trials, across both drivers
    for number, value in done_before.items():  # finished trials were kept, not run again
        assert trials[number].state.name == "COMPLETE" and trials[number].value == value
    rerun = [t for t in trials if t.number > max(done_before) and t.params == killed[0].params]
    assert trials[killed[0].number].user_attrs["interrupted"] and rerun  # the interrupted trial was queued again
    assert result.archive(result.best_trial_number() or 0).exists()
