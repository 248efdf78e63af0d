"""``LabeledData.to_spark``: one flat array<float> row per example through Arrow, labels kept, order kept."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from deepspark.config import InputType
from deepspark.datasets import LabeledData

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def test_labeled_data_to_spark_rows_equal_arrays(spark: SparkSession, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.random((25, 3, 4, 2)).astype(np.float32)
    y = rng.integers(0, 5, 25)
    data = LabeledData(x, y, tuple("abcde"), InputType.convolutional(4, 2, 3))
    df = data.to_spark(spark, features_col="pixels", label_col="target", num_partitions=3)
    assert df.rdd.getNumPartitions() == 3
    assert dict(df.dtypes) == {"pixels": "array<float>", "target": "bigint"}
    rows = df.collect()
    got = {np.asarray(r["pixels"], np.float32).tobytes(): r["target"] for r in rows}  # float32 values, exactly
    assert len(rows) == 25
    for features, label in zip(x.reshape(25, -1), y, strict=True):
        assert got[features.tobytes()] == label
