"""A user's own nn.Module (ModuleConfig) on Spark: both masters, validation, callbacks, inference, bad input.

The test model package is shipped to the Python workers the way users ship theirs:
``spark.sparkContext.addPyFile`` with a zip of the package (the driver imports it from tests/support).
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from deepspark.config import Adam, ModuleConfig
from deepspark.errors import ConfigError, DataError
from deepspark.nn import EarlyStopping, LearningRateLogger, Network
from deepspark.spark import GradientSharing, ParameterAveraging, SparkNetwork

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

SUPPORT = Path(__file__).parents[1] / "support"


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    """The driver's reference fits: one thread is fastest for these small convolutions (executors use one too)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def shipped(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> SparkSession:
    """The session with the test model package added as a zip (what a user does with their own package)."""
    zip_path = tmp_path_factory.mktemp("pyfiles") / "deepspark_testmodels.zip"
    with zipfile.ZipFile(zip_path, "w") as zf:
        for path in sorted((SUPPORT / "deepspark_testmodels").glob("*.py")):
            zf.write(path, f"deepspark_testmodels/{path.name}")
    spark.sparkContext.addPyFile(str(zip_path))
    return spark


def _conf(seed: int) -> ModuleConfig:
    return ModuleConfig(
        factory="deepspark_testmodels.resnet:small_resnet", kwargs={"classes": 3, "channels": 4},
        input_shape=(1, 8, 8), n_out=3, loss="mcxent", updater=Adam(learning_rate=1e-2), seed=seed,
    )


def _blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    x = rng.normal(0.0, 0.3, size=(n, 1, 8, 8)).astype(np.float32)
    for i, k in enumerate(y):
        x[i, 0, 2:5, [0, 3, 5][k] : [0, 3, 5][k] + 3] += 2.0
    return x.reshape(n, 64), y


def _frame(spark: SparkSession, x: np.ndarray, y: np.ndarray, partitions: int = 2) -> DataFrame:
    import pandas as pd

    pdf = pd.DataFrame({"id": np.arange(len(x)), "features": list(x.astype(np.float64)), "label": y})
    return spark.createDataFrame(pdf).repartition(partitions).sortWithinPartitions("id").orderBy("id")


@pytest.mark.parametrize(
    "master",
    [
        ParameterAveraging(num_workers=1, batch_size_per_worker=16, averaging_frequency=3),
        GradientSharing(num_workers=1, batch_size_per_worker=16, encoding="dense"),
    ],
    ids=["averaging", "sharing-dense"],
)
def test_module_config_one_worker_equals_single_machine(shipped: SparkSession, master: Any, seed: int) -> None:
    x, y = _blobs(64, seed)
    from dataclasses import replace

    trained = SparkNetwork(shipped, _conf(seed), replace(master, seed=seed)).fit(_frame(shipped, x, y), epochs=2)
    local = Network(_conf(seed))
    local.fit(x, y, epochs=2, batch_size=16, verbose=0)
    np.testing.assert_allclose(trained.params(), local.params(), atol=1e-6)  # batch-norm statistics included
    assert trained.iteration == local.iteration


def test_module_config_two_workers_validate_stop_early_evaluate_and_predict(shipped: SparkSession) -> None:
    x, y = _blobs(256, 0)
    xv, yv = _blobs(96, 1)
    train_df, val_df = _frame(shipped, x, y), _frame(shipped, xv, yv)
    stop = EarlyStopping(monitor="val_accuracy", patience=1, min_delta=0.02)
    spark_net = SparkNetwork(shipped, _conf(0), GradientSharing(num_workers=2, batch_size_per_worker=16,
                                                                encoding="dense"))
    net = spark_net.fit(train_df, epochs=10, validation_data=val_df, callbacks=[stop, LearningRateLogger()],
                        verbose=0)
    history = spark_net.history
    assert history is not None and set(history.history) == {"loss", "val_loss", "val_accuracy", "lr"}
    assert history.stopped_epoch is not None and history.epoch[-1] == history.stopped_epoch < 9, history.to_dict()
    assert history.best_epoch is not None and history.best_epoch == stop.best_epoch
    best = history["val_accuracy"][history.epoch.index(history.best_epoch)]  # best by EarlyStopping's min_delta
    assert best >= 0.9, history.to_dict()
    restored = spark_net.evaluate(val_df).accuracy()  # executors rebuild the module from its factory
    assert restored == pytest.approx(best)
    assert net.evaluate(xv, yv).accuracy() == pytest.approx(best)
    predicted = spark_net.predict(val_df).select("id", "prediction").orderBy("id").toPandas()
    np.testing.assert_array_equal(predicted["prediction"].to_numpy(), net.output(xv).argmax(axis=1))


