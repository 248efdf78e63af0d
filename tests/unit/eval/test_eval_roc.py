"""ROC, ROCBinary and ROCMultiClass against scikit-learn, exact and thresholded."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

from deepspark.errors import DataError
from deepspark.eval import ROC, ROCBinary, ROCMultiClass


def _binary(seed: int, n: int = 500, decimals: int | None = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=n)
    scores = np.clip(0.25 * labels + 0.75 * rng.random(n), 0.0, 1.0)
    if decimals is not None:
        scores = np.round(scores, decimals)  # many ties
    return labels, scores


@pytest.mark.parametrize("decimals", [1, 2, None])
def test_roc_exact_with_ties_matches_sklearn(seed: int, decimals: int | None) -> None:
    labels, scores = _binary(seed, decimals=decimals)
    roc = ROC()
    roc.eval(labels, scores)
    assert roc.auc() == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    fpr, tpr, thr = roc.roc_curve()
    s_fpr, s_tpr, s_thr = roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, s_fpr)
    np.testing.assert_allclose(tpr, s_tpr)
    np.testing.assert_array_equal(thr, s_thr)
    precision, recall, _ = precision_recall_curve(labels, scores)
    assert roc.auprc() == pytest.approx(auc(recall, precision), abs=1e-12)
    assert roc.average_precision() == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
    assert roc.count_positive() + roc.count_negative() == roc.num_examples() == 500


def test_roc_thresholded_on_grid_equals_exact(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=400)
    scores = np.clip(rng.integers(0, 101, size=400) + 20 * labels, 0, 100) / 100  # exactly on the thresholds
    exact, steps = ROC(), ROC(threshold_steps=100)
    exact.eval(labels, scores)
    steps.eval(labels, scores)
    assert steps.auc() == pytest.approx(exact.auc(), abs=1e-12)
    assert steps.auprc() == pytest.approx(exact.auprc(), abs=1e-12)
    assert steps.average_precision() == pytest.approx(exact.average_precision(), abs=1e-12)


def test_roc_thresholded_close_to_exact_for_continuous_scores(seed: int) -> None:
    labels, scores = _binary(seed, n=2000, decimals=None)
    exact, steps = ROC(), ROC(threshold_steps=1000)
    exact.eval(labels, scores)
    steps.eval(labels, scores)
    assert abs(steps.auc() - exact.auc()) < 2e-3
    assert abs(steps.auprc() - exact.auprc()) < 5e-3
    fpr, tpr, thr = steps.roc_curve()
    assert thr[0] == np.inf and thr[-1] == 0.0
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)


def test_roc_input_layouts_are_equivalent(seed: int) -> None:
    labels, scores = _binary(seed, n=60)
    reference = ROC()
    reference.eval(labels, scores)
    layouts = [
        (labels[:, None], scores[:, None]),
        (np.eye(2)[labels], np.stack([1 - scores, scores], axis=1)),
        (labels.astype(bool), scores),
    ]
    for y, p in layouts:
        roc = ROC()
        roc.eval(y, p)
        assert roc == reference


def test_roc_single_class_auc_nan_without_warning() -> None:
    roc = ROC()
    roc.eval([1, 1, 1], [0.2, 0.5, 0.9])
    assert np.isnan(roc.auc())
    assert roc.auprc() == 1.0
    negatives = ROC(threshold_steps=10)
    negatives.eval([0, 0], [0.2, 0.5])
    assert np.isnan(negatives.auc()) and np.isnan(negatives.auprc()) and np.isnan(negatives.average_precision())
    assert np.isnan(ROC().auc())
    assert "AUC" in ROC().stats()


def test_roc_exact_accepts_scores_outside_unit_interval() -> None:
    roc = ROC()
    roc.eval([0, 1, 0, 1], [-3.0, 2.5, 0.1, 7.0])
    assert roc.auc() == 1.0


def _multilabel(seed: int, n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=(n, 3))
    return labels, np.round(np.clip(0.3 * labels + 0.7 * rng.random((n, 3)), 0, 1), 2)


def test_roc_binary_matches_sklearn_per_column(seed: int) -> None:
    labels, probs = _multilabel(seed)
    roc = ROCBinary()
    roc.eval(labels, probs)
    aucs = [roc_auc_score(labels[:, c], probs[:, c]) for c in range(3)]
    np.testing.assert_allclose([roc.auc(c) for c in range(3)], aucs)
    assert roc.average_auc() == pytest.approx(np.mean(aucs))
    precision, recall, _ = precision_recall_curve(labels[:, 1], probs[:, 1])
    assert roc.auprc(1) == pytest.approx(auc(recall, precision))
    assert roc.n_columns == 3


def test_roc_binary_per_output_mask_equals_separate_columns(seed: int) -> None:
    labels, probs = _multilabel(seed)
    mask = np.random.default_rng(seed + 1).integers(0, 2, size=labels.shape)
    roc = ROCBinary()
    roc.eval(labels, probs, mask=mask)
    for c in range(3):
        keep = mask[:, c] == 1
        single = ROC()
        single.eval(labels[keep, c], probs[keep, c])
        assert roc.auc(c) == pytest.approx(single.auc())
        np.testing.assert_array_equal(roc.roc_curve(c)[0], single.roc_curve()[0])
    assert roc.num_examples() == int(mask.sum(axis=0).max())


def test_roc_multiclass_matches_sklearn_one_vs_rest(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, size=400)
    logits = rng.normal(size=(400, 4))
    logits[np.arange(400), labels] += 1.0
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    roc = ROCMultiClass()
    roc.eval(labels, probs)
    for k in range(4):
        assert roc.auc(k) == pytest.approx(roc_auc_score(labels == k, probs[:, k]))
        precision, recall, _ = precision_recall_curve(labels == k, probs[:, k])
        assert roc.auprc(k) == pytest.approx(auc(recall, precision))
    assert roc.average_auc() == pytest.approx(roc_auc_score(labels, probs, multi_class="ovr", average="macro"))
    assert roc.n_classes == 4
    assert "Average AUROC" in roc.stats()


def test_roc_multiclass_absent_class_skipped_in_average() -> None:
    roc = ROCMultiClass(n_classes=3)
    roc.eval([0, 1, 0, 1], [[0.7, 0.2, 0.1], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.3, 0.6, 0.1]])
    assert np.isnan(roc.auc(2))
    assert roc.average_auc() == 1.0


@pytest.mark.parametrize("steps", [1, 3, 10, 100, 7919])
def test_grid_index_matches_searchsorted_on_grid_and_random_values(seed: int, steps: int) -> None:
    from deepspark.eval._base import grid_index

    rng = np.random.default_rng(seed)
    grid = np.arange(steps + 1) / steps
    values = np.concatenate([rng.random(5000), grid, np.nextafter(grid, -1)[1:], np.nextafter(grid, 2)[:-1]])
    expected = np.searchsorted(grid, values, side="right") - 1
    np.testing.assert_array_equal(grid_index(values, steps), expected)


def test_roc_per_output_out_of_range_score_leaves_state_unchanged() -> None:
    binary = ROCBinary(threshold_steps=10)
    binary.eval([[0, 1], [1, 0]], [[0.2, 0.9], [0.7, 1.5]], mask=[[1, 1], [1, 0]])  # masked entry is ignored
    before = binary.to_json()
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        binary.eval([[0, 1], [1, 0]], [[0.2, 0.9], [0.7, 1.5]])
    assert binary.to_json() == before
    multi = ROCMultiClass(threshold_steps=10)
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        multi.eval([0, 1], [[0.2, 0.8, 0.0], [0.1, 0.2, -3.0]])
    assert multi.num_examples() == 0
