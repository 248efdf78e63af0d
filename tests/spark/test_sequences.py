"""Sequences on local[2]: padded tensors and masks from array<array<float>>, LSTM/RnnOutput training and inference."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from deepspark.config import LSTM, Adam, InputType, NetworkConfig, Output
from deepspark.config.layers import GRU, LastTimeStep, RnnOutput
from deepspark.data.sequences import describe_sequences, sequences_to_arrays
from deepspark.errors import DataError
from deepspark.nn import Network
from deepspark.spark import ParameterAveraging, SparkNetwork

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def _sequences(n: int, seed: int, max_len: int = 5) -> tuple[list[np.ndarray], np.ndarray]:
    """Sequences of 1..max_len steps of 2 features; class 1 when the first feature sums above 0."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, max_len + 1, n)
    seqs = [rng.normal(size=(int(t), 2)) for t in lengths]
    labels = np.array([int(s[:, 0].sum() > 0) for s in seqs])
    return seqs, labels


def _frame(spark: SparkSession, seqs: list[np.ndarray], labels: Any, label_type: str = "long") -> DataFrame:
    cast = float if label_type == "double" else int
    rows = [
        (i, s.tolist(), lab.tolist() if isinstance(lab, np.ndarray) else cast(lab))
        for i, (s, lab) in enumerate(zip(seqs, labels, strict=True))
    ]
    return spark.createDataFrame(rows, f"id long, steps array<array<double>>, label {label_type}").coalesce(2)


