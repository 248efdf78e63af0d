"""Killing an executor JVM mid-fit on a real multi-process cluster: training completes through task retry."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import TYPE_CHECKING

import numpy as np
import pytest

from deepspark.config import Adam, Dense, InputType, NetworkConfig, Output
from deepspark.spark import GradientSharing, ParameterAveraging, SparkNetwork
from deepspark.spark._averaging import JOB_GROUP
from deepspark.spark._sharing import JOB_GROUP as SHARING_JOB_GROUP

from .faults import cpu_ticks_below, executor_pids

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

pytestmark = pytest.mark.cluster


def _conf() -> NetworkConfig:
    return NetworkConfig(
        seed=7,
        updater=Adam(learning_rate=5e-3),
        input_type=InputType.feed_forward(20),
        layers=(Dense(n_out=512, activation="relu"), Dense(n_out=512, activation="relu"), Output(n_out=4)),
    )


def _frame(spark: SparkSession, n: int) -> tuple[DataFrame, np.ndarray, np.ndarray]:
    import pandas as pd

    rng = np.random.default_rng(7)
    x = rng.normal(size=(n, 20)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) * 2 + (x[:, 1] > 0)
    pdf = pd.DataFrame({"id": np.arange(n), "features": list(x.astype(np.float64)), "label": y})
    return spark.createDataFrame(pdf).repartition(2), x, y


def _kill_busy_executor_during_a_round(
    spark: SparkSession,
    stop: threading.Event,
    killed: list[int],
    jobs_before: set[int],
    group: str = JOB_GROUP,
    killed_at: list[float] | None = None,
) -> None:
    """Once a round of this fit runs, SIGKILL the executor whose Python workers are computing right now."""
    tracker = spark.sparkContext.statusTracker()
    app_id = spark.sparkContext.applicationId
    deadline = time.monotonic() + 300
    while not stop.is_set() and time.monotonic() < deadline:
        jobs = sorted(set(tracker.getJobIdsForGroup(group)) - jobs_before)
        infos = [tracker.getJobInfo(j) for j in jobs]  # any job of the fit: a short one may follow the long one
        stages = {s for info in infos if info is not None for s in info.stageIds}
        # An active stage of the fit (a barrier stage reports numActiveTasks = 0 while its tasks run).
        if stages & set(tracker.getActiveStageIds()):
            pids = executor_pids(app_id)
            first = {p: cpu_ticks_below(p) for p in pids}
            stop.wait(0.05)
            busy = [p for p in pids if cpu_ticks_below(p) > first[p]]
            if busy:
                os.kill(busy[0], signal.SIGKILL)
                killed.append(busy[0])
                if killed_at is not None:
                    killed_at.append(time.monotonic())
                return
        stop.wait(0.002)


@pytest.mark.parametrize("transport", ["spark", "collective"])
def test_cluster_fit_survives_killed_executor(cluster_spark: SparkSession, transport: str) -> None:
    df, x, y = _frame(cluster_spark, 6000)
    df = df.persist()
    master = ParameterAveraging(
        num_workers=2,
        batch_size_per_worker=32,
        averaging_frequency=50,
        collect_training_stats=True,
        seed=7,
        transport=transport,  # type: ignore[arg-type]
        collective_timeout=20.0,
    )
    baseline = SparkNetwork(cluster_spark, _conf(), master).fit(df, epochs=2)
    base_acc = baseline.evaluate(x, y).accuracy()

    # A kill can land between two tasks by bad luck (then Spark just recomputes the lost cached blocks,
    # with no failed task to show); inject the fault up to three times until a task really fails.
    for _ in range(3):
        stop, killed = threading.Event(), []
        jobs_before = set(cluster_spark.sparkContext.statusTracker().getJobIdsForGroup(JOB_GROUP))
        killer = threading.Thread(
            target=_kill_busy_executor_during_a_round, args=(cluster_spark, stop, killed, jobs_before)
        )
        killer.start()
        faulty = SparkNetwork(cluster_spark, _conf(), master)
        try:
            net = faulty.fit(df, epochs=2)
        finally:
            stop.set()
            killer.join()
        assert killed, "no executor was killed: the fault was not injected"
        acc = net.evaluate(x, y).accuracy()
        print(f"fault-free accuracy {base_acc:.4f}, with a killed executor {acc:.4f}")
        assert abs(acc - base_acc) <= 0.01, (acc, base_acc)
        stats = faulty.training_stats()
        # The Spark transport retries the lost task; the collective one relaunches the barrier stage from the
        # driver's last epoch state, recorded as a driver "retry" event.
        retried = stats.retried_tasks() if transport == "spark" else stats.events(phase="retry")
        if retried:
            break
    assert retried, "the killed executor's task or stage should show up as a retried attempt in the stats"
    assert all(t.attempt >= 1 for t in retried)
    print(f"retried attempts in the stats: {retried}")


def test_cluster_gradient_sharing_survives_killed_executor_through_stage_retry(cluster_spark: SparkSession) -> None:
    df, x, y = _frame(cluster_spark, 6000)
    df = df.persist()
    master = GradientSharing(
        num_workers=2, batch_size_per_worker=32, collect_training_stats=True, seed=7, collective_timeout=20.0
    )
    start = time.monotonic()
    baseline = SparkNetwork(cluster_spark, _conf(), master).fit(df, epochs=3)
    clean_s = time.monotonic() - start
    base_acc = baseline.evaluate(x, y).accuracy()

    stop, killed, killed_at = threading.Event(), [], []
    jobs_before = set(cluster_spark.sparkContext.statusTracker().getJobIdsForGroup(SHARING_JOB_GROUP))
    killer = threading.Thread(
        target=_kill_busy_executor_during_a_round,
        args=(cluster_spark, stop, killed, jobs_before, SHARING_JOB_GROUP, killed_at),
    )
    killer.start()
    faulty = SparkNetwork(cluster_spark, _conf(), master)
    start = time.monotonic()
    try:
        net = faulty.fit(df, epochs=3)
    finally:
        stop.set()
        killer.join()
    faulty_s = time.monotonic() - start
    assert killed, "no executor was killed: the fault was not injected"
    acc = net.evaluate(x, y).accuracy()
    retries = faulty.training_stats().events(phase="retry")
    print(
        f"gradient sharing: fault-free {clean_s:.1f} s, accuracy {base_acc:.4f}; with a killed executor "
        f"{faulty_s:.1f} s, accuracy {acc:.4f}; stage retries: {[(e.attempt, e.detail) for e in retries]}"
    )
    assert retries and all(e.attempt >= 1 for e in retries), "the failed stage attempt is not in the stats"
    assert net.epoch == 3
    assert abs(acc - base_acc) <= 0.02, (acc, base_acc)
    assert faulty_s - clean_s < 60, "recovering from the lost executor took over 60 s"
