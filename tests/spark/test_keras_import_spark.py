"""A Keras model imported with ``import_keras`` predicts and trains on Spark like any other network."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from deepspark.modelimport import import_keras
from deepspark.spark import ParameterAveraging, SparkNetwork

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def _keras_cnn(path: Path) -> Any:
    os.environ["KERAS_BACKEND"] = "torch"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import keras

        L = keras.layers
        keras.utils.set_random_seed(7)
        model = keras.Sequential(
            [
                keras.Input((6, 6, 2)),
                L.Conv2D(3, 3, padding="same", activation="relu"),
                L.MaxPooling2D(2),
                L.Flatten(),
                L.Dense(3, activation="softmax"),
            ]
        )
        model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
        model.save(path)
    return model


@pytest.mark.slow
def test_spark_imported_keras_cnn_predicts_like_keras_and_trains(
    spark: SparkSession, tmp_path: Path, seed: int
) -> None:
    import pandas as pd

    model = _keras_cnn(tmp_path / "cnn.keras")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((40, 6, 6, 2)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = model.predict(x, verbose=0)
    rows = pd.DataFrame({"id": np.arange(40), "features": list(x.reshape(40, -1).astype(np.float64)), "label": y})
    df = spark.createDataFrame(rows).repartition(2)
    spark_net = SparkNetwork(spark, import_keras(tmp_path / "cnn.keras"), ParameterAveraging(num_workers=2))
    got = spark_net.predict(df, probabilities_col="probability").orderBy("id").toPandas()
    np.testing.assert_allclose(np.stack(got["probability"].to_numpy()), expected, rtol=1e-5, atol=1e-5)
    assert (got["prediction"].to_numpy() == expected.argmax(axis=1)).all()
    before = spark_net.network.params()
    trained = spark_net.fit(df, epochs=1)
    assert np.isfinite(trained.params()).all() and not np.array_equal(before, trained.params())
