"""Spark ML stages and Spark-fitted normalizers: statistics equal numpy's, Pipeline save/load, CV, errors."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytest

from deepspark.config import Adam, Dense, InputType, NetworkConfig, Output
from deepspark.data import MinMax as NpMinMax
from deepspark.data import Standardize as NpStandardize
from deepspark.data.spark_normalizers import apply_normalizer, fit_normalizer
from deepspark.errors import ConfigError, DataError
from deepspark.ml import (
    DeepSparkClassifier,
    DeepSparkModel,
    DeepSparkRegressor,
    ImageScaler,
    NormalizerModel,
    Standardize,
)
from deepspark.nn import Network
from deepspark.spark import ParameterAveraging, SparkNetwork

if TYPE_CHECKING:
    from pyspark.ml import PipelineModel
    from pyspark.sql import DataFrame, SparkSession

N_FEATURES = 4
CLASSES = ("setosa", "versicolor", "virginica")
MASTER = ParameterAveraging(num_workers=2, batch_size_per_worker=16, averaging_frequency=50)


def _frame(spark: SparkSession, tmp: Path, pdf: pd.DataFrame) -> DataFrame:
    """``pdf`` written to Parquet and read back: a file source, as users have (not a driver-local relation)."""
    path = str(tmp / f"data-{len(list(tmp.iterdir()))}.parquet")
    spark.createDataFrame(pdf).coalesce(2).write.parquet(path)
    return spark.read.parquet(path)


def _blobs(seed: int, n: int = 240) -> pd.DataFrame:
    """Three separable classes with string labels; columns on very different scales (what Standardize is for)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    centres = np.array([[0, 0, 0, 0], [4, 4, 0, 0], [0, 4, 4, 4]], dtype=np.float64)
    x = centres[y] + rng.normal(scale=0.5, size=(n, N_FEATURES))
    x = x * np.array([1.0, 100.0, 0.01, 1000.0]) + np.array([0.0, 5000.0, -3.0, 1e4])
    pdf = pd.DataFrame(x, columns=[f"f{i}" for i in range(N_FEATURES)])
    pdf["species"] = [CLASSES[i] for i in y]
    return pdf


def _conf(seed: int = 0, n_in: int = N_FEATURES, lr: float = 0.05) -> NetworkConfig:
    return NetworkConfig(
        seed=seed,
        updater=Adam(learning_rate=lr),
        input_type=InputType.feed_forward(n_in),
        layers=(Dense(n_out=12, activation="tanh"), Output(n_out=3, activation="softmax", loss="mcxent")),
    )


def _pipeline(epochs: int = 4, lr: float = 0.1) -> Any:
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import StringIndexer, VectorAssembler

    return Pipeline(
        stages=[
            StringIndexer(inputCol="species", outputCol="label"),
            VectorAssembler(inputCols=[f"f{i}" for i in range(N_FEATURES)], outputCol="raw"),
            Standardize(inputCol="raw", outputCol="features"),
            DeepSparkClassifier(networkConfig=_conf(lr=lr), trainingMaster=MASTER, epochs=epochs),
        ]
    )


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ml")


@pytest.fixture(scope="module")
def blobs(spark: SparkSession, data_dir: Path) -> DataFrame:
    return _frame(spark, data_dir, _blobs(0))


@pytest.fixture(scope="module")
def fitted(blobs: DataFrame) -> PipelineModel:
    return _pipeline().fit(blobs)


def _vectors(df: DataFrame, column: str) -> np.ndarray:
    return np.array([r[0].toArray() for r in df.orderBy("f0").select(column).collect()])


# ------------------------------------------------------------------------------- normalizers on Spark


