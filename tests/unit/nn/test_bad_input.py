"""Bad input table: every unusable array or config raises a typed error whose message names the problem."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from deepspark.config import (
    LSTM,
    Dense,
    Embedding,
    InputType,
    LastTimeStep,
    Layer,
    NetworkConfig,
    Output,
    RnnOutput,
)
from deepspark.errors import ConfigError, DataError, DeepSparkError
from deepspark.nn import Network


def _classifier() -> Network:
    return Network(NetworkConfig(input_type=InputType.feed_forward(4), layers=(Dense(n_out=3), Output(n_out=3))))


def _regressor() -> Network:
    return Network(
        NetworkConfig(
            input_type=InputType.feed_forward(4), layers=(Output(n_out=2, activation="identity", loss="mse"),)
        )
    )


def _sequence() -> Network:
    return Network(NetworkConfig(input_type=InputType.recurrent(2, 3), layers=(LSTM(n_out=2), RnnOutput(n_out=2))))


X = np.zeros((4, 4), dtype=np.float32)
Y = np.array([0, 1, 2, 1])


def _with(row: int, col: int, value: float) -> np.ndarray:
    x = X.copy()
    x[row, col] = value
    return x


# (id, network factory, features, labels, message pattern)
FIT_CASES: list[tuple[str, Callable[[], Network], Any, Any, str]] = [
    (
        "wrong_feature_width",
        _classifier,
        np.zeros((4, 5), np.float32),
        Y,
        r"features have shape \(4, 5\) but the network's input type ff\(4\) expects \(N, 4\)",
    ),
    ("features_1d", _classifier, np.zeros(4, np.float32), Y, r"shape \(4,\)"),
    (
        "nan_features",
        _classifier,
        _with(2, 1, np.nan),
        Y,
        r"features contain NaN or infinite values \(first at row 2\)",
    ),
    ("inf_features", _classifier, _with(3, 0, np.inf), Y, r"NaN or infinite values \(first at row 3\)"),
    ("neg_inf_features", _classifier, _with(0, 0, -np.inf), Y, "NaN or infinite"),
    (
        "label_too_large",
        _classifier,
        X,
        np.array([0, 1, 3, 1]),
        r"class index 3 is out of range for 3 output classes \(valid 0\.\.2\)",
    ),
    ("negative_label", _classifier, X, np.array([0, -1, 2, 1]), "class index -1 is out of range"),
    ("fractional_labels", _classifier, X, np.array([0.0, 1.5, 2.0, 1.0]), "whole numbers, got fractional"),
    ("nan_labels", _classifier, X, np.array([0.0, np.nan, 2.0, 1.0]), "labels contain NaN"),
    ("one_hot_wrong_width", _classifier, X, np.zeros((4, 2), np.float32), "one-hot rows with 3 columns"),
    ("empty_features", _classifier, np.zeros((0, 4), np.float32), np.zeros(0, np.int64), r"features are empty"),
    ("scalar_features", _classifier, np.float32(1.0), Y, "features are empty"),
    ("length_mismatch", _classifier, X, np.array([0, 1, 2]), "labels have 3 rows but the features have 4"),
    ("string_features", _classifier, np.array([["a"] * 4] * 4), Y, "expected numbers, got dtype <U1"),
    ("string_labels", _classifier, X, np.array(["a", "b", "a", "b"]), "encode string labels as class indices"),
    ("ragged_features", _classifier, [[1.0, 2.0], [1.0]], [0, 1], "rows of different lengths"),
    ("object_features", _classifier, np.array([{"a": 1}] * 4, dtype=object), Y, "dtype object"),
    (
        "regression_wrong_width",
        _regressor,
        X,
        np.zeros((4, 3), np.float32),
        r"labels have shape \(4, 3\) but the output layer emits 2 values per example; expected \(N, 2\)",
    ),
    ("regression_1d_for_two_outputs", _regressor, X, np.zeros(4, np.float32), "emits 2 values per example"),
    (
        "sequence_wrong_steps",
        _sequence,
        np.zeros((2, 4, 2), np.float32),
        np.zeros((2, 4), np.int64),
        r"input type rnn\(3x2\) expects \(N, 3, 2\)",
    ),
    (
        "sequence_labels_not_per_step",
        _sequence,
        np.zeros((2, 3, 2), np.float32),
        np.zeros(2, np.int64),
        r"expected class indices \(N, T\)",
    ),
]


@pytest.mark.parametrize(("make", "x", "y", "pattern"), [c[1:] for c in FIT_CASES], ids=[c[0] for c in FIT_CASES])
def test_network_fit_bad_input_data_error_names_problem(make, x, y, pattern: str) -> None:  # type: ignore[no-untyped-def]
    net = make()
    before = net.params()
    with pytest.raises(DataError, match=pattern):
        net.fit(x, y, epochs=1, batch_size=2)
    np.testing.assert_array_equal(net.params(), before)  # nothing was trained on the bad data
    assert net.iteration == 0


@pytest.mark.parametrize(
    ("x", "pattern"), [(np.zeros((2, 3), np.float32), r"shape \(2, 3\)"), (_with(0, 0, np.nan), "NaN")]
)
def test_network_output_bad_features_data_error(x: np.ndarray, pattern: str) -> None:
    with pytest.raises(DataError, match=pattern):
        _classifier().output(x)


def test_network_score_and_evaluate_bad_labels_data_error() -> None:
    net = _classifier()
    with pytest.raises(DataError, match="class index 5"):
        net.score(X, np.array([0, 1, 5, 1]))
    with pytest.raises(DataError, match="labels have 2 rows"):
        net.evaluate(X, np.array([0, 1]))


def test_network_fit_features_without_labels_data_error() -> None:
    with pytest.raises(DataError, match=r"labels are missing: call fit\(x, y\)"):
        _classifier().fit(X)


def test_network_fit_list_features_without_labels_data_error() -> None:
    with pytest.raises(DataError, match=r"fit\(x, y\)"):
        _classifier().fit(X.tolist())


def test_network_fit_empty_iterator_data_error() -> None:
    with pytest.raises(DataError, match="yielded no minibatches"):
        _classifier().fit([], epochs=1)


@pytest.mark.parametrize(("kwargs", "pattern"), [({"epochs": 0}, "epochs"), ({"batch_size": 0}, "batch_size")])
def test_network_fit_non_positive_epochs_or_batch_size_data_error(kwargs: dict, pattern: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(DataError, match=pattern):
        _classifier().fit(X, Y, **kwargs)


def test_network_constructor_non_config_deep_spark_error() -> None:
    with pytest.raises(DeepSparkError, match=r"needs a NetworkConfig.*got dict"):
        Network({"layers": []})  # type: ignore[arg-type]


def test_network_embedding_index_out_of_range_data_error() -> None:
    net = Network(
        NetworkConfig(input_type=InputType.feed_forward(1), layers=(Embedding(vocab_size=3, n_out=2), Output(n_out=2)))
    )
    with pytest.raises(DataError, match="embedding index 5 is out of range for vocab_size 3"):
        net.fit(np.array([[0.0], [5.0]]), np.array([0, 1]))
    with pytest.raises(DataError, match="whole-number indices"):
        net.output(np.array([[0.5]]))


@pytest.mark.parametrize(
    ("mask", "pattern"),
    [
        (np.ones((3, 3)), r"features_mask must have shape \(N, T\) with N=2"),
        (np.ones(2), r"got \(2,\)"),
        (np.full((2, 3), 2.0), "only 0 \\(padding\\) and 1"),
    ],
)
def test_network_fit_bad_features_mask_data_error(mask: np.ndarray, pattern: str) -> None:
    net = Network(
        NetworkConfig(input_type=InputType.recurrent(2, 3), layers=(LSTM(n_out=2), LastTimeStep(), Output(n_out=2)))
    )
    with pytest.raises(DataError, match=pattern):
        net.fit(np.zeros((2, 3, 2), np.float32), np.array([0, 1]), features_mask=mask)


def test_network_fit_features_mask_wrong_steps_data_error() -> None:
    net = Network(
        NetworkConfig(input_type=InputType.recurrent(2), layers=(LSTM(n_out=2), LastTimeStep(), Output(n_out=2)))
    )
    with pytest.raises(DataError, match="T=3"):
        net.fit(np.zeros((2, 3, 2), np.float32), np.array([0, 1]), features_mask=np.ones((2, 5)))


# ----------------------------------------------------------------------------- config-side bad input


CONFIG_CASES: list[tuple[str, Callable[[], object], str, str]] = [
    ("negative_n_out", lambda: Dense(n_out=-1), "n_out", "expected a positive int, got -1"),
    ("zero_n_out", lambda: Output(n_out=0), "n_out", "expected a positive int, got 0"),
    ("unknown_activation", lambda: Dense(n_out=2, activation="relux"), "activation", "did you mean 'relu'?"),
    ("unknown_loss", lambda: Output(n_out=2, loss="mcxnet"), "loss", "did you mean 'mcxent'?"),
    ("dropout_above_one", lambda: Dense(n_out=2, dropout=1.5), "dropout", "probability in [0, 1), got 1.5"),
    ("string_n_out", lambda: Dense(n_out="3"), "n_out", "expected an int, got '3' (str)"),
    (
        "unknown_layer_json",
        lambda: Layer.from_json('{"type": "dense2", "n_out": 3}'),
        "type",
        "unknown layer type 'dense2'; did you mean 'dense'?",
    ),
    (
        "unknown_layer_key_json",
        lambda: Layer.from_json('{"type": "dense", "n_out": 3, "activaton": "relu"}'),
        "activaton",
        "did you mean 'activation'?",
    ),
    (
        "layer_not_object",
        lambda: NetworkConfig.from_dict({"input_type": InputType.feed_forward(2).to_dict(), "layers": [3]}),
        "layers[0]",
        "expected a layer spec",
    ),
]


@pytest.mark.parametrize(("make", "path", "text"), [c[1:] for c in CONFIG_CASES], ids=[c[0] for c in CONFIG_CASES])
def test_config_bad_value_config_error_names_field(make, path: str, text: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as info:
        make()
    assert info.value.path == path
    assert text in info.value.message


def test_config_error_is_value_error_and_pickles() -> None:
    import pickle

    with pytest.raises(ValueError) as info:
        Dense(n_out=0)
    back = pickle.loads(pickle.dumps(info.value))
    assert isinstance(back, ConfigError) and back.path == "n_out" and str(back) == str(info.value)


def test_network_fit_float64_features_that_overflow_float32_data_error() -> None:
    x = X.astype(np.float64)
    x[2, 1] = 1e39  # finite as float64, inf once cast to the network's float32
    with pytest.raises(DataError, match=r"1e\+39 at row 2.*float32.*'float64'"):
        _classifier().fit(x, Y, epochs=1)


def test_network_fit_float64_labels_that_overflow_float32_data_error() -> None:
    y = np.zeros((4, 2))
    y[3, 0] = -1e39
    with pytest.raises(DataError, match=r"labels hold -1e\+39 at row 3"):
        _regressor().fit(X, y, epochs=1)


def test_network_float64_dtype_accepts_values_beyond_float32() -> None:
    net = Network(
        NetworkConfig(dtype="float64", input_type=InputType.feed_forward(4), layers=(Output(n_out=3),))
    )
    x = X.astype(np.float64)
    x[0, 0] = 1e39
    assert net.output(x).shape == (4, 3)


@pytest.mark.parametrize("make", [
    lambda: Output(n_out=1, activation="softmax", loss="mcxent"),
    lambda: Output(n_out=1),  # the defaults are softmax + mcxent
    lambda: RnnOutput(n_out=1, activation="softmax"),
], ids=["output", "output_defaults", "rnn_output"])
def test_single_unit_softmax_output_config_error(make: Callable[[], Any]) -> None:
    with pytest.raises(ConfigError) as info:
        make()
    assert info.value.path == "activation"
    assert "softmax over n_out=1 unit is always 1.0" in info.value.message
    assert "activation='sigmoid' with loss='xent'" in info.value.message and "n_out=2" in info.value.message


def test_single_unit_sigmoid_output_builds() -> None:
    conf = NetworkConfig(
        input_type=InputType.feed_forward(4), layers=(Output(n_out=1, activation="sigmoid", loss="xent"),)
    )
    assert Network(conf).num_params() == 5
