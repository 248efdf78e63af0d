"""Distributed inference on Spark: predict, evaluate, score and score_examples equal their single-machine results."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pytest
import torch

from deepspark.config import Dense, InputType, NetworkConfig, Output
from deepspark.data import Standardize
from deepspark.errors import DataError
from deepspark.eval import Evaluation
from deepspark.nn import Network
from deepspark.nn.functional import per_example_loss
from deepspark.spark import _inference, typed_errors

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

N_FEATURES = 6
N_CLASSES = 3
N_ROWS = 240


def _network(seed: int, n_out: int, activation: str, loss: str) -> Network:
    conf = NetworkConfig(
        seed=seed,
        input_type=InputType.feed_forward(N_FEATURES),
        layers=(Dense(n_out=16, activation="tanh"), Output(n_out=n_out, activation=activation, loss=loss)),
    )
    return Network(conf)


def _classifier(seed: int) -> Network:
    return _network(seed, N_CLASSES, "softmax", "mcxent")


def _data(seed: int, n: int = N_ROWS) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, N_FEATURES)).astype(np.float32) * 2
    y = rng.integers(0, N_CLASSES, size=n)
    return x, y


def _array_frame(spark: SparkSession, x: np.ndarray, y: np.ndarray, partitions: int = 3) -> DataFrame:
    """id, features array<float>, label int, tag string — spread over ``partitions`` partitions."""
    n = len(x)
    features = pa.ListArray.from_arrays(
        pa.array(np.arange(0, n * N_FEATURES + 1, N_FEATURES, dtype=np.int32)), pa.array(x.reshape(-1))
    )
    table = pa.table(
        {
            "id": pa.array(np.arange(n, dtype=np.int64)),
            "features": features,
            "label": pa.array(y.astype(np.int32)),
            "tag": pa.array([f"row{i}" for i in range(n)]),
        }
    )
    return spark.createDataFrame(table).repartition(partitions)


def _sorted_by_id(df: DataFrame) -> pa.Table:
    return df.toArrow().sort_by("id")


def _matrix(column: Any) -> np.ndarray:
    return np.asarray(column.combine_chunks().flatten().to_numpy()).reshape(len(column), -1)


def test_predict_classifier_array_features_matches_local_output(spark: SparkSession, seed: int) -> None:
    x, y = _data(seed)
    net = _classifier(seed)
    df = _array_frame(spark, x, y).cache()  # cached: both reads below see the same rows in the same partitions

    out = _inference.predict(df, net, "features", probabilities_col="probability")

    assert out.columns == [*df.columns, "prediction", "probability"]
    assert dict(out.dtypes)["prediction"] == "double"
    assert dict(out.dtypes)["probability"] == "array<float>"
    unsorted = out.toArrow()
    # Row order within partitions is kept (mapInArrow passes each batch through whole).
    assert unsorted["id"].to_pylist() == df.select("id").toArrow()["id"].to_pylist()
    assert df.join(out, on="id", how="left_anti").count() == 0
    table = unsorted.sort_by("id")
    assert table.num_rows == N_ROWS
    assert table["tag"].to_pylist() == [f"row{i}" for i in range(N_ROWS)]
    expected = np.asarray(net.output(x))
    np.testing.assert_allclose(_matrix(table["probability"]), expected, atol=1e-6, rtol=0)
    np.testing.assert_array_equal(table["prediction"].to_numpy(), np.argmax(expected, axis=1).astype(np.float64))
    df.unpersist()


def test_predict_regressor_vector_features_with_normalizer_matches_local_output(spark: SparkSession, seed: int) -> None:
    from pyspark.ml.linalg import Vectors, VectorUDT
    from pyspark.sql import types as T

    x, _ = _data(seed, n=60)
    x[::7, 1:] = 0.0  # some rows travel as sparse vectors
    net = _network(seed, 2, "identity", "mse")
    net.normalizer = Standardize().fit(x)
    scalar_net = _network(seed + 1, 1, "identity", "mse")
    rows = [
        (i, Vectors.sparse(N_FEATURES, {0: float(r[0])}) if i % 7 == 0 else Vectors.dense(r.tolist()))
        for i, r in enumerate(x)
    ]
    schema = T.StructType([T.StructField("id", T.LongType()), T.StructField("features", VectorUDT())])
    df = spark.createDataFrame(rows, schema).repartition(2)

    out = _inference.predict(df, net, "features", output_col="y_hat")
    scalar = _inference.predict(df, scalar_net, "features")

    assert out.columns == ["id", "features", "y_hat"]
    assert dict(out.dtypes)["y_hat"] == "array<float>"
    assert dict(scalar.dtypes)["prediction"] == "double"
    table, scalar_table = _sorted_by_id(out), _sorted_by_id(scalar)
    expected = np.asarray(net.output(net.normalizer.transform(x)))
    np.testing.assert_allclose(_matrix(table["y_hat"]), expected, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(
        scalar_table["prediction"].to_numpy(), np.asarray(scalar_net.output(x))[:, 0], atol=1e-6, rtol=0
    )


def test_evaluate_three_partitions_matches_local_evaluate(spark: SparkSession, seed: int) -> None:
    x, y = _data(seed)
    net = _classifier(seed)
    df = _array_frame(spark, x, y, partitions=3)
    assert df.rdd.getNumPartitions() == 3
    top2 = Evaluation(n_classes=N_CLASSES, top_n=2)

    default = _inference.evaluate(df, net, "features", "label", batch_size=50)[0]
    given = _inference.evaluate(df, net, "features", "label", evaluations=[top2])

    local = net.evaluate(x, y)
    assert default.num_examples() == N_ROWS
    assert default.accuracy() == local.accuracy()
    np.testing.assert_array_equal(default.confusion_matrix(), local.confusion_matrix())
    assert given[0] is top2  # the given evaluations are filled, as Network.do_evaluation does
    local_top2 = Evaluation(n_classes=N_CLASSES, top_n=2)
    net.do_evaluation(x, y, local_top2)
    assert top2.top_n_accuracy() == local_top2.top_n_accuracy()


def test_score_and_score_examples_match_local(spark: SparkSession, seed: int) -> None:
    x, y = _data(seed)
    net = _classifier(seed)
    df = _array_frame(spark, x, y)

    total = _inference.score(df, net, "features", "label", batch_size=64)
    examples = _inference.score_examples(df, net, "features", "label", key_col="id", output_col="loss")

    assert total == pytest.approx(net.score(x, y), abs=1e-6)
    assert examples.columns == ["id", "loss"]
    table = _sorted_by_id(examples)
    assert table["id"].to_pylist() == list(range(N_ROWS))
    with torch.no_grad():
        preout, _ = net.model.forward_preouts([torch.from_numpy(x)], [None])[0]
        head = net.heads[0]
        expected = per_example_loss(head.loss, head.activation, preout, torch.from_numpy(y)).numpy()
    np.testing.assert_allclose(table["loss"].to_numpy(), expected, atol=1e-5, rtol=1e-5)


def test_bad_input_raises_data_error_on_the_driver(spark: SparkSession, seed: int) -> None:
    x, y = _data(seed, n=20)
    net = _classifier(seed)
    df = _array_frame(spark, x, y, partitions=1)

    with pytest.raises(DataError, match=r"'pixels' not found; available: \['id', 'features', 'label', 'tag'\]"):
        _inference.predict(df, net, "pixels")
    with pytest.raises(DataError, match="'nope' not found"):
        _inference.evaluate(df, net, "features", "nope")
    with pytest.raises(DataError, match=r"have 6 values per row but the network's input expects 4"):
        _inference.score(df, _wrong_width_network(seed), "features", "label")
    with pytest.raises(DataError, match="'tag' already exists"):
        _inference.predict(df, net, "features", output_col="tag")
    for call in (
        lambda: _inference.predict(df, net, "features", batch_size=0),
        lambda: _inference.evaluate(df, net, "features", "label", batch_size=2.5),  # type: ignore[arg-type]
        lambda: _inference.score(df, net, "features", "label", batch_size=True),
    ):
        with pytest.raises(DataError, match=r"batch_size: expected a positive int, or None to size it to the network"):
            call()


def _wrong_width_network(seed: int) -> Network:
    conf = NetworkConfig(
        seed=seed, input_type=InputType.feed_forward(4), layers=(Output(n_out=N_CLASSES, activation="softmax"),)
    )
    return Network(conf)


def test_nan_features_raise_data_error_from_the_executors(spark: SparkSession, seed: int) -> None:
    x, y = _data(seed, n=20)
    x[13, 2] = np.nan
    net = _classifier(seed)
    df = _array_frame(spark, x, y, partitions=1)

    with pytest.raises(DataError, match="NaN"):
        _inference.evaluate(df, net, "features", "label")
    # predict is lazy: the failure comes at the action, and typed_errors maps it the same way ...
    lazy = _inference.predict(df, net, "features")
    with pytest.raises(DataError, match=r"row \d+ of partition 0 has NaN"), typed_errors("predict"):
        lazy.collect()
    # ... or, with the check asked for, at the call, before any Python worker runs
    with pytest.raises(DataError, match=r"features column 'features': 1 rows hold NaN or infinite values"):
        _inference.predict(df, net, "features", check_input=True)
