"""EvaluationCalibration: reliability diagrams and histograms against a direct numpy computation."""

from __future__ import annotations

import numpy as np
import pytest

from deepspark.errors import DataError
from deepspark.eval import EvaluationCalibration


def _data(seed: int, n: int = 400, c: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, size=n)
    logits = rng.normal(size=(n, c))
    logits[np.arange(n), labels] += 1.0
    return labels, np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


def _bin(values: np.ndarray, bins: int) -> np.ndarray:
    return np.minimum(np.floor(values * bins).astype(int), bins - 1)


def test_calibration_reliability_diagram_matches_direct_computation(seed: int) -> None:
    labels, probs = _data(seed)
    cal = EvaluationCalibration(reliability_bins=8)
    cal.eval(labels, probs)
    for k in range(3):
        d = cal.reliability_diagram(k)
        bins = _bin(probs[:, k], 8)
        counts = np.bincount(bins, minlength=8)
        np.testing.assert_array_equal(d.counts, counts)
        for b in range(8):
            sel = bins == b
            if counts[b]:
                assert d.mean_predicted[b] == pytest.approx(probs[sel, k].mean())
                assert d.observed_frequency[b] == pytest.approx(np.mean(labels[sel] == k))
            else:
                assert np.isnan(d.mean_predicted[b]) and np.isnan(d.observed_frequency[b])
        np.testing.assert_allclose(d.bin_edges, np.linspace(0, 1, 9))


def test_calibration_histograms_match_direct_computation(seed: int) -> None:
    labels, probs = _data(seed)
    cal = EvaluationCalibration(histogram_bins=20)
    cal.eval(labels, probs)
    onehot = np.eye(3)[labels]
    overall = cal.probability_histogram()
    np.testing.assert_array_equal(overall.counts, np.bincount(_bin(probs.ravel(), 20), minlength=20))
    residual = cal.residual_histogram()
    np.testing.assert_array_equal(residual.counts, np.bincount(_bin(np.abs(onehot - probs).ravel(), 20), minlength=20))
    for k in range(3):
        own = probs[labels == k, k]
        np.testing.assert_array_equal(cal.probability_histogram(k).counts, np.bincount(_bin(own, 20), minlength=20))
        np.testing.assert_array_equal(cal.residual_histogram(k).counts, np.bincount(_bin(1 - own, 20), minlength=20))
    np.testing.assert_array_equal(cal.label_counts(), np.bincount(labels, minlength=3))
    np.testing.assert_array_equal(cal.prediction_counts(), np.bincount(probs.argmax(axis=1), minlength=3))


def test_calibration_perfectly_calibrated_bins_have_zero_error() -> None:
    cal = EvaluationCalibration(reliability_bins=4)
    # class 1 predicted with 0.25 for four examples (one positive) and 0.75 for four (three positive)
    p1 = np.array([0.25] * 4 + [0.75] * 4)
    cal.eval([1, 0, 0, 0, 1, 1, 1, 0], p1)
    assert cal.n_classes == 2
    assert cal.expected_calibration_error(1) == pytest.approx(0.0)
    assert cal.expected_calibration_error() == pytest.approx(0.0)
    d = cal.reliability_diagram(1)
    np.testing.assert_array_equal(d.counts, [0, 4, 0, 4])
    np.testing.assert_allclose(d.observed_frequency[[1, 3]], [0.25, 0.75])


def test_calibration_probability_one_lands_in_last_bin() -> None:
    cal = EvaluationCalibration(reliability_bins=5, histogram_bins=5)
    cal.eval([0, 1], [[1.0, 0.0], [0.0, 1.0]])
    assert cal.reliability_diagram(0).counts.tolist() == [1, 0, 0, 0, 1]
    assert cal.residual_histogram().counts.tolist() == [4, 0, 0, 0, 0]
    assert "Class 1" in cal.stats()


def test_calibration_empty_results_nan_and_class_checked() -> None:
    cal = EvaluationCalibration()
    assert cal.num_examples() == 0
    assert cal.probability_histogram().counts.sum() == 0
    assert np.isnan(cal.expected_calibration_error())
    with pytest.raises(DataError, match="class index 0"):
        cal.reliability_diagram(0)
