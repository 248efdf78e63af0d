"""Both training masters on the standalone cluster: executors in separate JVMs, on the shipped environment."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

from deepspark.config import Adam, Dense, InputType, NetworkConfig, Output
from deepspark.spark import GradientSharing, ParameterAveraging, SparkNetwork, TrainingMaster

from .standalone import StandaloneCluster

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

pytestmark = pytest.mark.cluster

ROWS = 2000


def _quadrants(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Four classes by the signs of the first two of 10 features: easy for an MLP, impossible by chance."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 10)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) * 2 + (x[:, 1] > 0)
    return x, y


def _frame(spark: SparkSession, x: np.ndarray, y: np.ndarray) -> DataFrame:
    import pandas as pd

    pdf = pd.DataFrame({"features": list(x.astype(np.float64)), "label": y})
    return spark.createDataFrame(pdf).repartition(2)


def _conf(seed: int) -> NetworkConfig:
    return NetworkConfig(
        seed=seed,
        updater=Adam(learning_rate=1e-2),
        input_type=InputType.feed_forward(10),
        layers=(Dense(n_out=32, activation="relu"), Output(n_out=4)),
    )


@pytest.mark.parametrize(
    "master",
    [
        ParameterAveraging(num_workers=2, batch_size_per_worker=32, averaging_frequency=5, collect_training_stats=True),
        GradientSharing(num_workers=2, batch_size_per_worker=32, collect_training_stats=True, collective_timeout=60.0),
    ],
    ids=["parameter_averaging", "gradient_sharing"],
)
def test_cluster_master_trains_on_two_executors(
    master: TrainingMaster, healthy_cluster_spark: SparkSession, standalone_cluster: StandaloneCluster, seed: int
) -> None:
    spark = healthy_cluster_spark
    x, y = _quadrants(seed, ROWS)
    x_test, y_test = _quadrants(seed + 1, 500)
    spark_net = SparkNetwork(spark, _conf(seed), master)
    net = spark_net.fit(_frame(spark, x, y), epochs=4)
    accuracy = net.evaluate(x_test, y_test).accuracy()
    print(f"{type(master).__name__} on the standalone cluster: held-out accuracy {accuracy:.3f}")
    assert accuracy > 0.75, f"seed {seed}: accuracy {accuracy:.3f}"  # chance is 0.25
    # the work ran on both executors, each a separate JVM under its own worker
    workers = spark_net.training_stats().workers()
    assert len(workers) == 2, workers
    executors = standalone_cluster.executors(spark.sparkContext.applicationId)
    assert sorted(e.worker for e in executors if e.worker is not None) == [0, 1]
