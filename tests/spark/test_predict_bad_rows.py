"""predict and Spark ML transform on bad rows (nulls, ragged arrays, NaN): lazy by default, the worker's DataError at
the action inside typed_errors(); with the check on, a DataError from the call itself, naming the column, the
problem, the row count and the fix, instead of a PythonException with a worker traceback."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pytest

from deepspark.config import Dense, InputType, NetworkConfig, Output
from deepspark.errors import DataError
from deepspark.ml import DeepSparkModel
from deepspark.nn import Network
from deepspark.spark import SparkNetwork, typed_errors

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

WIDTH = 3


def _net(seed: int) -> Network:
    conf = NetworkConfig(
        seed=seed,
        input_type=InputType.feed_forward(WIDTH),
        layers=(Dense(n_out=4, activation="tanh"), Output(n_out=2, activation="softmax", loss="mcxent")),
    )
    return Network(conf)


def _rows(spark: SparkSession, rows: list[list[float | None] | None]) -> DataFrame:
    return spark.createDataFrame([(i, r) for i, r in enumerate(rows)], "id long, features array<double>")


GOOD = [0.1, 0.2, 0.3]
BAD_ROWS = {
    "null_row": ([GOOD, None, GOOD, None], "2 of 4 rows are null: drop them (df.dropna(subset=['features']))"),
    "null_value": ([GOOD, [0.1, None, 0.3]], "1 rows hold null values inside the features"),
    "ragged": (
        [GOOD, [0.1, 0.2], GOOD, [0.1, 0.2, 0.3, 0.4]],
        "2 rows do not hold the 3 values the network's input expects (sizes seen: 2 to 4): "
        "filter them (F.size('features') == 3)",
    ),
    "nan": ([GOOD, [0.1, math.nan, 0.3], [math.inf, 0.0, 0.0]], "2 rows hold NaN or infinite values"),
}


@pytest.mark.parametrize("problem", sorted(BAD_ROWS))
def test_spark_network_predict_bad_rows_raise_data_error_at_the_call(
    spark: SparkSession, seed: int, problem: str
) -> None:
    rows, phrase = BAD_ROWS[problem]
    spark_net = SparkNetwork(spark, _net(seed).config)  # type: ignore[arg-type]
    with pytest.raises(DataError) as info:
        spark_net.predict(_rows(spark, rows), check_input=True)
    message = str(info.value)
    assert message.startswith("features column 'features': ")
    assert phrase in message
    assert "check_input=False skips this check" in message
    assert "Traceback" not in message and "PythonException" not in message


def test_spark_network_predict_several_problems_named_in_one_error(spark: SparkSession, seed: int) -> None:
    rows: list[list[float | None] | None] = [GOOD, None, [0.1, 0.2], [math.nan, 0.0, 0.0]]
    with pytest.raises(DataError) as info:
        SparkNetwork(spark, _net(seed).config).predict(_rows(spark, rows), check_input=True)  # type: ignore[arg-type]
    message = str(info.value)
    assert "1 of 4 rows are null" in message
    assert "1 rows do not hold the 3 values" in message and "sizes seen: 2 to 3" in message
    assert "1 rows hold NaN or infinite values" in message


def test_spark_network_predict_listed_columns_with_nulls_raise_data_error(spark: SparkSession, seed: int) -> None:
    df = spark.createDataFrame([(1.0, 2.0, 3.0), (1.0, None, 3.0)], "a double, b double, c double")
    with pytest.raises(DataError, match=r"features column '\[a, b, c\]': 1 rows hold null values inside the features"):
        SparkNetwork(spark, _net(seed).config).predict(df, features_col=["a", "b", "c"], check_input=True)  # type: ignore[arg-type]


def test_spark_network_predict_clean_rows_pass_the_check(spark: SparkSession, seed: int) -> None:
    out = SparkNetwork(spark, _net(seed).config).predict(  # type: ignore[arg-type]
        _rows(spark, [GOOD, [1.0, -1.0, 0.5]]), check_input=True
    )
    assert [r["prediction"] in (0.0, 1.0) for r in out.collect()] == [True, True]


def test_spark_network_predict_by_default_fails_at_the_action_typed_inside_typed_errors(
    spark: SparkSession, seed: int
) -> None:
    df = _rows(spark, [GOOD, [0.1, math.nan, 0.3]])
    lazy = SparkNetwork(spark, _net(seed).config).predict(df)  # type: ignore[arg-type]  # no job, no error yet
    with pytest.raises(DataError, match="has NaN"), typed_errors("predict"):
        lazy.collect()


@pytest.mark.parametrize("problem", ["null_row", "ragged", "nan"])
def test_deepspark_model_transform_bad_rows_raise_data_error_at_the_call(
    spark: SparkSession, seed: int, problem: str
) -> None:
    rows, phrase = BAD_ROWS[problem]
    model = DeepSparkModel(_net(seed)).setCheckInput(True)
    with pytest.raises(DataError) as info:
        model.transform(_rows(spark, rows))
    message = str(info.value)
    assert message.startswith("featuresCol column 'features': ")
    assert phrase in message and "setCheckInput(False) skips this check" in message


def test_deepspark_model_transform_is_lazy_by_default(spark: SparkSession, seed: int) -> None:
    model = DeepSparkModel(_net(seed))
    assert model.getCheckInput() is False
    lazy = model.transform(_rows(spark, [GOOD, None]))  # no job ran: the bad row fails only at the action
    with pytest.raises(DataError), typed_errors("transform"):
        lazy.collect()


def test_check_input_on_a_streaming_dataframe_is_refused_with_the_setting_to_use(
    spark: SparkSession, seed: int
) -> None:
    from deepspark.errors import ConfigError

    stream = spark.readStream.format("rate").load().selectExpr("array(CAST(value AS DOUBLE), 0.0D, 1.0D) AS features")
    spark_net = SparkNetwork(spark, _net(seed).config)  # type: ignore[arg-type]
    assert spark_net.predict(stream).isStreaming  # the default runs no job, so a stream works
    with pytest.raises(ConfigError, match=r"streaming DataFrame cannot be checked.*use check_input=False"):
        spark_net.predict(stream, check_input=True)
