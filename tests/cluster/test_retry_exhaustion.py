"""Killing every attempt of a fit's barrier stage: once ``spark.stage.maxConsecutiveAttempts`` is used up the fit
stops with a ``DistributedTrainingError`` that names the cause (the lost executor) and the setting."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

from deepspark.config import Adam, Dense, InputType, NetworkConfig, Output
from deepspark.errors import DistributedTrainingError
from deepspark.spark import GradientSharing, ParameterAveraging, SparkNetwork, TrainingMaster
from deepspark.spark._averaging import JOB_GROUP as AVERAGING_GROUP
from deepspark.spark._sharing import JOB_GROUP as SHARING_GROUP

from .faults import ExecutorKiller, stage_attempts

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

pytestmark = pytest.mark.cluster

ATTEMPTS = 2


def _conf() -> NetworkConfig:
    return NetworkConfig(
        seed=3,
        updater=Adam(learning_rate=1e-3),
        input_type=InputType.feed_forward(20),
        layers=(Dense(n_out=256, activation="relu"), Dense(n_out=256, activation="relu"), Output(n_out=4)),
    )


def _frame(spark: SparkSession, n: int) -> DataFrame:
    import pandas as pd

    rng = np.random.default_rng(3)
    x = rng.normal(size=(n, 20))
    y = (x[:, 0] > 0).astype(np.int64) * 2 + (x[:, 1] > 0)
    return spark.createDataFrame(pd.DataFrame({"features": list(x), "label": y})).repartition(2)


@pytest.mark.parametrize(
    ("master", "group"),
    [
        (ParameterAveraging(num_workers=2, batch_size_per_worker=16, averaging_frequency=5, collective_timeout=20.0),
         AVERAGING_GROUP),
        (GradientSharing(num_workers=2, batch_size_per_worker=16, collective_timeout=20.0), SHARING_GROUP),
    ],
    ids=["parameter_averaging", "gradient_sharing"],
)
def test_cluster_fit_every_attempt_killed_raises_distributed_training_error_naming_the_lost_executor(
    cluster_spark: SparkSession, master: TrainingMaster, group: str
) -> None:
    df = _frame(cluster_spark, 4000).persist()
    previous = stage_attempts(cluster_spark, ATTEMPTS)
    try:
        # 40 epochs cannot finish between two kills: every launch of the stage dies before it ends
        with ExecutorKiller(cluster_spark, group, every_job=True) as killer, pytest.raises(
            DistributedTrainingError
        ) as info:
            SparkNetwork(cluster_spark, _conf(), master).fit(df, epochs=40)
    finally:
        stage_attempts(cluster_spark, int(previous) if previous is not None else None)
        df.unpersist()
    message = str(info.value)
    print(f"{type(master).__name__}: {len(killer.kills)} executors killed; the error: {message}")
    assert len(killer.kills) >= ATTEMPTS, killer.kills
    assert f"failed {ATTEMPTS} times in a row" in message
    assert f"spark.stage.maxConsecutiveAttempts = {ATTEMPTS}" in message
    assert "executor" in message.lower() and "lost" in message.lower(), message  # the cause, not only the count
