"""A standalone Worker JVM (not just an executor) killed mid-fit: its executor exits with it, a supervisor starts
the worker again, and the fit completes from the last epoch the driver holds."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np
import pytest

from deepspark.config import Adam, Dense, InputType, NetworkConfig, Output
from deepspark.spark import GradientSharing, ParameterAveraging, SparkNetwork, TrainingMaster
from deepspark.spark._averaging import JOB_GROUP as AVERAGING_GROUP
from deepspark.spark._sharing import JOB_GROUP as SHARING_GROUP

from .faults import ExecutorKiller
from .standalone import StandaloneCluster

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

pytestmark = pytest.mark.cluster

EPOCHS = 3


def _conf() -> NetworkConfig:
    return NetworkConfig(
        seed=5,
        updater=Adam(learning_rate=5e-3),
        input_type=InputType.feed_forward(20),
        layers=(Dense(n_out=256, activation="relu"), Dense(n_out=256, activation="relu"), Output(n_out=4)),
    )


def _data(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 20)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64) * 2 + (x[:, 1] > 0)


def _frame(spark: SparkSession, x: np.ndarray, y: np.ndarray) -> DataFrame:
    import pandas as pd

    return spark.createDataFrame(pd.DataFrame({"features": list(x.astype(np.float64)), "label": y})).repartition(2)


@pytest.mark.parametrize(
    ("master", "group"),
    [
        (ParameterAveraging(num_workers=2, batch_size_per_worker=32, averaging_frequency=10,
                            collect_training_stats=True, collective_timeout=20.0), AVERAGING_GROUP),
        (GradientSharing(num_workers=2, batch_size_per_worker=32, collect_training_stats=True,
                         collective_timeout=20.0), SHARING_GROUP),
    ],
    ids=["parameter_averaging", "gradient_sharing"],
)
def test_cluster_worker_killed_mid_fit_restarted_fit_completes(
    cluster_spark: SparkSession, standalone_cluster: StandaloneCluster, master: TrainingMaster, group: str
) -> None:
    spark = cluster_spark
    x, y = _data(5, 6000)
    x_test, y_test = _data(6, 1000)
    df = _frame(spark, x, y).persist()
    app_id = spark.sparkContext.applicationId
    killed: list[int] = []

    def kill_the_worker_then_restart_it(executor_pid: int) -> None:
        """The busy executor's worker dies (SIGKILL of its JVM alone); a supervisor restarts it."""
        worker = next(e.worker for e in standalone_cluster.executors(app_id) if e.pid == executor_pid)
        assert worker is not None
        killed.append(standalone_cluster.kill_worker(worker))
        standalone_cluster.restart_worker(worker)

    spark_net = SparkNetwork(spark, _conf(), master)
    start = time.monotonic()
    try:
        with ExecutorKiller(spark, group, fault=kill_the_worker_then_restart_it) as killer:
            net = spark_net.fit(df, epochs=EPOCHS)
    finally:
        df.unpersist()
    seconds = time.monotonic() - start
    assert killer.kills and killed, "no worker was killed: the fault was not injected"
    retries = spark_net.training_stats().events(phase="retry")
    accuracy = net.evaluate(x_test, y_test).accuracy()
    print(
        f"{type(master).__name__}: worker pid {killed[0]} killed; fit {seconds:.1f} s, accuracy {accuracy:.4f}, "
        f"stage retries {[(e.attempt, e.detail) for e in retries]}"
    )
    assert net.epoch == EPOCHS
    assert retries and all(e.attempt >= 1 for e in retries), "the failed stage attempt is not in the stats"
    assert accuracy > 0.85, accuracy  # chance is 0.25; a fault-free fit reaches ~0.95