def test_fit_normalizer_standardize_and_minmax_equal_numpy_on_collected_data(
    spark: SparkSession, data_dir: Path
) -> None:
    from pyspark.ml.feature import VectorAssembler

    rng = np.random.default_rng(3)
    x = rng.normal(loc=[1e4, -2.0, 0.0, 7.0, 3.0, 1.0], scale=[3.0, 0.01, 1.0, 50.0, 2.0, 0.5], size=(300, 6))
    cols = [f"c{i}" for i in range(6)]
    pdf = pd.DataFrame(x, columns=cols)
    pdf["arr"] = list(x)
    df = VectorAssembler(inputCols=cols, outputCol="vec").transform(_frame(spark, data_dir, pdf))
    collected = np.array([r[0] for r in df.select("arr").collect()])  # Spark's row order; statistics do not care
    ref = NpStandardize().fit(collected)
    for features in ("arr", "vec", cols):  # array, Vector and numeric columns
        s = fit_normalizer(df, NpStandardize(), features)
        np.testing.assert_allclose(s.mean, ref.mean, rtol=1e-6, atol=1e-6)  # type: ignore[attr-defined]
        np.testing.assert_allclose(s.std, ref.std, rtol=1e-6, atol=1e-6)  # type: ignore[attr-defined]
    m = fit_normalizer(df, NpMinMax(min_range=-1.0), "vec")
    ref_m = NpMinMax(min_range=-1.0).fit(collected)
    np.testing.assert_allclose(m.transform(collected), ref_m.transform(collected), atol=1e-6)

    # Per channel: rows read channel-first as 2 channels x 3 positions.
    sc = fit_normalizer(df, NpStandardize(per_channel=True), "arr", channels=2)
    ref_c = NpStandardize(per_channel=True).fit(collected.reshape(-1, 2, 3))
    np.testing.assert_allclose(sc.mean, ref_c.mean, rtol=1e-6, atol=1e-6)  # type: ignore[attr-defined]
    np.testing.assert_allclose(sc.std, ref_c.std, rtol=1e-6, atol=1e-6)  # type: ignore[attr-defined]
    np.testing.assert_allclose(
        apply_normalizer(sc, collected), ref_c.transform(collected.reshape(-1, 2, 3)).reshape(-1, 6), atol=1e-6
    )
    mc = fit_normalizer(df, NpMinMax(per_channel=True), "arr", channels=2)
    ref_mc = NpMinMax(per_channel=True).fit(collected.reshape(-1, 2, 3))
    np.testing.assert_allclose(mc.data_max, ref_mc.data_max, atol=1e-6)  # type: ignore[attr-defined]


def test_fit_normalizer_bad_input_raises_typed_errors(spark: SparkSession) -> None:
    ragged = spark.createDataFrame([([1.0, 2.0],), ([1.0],)], "features array<double>")
    with pytest.raises(DataError, match=r"different numbers of values"):
        fit_normalizer(ragged, NpStandardize())
    with pytest.raises(DataError, match=r"column 'nope' not found"):
        fit_normalizer(ragged, NpStandardize(), "nope")
    with pytest.raises(ConfigError, match=r"channels"):
        fit_normalizer(ragged, NpStandardize(per_channel=True))
    nan = spark.createDataFrame([([1.0, float("nan")],), ([1.0, 2.0],)], "features array<double>")
    with pytest.raises(DataError, match=r"NaN"):
        fit_normalizer(nan, NpMinMax())


def test_spark_fit_with_normalizer_equals_fit_on_normalized_data(spark: SparkSession, data_dir: Path) -> None:
    pdf = _blobs(1, n=96)
    x = pdf[[f"f{i}" for i in range(N_FEATURES)]].to_numpy()
    y = pdf["species"].map(CLASSES.index).to_numpy()
    raw = _frame(spark, data_dir, pd.DataFrame({"features": list(x), "label": y}))
    norm = fit_normalizer(raw, NpStandardize(), "features")
    scaled = _frame(spark, data_dir, pd.DataFrame({"features": list(norm.transform(x)), "label": y}))

    with_norm = Network(_conf(seed=5))
    with_norm.normalizer = norm
    a = SparkNetwork(spark, with_norm, MASTER).fit(raw, epochs=1)
    b = SparkNetwork(spark, Network(_conf(seed=5)), MASTER).fit(scaled, epochs=1)
    np.testing.assert_allclose(a.params(), b.params(), atol=1e-5)
    # evaluate and predict apply it as well: the same accuracy as the pre-scaled data without one
    acc_a = SparkNetwork(spark, a).evaluate(raw).accuracy()
    assert acc_a == SparkNetwork(spark, b).evaluate(scaled).accuracy()


# ------------------------------------------------------------------------------- Spark ML stages


