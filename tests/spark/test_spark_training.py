"""SparkNetwork + ParameterAveraging on local[2]: equivalence with single-machine training, stats, checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from deepspark.config import Adam, Dense, InputType, NetworkConfig, Output, Sgd
from deepspark.errors import DataError, TrainingDivergedError
from deepspark.nn import Network
from deepspark.spark import ParameterAveraging, SparkNetwork

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def _conf(seed: int, updater: object = None) -> NetworkConfig:
    return NetworkConfig(
        seed=seed,
        updater=updater or Adam(learning_rate=1e-2),  # type: ignore[arg-type]
        input_type=InputType.feed_forward(6),
        layers=(Dense(n_out=8, activation="tanh"), Output(n_out=3)),
    )


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.3)
    return x, y


def _frame(spark: SparkSession, x: np.ndarray, y: np.ndarray, partitions: int = 2) -> DataFrame:
    import pandas as pd

    pdf = pd.DataFrame({"id": np.arange(len(x)), "features": list(x.astype(np.float64)), "label": y})
    return spark.createDataFrame(pdf).repartition(partitions).sortWithinPartitions("id").orderBy("id")


TRANSPORTS = pytest.mark.parametrize("transport", ["collective", "spark"])


@TRANSPORTS
def test_spark_fit_one_worker_equals_single_machine_fit(spark: SparkSession, seed: int, transport: str) -> None:
    x, y = _data(96, seed)
    master = ParameterAveraging(
        num_workers=1, batch_size_per_worker=16, averaging_frequency=3, seed=seed, transport=transport  # type: ignore[arg-type]
    )
    trained = SparkNetwork(spark, _conf(seed), master).fit(_frame(spark, x, y), epochs=2)
    local = Network(_conf(seed))
    local.fit(x, y, epochs=2, batch_size=16)
    np.testing.assert_allclose(trained.params(), local.params(), atol=1e-6)
    assert trained.iteration == local.iteration


@TRANSPORTS
def test_spark_fit_two_workers_sgd_equals_one_step_with_averaged_gradient(
    spark: SparkSession, seed: int, transport: str
) -> None:
    x, y = _data(16, seed)
    master = ParameterAveraging(
        num_workers=2, batch_size_per_worker=8, averaging_frequency=1, seed=seed, transport=transport  # type: ignore[arg-type]
    )
    trained = SparkNetwork(spark, _conf(seed, Sgd(learning_rate=0.1)), master).fit(_frame(spark, x, y), epochs=1)
    local = Network(_conf(seed, Sgd(learning_rate=0.1)))
    local.fit(x, y, epochs=1, batch_size=16, shuffle=False)
    np.testing.assert_allclose(trained.params(), local.params(), atol=1e-5)


def test_spark_fit_collective_and_spark_transports_give_identical_parameters(spark: SparkSession, seed: int) -> None:
    x, y = _data(33, seed)  # 17 + 16 rows = 3 + 2 minibatches: worker 1 sits out round 2, as averaging defines it
    df = _frame(spark, x, y)
    trained = {}
    for transport in ("collective", "spark"):
        master = ParameterAveraging(
            num_workers=2, batch_size_per_worker=8, averaging_frequency=2, seed=seed, transport=transport  # type: ignore[arg-type]
        )
        net = SparkNetwork(spark, _conf(seed), master).fit(df, epochs=2)
        trained[transport] = (net.params(), net.updater_state(), net.iteration, net.epoch)
    collective, rounds = trained["collective"], trained["spark"]
    np.testing.assert_array_equal(collective[0], rounds[0])
    np.testing.assert_array_equal(collective[1], rounds[1])
    assert collective[2:] == rounds[2:] == (2 * 3, 2)  # per epoch: ceil(4 / 2) + ceil(1 / 1) iterations
    assert not np.array_equal(collective[0], Network(_conf(seed)).params())


def test_spark_fit_collects_stats_summary_timeline_and_advice(spark: SparkSession, tmp_path: Path) -> None:
    x, y = _data(64, 0)
    master = ParameterAveraging(
        num_workers=2, batch_size_per_worker=8, averaging_frequency=2, collect_training_stats=True
    )
    spark_net = SparkNetwork(spark, _conf(0), master)
    spark_net.fit(_frame(spark, x, y), epochs=1)
    stats = spark_net.training_stats()
    phases = set(stats.phase_totals())
    assert {"count", "repartition", "broadcast", "map", "process_params"} <= phases
    assert {"broadcast_get", "model_init", "data_fetch", "fit"} <= phases
    assert set(stats.workers()) == {0, 1}
    assert "fit" in stats.summary()
    html = stats.export_html(tmp_path / "timeline.html")
    assert html.stat().st_size > 1000
    assert stats.advice()


def test_spark_fit_checkpoint_resume_equals_uninterrupted(spark: SparkSession, tmp_path: Path) -> None:
    x, y = _data(64, 1)
    df = _frame(spark, x, y)
    master = ParameterAveraging(num_workers=2, batch_size_per_worker=8, averaging_frequency=2, seed=1)
    straight = SparkNetwork(spark, _conf(1), master).fit(df, epochs=2)
    first = SparkNetwork(spark, _conf(1), master)
    first.fit(df, epochs=1, checkpoint_dir=tmp_path / "ckpt")
    assert list((tmp_path / "ckpt").glob("*.zip"))
    resumed = SparkNetwork(spark, _conf(1), master).fit(df, epochs=1, resume_from=tmp_path / "ckpt")
    np.testing.assert_array_equal(resumed.params(), straight.params())


def test_spark_fit_two_workers_accuracy_close_to_single_machine(spark: SparkSession) -> None:
    x, y = _data(400, 3)
    master = ParameterAveraging(num_workers=2, batch_size_per_worker=16, averaging_frequency=4, seed=3)
    net = SparkNetwork(spark, _conf(3), master).fit(_frame(spark, x[:300], y[:300]), epochs=15)
    local = Network(_conf(3))
    local.fit(x[:300], y[:300], epochs=15, batch_size=16)
    spark_acc = net.evaluate(x[300:], y[300:]).accuracy()
    assert spark_acc > 0.75
    # averaging every 4 steps makes half as many effective updates per epoch as one machine: allow some lag
    assert spark_acc >= local.evaluate(x[300:], y[300:]).accuracy() - 0.1


@pytest.mark.parametrize(
    ("mutate", "phrase"),
    [
        (lambda df: df.withColumnRenamed("features", "feats"), "available"),
        (lambda df: df.limit(0), "no rows|empty"),
    ],
)
def test_spark_fit_bad_frames_raise_data_error(spark: SparkSession, mutate: object, phrase: str) -> None:
    x, y = _data(20, 0)
    df = mutate(_frame(spark, x, y))  # type: ignore[operator]
    with pytest.raises(DataError, match=phrase):
        SparkNetwork(spark, _conf(0), ParameterAveraging(num_workers=2)).fit(df)


def test_spark_fit_label_out_of_range_raises_data_error(spark: SparkSession) -> None:
    x, y = _data(20, 0)
    y[3] = 7
    with pytest.raises(DataError, match="out of range"):
        SparkNetwork(spark, _conf(0), ParameterAveraging(num_workers=2)).fit(_frame(spark, x, y))


def test_spark_fit_wrong_feature_width_raises_data_error(spark: SparkSession) -> None:
    x, y = _data(20, 0)
    conf = NetworkConfig(input_type=InputType.feed_forward(5), layers=(Output(n_out=3),))
    with pytest.raises(DataError, match="expects 5"):
        SparkNetwork(spark, conf, ParameterAveraging(num_workers=2)).fit(_frame(spark, x, y))


def test_spark_fit_more_workers_than_rows_raises_data_error(spark: SparkSession) -> None:
    x, y = _data(3, 0)
    with pytest.raises(DataError, match="num_workers"):
        SparkNetwork(spark, _conf(0), ParameterAveraging(num_workers=4)).fit(_frame(spark, x, y))


def test_spark_fit_nan_features_raise_data_error(spark: SparkSession) -> None:
    x, y = _data(20, 0)
    x[5, 2] = np.nan
    with pytest.raises(DataError, match=r"NaN|null"):  # pandas NaN inside arrays arrives as a null element
        SparkNetwork(spark, _conf(0), ParameterAveraging(num_workers=2)).fit(_frame(spark, x, y))


def test_spark_fit_float64_features_that_overflow_float32_raise_data_error(spark: SparkSession) -> None:
    import pandas as pd

    x, y = _data(20, 0)
    wide = x.astype(np.float64)
    wide[5, 2] = 1e39  # finite in the DataFrame's doubles, inf in the float32 blocks
    pdf = pd.DataFrame({"features": list(wide), "label": y})
    with pytest.raises(DataError, match=r"NaN or infinite features or beyond float32"):
        SparkNetwork(spark, _conf(0), ParameterAveraging(num_workers=2)).fit(spark.createDataFrame(pdf))


@TRANSPORTS
def test_spark_fit_diverging_raises_training_diverged_before_checkpointing(
    spark: SparkSession, transport: str, tmp_path: Path
) -> None:
    x, y = _data(64, 0)
    master = ParameterAveraging(num_workers=2, batch_size_per_worker=8, transport=transport)  # type: ignore[arg-type]
    net = SparkNetwork(spark, _conf(0, Sgd(learning_rate=1e308)), master)
    with pytest.raises(TrainingDivergedError, match="training diverged at iteration") as info:
        net.fit(_frame(spark, x, y), epochs=3, checkpoint_dir=tmp_path / "ckpt")
    assert info.value.iteration >= 0
    assert not list((tmp_path).rglob("*.zip"))  # no archive of NaN parameters was written
    assert net.network.epoch <= 1


def test_spark_fit_export_approach_trains_and_removes_its_export(spark: SparkSession, tmp_path: Path) -> None:
    x, y = _data(64, 2)
    master = ParameterAveraging(
        num_workers=2,
        batch_size_per_worker=8,
        averaging_frequency=2,
        approach="export",
        export_dir=str(tmp_path / "exports"),
    )
    before = Network(_conf(2)).params()
    net = SparkNetwork(spark, _conf(2), master).fit(_frame(spark, x, y), epochs=1)
    assert not np.array_equal(net.params(), before)
    assert net.iteration > 0
    assert not any((tmp_path / "exports").glob("*"))  # removed after fit (keep_export=False)


def test_spark_fit_from_exported_path_reuses_the_export(spark: SparkSession, tmp_path: Path) -> None:
    from deepspark.data.export import export_minibatches

    x, y = _data(64, 4)
    export_minibatches(_frame(spark, x, y), str(tmp_path / "mb"), 8)
    master = ParameterAveraging(num_workers=2, batch_size_per_worker=8, averaging_frequency=2, seed=4)
    first = SparkNetwork(spark, _conf(4), master).fit(str(tmp_path / "mb"), epochs=1)
    second = SparkNetwork(spark, _conf(4), master).fit(str(tmp_path / "mb"), epochs=1)
    np.testing.assert_array_equal(first.params(), second.params())


def test_spark_fit_export_dir_not_writable_raises_storage_error(spark: SparkSession, tmp_path: Path) -> None:
    from deepspark.errors import StorageError

    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    x, y = _data(32, 0)
    master = ParameterAveraging(num_workers=2, approach="export", export_dir=str(blocker / "exports"))
    with pytest.raises(StorageError):
        SparkNetwork(spark, _conf(0), master).fit(_frame(spark, x, y))


def test_spark_fit_checkpoint_dir_that_is_a_file_config_error_before_training(
    spark: SparkSession, tmp_path: Path
) -> None:
    from deepspark.errors import ConfigError

    x, y = _data(20, 0)
    taken = tmp_path / "ckpt"
    taken.write_text("not a folder")
    net = SparkNetwork(spark, _conf(0), ParameterAveraging(num_workers=2))
    with pytest.raises(ConfigError) as info:
        net.fit(_frame(spark, x, y), epochs=2, checkpoint_dir=taken)
    assert info.value.path == "checkpoint_dir" and "existing file" in info.value.message
    assert net.network.epoch == 0 and net.network.iteration == 0  # refused before the first epoch trained


def test_persisted_frame_split_over_the_workers_is_prepared_in_one_pass(spark: SparkSession, seed: int) -> None:
    """A persisted frame whose 2 partitions hold exactly each worker's share is converted where it lies, without the
    describe pass, into the same blocks the usual path makes; an uneven split and a bad class index fall back to the
    usual path (the latter with its full message)."""
    import pandas as pd
    from pyspark.sql import functions as F

    from deepspark.spark import GradientSharing
    from deepspark.spark._prepare import prepare
    from deepspark.spark.events import PhaseTimer

    x, y = _data(64, seed)
    pdf = pd.DataFrame({"id": np.arange(64), "features": list(x), "label": y})
    net = Network(_conf(seed))
    master = GradientSharing(num_workers=2, batch_size_per_worker=8)

    def blocks(frame: DataFrame) -> tuple[list[str], list[tuple[int, int, bytes, bytes]], tuple[int, ...]]:
        timer = PhaseTimer()
        prepared = prepare(frame, net, master, "features", "label", 2, timer)
        try:
            rows = prepared.blocks.collect()
        finally:
            prepared.unpersist()
        got = sorted((r["worker"], r["part"], bytes(r["x"]), bytes(r["y"])) for r in rows)
        return [e.phase for e in timer.events], got, prepared.counts

    usual_phases, expected, _ = blocks(spark.createDataFrame(pdf))  # not persisted: described, then converted
    assert usual_phases == ["count", "repartition"]
    persisted = spark.createDataFrame(pdf).persist()  # (the same plan: Spark now reads it from the cache)
    try:
        assert persisted.rdd.getNumPartitions() == 2
        phases, in_place, counts = blocks(persisted)
        assert phases == ["repartition"] and counts == (32, 32)
        assert in_place == expected
    finally:
        persisted.unpersist()

    keep = F.when(F.col("id") < 100, 40).otherwise(24)  # partition 0 keeps 40 rows, partition 1 24: 32 each, shuffled
    features = F.array(*[(F.col("id") * (j + 1) / 200).cast("float") for j in range(6)])
    uneven = (
        spark.range(0, 200, numPartitions=2)
        .filter(F.col("id") % 100 < keep)
        .select(features.alias("features"), (F.col("id") % 3).alias("label"))
        .persist()
    )
    try:
        assert uneven.rdd.getNumPartitions() == 2
        phases, _, counts = blocks(uneven)
        assert phases == ["repartition", "count", "repartition"] and counts == (32, 32)
    finally:
        uneven.unpersist()

    bad = spark.createDataFrame(pdf.assign(label=np.where(pdf["id"] == 40, 5, pdf["label"]))).persist()
    try:
        with pytest.raises(DataError, match=r"class index 5 is out of range for 3 output classes \(valid 0..2\)"):
            prepare(bad, net, master, "features", "label", 2, PhaseTimer())
    finally:
        bad.unpersist()
