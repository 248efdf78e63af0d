"""Killing an executor JVM mid-fit on a real multi-process cluster: training completes through task retry."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from typing import TYPE_CHECKING

import numpy as np

from deepspark.config import Adam, Dense, InputType, NetworkConfig, Output
from deepspark.spark import ParameterAveraging, SparkNetwork

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def _conf() -> NetworkConfig:
    return NetworkConfig(
        seed=7,
        updater=Adam(learning_rate=5e-3),
        input_type=InputType.feed_forward(20),
        layers=(Dense(n_out=64, activation="relu"), Output(n_out=4)),
    )


def _frame(spark: SparkSession, n: int) -> tuple[DataFrame, np.ndarray, np.ndarray]:
    import pandas as pd

    rng = np.random.default_rng(7)
    x = rng.normal(size=(n, 20)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) * 2 + (x[:, 1] > 0)
    pdf = pd.DataFrame({"id": np.arange(n), "features": list(x.astype(np.float64)), "label": y})
    return spark.createDataFrame(pdf).repartition(2), x, y


def _executor_pids(app_id: str) -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True).stdout
    return [
        int(line.split()[0]) for line in out.splitlines() if "CoarseGrainedExecutorBackend" in line and app_id in line
    ]


def _kill_one_executor_when_round_runs(spark: SparkSession, stop: threading.Event, killed: list[int]) -> None:
    """Poll Spark's status tracker; once the averaging job of round >= 2 has running tasks, SIGKILL one executor."""
    tracker = spark.sparkContext.statusTracker()
    app_id = spark.sparkContext.applicationId
    jobs_seen: set[int] = set()
    deadline = time.monotonic() + 300
    while not stop.is_set() and time.monotonic() < deadline:
        for stage_id in tracker.getActiveStageIds():
            info = tracker.getStageInfo(stage_id)
            if info is None or info.numActiveTasks == 0:
                continue
            jobs_seen.add(stage_id)
            if len(jobs_seen) >= 4:
                pids = _executor_pids(app_id)
                if pids:
                    os.kill(pids[0], signal.SIGKILL)
                    killed.append(pids[0])
                    return
        stop.wait(0.005)


def test_cluster_fit_survives_killed_executor(cluster_spark: SparkSession) -> None:
    df, x, y = _frame(cluster_spark, 3000)
    df = df.persist()
    master = ParameterAveraging(
        num_workers=2, batch_size_per_worker=32, averaging_frequency=20, collect_training_stats=True, seed=7
    )
    baseline = SparkNetwork(cluster_spark, _conf(), master).fit(df, epochs=2)
    base_acc = baseline.evaluate(x, y).accuracy()

    stop, killed = threading.Event(), []
    killer = threading.Thread(target=_kill_one_executor_when_round_runs, args=(cluster_spark, stop, killed))
    killer.start()
    faulty = SparkNetwork(cluster_spark, _conf(), master)
    try:
        net = faulty.fit(df, epochs=2)
    finally:
        stop.set()
        killer.join()
    assert killed, "no executor was killed: the fault was not injected"
    acc = net.evaluate(x, y).accuracy()
    assert abs(acc - base_acc) <= 0.01, (acc, base_acc)
    stats = faulty.training_stats()
    retried = stats.retried_tasks()
    assert retried, "the killed executor's task should show up as a retried attempt in the stats"
    assert all(t.attempt >= 1 for t in retried)
