"""DataFrame -> numpy through Arrow on local[2]: encodings, labels, balanced blocks, minibatch export, bad input."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pyspark.ml.linalg import Vectors, VectorUDT
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructField, StructType

from deepspark.data.dataframe import (
    ColumnSpec,
    blocks_to_arrays,
    dataframe_to_arrays,
    describe_columns,
    executor_error,
    resolve_columns,
    to_blocks,
)
from deepspark.data.export import export_minibatches, read_exported
from deepspark.errors import DataError, StorageError

WIDTH = 4
# Rows kept in each of 10 range partitions of ids [100p, 100p+100): skewed, with empty partitions.
SKEWED = [0, 3, 97, 1, 50, 0, 20, 7, 100, 13]


def _expected_row(ids: np.ndarray) -> np.ndarray:
    return ids[:, None] * np.array([1.0, -0.5, 0.25, 2.0]) + np.arange(WIDTH) / 8


def _skewed(spark: SparkSession) -> DataFrame:
    """10 partitions of SKEWED sizes; features _expected_row(id) as array<float>, label id % 3; global order = id."""
    keep = F.element_at(F.array(*[F.lit(s) for s in SKEWED]), (F.col("id") / 100).cast("int") + 1)
    coeffs = [1.0, -0.5, 0.25, 2.0]
    features = F.array(*[(F.col("id") * c + j / 8).cast("float") for j, c in enumerate(coeffs)])
    return (
        spark.range(0, 1000, numPartitions=10)
        .filter(F.col("id") % 100 < keep)
        .select("id", features.alias("features"), (F.col("id") % 3).alias("label"))
    )


def _skewed_ids() -> np.ndarray:
    return np.concatenate([np.arange(100 * p, 100 * p + s) for p, s in enumerate(SKEWED)])


def _partition_summary(rows: Iterator[Any], spec: ColumnSpec) -> Iterator[tuple[Any, ...]]:
    from pyspark import TaskContext

    rows = list(rows)
    x, y = blocks_to_arrays(rows, spec)
    workers = sorted({r["worker"] for r in rows})
    kinds = sorted({(type(r).__name__, type(r["x"]).__name__) for r in rows})
    yield TaskContext.get().partitionId(), workers, kinds, x.tolist(), None if y is None else y.tolist()


# --- encodings and labels -----------------------------------------------------------------------


def _encoding_frame(spark: SparkSession, encoding: str) -> tuple[DataFrame, np.ndarray]:
    rng = np.random.default_rng(7)
    x = np.where(rng.random((12, WIDTH)) < 0.5, rng.integers(-9, 9, (12, WIDTH)), 0).astype(np.float64)
    if encoding in ("array<float>", "array<double>"):
        df = spark.createDataFrame([(r.tolist(),) for r in x], f"features {encoding}")
    elif encoding == "dense vector":
        df = spark.createDataFrame([(Vectors.dense(r),) for r in x], ["features"])
    elif encoding == "sparse vector":
        rows = [(Vectors.sparse(WIDTH, np.flatnonzero(r).tolist(), r[r != 0].tolist()),) for r in x]
        rows[0] = (Vectors.dense(x[0]),)  # a dense one among the sparse ones, as VectorAssembler produces
        df = spark.createDataFrame(rows, ["features"])
    else:
        df = spark.createDataFrame([tuple(r.tolist()) for r in x], [f"c{j}" for j in range(WIDTH)])
    return df, x


@pytest.mark.parametrize(
    ("encoding", "kind"),
    [
        ("array<float>", "array"),
        ("array<double>", "array"),
        ("dense vector", "vector"),
        ("sparse vector", "vector"),
        ("columns", "columns"),
    ],
)
def test_dataframe_to_arrays_each_feature_encoding_round_trips(spark: SparkSession, encoding: str, kind: str) -> None:
    df, expected = _encoding_frame(spark, encoding)
    features = [f"c{j}" for j in range(WIDTH)] if encoding == "columns" else "features"
    spec = resolve_columns(df, features, None)
    assert (spec.feature_kind, spec.n_features, spec.label_kind) == (kind, WIDTH, "none")
    x, y = dataframe_to_arrays(df, spec=spec)
    assert x.dtype == np.float32 and y is None
    np.testing.assert_array_equal(x, expected.astype(np.float32))


def test_dataframe_to_arrays_labels_index_onehot_float(spark: SparkSession) -> None:
    df = spark.createDataFrame(
        [([1.0, 2.0], 2, [0.0, 0.0, 1.0], 0.5, 2.0), ([3.0, 4.0], 0, [1.0, 0.0, 0.0], -1.5, 0.0)],
        "f array<float>, cls long, onehot array<float>, target double, ml_label double",
    )
    cases = [
        ("cls", None, "index", [2, 0]),
        ("onehot", None, "array", [[0, 0, 1], [1, 0, 0]]),
        ("target", None, "scalar_float", [[0.5], [-1.5]]),
        ("ml_label", "index", "index", [2, 0]),  # Spark ML keeps class labels as doubles
    ]
    for label, override, kind, expected in cases:
        x, y = dataframe_to_arrays(df, "f", label, label_kind=override)
        assert y is not None and y.tolist() == expected, label
        assert y.dtype == (np.int64 if kind == "index" else np.float32)
    np.testing.assert_array_equal(x, [[1, 2], [3, 4]])


# --- blocks -------------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [2, 3])
def test_to_blocks_balanced_skewed_partitions_give_each_worker_its_exact_range(
    spark: SparkSession, workers: int
) -> None:
    df = _skewed(spark)
    spec = resolve_columns(df, "features", "label")
    blocks = to_blocks(df, spec, num_partitions=workers, max_block_bytes=40 * 4 * (WIDTH + 2)).persist()
    try:
        assert blocks.columns == ["worker", "part", "n", "x", "y"]
        assert blocks.rdd.getNumPartitions() == workers
        out = sorted(blocks.rdd.mapPartitions(lambda rows: _partition_summary(rows, spec)).collect())
    finally:
        blocks.unpersist()
    ids = _skewed_ids()
    n = len(ids)
    for k, (pid, worker_ids, kinds, x, y) in enumerate(out):
        assert (pid, worker_ids) == (k, [k])  # partition k holds worker k alone
        assert kinds == [("Row", "bytes")]
        mine = ids[k * n // workers : (k + 1) * n // workers]
        assert len(x) in (n // workers, n // workers + 1)
        np.testing.assert_array_equal(np.array(x), _expected_row(mine).astype(np.float32))
        assert y == (mine % 3).tolist()


def test_describe_reports_rows_per_partition_and_to_blocks_reuses_them(spark: SparkSession) -> None:
    """One aggregate gives both the column checks and each input partition's rows (empty ones absent);
    blocks built from those counts equal the blocks that count for themselves."""
    df = _skewed(spark)
    spec, stats = describe_columns(df, "features", "label")
    assert stats.rows == sum(SKEWED)
    assert stats.label_max == 2
    assert stats.partition_rows == tuple((p, s) for p, s in enumerate(SKEWED) if s)

    def collected(blocks: DataFrame) -> list[tuple[Any, ...]]:
        return sorted(blocks.rdd.mapPartitions(lambda rows: _partition_summary(rows, spec)).collect())

    given = to_blocks(df, spec, num_partitions=3, partition_rows=dict(stats.partition_rows))
    assert collected(given) == collected(to_blocks(df, spec, num_partitions=3))
    lied = dict(stats.partition_rows) | {2: 96}  # counts that do not match the data: the conversion says so
    with pytest.raises(Exception) as caught:
        to_blocks(df, spec, num_partitions=3, partition_rows=lied).count()
    error = executor_error(caught.value)
    assert isinstance(error, DataError) and "input partition 2 has 97 rows now but had 96" in str(error)
    import pandas as pd

    # rows held by the driver: Spark evaluates the partition id there (always 0), so no counts are reported
    local = spark.createDataFrame(pd.DataFrame({"features": list(np.ones((5, 2))), "label": np.arange(5)}))
    assert local.rdd.getNumPartitions() == 2
    assert describe_columns(local, "features", "label")[1].partition_rows is None


def _plan(df: DataFrame) -> str:
    return str(df._jdf.queryExecution().executedPlan().toString())


def test_to_blocks_balanced_input_is_converted_in_place_without_a_shuffle(spark: SparkSession) -> None:
    """A persisted frame whose partitions already hold exactly worker k's rows is converted where it is (no
    Exchange); one row off, or not persisted (adaptive execution may lay it out differently in the next job), and
    every row goes through the shuffle again. Each worker gets its exact range either way."""

    def frame(sizes: list[int]) -> DataFrame:
        keep = F.element_at(F.array(*[F.lit(s) for s in sizes]), (F.col("id") / 100).cast("int") + 1)
        features = F.array(*[(F.col("id") * c + j / 8).cast("float") for j, c in enumerate([1.0, -0.5, 0.25, 2.0])])
        return (
            spark.range(0, 100 * len(sizes), numPartitions=len(sizes))
            .filter(F.col("id") % 100 < keep)
            .select(features.alias("features"), (F.col("id") % 3).alias("label"))
        )

    def check(sizes: list[int], shuffled: bool, persisted: bool = True) -> None:
        df = frame(sizes).persist() if persisted else frame(sizes)
        try:
            spec, stats = describe_columns(df, "features", "label")
            blocks = to_blocks(df, spec, num_partitions=2, partition_rows=stats.partition_rows)
            assert ("Exchange hashpartitioning" in _plan(blocks)) is shuffled
            out = sorted(blocks.rdd.mapPartitions(lambda rows: _partition_summary(rows, spec)).collect())
        finally:
            df.unpersist()
        ids = np.concatenate([np.arange(100 * p, 100 * p + s) for p, s in enumerate(sizes)])
        n = len(ids)
        for k, (pid, workers, _, x, y) in enumerate(out):
            mine = ids[k * n // 2 : (k + 1) * n // 2]
            assert (pid, workers) == (k, [k])
            np.testing.assert_array_equal(np.array(x), _expected_row(mine).astype(np.float32))
            assert y == (mine % 3).tolist()

    check([30, 31], shuffled=False)  # 61 rows: worker 0 gets rows [0, 30), worker 1 [30, 61)
    check([31, 30], shuffled=True)  # the same sizes the other way round: one row has to move
    check([30, 30, 0], shuffled=True)  # three partitions for two workers, one of them empty
    check([30, 31], shuffled=True, persisted=False)


def test_to_blocks_spark_default_and_keep_keep_every_row_once(spark: SparkSession) -> None:
    df = _skewed(spark).withColumnRenamed("features", "px.features")  # a dotted name, which mapInArrow cannot resolve
    spec = resolve_columns(df, "px.features", None)
    out = to_blocks(df, spec, num_partitions=3, strategy="spark_default").rdd.mapPartitions(
        lambda rows: _partition_summary(rows, spec)
    )
    parts = out.collect()
    assert [(p, w) for p, w, *_ in parts] == [(k, [k]) for k in range(3)]
    x = np.concatenate([np.array(p[3]) for p in parts])
    expected = _expected_row(_skewed_ids()).astype(np.float32)
    np.testing.assert_array_equal(x[np.lexsort(x.T[::-1])], expected[np.lexsort(expected.T[::-1])])
    kept = to_blocks(df, spec, strategy="keep").select("worker", "n").collect()  # no shuffle: partitions as they are
    sizes = [0] * len(SKEWED)
    for row in kept:
        sizes[row["worker"]] += row["n"]
    assert sizes == SKEWED


def test_to_blocks_nan_features_fail_the_job_with_a_recoverable_data_error(spark: SparkSession) -> None:
    df = spark.createDataFrame([([1.0, 2.0],), ([float("nan"), 0.0],)], "`px.features` array<double>")
    spec = resolve_columns(df, "px.features", None)
    with pytest.raises(Exception) as info:
        to_blocks(df, spec, num_partitions=1).collect()
    error = executor_error(info.value)
    assert isinstance(error, DataError)
    assert "column 'px.features', row" in str(error) and "clean or impute" in str(error)


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rows", "schema", "features", "label", "message"),
    [
        (
            [([1.0], 0)],
            "features array<float>, label long",
            "featurs",
            "label",
            r"features column 'featurs' not found; available: \['features', 'label'\]; did you mean 'features'\?",
        ),
        (
            [([1.0, 2.0], 0), ([1.0], 1)],
            "features array<float>, label long",
            "features",
            "label",
            r"column 'features': features have 1\.\.2 values per row; every row needs the same width",
        ),
        (
            [([1.0], 0), (None, 1)],
            "features array<float>, label long",
            "features",
            "label",
            r"column 'features' has 1 null value\(s\) in 2 rows",
        ),
        ([], "features array<float>, label long", "features", "label", r"the DataFrame has no rows"),
        (
            [([1.0], 0.5)],
            "features array<float>, label double",
            "features",
            "label",
            r"label column 'label' has 1 value\(s\) that are not whole numbers",
        ),
        (
            [("a", 0)],
            "features string, label long",
            "features",
            "label",
            r"features column 'features' has type string.*supported: numeric columns.*StringIndexer",
        ),
    ],
    ids=["missing column", "mixed lengths", "null features", "empty", "fractional index label", "string features"],
)
def test_resolve_columns_bad_input_raises_data_error(
    spark: SparkSession, rows: list[Any], schema: str, features: str, label: str, message: str
) -> None:
    df = spark.createDataFrame(rows, schema)
    kind = "index" if "double" in schema else None
    with pytest.raises(DataError, match=message):
        resolve_columns(df, features, label, label_kind=kind)  # type: ignore[arg-type]


def test_vector_and_nan_problems_raise_data_error(spark: SparkSession) -> None:
    wrong_size = spark.createDataFrame([(Vectors.dense([1.0, 2.0, 3.0]),), (Vectors.sparse(4, [0], [1.0]),)], ["v"])
    with pytest.raises(DataError, match=r"column 'v': features have 3\.\.4 values per row"):
        resolve_columns(wrong_size, "v", None)
    schema = StructType([StructField("v", VectorUDT())])
    null_vector = spark.createDataFrame([(Vectors.dense([1.0]),), (None,)], schema)
    with pytest.raises(DataError, match=r"column 'v' has 1 null value"):
        dataframe_to_arrays(null_vector, "v", None)
    nan = spark.createDataFrame([([1.0, float("inf")],)], "f array<double>")
    with pytest.raises(DataError, match=r"column 'f', row 0 of the collected DataFrame has NaN or infinite"):
        dataframe_to_arrays(nan, "f", None)


# --- export -------------------------------------------------------------------------------------


def test_export_minibatches_round_trip_full_batches_in_global_order(spark: SparkSession, tmp_path: Path) -> None:
    df = _skewed(spark)
    path = str(tmp_path / "export")
    info = export_minibatches(df, path, 32, num_partitions=2)
    ids = _skewed_ids()
    assert (info.n_examples, info.n_batches, info.batch_size, info.dtype) == (len(ids), 10, 32, "float32")
    frame, read = read_exported(spark, path)
    assert read == info
    rows = sorted(frame.collect(), key=lambda r: r["batch"])
    assert [r["batch"] for r in rows] == list(range(10))
    assert [r["n"] for r in rows] == [32] * 9 + [len(ids) - 9 * 32]
    decoded = [blocks_to_arrays([r], read.spec, read.dtype) for r in rows]
    x = np.concatenate([d[0] for d in decoded])
    y = np.concatenate([d[1] for d in decoded if d[1] is not None])
    np.testing.assert_array_equal(x, _expected_row(ids).astype(np.float32))
    np.testing.assert_array_equal(y, ids % 3)
    with pytest.raises(StorageError, match=r"already exists; pass overwrite=True"):
        export_minibatches(df, path, 32)


def test_export_of_a_persisted_frame_already_in_place_keeps_the_global_order(
    spark: SparkSession, tmp_path: Path
) -> None:
    """Two persisted partitions of 64 rows: each holds exactly its worker's two minibatches, so nothing is
    shuffled, and the export still reads back as full minibatches in global order."""
    features = F.array(*[(F.col("id") * c + j / 8).cast("float") for j, c in enumerate([1.0, -0.5, 0.25, 2.0])])
    df = spark.range(0, 128, numPartitions=2).select(features.alias("features"), (F.col("id") % 3).alias("label"))
    df = df.persist()
    try:
        info = export_minibatches(df, str(tmp_path / "export"), 32, num_partitions=2)
    finally:
        df.unpersist()
    frame, read = read_exported(spark, info.path)
    rows = sorted(frame.collect(), key=lambda r: r["batch"])
    assert [(r["batch"], r["n"]) for r in rows] == [(j, 32) for j in range(4)]
    x = np.concatenate([blocks_to_arrays([r], read.spec, read.dtype)[0] for r in rows])
    np.testing.assert_array_equal(x, _expected_row(np.arange(128)).astype(np.float32))


def test_export_and_read_bad_paths_raise(spark: SparkSession, tmp_path: Path) -> None:
    df = spark.createDataFrame([([1.0], 0)], "features array<float>, label long")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    target = str(blocker / "export")
    with pytest.raises(StorageError, match=r"cannot create the export directory '.*a-file/export'"):
        export_minibatches(df, target, 8)
    plain = tmp_path / "plain"
    df.write.parquet(str(plain))
    with pytest.raises(DataError, match=r"is not a deepspark minibatch export \(no _deepspark_export\.json\)"):
        read_exported(spark, str(plain))


def test_ragged_feature_widths_hint_names_the_common_width_not_the_outlier(spark: SparkSession) -> None:
    rows = [([1.0, 2.0, 3.0], 0)] * 5 + [([1.0] * 9, 1)]
    df = spark.createDataFrame(rows, "features array<double>, label long")
    with pytest.raises(DataError) as info:
        resolve_columns(df, "features", "label")
    message = str(info.value)
    assert "3..9 values per row" in message and "most have 3 (5 of 6 rows)" in message
    assert "F.size('features') == 3" in message and "== 9" not in message