def test_pipeline_fits_predicts_and_round_trips_through_save_and_load(
    fitted: PipelineModel, blobs: DataFrame, tmp_path: Path
) -> None:
    from pyspark.ml import PipelineModel
    from pyspark.ml.evaluation import MulticlassClassificationEvaluator

    out = fitted.transform(blobs)
    assert dict(out.dtypes)["prediction"] == "double"
    accuracy = MulticlassClassificationEvaluator(metricName="accuracy").evaluate(out)
    assert accuracy > 0.9
    probs = _vectors(out, "probability")
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(_vectors(out, "rawPrediction"), np.log(probs), atol=1e-5)

    path = str(tmp_path / "pipeline")
    fitted.write().overwrite().save(path)
    stage_dirs = sorted(p.name for p in (tmp_path / "pipeline" / "stages").iterdir())
    assert (tmp_path / "pipeline" / "stages" / stage_dirs[-1] / "model.zip").is_file()
    loaded = PipelineModel.load(path)
    assert isinstance(loaded.stages[-1], DeepSparkModel) and isinstance(loaded.stages[-2], NormalizerModel)
    again = loaded.transform(blobs)
    np.testing.assert_array_equal(_vectors(again, "probability"), probs)
    np.testing.assert_array_equal(_vectors(again, "features"), _vectors(out, "features"))


def test_normalizer_stage_output_equals_numpy_normalizer(fitted: PipelineModel, blobs: DataFrame) -> None:
    stage = fitted.stages[2]
    assert isinstance(stage, NormalizerModel)
    out = fitted.transform(blobs)
    raw, features = _vectors(out, "raw"), _vectors(out, "features")
    np.testing.assert_allclose(features, NpStandardize().fit(raw).transform(raw), atol=1e-9)
    scaled = ImageScaler(inputCol="raw", outputCol="px", maxPixel=10.0).fit(out).transform(out)
    np.testing.assert_allclose(_vectors(scaled, "px"), raw / 10.0, atol=1e-12)


def test_cross_validator_picks_the_better_learning_rate(blobs: DataFrame) -> None:
    from pyspark.ml import Pipeline
    from pyspark.ml.evaluation import MulticlassClassificationEvaluator
    from pyspark.ml.feature import StringIndexer, VectorAssembler
    from pyspark.ml.tuning import CrossValidator, ParamGridBuilder

    clf = DeepSparkClassifier(networkConfig=_conf(), trainingMaster=MASTER, epochs=2, seed=3)
    prep = Pipeline(
        stages=[
            StringIndexer(inputCol="species", outputCol="label"),
            VectorAssembler(inputCols=[f"f{i}" for i in range(N_FEATURES)], outputCol="raw"),
            Standardize(inputCol="raw", outputCol="features"),
        ]
    ).fit(blobs)
    data = prep.transform(blobs).cache()
    grid = ParamGridBuilder().addGrid(clf.learningRate, [1e-5, 0.1]).build()
    cv = CrossValidator(
        estimator=clf, estimatorParamMaps=grid, evaluator=MulticlassClassificationEvaluator(), numFolds=2, seed=7
    )
    model = cv.fit(data)
    best = int(np.argmax(model.avgMetrics))
    assert grid[best][clf.learningRate] == 0.1, model.avgMetrics
    assert model.avgMetrics[best] > model.avgMetrics[1 - best] + 0.2
    assert isinstance(model.bestModel, DeepSparkModel)
    data.unpersist()


def test_regressor_predicts_doubles_for_regression_evaluator(spark: SparkSession, data_dir: Path) -> None:
    from pyspark.ml.evaluation import RegressionEvaluator

    rng = np.random.default_rng(4)
    x = rng.normal(size=(160, 3))
    y = x @ np.array([1.5, -2.0, 0.5]) + 1.0
    df = _frame(spark, data_dir, pd.DataFrame({"features": list(x), "label": y}))
    conf = NetworkConfig(
        seed=1,
        updater=Adam(learning_rate=0.1),
        input_type=InputType.feed_forward(3),
        layers=(Output(n_out=1, activation="identity", loss="mse"),),
    )
    master = ParameterAveraging(num_workers=2, batch_size_per_worker=4, averaging_frequency=50)
    model = DeepSparkRegressor(networkConfig=conf.to_json(), trainingMaster=master, epochs=4).fit(df)
    out = model.transform(df)
    assert dict(out.dtypes)["prediction"] == "double"
    rmse = RegressionEvaluator(metricName="rmse").evaluate(out)
    assert rmse < 0.5 * float(np.std(y)), rmse


def test_model_setters_choose_the_output_columns(fitted: PipelineModel, blobs: DataFrame) -> None:
    from pyspark.ml import PipelineModel

    model = fitted.stages[-1]
    assert isinstance(model, DeepSparkModel)
    blobs = PipelineModel(fitted.stages[:-1]).transform(blobs)  # the columns the model reads
    assert model.getBatchSize() is None  # unset: each executor's network sizes its own forward passes
    lean = model.copy().setProbabilityCol("").setRawPredictionCol("").setPredictionCol("label_hat").setBatchSize(7)
    assert (lean.getProbabilityCol(), lean.getRawPredictionCol(), lean.getBatchSize()) == ("", "", 7)
    out = lean.transform(blobs)
    added = set(out.columns) - set(blobs.columns)
    assert "label_hat" in added and not added & {"probability", "rawPrediction"}, out.columns
    full = model.transform(blobs).select("prediction").toPandas()["prediction"].to_numpy()
    np.testing.assert_array_equal(out.select("label_hat").toPandas()["label_hat"].to_numpy(), full)