def test_module_config_with_local_validation_arrays_records_history(shipped: SparkSession) -> None:
    x, y = _blobs(64, 2)
    master = ParameterAveraging(num_workers=2, batch_size_per_worker=16, averaging_frequency=2)
    spark_net = SparkNetwork(shipped, _conf(2), master)
    spark_net.fit(_frame(shipped, x, y), epochs=2, validation_data=(x[:20], y[:20]), verbose=0)
    assert spark_net.history is not None and spark_net.history.epoch == [0, 1]
    assert spark_net.history["val_loss"][-1] == pytest.approx(spark_net.network.score(x[:20], y[:20]), rel=1e-6)


def _jobs(spark: SparkSession) -> int:
    return len(spark.sparkContext.statusTracker().getJobIdsForGroup(None))


def test_bad_module_inputs_fail_on_the_driver_before_any_spark_job(shipped: SparkSession) -> None:
    from deepspark_testmodels.resnet import mlp

    x, y = _blobs(32, 3)
    df = _frame(shipped, x, y)
    before = _jobs(shipped)
    with pytest.raises(ConfigError, match=r"Network\.from_module") as info:
        SparkNetwork(shipped, Network.from_module(mlp(), loss="mse", n_out=3))
    assert info.value.path == "network"
    with pytest.raises(ConfigError, match=r"cannot import 'no_such_pkg\.models'.*addPyFile"):
        SparkNetwork(shipped, ModuleConfig(factory="no_such_pkg.models:net", input_shape=(64,), n_out=3, loss="mse"))
    with pytest.raises(ConfigError, match="n_out says 4"):
        SparkNetwork(shipped, ModuleConfig(factory="deepspark_testmodels.resnet:small_resnet", kwargs={"classes": 3},
                                           input_shape=(1, 8, 8), n_out=4, loss="mcxent"))
    spark_net = SparkNetwork(shipped, _conf(3), ParameterAveraging(num_workers=2))
    with pytest.raises(ConfigError, match="monitor 'val_loss' is not a metric"):
        spark_net.fit(df, callbacks=[EarlyStopping()])
    with pytest.raises(DataError, match="validation_data: features have shape"):
        spark_net.fit(df, validation_data=(np.zeros((4, 10), np.float32), np.zeros(4, np.int64)))
    assert _jobs(shipped) == before, "a Spark job ran before the bad input was reported"


def test_data_width_not_matching_input_shape_names_it(shipped: SparkSession) -> None:
    rng = np.random.default_rng(0)
    wide = _frame(shipped, rng.normal(size=(16, 70)).astype(np.float32), rng.integers(0, 3, 16))
    spark_net = SparkNetwork(shipped, _conf(0), ParameterAveraging(num_workers=2))
    before = spark_net.network.params()
    with pytest.raises(DataError, match=r"70 features per row but the network's input expects 64.*input_shape"):
        spark_net.fit(wide)
    with pytest.raises(DataError, match="expects 64"):
        spark_net.fit(_frame(shipped, *_blobs(16, 0)), validation_data=wide)
    np.testing.assert_array_equal(spark_net.network.params(), before)
