"""local_spark: a working local session whose Python workers run this venv's interpreter with Arrow."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pandas as pd
import pyarrow as pa
import pytest
from pyspark.sql import SparkSession
from pyspark.sql.functions import pandas_udf

from deepspark.spark import local_spark
from deepspark.spark.session import default_spark_conf


def _worker_environment(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    import sys

    import pyarrow

    rows = sum(batch.num_rows for batch in batches)
    yield pa.RecordBatch.from_pydict(
        {"prefix": [sys.prefix], "pyarrow": [pyarrow.__version__], "rows": [rows]}
    )


def test_local_spark_map_in_arrow_runs_workers_on_this_venv(spark: SparkSession) -> None:
    df = spark.range(0, 100, numPartitions=2)
    schema = "prefix string, pyarrow string, rows long"
    result = df.mapInArrow(_worker_environment, schema).collect()
    assert len(result) == 2
    assert {row.prefix for row in result} == {sys.prefix}
    assert {row.pyarrow for row in result} == {pa.__version__}
    assert sum(row.rows for row in result) == 100


def test_local_spark_pandas_udf_computes_per_batch(spark: SparkSession) -> None:
    @pandas_udf("long")  # type: ignore[call-overload]
    def doubled(values: pd.Series) -> pd.Series:
        return values * 2

    total = spark.range(0, 1000, numPartitions=2).select(doubled("id").alias("d")).groupBy().sum("d").first()
    assert total is not None
    assert total[0] == 2 * sum(range(1000))


def test_local_spark_session_has_loopback_quiet_settings(spark: SparkSession) -> None:
    conf = spark.sparkContext.getConf()
    assert spark.sparkContext.master == "local[2]"
    assert conf.get("spark.driver.host") == "127.0.0.1"
    assert conf.get("spark.driver.bindAddress") == "127.0.0.1"
    assert conf.get("spark.ui.showConsoleProgress") == "false"
    assert spark.sparkContext.uiWebUrl is None
    assert spark.conf.get("spark.sql.execution.arrow.pyspark.enabled") == "true"
    assert spark.conf.get("spark.sql.shuffle.partitions") == "2"
    assert conf.get("spark.scheduler.barrier.maxConcurrentTasksCheck.interval") == "1s"


def test_local_spark_driver_jvm_runs_the_quiet_log_configuration(spark: SparkSession) -> None:
    options = spark.sparkContext.getConf().get("spark.driver.extraJavaOptions") or ""
    assert "-Dlog4j2.configurationFile=file:" in options and "deepspark-log4j2-" in options
    log_manager = spark.sparkContext._jvm.org.apache.logging.log4j.LogManager  # type: ignore[union-attr]
    # only the quiet configuration sets these two: duplicated task traces and startup chatter are off
    assert str(log_manager.getLogger("org.apache.spark.scheduler.TaskSetManager").getLevel()) == "ERROR"
    assert str(log_manager.getLogger("org.apache.hadoop.util.NativeCodeLoader").getLevel()) == "ERROR"


def test_local_spark_called_again_returns_running_session(spark: SparkSession) -> None:
    again = local_spark("local[2]", conf={"spark.sql.shuffle.partitions": "2"})
    assert again.sparkContext is spark.sparkContext
    assert again.range(5).count() == 5


@pytest.mark.parametrize(
    ("master", "partitions"),
    [("local", "1"), ("local[3]", "3"), ("local[2,3]", "2"), ("local-cluster[2,1,1024]", "2")],
)
def test_default_spark_conf_local_master_sets_shuffle_partitions_to_slots(master: str, partitions: str) -> None:
    assert default_spark_conf(master)["spark.sql.shuffle.partitions"] == partitions


def test_default_spark_conf_cluster_master_keeps_spark_shuffle_default() -> None:
    conf = default_spark_conf("spark://127.0.0.1:7077", ui=True)
    assert "spark.sql.shuffle.partitions" not in conf
    assert conf["spark.ui.enabled"] == "true"
