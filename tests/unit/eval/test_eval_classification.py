"""Evaluation and EvaluationBinary against scikit-learn, plus their edge cases and stats() text."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    matthews_corrcoef,
    precision_recall_fscore_support,
    top_k_accuracy_score,
)

from deepspark.errors import ConfigError, DataError
from deepspark.eval import Evaluation, EvaluationBinary

N_CLASSES = 5


def _data(seed: int, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, N_CLASSES, size=n)
    logits = rng.normal(size=(n, N_CLASSES))
    logits[np.arange(n), labels] += rng.uniform(0, 2.5, size=n)  # better than chance, not perfect
    return labels, np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


def test_evaluation_random_data_matches_sklearn(seed: int) -> None:
    labels, probs = _data(seed)
    predicted = probs.argmax(axis=1)
    ev = Evaluation()
    ev.eval(labels, probs)
    classes = list(range(N_CLASSES))
    assert ev.n_classes == N_CLASSES
    np.testing.assert_array_equal(ev.confusion_matrix(), confusion_matrix(labels, predicted, labels=classes))
    assert ev.confusion_matrix().dtype == np.int64
    assert ev.accuracy() == pytest.approx(accuracy_score(labels, predicted))
    p, r, f, support = precision_recall_fscore_support(labels, predicted, labels=classes, zero_division=np.nan)
    for c in classes:
        np.testing.assert_allclose([ev.precision(c), ev.recall(c), ev.f1(c)], [p[c], r[c], f[c]])
        assert ev.class_count(c) == support[c]
        binary_mcc = matthews_corrcoef(labels == c, predicted == c)
        assert ev.mcc(c) == pytest.approx(binary_mcc)
    for average in ("macro", "micro"):
        expected = precision_recall_fscore_support(
            labels, predicted, labels=classes, average=average, zero_division=np.nan
        )[:3]
        got = [ev.precision(average=average), ev.recall(average=average), ev.f1(average=average)]
        np.testing.assert_allclose(got, expected)
    assert ev.mcc() == pytest.approx(matthews_corrcoef(labels, predicted))
    assert ev.num_examples() == len(labels)


@pytest.mark.parametrize("top_n", [1, 2, 3])
def test_evaluation_top_n_accuracy_matches_sklearn(seed: int, top_n: int) -> None:
    labels, probs = _data(seed)
    ev = Evaluation(top_n=top_n)
    ev.eval(labels, probs)
    expected = top_k_accuracy_score(labels, probs, k=top_n, labels=list(range(N_CLASSES)))
    assert ev.top_n_accuracy() == pytest.approx(expected)


def test_evaluation_ties_top1_equals_accuracy() -> None:
    ev = Evaluation(top_n=1)
    ev.eval([0, 1, 2, 1], [[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.2, 0.4, 0.4], [0.1, 0.8, 0.1]])
    assert ev.accuracy() == ev.top_n_accuracy() == 0.5


def test_evaluation_onehot_labels_equal_index_labels(seed: int) -> None:
    labels, probs = _data(seed, 100)
    by_index, by_onehot, by_column = Evaluation(), Evaluation(), Evaluation()
    by_index.eval(labels, probs)
    by_onehot.eval(np.eye(N_CLASSES)[labels], probs)
    by_column.eval(labels[:, None].astype(float), probs)
    assert by_index == by_onehot == by_column


def test_evaluation_single_column_binary_equals_two_columns(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=50)
    p1 = rng.random(50)
    p1[:3] = 0.5  # exactly on the threshold: class 0, as argmax of [0.5, 0.5]
    one, two, flat = Evaluation(), Evaluation(), Evaluation()
    one.eval(labels, p1[:, None])
    flat.eval(labels, p1)
    two.eval(labels, np.stack([1 - p1, p1], axis=1))
    assert one == two == flat
    assert one.n_classes == 2


def test_evaluation_never_predicted_class_precision_nan_without_warning() -> None:
    ev = Evaluation(n_classes=3)
    ev.eval([0, 1, 2, 2], [[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.1, 0.8, 0.1]])
    assert np.isnan(ev.precision(2))
    assert ev.recall(2) == 0.0
    assert ev.f1(2) == 0.0
    assert ev.precision() == pytest.approx((0.5 + 0.5) / 2)  # undefined class skipped


def test_evaluation_no_examples_metrics_nan() -> None:
    ev = Evaluation(n_classes=3)
    values = [ev.accuracy(), ev.precision(), ev.recall(average="micro"), ev.f1(0), ev.mcc(), ev.mcc(1)]
    assert all(np.isnan(v) for v in values)
    assert ev.top_n_accuracy() != ev.top_n_accuracy()
    assert "Accuracy:        nan" in ev.stats()


def test_evaluation_n_classes_from_names() -> None:
    ev = Evaluation(labels=["cat", "dog"])
    assert ev.n_classes == 2
    with pytest.raises(DataError, match="n_classes=2"):
        ev.eval([0], [[0.1, 0.2, 0.7]])


def test_evaluation_class_index_out_of_range_raises_data_error() -> None:
    ev = Evaluation()
    ev.eval([0, 1], [[0.4, 0.6], [0.4, 0.6]])
    for bad in (2, -1):
        with pytest.raises(DataError, match=f"class index {bad}"):
            ev.precision(bad)
    with pytest.raises(ConfigError, match="average"):
        ev.f1(average="weighted")  # type: ignore[arg-type]


def test_evaluation_counts_accessors_consistent(seed: int) -> None:
    labels, probs = _data(seed, 200)
    ev = Evaluation()
    ev.eval(labels, probs)
    for c in range(N_CLASSES):
        total = ev.true_positives(c) + ev.false_positives(c) + ev.false_negatives(c) + ev.true_negatives(c)
        assert total == 200
        assert ev.true_positives(c) + ev.false_negatives(c) == ev.class_count(c)


def test_evaluation_stats_contains_accuracy_and_confusion_matrix() -> None:
    ev = Evaluation(labels=["cat", "dog", "bird"])
    ev.eval([0, 1, 2, 2, 1], [[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.6, 0.3, 0.1], [0.1, 0.7, 0.2]])
    text = ev.stats()
    assert " Accuracy:        0.8000" in text
    assert "Precision:" in text and "Recall:" in text and "F1 Score:" in text and "MCC:" in text
    assert "Confusion Matrix" in text
    assert "1 0 0 | 0 = cat" in text
    assert "0 2 0 | 1 = dog" in text
    assert "1 0 1 | 2 = bird" in text


def _multilabel(seed: int, n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=(n, 4))
    return labels, np.clip(0.4 * labels + 0.6 * rng.random((n, 4)), 0.0, 1.0)


@pytest.mark.parametrize("threshold", [0.5, 0.3])
def test_evaluation_binary_matches_sklearn_per_column(seed: int, threshold: float) -> None:
    labels, probs = _multilabel(seed)
    ev = EvaluationBinary(threshold=threshold)
    ev.eval(labels, probs)
    predicted = probs > threshold
    for c in range(4):
        p, r, f, _ = precision_recall_fscore_support(labels[:, c], predicted[:, c], average="binary")
        assert ev.accuracy(c) == pytest.approx(accuracy_score(labels[:, c], predicted[:, c]))
        np.testing.assert_allclose([ev.precision(c), ev.recall(c), ev.f1(c)], [p, r, f])
    assert ev.average_f1() == pytest.approx(np.mean([ev.f1(c) for c in range(4)]))
    assert ev.num_examples() == 300


def test_evaluation_binary_per_output_mask_counts_each_column() -> None:
    ev = EvaluationBinary()
    ev.eval([[1, 0], [1, 1], [0, 1]], [[0.9, 0.1], [0.2, 0.8], [0.4, 0.3]], mask=[[1, 0], [1, 1], [0, 1]])
    assert [ev.num_examples(0), ev.num_examples(1)] == [2, 2]
    assert (ev.true_positives(0), ev.false_negatives(0)) == (1, 1)
    assert (ev.true_positives(1), ev.false_negatives(1)) == (1, 1)


def test_evaluation_binary_undefined_metrics_nan() -> None:
    ev = EvaluationBinary()
    ev.eval([[0], [0]], [[0.1], [0.2]])
    assert np.isnan(ev.precision(0)) and np.isnan(ev.recall(0))
    assert ev.accuracy(0) == 1.0
    assert "accuracy" in ev.stats()
