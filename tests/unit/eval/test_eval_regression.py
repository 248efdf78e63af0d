"""RegressionEvaluation against scikit-learn and numpy, including numerically hard data."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from deepspark.errors import DataError
from deepspark.eval import RegressionEvaluation


def _data(seed: int, n: int = 500, offset: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = offset + rng.normal(loc=[0.0, 5.0, -2.0], scale=[1.0, 3.0, 0.1], size=(n, 3))
    return labels, labels * 0.9 + rng.normal(scale=[0.5, 1.0, 0.05], size=(n, 3))


def _check_against_sklearn(ev: RegressionEvaluation, labels: np.ndarray, preds: np.ndarray, rtol: float) -> None:
    mse = mean_squared_error(labels, preds, multioutput="raw_values")
    mae = mean_absolute_error(labels, preds, multioutput="raw_values")
    r2 = r2_score(labels, preds, multioutput="raw_values")
    for c in range(labels.shape[1]):
        pearson = np.corrcoef(labels[:, c], preds[:, c])[0, 1]
        got = [
            ev.mean_squared_error(c),
            ev.mean_absolute_error(c),
            ev.root_mean_squared_error(c),
            ev.r_squared(c),
            ev.relative_squared_error(c),
            ev.pearson_correlation(c),
        ]
        expected = [mse[c], mae[c], np.sqrt(mse[c]), r2[c], 1 - r2[c], pearson]
        np.testing.assert_allclose(got, expected, rtol=rtol)
    assert ev.average_mean_squared_error() == pytest.approx(mse.mean())
    assert ev.average_r_squared() == pytest.approx(r2.mean(), rel=rtol)


def test_regression_random_data_matches_sklearn(seed: int) -> None:
    labels, preds = _data(seed)
    ev = RegressionEvaluation()
    for lo in range(0, 500, 64):
        ev.eval(labels[lo : lo + 64], preds[lo : lo + 64])
    assert ev.n_columns == 3 and ev.num_examples() == 500
    _check_against_sklearn(ev, labels, preds, rtol=1e-9)


def test_regression_large_offset_stays_accurate(seed: int) -> None:
    labels, preds = _data(seed, offset=1e7)  # sums of squares would cancel catastrophically
    ev = RegressionEvaluation()
    for lo in range(0, 500, 50):
        ev.eval(labels[lo : lo + 50], preds[lo : lo + 50])
    _check_against_sklearn(ev, labels, preds, rtol=1e-5)


def test_regression_one_dimensional_input_is_one_column() -> None:
    ev = RegressionEvaluation(column_names=["price"])
    ev.eval([1.0, 2.0, 3.0], [1.5, 2.0, 2.5])
    assert ev.mean_squared_error(0) == pytest.approx(1 / 6)
    assert ev.r_squared(0) == pytest.approx(0.75)
    assert "price" in ev.stats() and "R^2" in ev.stats()


def test_regression_per_output_mask_equals_separate_columns(seed: int) -> None:
    labels, preds = _data(seed, n=200)
    mask = np.random.default_rng(seed + 7).integers(0, 2, size=labels.shape)
    ev = RegressionEvaluation()
    ev.eval(labels, preds, mask=mask)
    for c in range(3):
        keep = mask[:, c] == 1
        single = RegressionEvaluation()
        single.eval(labels[keep, c], preds[keep, c])
        assert ev.num_examples(c) == keep.sum()
        np.testing.assert_allclose(
            [ev.mean_squared_error(c), ev.r_squared(c), ev.pearson_correlation(c)],
            [single.mean_squared_error(0), single.r_squared(0), single.pearson_correlation(0)],
            rtol=1e-10,
        )


def test_regression_constant_labels_r_squared_nan_without_warning() -> None:
    ev = RegressionEvaluation()
    ev.eval([[2.0], [2.0]], [[1.0], [3.0]])
    assert ev.mean_squared_error(0) == 1.0
    assert np.isnan(ev.r_squared(0)) and np.isnan(ev.pearson_correlation(0))
    empty = RegressionEvaluation(n_columns=2)
    assert np.isnan(empty.mean_absolute_error(1)) and np.isnan(empty.average_r_squared())
    assert np.isnan(empty.relative_squared_error(0))


def test_regression_column_out_of_range_raises_data_error() -> None:
    ev = RegressionEvaluation(n_columns=2)
    with pytest.raises(DataError, match="column index 2"):
        ev.r_squared(2)
