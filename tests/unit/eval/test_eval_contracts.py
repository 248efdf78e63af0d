"""Contracts every evaluation keeps: merge of shards == whole, exact JSON round trip, DataError on bad input."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from deepspark.errors import ConfigError, DataError
from deepspark.eval import (
    ROC,
    BaseEvaluation,
    Evaluation,
    EvaluationBinary,
    EvaluationCalibration,
    RegressionEvaluation,
    ROCBinary,
    ROCMultiClass,
    from_dict,
    from_json,
    registered_types,
)

Arrays = tuple[np.ndarray, np.ndarray]


def _multiclass(rng: np.random.Generator, n: int) -> Arrays:
    logits = rng.normal(size=(n, 4)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return rng.integers(0, 4, size=n), probs


def _multilabel(rng: np.random.Generator, n: int) -> Arrays:
    return rng.integers(0, 2, size=(n, 3)), rng.random((n, 3))


def _binary(rng: np.random.Generator, n: int) -> Arrays:
    labels = rng.integers(0, 2, size=n)
    return labels, np.clip(0.3 * labels + 0.7 * rng.random(n), 0.0, 1.0)


def _regression(rng: np.random.Generator, n: int) -> Arrays:
    labels = rng.normal(loc=[3.0, -1.0], scale=[2.0, 0.5], size=(n, 2))
    return labels, labels + rng.normal(scale=0.7, size=(n, 2))


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[], BaseEvaluation]
    data: Callable[[np.random.Generator, int], Arrays]
    metrics: Callable[[BaseEvaluation], list[float]]
    exact_state: bool = True  # integer counts / stored pairs: the merged dict equals the whole one


def _ev(e: BaseEvaluation) -> list[float]:
    assert isinstance(e, Evaluation)
    return [e.accuracy(), e.precision(), e.recall(1), e.f1(average="micro"), e.mcc(), e.top_n_accuracy()]


def _evb(e: BaseEvaluation) -> list[float]:
    assert isinstance(e, EvaluationBinary)
    return [e.accuracy(0), e.precision(1), e.recall(2), e.average_f1()]


def _roc(e: BaseEvaluation) -> list[float]:
    assert isinstance(e, ROC)
    return [e.auc(), e.auprc(), e.average_precision()]


def _rocb(e: BaseEvaluation) -> list[float]:
    assert isinstance(e, ROCBinary)
    return [e.auc(0), e.auprc(2), e.average_auc(), e.average_auprc()]


def _rocm(e: BaseEvaluation) -> list[float]:
    assert isinstance(e, ROCMultiClass)
    return [e.auc(0), e.auprc(3), e.average_auc(), e.average_auprc()]


def _reg(e: BaseEvaluation) -> list[float]:
    assert isinstance(e, RegressionEvaluation)
    return [
        e.mean_squared_error(0),
        e.mean_absolute_error(1),
        e.r_squared(0),
        e.pearson_correlation(1),
        e.average_root_mean_squared_error(),
        e.average_relative_squared_error(),
    ]


def _cal(e: BaseEvaluation) -> list[float]:
    assert isinstance(e, EvaluationCalibration)
    d = e.reliability_diagram(2)
    return [*d.mean_predicted, *d.observed_frequency, e.expected_calibration_error(), e.num_examples()]


CASES = [
    Case("evaluation", lambda: Evaluation(top_n=2), _multiclass, _ev),
    Case("evaluation_binary", EvaluationBinary, _multilabel, _evb),
    Case("roc_exact", ROC, _binary, _roc),
    Case("roc_steps", lambda: ROC(threshold_steps=50), _binary, _roc),
    Case("roc_binary", ROCBinary, _multilabel, _rocb),
    Case("roc_binary_steps", lambda: ROCBinary(threshold_steps=20), _multilabel, _rocb),
    Case("roc_multiclass", ROCMultiClass, _multiclass, _rocm),
    Case("roc_multiclass_steps", lambda: ROCMultiClass(threshold_steps=30), _multiclass, _rocm),
    Case("regression", RegressionEvaluation, _regression, _reg, exact_state=False),
    Case("calibration", EvaluationCalibration, _multiclass, _cal, exact_state=False),
]
IDS = [c.name for c in CASES]


def _close(a: list[float], b: list[float]) -> None:
    np.testing.assert_allclose(np.array(a, dtype=float), np.array(b, dtype=float), rtol=1e-10, atol=1e-12)


def test_registry_every_case_type_covered_by_contract_tests() -> None:
    covered = {type(c.make()).type_tag for c in CASES}
    assert covered == set(registered_types())


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_evaluation_merge_of_three_shards_equals_whole(case: Case, seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels, preds = case.data(rng, 300)
    whole = case.make()
    whole.eval(labels, preds)
    cuts = np.sort(rng.choice(np.arange(1, 300), size=2, replace=False))
    shards = []
    for lo, hi in zip([0, *cuts], [*cuts, 300], strict=True):
        part = case.make()
        part.eval(labels[lo:hi], preds[lo:hi])
        shards.append(part)
    merged = case.make()  # a never-evaluated zero value, as Spark's treeAggregate uses
    for part in shards:
        assert merged.merge(part) is merged
    _close(case.metrics(merged), case.metrics(whole))
    assert merged.num_examples() == whole.num_examples() == 300
    if case.exact_state:
        assert merged.to_dict() == whole.to_dict()


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_evaluation_minibatches_equal_single_batch(case: Case, seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels, preds = case.data(rng, 120)
    once, batched = case.make(), case.make()
    once.eval(labels, preds)
    for lo in range(0, 120, 25):
        batched.eval(labels[lo : lo + 25], preds[lo : lo + 25])
    _close(case.metrics(batched), case.metrics(once))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_evaluation_json_round_trip_is_exact(case: Case, seed: int) -> None:
    rng = np.random.default_rng(seed)
    ev = case.make()
    ev.eval(*case.data(rng, 80))
    text = ev.to_json()
    json.loads(text)  # standard JSON
    back = from_json(text)
    assert type(back) is type(ev)
    assert back.to_json() == text
    assert back == ev
    assert type(ev).from_json(text) == ev
    assert from_dict(ev.to_dict()) == ev
    _close(case.metrics(back), case.metrics(ev))
    assert back.stats() == ev.stats()


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_evaluation_empty_json_round_trip_and_merge(case: Case) -> None:
    empty = case.make()
    back = from_json(empty.to_json())
    assert back == empty
    assert back.num_examples() == 0
    assert isinstance(back.stats(), str)
    filled = case.make()
    filled.eval(*case.data(np.random.default_rng(0), 40))
    assert back.merge(filled).num_examples() == 40


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_evaluation_zero_rows_is_noop(case: Case) -> None:
    labels, preds = case.data(np.random.default_rng(0), 10)
    ev = case.make()
    ev.eval(labels[:0], preds[:0])
    assert ev == case.make()
    ev.eval(labels, preds, mask=np.zeros(10))
    assert ev.num_examples() == 0


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_evaluation_mask_equals_dropping_rows(case: Case, seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels, preds = case.data(rng, 90)
    mask = rng.integers(0, 2, size=90)
    masked, dropped = case.make(), case.make()
    masked.eval(labels, preds, mask=mask)
    dropped.eval(labels[mask == 1], preds[mask == 1])
    _close(case.metrics(masked), case.metrics(dropped))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_evaluation_time_series_equals_flattened(case: Case, seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels, preds = case.data(rng, 60)
    mask = rng.integers(0, 2, size=60)
    labels_3d = labels.reshape((6, 10, *labels.shape[1:]))
    preds_3d = preds.reshape((6, 10, *preds.shape[1:]))
    if preds_3d.ndim == 2:  # single-output binary scores: time series carry an explicit output axis
        preds_3d = preds_3d[..., None]
    series, flat = case.make(), case.make()
    series.eval(labels_3d, preds_3d, mask=mask.reshape(6, 10))
    flat.eval(labels, preds, mask=mask)
    _close(case.metrics(series), case.metrics(flat))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_evaluation_nan_predictions_raise_data_error(case: Case) -> None:
    labels, preds = case.data(np.random.default_rng(0), 8)
    preds = preds.astype(float)
    preds.flat[3] = np.nan
    with pytest.raises(DataError, match="NaN or infinite"):
        case.make().eval(labels, preds)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_evaluation_mismatched_lengths_name_both(case: Case) -> None:
    labels, preds = case.data(np.random.default_rng(0), 8)
    with pytest.raises(DataError, match=r"7 rows.*8"):
        case.make().eval(labels[:7], preds)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_evaluation_bad_mask_raises_data_error(case: Case) -> None:
    labels, preds = case.data(np.random.default_rng(0), 8)
    with pytest.raises(DataError, match="mask"):
        case.make().eval(labels, preds, mask=np.ones(5))
    with pytest.raises(DataError, match=r"0 \(skip\) or 1"):
        case.make().eval(labels, preds, mask=np.full(8, 0.5))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_evaluation_merge_other_type_raises(case: Case) -> None:
    other = Evaluation() if not isinstance(case.make(), Evaluation) else ROC()
    with pytest.raises(DataError, match="cannot merge"):
        case.make().merge(other)  # type: ignore[arg-type]


BAD_INPUTS = [
    (
        "label_out_of_range",
        lambda: Evaluation(n_classes=3),
        [0, 3],
        [[0.2, 0.3, 0.5]] * 2,
        "class index 3.*n_classes=3",
    ),
    ("negative_label", lambda: Evaluation(), [0, -1], [[0.5, 0.5]] * 2, r"class index -1"),
    ("fractional_label", lambda: Evaluation(), [0, 1.5], [[0.5, 0.5]] * 2, "whole numbers"),
    ("inf_prediction", lambda: Evaluation(), [0, 1], [[0.5, np.inf]] * 2, "NaN or infinite"),
    ("more_columns_later", lambda: Evaluation(n_classes=2), [0], [[0.2, 0.3, 0.5]], "3 class columns.*n_classes=2"),
    ("onehot_width", lambda: Evaluation(), [[0, 1], [1, 0]], [[0.2, 0.3, 0.5]] * 2, "2 columns but there are 3"),
    ("scalar", lambda: Evaluation(), 1, [0.5], "scalars"),
    ("ndim4", lambda: Evaluation(), np.zeros((1, 1, 1, 2)), np.zeros((1, 1, 1, 2)), "predictions must be"),
    ("strings", lambda: Evaluation(), ["a"], [[0.5, 0.5]], "numeric"),
    ("binary_label_2", EvaluationBinary, [[0, 2]], [[0.1, 0.9]], "0 or 1"),
    ("binary_shape", EvaluationBinary, [[0, 1, 1]], [[0.1, 0.9]], r"shape \(n, 2\)"),
    ("roc_multiclass_preds", ROC, [0, 1], [[0.1, 0.2, 0.7]] * 2, "ROCMultiClass"),
    ("roc_label_2", ROC, [0, 2], [0.1, 0.2], "0 or 1"),
    ("roc_steps_range", lambda: ROC(threshold_steps=10), [0, 1], [0.1, 1.2], r"\[0, 1\].*threshold_steps=0"),
    ("roc_binary_width", lambda: ROCBinary(n_columns=2), [[0, 1, 1]], [[0.1, 0.9, 0.3]], "3 columns"),
    ("roc_multi_label", ROCMultiClass, [5], [[0.1, 0.9]], "class index 5"),
    ("regression_shape", RegressionEvaluation, [[1.0, 2.0]], [[1.0]], "same shape"),
    ("regression_width", lambda: RegressionEvaluation(n_columns=1), [[1.0, 2.0]], [[1.0, 2.0]], "n_columns=1"),
    ("calibration_range", EvaluationCalibration, [0], [[1.5, -0.5]], r"probabilities in \[0, 1\]"),
    ("time_series_labels", lambda: Evaluation(), np.zeros((2, 4)), np.zeros((2, 3, 2)), r"\(n, t\)"),
    ("time_series_mask", lambda: Evaluation(), np.zeros((2, 3)), np.zeros((2, 3, 2)), r"mask must have shape"),
    ("labels_3d_preds_2d", lambda: Evaluation(), np.zeros((2, 3, 2)), np.zeros((2, 2)), "time series"),
]


@pytest.mark.parametrize(
    ("make", "labels", "preds", "message"), [b[1:] for b in BAD_INPUTS], ids=[b[0] for b in BAD_INPUTS]
)
def test_evaluation_bad_input_raises_data_error(
    make: Callable[[], BaseEvaluation], labels: object, preds: object, message: str
) -> None:
    mask = np.ones((2, 5)) if "mask" in message else None
    with pytest.raises(DataError, match=message):
        make().eval(labels, preds, mask=mask)  # type: ignore[arg-type]


INCOMPATIBLE = [
    ("n_classes", lambda: Evaluation(n_classes=3), lambda: Evaluation(n_classes=4), "n_classes: 3 vs 4"),
    ("top_n", lambda: Evaluation(top_n=1), lambda: Evaluation(top_n=2), "top_n"),
    ("class_names", lambda: Evaluation(labels=["a", "b"]), lambda: Evaluation(labels=["a", "c"]), "class names"),
    ("threshold", lambda: EvaluationBinary(threshold=0.5), lambda: EvaluationBinary(threshold=0.7), "threshold"),
    ("roc_steps", ROC, lambda: ROC(threshold_steps=10), "threshold_steps"),
    ("roc_multi_steps", ROCMultiClass, lambda: ROCMultiClass(threshold_steps=5), "threshold_steps"),
    ("roc_binary_cols", lambda: ROCBinary(n_columns=2), lambda: ROCBinary(n_columns=3), "2 vs 3"),
    ("regression_cols", lambda: RegressionEvaluation(1), lambda: RegressionEvaluation(2), "n_columns: 1 vs 2"),
    ("calibration_bins", EvaluationCalibration, lambda: EvaluationCalibration(reliability_bins=5), "bins"),
]


@pytest.mark.parametrize(
    ("make_a", "make_b", "message"), [i[1:] for i in INCOMPATIBLE], ids=[i[0] for i in INCOMPATIBLE]
)
def test_evaluation_merge_incompatible_raises_data_error(
    make_a: Callable[[], BaseEvaluation], make_b: Callable[[], BaseEvaluation], message: str
) -> None:
    with pytest.raises(DataError, match=message):
        make_a().merge(make_b())


def test_calibration_merge_different_class_counts_raises() -> None:
    a, b = EvaluationCalibration(), EvaluationCalibration()
    a.eval([0], [[0.4, 0.6]])
    b.eval([0], [[0.4, 0.3, 0.3]])
    with pytest.raises(DataError, match="n_classes: 2 vs 3"):
        a.merge(b)


BAD_CONFIG = [
    ("n_classes_1", lambda: Evaluation(n_classes=1), "n_classes"),
    ("top_n_0", lambda: Evaluation(top_n=0), "top_n"),
    ("names_count", lambda: Evaluation(n_classes=3, labels=["a", "b"]), "expected 3 names"),
    ("threshold_1", lambda: EvaluationBinary(threshold=1.0), "threshold"),
    ("steps_negative", lambda: ROC(threshold_steps=-1), "threshold_steps"),
    ("steps_float", lambda: ROCMultiClass(threshold_steps=1.5), "threshold_steps"),  # type: ignore[arg-type]
    ("columns_0", lambda: RegressionEvaluation(n_columns=0), "n_columns"),
    ("bins_0", lambda: EvaluationCalibration(histogram_bins=0), "histogram_bins"),
]


@pytest.mark.parametrize(("make", "message"), [b[1:] for b in BAD_CONFIG], ids=[b[0] for b in BAD_CONFIG])
def test_evaluation_bad_constructor_argument_raises_config_error(
    make: Callable[[], BaseEvaluation], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        make()


def test_from_dict_unknown_type_suggests_closest() -> None:
    with pytest.raises(DataError, match="did you mean 'roc_binary'"):
        from_dict({"type": "roc_binry", "format_version": 1})


def test_from_json_invalid_text_raises_data_error() -> None:
    with pytest.raises(DataError, match="not valid evaluation JSON"):
        from_json("{not json")
    with pytest.raises(DataError, match="must be an object"):
        from_json("[1, 2]")


def test_from_json_wrong_class_raises_data_error() -> None:
    with pytest.raises(DataError, match="expected an evaluation of type 'roc'"):
        ROC.from_json(Evaluation(n_classes=2).to_json())


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(format_version=99), "format_version 99"),
        (lambda d: d.update(extra=1), r"unknown keys \['extra'\]"),
        (lambda d: d.pop("confusion"), r"missing keys \['confusion'\]"),
        (lambda d: d.update(confusion=[[1, 2], [3]]), "evaluation.confusion"),
        (lambda d: d.update(confusion=[[1, -2], [3, 4]]), "non-negative"),
        (lambda d: d.update(top_n="2"), "evaluation.top_n: expected an int"),
        (lambda d: d.update(n_classes=None), "both be set"),
    ],
    ids=["version", "extra_key", "missing_key", "ragged", "negative", "top_n_type", "inconsistent"],
)
def test_from_dict_malformed_state_raises_data_error(edit: Callable[[dict[str, object]], object], message: str) -> None:
    d = Evaluation(n_classes=2).to_dict()
    edit(d)
    with pytest.raises(DataError, match=message):
        from_dict(d)


def test_from_dict_malformed_nested_roc_state_raises_data_error() -> None:
    d = ROCBinary(n_columns=2).to_dict()
    d["curves"][1]["labels"] = [0, 1]
    with pytest.raises(DataError, match=r"roc_binary.curves\[1\].labels"):
        from_dict(d)
