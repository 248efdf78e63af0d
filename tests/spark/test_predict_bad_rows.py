"""predict and Spark ML transform on bad rows (nulls, ragged arrays, NaN): a DataError from the call itself, naming
the column, the problem, the row count and the fix, instead of a PythonException with a worker traceback."""

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
        spark_net.predict(_rows(spark, rows))
    message = str(info.value)
    assert message.startswith("features column 'features': ")
    assert phrase in message
    assert "check_input=False skips this check" in message
    assert "Traceback" not in message and "PythonException" not in message


def test_spark_network_predict_several_problems_named_in_one_error(spark: SparkSession, seed: int) -> None:
    rows: list[list[float | None] | None] = [GOOD, None, [0.1, 0.2], [math.nan, 0.0, 0.0]]
    with pytest.raises(DataError) as info:
        SparkNetwork(spark, _net(seed).config).predict(_rows(spark, rows))  # type: ignore[arg-type]
    message = str(info.value)
    assert "1 of 4 rows are null" in message
    assert "1 rows do not hold the 3 values" in message and "sizes seen: 2 to 3" in message
    assert "1 rows hold NaN or infinite values" in message


def test_spark_network_predict_listed_columns_with_nulls_raise_data_error(spark: SparkSession, seed: int) -> None:
    df = spark.createDataFrame([(1.0, 2.0, 3.0), (1.0, None, 3.0)], "a double, b double, c double")
    with pytest.raises(DataError, match=r"features column '\[a, b, c\]': 1 rows hold null values inside the features"):
        SparkNetwork(spark, _net(seed).config).predict(df, features_col=["a", "b", "c"])  # type: ignore[arg-type]


def test_spark_network_predict_clean_rows_pass_the_check(spark: SparkSession, seed: int) -> None:
    out = SparkNetwork(spark, _net(seed).config).predict(_rows(spark, [GOOD, [1.0, -1.0, 0.5]]))  # type: ignore[arg-type]
    assert [r["prediction"] in (0.0, 1.0) for r in out.collect()] == [True, True]


def test_spark_network_predict_without_check_fails_at_the_action_typed_inside_typed_errors(
    spark: SparkSession, seed: int
) -> None:
    df = _rows(spark, [GOOD, [0.1, math.nan, 0.3]])
    lazy = SparkNetwork(spark, _net(seed).config).predict(df, check_input=False)  # type: ignore[arg-type]
    with pytest.raises(DataError, match="has NaN"), typed_errors("predict"):
        lazy.collect()


@pytest.mark.parametrize("problem", ["null_row", "ragged", "nan"])
def test_deepspark_model_transform_bad_rows_raise_data_error_at_the_call(
    spark: SparkSession, seed: int, problem: str
) -> None:
    rows, phrase = BAD_ROWS[problem]
    model = DeepSparkModel(_net(seed))
    with pytest.raises(DataError) as info:
        model.transform(_rows(spark, rows))
    message = str(info.value)
    assert message.startswith("featuresCol column 'features': ")
    assert phrase in message and "setCheckInput(False) skips this check" in message


def test_deepspark_model_transform_check_off_is_lazy(spark: SparkSession, seed: int) -> None:
    model = DeepSparkModel(_net(seed)).setCheckInput(False)
    assert model.getCheckInput() is False
    lazy = model.transform(_rows(spark, [GOOD, None]))  # no job ran: the bad row fails only at the action
    with pytest.raises(DataError), typed_errors("transform"):
        lazy.collect()