def _padded(seqs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    t = max(len(s) for s in seqs)
    x = np.zeros((len(seqs), t, seqs[0].shape[1]), np.float32)
    mask = np.zeros((len(seqs), t), np.float32)
    for i, s in enumerate(seqs):
        x[i, : len(s)] = s
        mask[i, : len(s)] = 1
    return x, mask


def test_sequences_to_arrays_pads_and_masks_match_lengths(spark: SparkSession, seed: int) -> None:
    seqs, labels = _sequences(30, seed)
    df = _frame(spark, seqs, labels).orderBy("id")
    x, y, fmask, lmask = sequences_to_arrays(df, "steps", "label")
    expected_x, expected_mask = _padded(seqs)
    assert x is not None and fmask is not None and y is not None
    np.testing.assert_allclose(x, expected_x, rtol=1e-6)
    np.testing.assert_array_equal(fmask, expected_mask)
    np.testing.assert_array_equal(fmask.sum(axis=1), [len(s) for s in seqs])
    assert y.dtype == np.int64 and y.tolist() == labels.tolist() and lmask is None


def test_per_step_labels_get_their_own_mask_and_univariate_sequences_read_as_one_feature(spark: SparkSession) -> None:
    df = spark.createDataFrame(
        [([0.5, 1.5, 2.5], [1, 0]), ([3.0], [2]), ([4.0, 5.0], [0, 1])], "steps array<double>, label array<int>"
    )
    x, y, fmask, lmask = sequences_to_arrays(df, "steps", "label", label_kind="sequence_index")
    assert x is not None and x.shape == (3, 3, 1)
    np.testing.assert_array_equal(x[..., 0], [[0.5, 1.5, 2.5], [3, 0, 0], [4, 5, 0]])
    np.testing.assert_array_equal(fmask, [[1, 1, 1], [1, 0, 0], [1, 1, 0]])
    assert y is not None and y.dtype == np.int64
    np.testing.assert_array_equal(y, [[1, 0, 0], [2, 0, 0], [0, 1, 0]])
    np.testing.assert_array_equal(lmask, [[1, 1, 0], [1, 0, 0], [1, 1, 0]])
    onehot = spark.createDataFrame(
        [([[1.0], [2.0]], [[0.0, 1.0], [1.0, 0.0]])], "steps array<array<double>>, label array<array<double>>"
    )
    spec, _ = describe_sequences(onehot, "steps", "label")
    assert (spec.label_kind, spec.n_label_values, spec.timesteps) == ("sequence_array", 2, 2)
    _, y2, _, lmask2 = sequences_to_arrays(onehot, "steps", "label")
    assert y2 is not None and y2.shape == (1, 2, 2) and lmask2 is not None and lmask2.tolist() == [[1, 1]]


@pytest.mark.parametrize(
    ("rows", "schema", "kind", "message"),
    [
        (
            [([[1.0, 2.0], [3.0]], 0)],
            "steps array<array<double>>, label long",
            None,
            r"column 'steps': each time step has 1\.\.2 values; every time step needs the same width",
        ),
        (
            [([[1.0]], 0), ([], 1)],
            "steps array<array<double>>, label long",
            None,
            r"column 'steps' has empty sequences",
        ),
        (
            [([[1.0]], [1, 0])],
            "steps array<array<double>>, label array<int>",
            "sequence_index",
            r"label column 'label': 1 row\(s\) have more label steps than time steps in 'steps'",
        ),
        (
            [([[1.0]], "cat")],
            "steps array<array<double>>, label string",
            None,
            r"label column 'label': type string is not a number.*StringIndexer",
        ),
        (
            [(1.0, 0)],
            "steps double, label long",
            None,
            r"features column 'steps' has type double, which holds no sequence",
        ),
    ],
    ids=["ragged steps", "empty sequence", "label longer than sequence", "string label", "not a sequence"],
)
def test_describe_sequences_bad_input_raises_data_error_naming_the_column(
    spark: SparkSession, rows: list[Any], schema: str, kind: Any, message: str
) -> None:
    with pytest.raises(DataError, match=message):
        describe_sequences(spark.createDataFrame(rows, schema), "steps", "label", label_kind=kind)


def _last_step_conf(seed: int) -> NetworkConfig:
    return NetworkConfig(
        seed=seed,
        updater=Adam(learning_rate=3e-2),
        input_type=InputType.recurrent(2),
        layers=(LSTM(n_out=6), LastTimeStep(), Output(n_out=2)),
    )


def test_spark_fit_one_worker_with_masks_equals_single_machine_fit(spark: SparkSession, seed: int) -> None:
    seqs, labels = _sequences(48, seed)
    df = _frame(spark, seqs, labels).orderBy("id")
    master = ParameterAveraging(num_workers=1, batch_size_per_worker=16, averaging_frequency=2, seed=seed)
    trained = SparkNetwork(spark, _last_step_conf(seed), master).fit(df, "steps", "label", epochs=2)
    x, mask = _padded(seqs)
    local = Network(_last_step_conf(seed))
    local.fit(x, labels, epochs=2, batch_size=16, features_mask=mask)
    np.testing.assert_allclose(trained.params(), local.params(), atol=1e-5)


def test_spark_lstm_last_time_step_two_workers_learns_evaluates_and_predicts(spark: SparkSession, seed: int) -> None:
    seqs, labels = _sequences(400, seed)
    df = _frame(spark, seqs, labels, "double")  # Spark ML style class labels (doubles)
    master = ParameterAveraging(num_workers=2, batch_size_per_worker=32, averaging_frequency=4, seed=seed)
    spark_net = SparkNetwork(spark, _last_step_conf(seed), master)
    spark_net.fit(df, "steps", "label", epochs=4)
    accuracy = spark_net.evaluate(df, "steps", "label").accuracy()
    assert accuracy > 0.85, f"accuracy {accuracy:.3f}; reproduce with DEEPSPARK_TEST_SEED={seed}"
    predicted = spark_net.predict(df, "steps").orderBy("id").select("prediction").toPandas()["prediction"]
    x, mask = _padded(seqs)
    local = np.argmax(spark_net.network.output(x, features_mask=mask), axis=1)
    np.testing.assert_array_equal(predicted.to_numpy().astype(np.int64), local)
    score = spark_net.score(df, "steps", "label")
    assert np.isfinite(score) and score < 0.6


def test_spark_gru_rnn_output_per_step_labels_learn_through_label_masks(spark: SparkSession, seed: int) -> None:
    seqs, _ = _sequences(300, seed)
    per_step = [(s[:, 0] > 0).astype(np.int64) for s in seqs]  # class of each step: its first feature's sign
    df = _frame(spark, seqs, per_step, "array<long>")
    conf = NetworkConfig(
        seed=seed,
        updater=Adam(learning_rate=3e-2),
        input_type=InputType.recurrent(2),
        layers=(GRU(n_out=8), RnnOutput(n_out=2)),
    )
    master = ParameterAveraging(num_workers=2, batch_size_per_worker=32, averaging_frequency=4, seed=seed)
    spark_net = SparkNetwork(spark, conf, master)
    spark_net.fit(df, "steps", "label", epochs=4)
    evaluation = spark_net.evaluate(df, "steps", "label")
    assert evaluation.num_examples() == sum(len(s) for s in seqs)  # padded steps are masked out
    assert evaluation.accuracy() > 0.85, f"reproduce with DEEPSPARK_TEST_SEED={seed}"