def test_estimator_params_round_trip_through_save_and_load(tmp_path: Path) -> None:
    clf = DeepSparkClassifier(networkConfig=_conf(), epochs=3, learningRate=0.01, labelCol="y")
    clf.save(str(tmp_path / "clf"))
    loaded = DeepSparkClassifier.load(str(tmp_path / "clf"))
    assert NetworkConfig.from_json(loaded.getNetworkConfig()) == _conf()
    assert (loaded.getEpochs(), loaded.getLearningRate(), loaded.getLabelCol()) == (3, 0.01, "y")


# ------------------------------------------------------------------------------- bad input


def test_params_with_wrong_types_or_json_raise_config_errors_naming_the_param() -> None:
    with pytest.raises(ConfigError, match=r"^networkConfig: .*NetworkConfig\(\.\.\.\)\.to_json\(\)"):
        DeepSparkClassifier(networkConfig="{not json")
    bad = _conf().to_json().replace('"n_out": 12', '"n_out": 0')
    with pytest.raises(ConfigError, match=r"^networkConfig\.layers\[0\]\.n_out"):
        DeepSparkClassifier(networkConfig=bad)
    with pytest.raises(ConfigError, match=r"^epochs: expected a positive int, got '3'"):
        DeepSparkClassifier(epochs="3")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"^trainingMaster: "):
        DeepSparkClassifier(trainingMaster=_conf().to_json())
    with pytest.raises(ConfigError, match=r"^learningRate: "):
        DeepSparkClassifier().setParams(learningRate=-1.0)


def test_fit_errors_name_the_param_or_column_and_the_fix(blobs: DataFrame) -> None:
    from pyspark.ml.feature import VectorAssembler

    df = VectorAssembler(inputCols=[f"f{i}" for i in range(N_FEATURES)], outputCol="features").transform(blobs)
    with pytest.raises(ConfigError, match=r"^networkConfig: not set"):
        DeepSparkClassifier().fit(df)
    with pytest.raises(DataError, match=r"labelCol column 'species' has type string.*StringIndexer"):
        DeepSparkClassifier(networkConfig=_conf(), labelCol="species", trainingMaster=MASTER).fit(df)
    with pytest.raises(ConfigError, match=r"^networkConfig: DeepSparkRegressor needs a regression output"):
        DeepSparkRegressor(networkConfig=_conf()).fit(df)
    two = _conf().to_json().replace('"n_out": 3', '"n_out": 2')
    labelled = df.withColumn("label", (df["f0"] > 1.0).cast("double") * 2)  # class index 2 for 2 outputs
    with pytest.raises(DataError, match=r"labelCol 'label' must hold class indices.*StringIndexer"):
        DeepSparkClassifier(networkConfig=two, trainingMaster=MASTER).fit(labelled)


def test_transform_errors_name_the_column(fitted: PipelineModel, blobs: DataFrame, spark: SparkSession) -> None:
    from pyspark.ml.feature import VectorAssembler

    model = fitted.stages[-1]
    assert isinstance(model, DeepSparkModel)
    narrow = VectorAssembler(inputCols=["f0", "f1"], outputCol="features").transform(blobs)
    with pytest.raises(
        DataError, match=r"featuresCol 'features' has 2 values per row but the network's input expects 4"
    ):
        model.transform(narrow)
    with pytest.raises(DataError, match=r"featuresCol column 'nope' not found"):
        model.copy({model.featuresCol: "nope"}).transform(narrow)
    wide = VectorAssembler(inputCols=[f"f{i}" for i in range(N_FEATURES)], outputCol="features").transform(blobs)
    with pytest.raises(DataError, match=r"output column 'f0' already exists"):
        model.copy({model.predictionCol: "f0"}).transform(wide)
    # A label the StringIndexer never saw fails the whole pipeline loudly instead of predicting garbage.
    unseen = blobs.limit(3).withColumn("species", blobs["species"].substr(1, 2))
    with pytest.raises(Exception, match=r"handleInvalid"):
        fitted.transform(unseen).collect()
