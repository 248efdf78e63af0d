"""CSV/tabular on local[2]: stratified split, Spark ML feature pipeline -> tensors, multi-label and sparse encodings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pyspark.ml.linalg import Vectors
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from deepspark.data.dataframe import dataframe_to_arrays, resolve_columns
from deepspark.data.tabular import feature_pipeline, label_names, train_test_split
from deepspark.errors import ConfigError, DataError


def test_train_test_split_stratified_keeps_exact_class_shares_and_partitions_the_rows(
    spark: SparkSession, seed: int
) -> None:
    df = spark.range(200).withColumn("label", F.when(F.col("id") < 180, "common").otherwise("rare"))
    train, test = train_test_split(df, 0.25, seed=seed, stratify_col="label")
    counts = {r["label"]: r["count"] for r in test.groupBy("label").count().collect()}
    assert counts == {"common": 45, "rare": 5}
    train_ids = {r["id"] for r in train.collect()}
    test_ids = {r["id"] for r in test.collect()}
    assert not train_ids & test_ids and train_ids | test_ids == set(range(200))
    plain_train, plain_test = train_test_split(df, 0.25, seed=seed)
    assert plain_train.count() + plain_test.count() == 200
    with pytest.raises(DataError, match=r"stratify column 'klass' not found"):
        train_test_split(df, 0.2, stratify_col="klass")
    with pytest.raises(ConfigError, match="test_fraction"):
        train_test_split(df, 1.5)


def test_csv_through_feature_pipeline_gives_dense_tensors_and_label_names(spark: SparkSession, tmp_path: Path) -> None:
    csv = tmp_path / "pets.csv"
    csv.write_text("weight,colour,kind\n4.0,black,cat\n30.5,brown,dog\n5.5,brown,cat\n12.0,white,dog\n")
    df = spark.read.csv(str(csv), header=True, inferSchema=True)
    model = feature_pipeline(["weight"], ["colour"], "kind").fit(df)
    out = model.transform(df)
    assert label_names(model) == ("cat", "dog")
    spec = resolve_columns(out, "features", "label_index", label_kind="index")
    assert (spec.feature_kind, spec.n_features) == ("vector", 5)  # 3 colours + 1 unseen slot, then weight
    x, y = dataframe_to_arrays(out, spec=spec)
    colours = {"brown": 0, "black": 1, "white": 2}  # StringIndexer: by frequency, then alphabetical
    expected = np.zeros((4, 5), np.float32)
    for i, (weight, colour) in enumerate([(4.0, "black"), (30.5, "brown"), (5.5, "brown"), (12.0, "white")]):
        expected[i, colours[colour]] = 1
        expected[i, 4] = weight
    np.testing.assert_array_equal(x, expected)
    assert y is not None and y.tolist() == [0, 1, 0, 1]


def test_multi_label_arrays_and_vector_labels_round_trip(spark: SparkSession) -> None:
    df = spark.createDataFrame(
        [
            ([1.0, 2.0], [1.0, 0.0, 1.0], Vectors.sparse(3, [1], [1.0])),
            ([3.0, 4.0], [0.0, 1.0, 1.0], Vectors.dense(1, 0, 0)),
        ],
        ["f", "tags", "vec"],
    )
    _, tags = dataframe_to_arrays(df, "f", "tags")
    assert tags is not None and tags.tolist() == [[1, 0, 1], [0, 1, 1]]
    _, vec = dataframe_to_arrays(df, "f", "vec")
    assert vec is not None and vec.tolist() == [[0, 1, 0], [1, 0, 0]]
