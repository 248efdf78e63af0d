"""ROC and precision-recall curves: ``ROC`` (binary), ``ROCBinary`` (per output), ``ROCMultiClass`` (one-vs-all)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from deepspark.errors import ConfigError, DataError
from deepspark.eval._base import (
    BaseEvaluation,
    BoolArray,
    FloatArray,
    StateReader,
    binary_labels,
    check_index,
    check_names,
    check_positive_int,
    class_indices,
    class_probabilities,
    fmt,
    grid_index,
    merge_names,
    nan_mean,
    read_inputs,
    row_mask,
    safe_div,
)

Curve = tuple[FloatArray, FloatArray, FloatArray]


def _check_unit_interval(scores: FloatArray, threshold_steps: int) -> None:
    """Thresholded ROC bins probabilities: reject scores outside [0, 1] before any state changes."""
    if threshold_steps and scores.size and (scores.min() < 0.0 or scores.max() > 1.0):
        bad = float(scores[(scores < 0.0) | (scores > 1.0)][0])
        raise DataError(
            f"ROC(threshold_steps={threshold_steps}) needs probabilities in [0, 1], got {bad!r}: "
            "apply a sigmoid/softmax to the output, or use threshold_steps=0 for arbitrary scores"
        )


def _trapezoid(y: FloatArray, x: FloatArray) -> float:
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2.0))


class ROC(BaseEvaluation):
    """Binary ROC and precision-recall curves with their areas (DL4J's ``ROC``).

    With ``threshold_steps=0`` (exact) every (score, label) pair is kept and the curves have one
    point per distinct score, so AUROC equals scikit-learn's ``roc_auc_score`` (ties included). With
    ``threshold_steps=k`` the ``k + 1`` thresholds ``0, 1/k, ..., 1`` are fixed and only two
    histograms are kept (memory independent of data size; scores must then lie in [0, 1]).
    An example is predicted positive at threshold ``t`` when its score is ``>= t``.

    Labels are 0/1 ``(n,)``, ``(n, 1)`` or one-hot ``(n, 2)``; predictions are P(positive) ``(n,)``,
    ``(n, 1)`` or two-class probabilities ``(n, 2)`` (column 1 is used).

    AUPRC is the trapezoidal area under the precision-recall curve that starts at (recall 0,
    precision 1), i.e. ``sklearn.metrics.auc(recall, precision)`` on ``precision_recall_curve``;
    ``average_precision()`` is the step-wise variant (scikit-learn's ``average_precision_score``).

    Example:
        >>> roc = ROC()
        >>> roc.eval([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
        >>> roc.auc()
        0.75
    """

    type_tag = "roc"
    state_keys = ("threshold_steps", "scores", "labels", "positive_counts", "negative_counts")

    def __init__(self, threshold_steps: int = 0) -> None:
        self.threshold_steps: int = check_positive_int(threshold_steps, "threshold_steps", minimum=0) or 0
        k = self.threshold_steps
        self._scores: list[FloatArray] = []
        self._labels: list[BoolArray] = []
        self._pos = np.zeros(k + 1 if k else 0, dtype=np.int64)
        self._neg = np.zeros(k + 1 if k else 0, dtype=np.int64)
        self._cache: tuple[FloatArray, FloatArray, FloatArray, float, float] | None = None

    @property
    def exact(self) -> bool:
        """True when every score is kept (``threshold_steps == 0``)."""
        return self.threshold_steps == 0

    def thresholds(self) -> FloatArray:
        """The fixed thresholds ``i / threshold_steps`` (ascending); empty in exact mode."""
        k = self.threshold_steps
        return np.arange(k + 1, dtype=np.float64) / k if k else np.zeros(0)

    def eval(self, labels: npt.ArrayLike, predictions: npt.ArrayLike, mask: npt.ArrayLike | None = None) -> None:
        """Accumulate a minibatch of 0/1 labels and positive-class scores, with an optional 0/1 row mask ``(n,)``."""
        y, p, m, n = read_inputs(labels, predictions, mask)
        if p.ndim == 2 and p.shape[1] in (1, 2):
            p = p[:, -1]
        if p.ndim != 1:
            raise DataError(
                f"ROC is binary: predictions must be (n,), (n, 1) or (n, 2), got shape {p.shape}; "
                "use ROCMultiClass for more classes or ROCBinary for several independent outputs"
            )
        if y.ndim == 2 and y.shape[1] == 2:
            y = y[:, 1]
        actual = binary_labels(y, 1)[:, 0] == 1
        keep = row_mask(m, n, 1, per_output=False)
        if keep is not None:
            actual, p = actual[keep], p[keep]
        self._add(actual, p)

    def _add(self, actual: BoolArray, scores: FloatArray) -> None:
        if actual.size == 0:
            return
        self._cache = None
        if self.exact:
            self._scores.append(np.array(scores, dtype=np.float64))
            self._labels.append(np.array(actual, dtype=np.bool_))
            return
        _check_unit_interval(scores, self.threshold_steps)
        k = self.threshold_steps
        both = np.bincount(grid_index(scores, k) + (k + 1) * actual, minlength=2 * (k + 1))
        self._neg += both[: k + 1]
        self._pos += both[k + 1 :]

    def _pairs(self) -> tuple[FloatArray, BoolArray]:
        if len(self._scores) != 1:
            self._scores = [np.concatenate(self._scores) if self._scores else np.zeros(0)]
            self._labels = [np.concatenate(self._labels) if self._labels else np.zeros(0, np.bool_)]
        return self._scores[0], self._labels[0]

    def _merge(self, other: ROC) -> None:
        if other.threshold_steps != self.threshold_steps:
            raise DataError(
                f"cannot merge ROC(threshold_steps={self.threshold_steps}) with "
                f"ROC(threshold_steps={other.threshold_steps}): use the same threshold_steps everywhere"
            )
        self._cache = None
        self._scores.extend(other._scores)
        self._labels.extend(other._labels)
        self._pos += other._pos
        self._neg += other._neg

    def _counts(self) -> tuple[FloatArray, FloatArray, FloatArray, float, float]:
        """Thresholds (descending) with the cumulative true/false positives at each, and totals P, N."""
        if self._cache is None:
            self._cache = self._compute_counts()
        return self._cache

    def _compute_counts(self) -> tuple[FloatArray, FloatArray, FloatArray, float, float]:
        if self.exact:
            scores, labels = self._pairs()
            order = np.argsort(-scores, kind="stable")
            s = scores[order]
            last = np.r_[np.flatnonzero(np.diff(s) != 0), s.size - 1] if s.size else np.zeros(0, np.int64)
            tps = np.cumsum(labels[order], dtype=np.float64)[last]
            fps = (last + 1.0) - tps
            thresholds = s[last]
        else:
            thresholds = self.thresholds()[::-1]
            tps = np.cumsum(self._pos[::-1]).astype(np.float64)
            fps = np.cumsum(self._neg[::-1]).astype(np.float64)
        p = float(tps[-1]) if tps.size else 0.0
        n = float(fps[-1]) if fps.size else 0.0
        return thresholds, tps, fps, p, n

    def num_examples(self) -> int:
        """How many (score, label) pairs were evaluated."""
        if self.exact:
            return int(sum(s.size for s in self._scores))
        return int(self._pos.sum() + self._neg.sum())

    def count_positive(self) -> int:
        """How many positive examples were evaluated."""
        return int(self._counts()[3])

    def count_negative(self) -> int:
        """How many negative examples were evaluated."""
        return int(self._counts()[4])

    def roc_curve(self) -> Curve:
        """``(fpr, tpr, thresholds)`` from the strictest threshold (``inf``, the point (0, 0)) down."""
        thresholds, tps, fps, p, n = self._counts()
        fpr = safe_div(np.r_[0.0, fps], n)
        tpr = safe_div(np.r_[0.0, tps], p)
        return fpr, tpr, np.r_[np.inf, thresholds]

    def pr_curve(self) -> Curve:
        """``(precision, recall, thresholds)`` from (recall 0, precision 1) at threshold ``inf`` down.

        Thresholds that no example reaches (precision undefined) are left out.
        """
        thresholds, tps, fps, p, _ = self._counts()
        reached = (tps + fps) > 0
        precision = safe_div(tps[reached], tps[reached] + fps[reached])
        recall = safe_div(tps[reached], p)
        return np.r_[1.0, precision], np.r_[0.0, recall], np.r_[np.inf, thresholds[reached]]

    def auc(self) -> float:
        """Area under the ROC curve; NaN unless both classes were seen."""
        _, _, _, p, n = self._counts()
        if p == 0 or n == 0:
            return float("nan")
        fpr, tpr, _ = self.roc_curve()
        return _trapezoid(tpr, fpr)

    def auprc(self) -> float:
        """Trapezoidal area under the precision-recall curve; NaN without positive examples."""
        if self._counts()[3] == 0:
            return float("nan")
        precision, recall, _ = self.pr_curve()
        return _trapezoid(precision, recall)

    def average_precision(self) -> float:
        """Step-wise area ``sum (R_i - R_{i-1}) P_i`` (scikit-learn's ``average_precision_score``)."""
        if self._counts()[3] == 0:
            return float("nan")
        precision, recall, _ = self.pr_curve()
        return float(np.sum(np.diff(recall) * precision[1:]))

    def stats(self) -> str:
        """AUROC, AUPRC and the counts as text."""
        mode = "exact" if self.exact else f"{self.threshold_steps} threshold steps"
        return "\n".join(
            [
                f"===========================ROC ({mode})===========================",
                f" # of examples:   {self.num_examples()}  (positive: {self.count_positive()}, "
                f"negative: {self.count_negative()})",
                f" AUC (Area under ROC Curve):               {fmt(self.auc())}",
                f" AUPRC (Area under Precision/Recall Curve): {fmt(self.auprc())}",
            ]
        )

    def _state(self) -> dict[str, Any]:
        scores, labels = self._pairs() if self.exact else (np.zeros(0), np.zeros(0, np.bool_))
        return {
            "threshold_steps": self.threshold_steps,
            "scores": scores.tolist(),
            "labels": labels.astype(np.int64).tolist(),
            "positive_counts": self._pos.tolist(),
            "negative_counts": self._neg.tolist(),
        }

    @classmethod
    def _from_state(cls, state: StateReader) -> ROC:
        roc = cls(threshold_steps=state.integer("threshold_steps"))
        scores = state.array("scores", (-1,), np.float64)
        labels = state.array("labels", (scores.size,), np.int64)
        if labels.size and labels.max() > 1:
            raise DataError(f"{state.tag}.labels: expected 0/1 values")
        bins = roc.threshold_steps + 1 if roc.threshold_steps else 0
        roc._pos = state.array("positive_counts", (bins,), np.int64)
        roc._neg = state.array("negative_counts", (bins,), np.int64)
        if scores.size and not roc.exact:
            raise DataError(f"{state.tag}.scores: must be empty when threshold_steps > 0")
        if scores.size:
            roc._scores, roc._labels = [scores], [labels == 1]
        return roc


class _PerOutputROC(BaseEvaluation):
    """One binary ``ROC`` per output column or class, sharing ``threshold_steps``."""

    state_keys = ("threshold_steps", "n", "names", "curves")
    _what = "column"
    _size_arg = "n_columns"
    _names_arg = "column_names"

    def __init__(self, n: int | None, names: Sequence[str] | None, threshold_steps: int) -> None:
        size = check_positive_int(n, self._size_arg, optional=True)
        self.names = check_names(names, self._names_arg, size)
        self.threshold_steps: int = check_positive_int(threshold_steps, "threshold_steps", minimum=0) or 0
        self.n: int | None = len(self.names) if size is None and self.names is not None else size
        self._rocs: list[ROC] | None = None if self.n is None else [ROC(self.threshold_steps) for _ in range(self.n)]

    def _start(self, width: int) -> list[ROC]:
        if self.n is not None and width != self.n:
            raise DataError(
                f"predictions have {width} columns but this {type(self).__name__} has {self._size_arg}={self.n}"
            )
        if self._rocs is None:
            self.n = width
            self._rocs = [ROC(self.threshold_steps) for _ in range(width)]
        return self._rocs

    def _roc(self, index: int) -> ROC:
        i = check_index(index, self.n, self._what, self._size_arg)
        return self._rocs[i] if self._rocs is not None else ROC(self.threshold_steps)

    def _merge(self, other: _PerOutputROC) -> None:
        if other.threshold_steps != self.threshold_steps:
            raise DataError(
                f"cannot merge {type(self).__name__} with threshold_steps={self.threshold_steps} and "
                f"{other.threshold_steps}: use the same threshold_steps everywhere"
            )
        if self.n is not None and other.n is not None and self.n != other.n:
            raise DataError(f"cannot merge evaluations with different {self._what} counts: {self.n} vs {other.n}")
        self.names = merge_names(self.names, other.names, f"{self._what} names")
        if other._rocs is not None:
            mine = self._start(len(other._rocs))
            for a, b in zip(mine, other._rocs, strict=True):
                a.merge(b)
        if self.n is None:
            self.n = other.n

    def num_examples(self) -> int:
        """How many rows were evaluated (for per-output masks: the largest per-output count)."""
        return max((r.num_examples() for r in self._rocs or []), default=0)

    def average_auc(self) -> float:
        """Mean AUROC over outputs/classes (undefined ones skipped)."""
        return nan_mean([r.auc() for r in self._rocs or []])

    def average_auprc(self) -> float:
        """Mean AUPRC over outputs/classes (undefined ones skipped)."""
        return nan_mean([r.auprc() for r in self._rocs or []])

    def stats(self) -> str:
        """Per output/class AUROC, AUPRC and counts, then the averages."""
        n = self.n or 0
        names = [self.names[i] if self.names else str(i) for i in range(n)]
        width = max([6, *(len(x) for x in names)])
        mode = "exact" if self.threshold_steps == 0 else f"{self.threshold_steps} threshold steps"
        lines = [
            f"======================{type(self).__name__} ({mode})======================",
            f"  {self._what:>{width}}  {'AUROC':>8}  {'AUPRC':>8}  {'positive':>9}  {'negative':>9}",
        ]
        for i in range(n):
            r = self._roc(i)
            lines.append(
                f"  {names[i]:>{width}}  {fmt(r.auc()):>8}  {fmt(r.auprc()):>8}  "
                f"{r.count_positive():>9}  {r.count_negative():>9}"
            )
        lines.append(f" Average AUROC: {fmt(self.average_auc())}   Average AUPRC: {fmt(self.average_auprc())}")
        return "\n".join(lines)

    def _state(self) -> dict[str, Any]:
        curves = None if self._rocs is None else [r._state() for r in self._rocs]
        return {"threshold_steps": self.threshold_steps, "n": self.n, "names": self.names, "curves": curves}

    @classmethod
    def _build(cls, state: StateReader) -> _PerOutputROC:
        obj = cls.__new__(cls)
        try:
            _PerOutputROC.__init__(
                obj, state.opt_integer("n", 1), state.names("names"), state.integer("threshold_steps")
            )
        except ConfigError as e:
            raise DataError(f"{state.tag}: malformed state: {e}") from e
        curves = state.data["curves"]
        if curves is None:
            if obj.n is not None:
                raise DataError(f"{state.tag}.curves: expected {obj.n} curves, got null")
            return obj
        if not isinstance(curves, list) or len(curves) != obj.n or not all(isinstance(c, dict) for c in curves):
            raise DataError(f"{state.tag}.curves: expected a list of {obj.n} ROC state dicts")
        obj._rocs = [
            ROC._from_state(StateReader(f"{state.tag}.curves[{i}]", c, ROC.state_keys)) for i, c in enumerate(curves)
        ]
        if any(r.threshold_steps != obj.threshold_steps for r in obj._rocs):
            raise DataError(f"{state.tag}.curves: threshold_steps differ from {obj.threshold_steps}")
        return obj


class ROCBinary(_PerOutputROC):
    """An independent binary ``ROC`` per output column of a multi-label network (DL4J's ``ROCBinary``).

    Labels are 0/1 ``(n, columns)``, predictions probabilities of the same shape; the mask may be
    ``(n,)`` or ``(n, columns)`` (per output). Time series ``(n, t, columns)`` are flattened.

    Example:
        >>> roc = ROCBinary()
        >>> roc.eval([[0, 1], [1, 1], [1, 0]], [[0.2, 0.9], [0.7, 0.6], [0.9, 0.3]])
        >>> roc.auc(0), roc.auc(1)
        (1.0, 1.0)
    """

    type_tag = "roc_binary"
    _what = "column"

    def __init__(
        self, threshold_steps: int = 0, n_columns: int | None = None, column_names: Sequence[str] | None = None
    ) -> None:
        super().__init__(n_columns, column_names, threshold_steps)

    def eval(self, labels: npt.ArrayLike, predictions: npt.ArrayLike, mask: npt.ArrayLike | None = None) -> None:
        """Accumulate a minibatch: labels and predictions ``(n, columns)``, mask ``(n,)`` or ``(n, columns)``."""
        y, p, m, n = read_inputs(labels, predictions, mask)
        if p.ndim == 1:
            p = p[:, None]
        if p.ndim != 2:
            raise DataError(f"predictions must be (n, columns) or (n, t, columns), got shape {p.shape}")
        y = binary_labels(y, p.shape[1])
        keep = row_mask(m, n, p.shape[1], per_output=True)
        if n == 0 or (keep is not None and not keep.any()):
            return
        kept = None if keep is None else (keep if keep.ndim == 2 else np.broadcast_to(keep[:, None], p.shape))
        _check_unit_interval(p if kept is None else p[kept], self.threshold_steps)
        rocs = self._start(p.shape[1])
        for j, roc in enumerate(rocs):
            sel = slice(None) if keep is None else (keep if keep.ndim == 1 else keep[:, j])
            roc._add(y[sel, j] == 1, p[sel, j])

    @property
    def n_columns(self) -> int | None:
        """Number of output columns (None until the first batch)."""
        return self.n

    def auc(self, col: int) -> float:
        """AUROC of output column ``col``."""
        return self._roc(col).auc()

    def auprc(self, col: int) -> float:
        """AUPRC of output column ``col``."""
        return self._roc(col).auprc()

    def roc_curve(self, col: int) -> Curve:
        """``(fpr, tpr, thresholds)`` of output column ``col``."""
        return self._roc(col).roc_curve()

    def pr_curve(self, col: int) -> Curve:
        """``(precision, recall, thresholds)`` of output column ``col``."""
        return self._roc(col).pr_curve()

    @classmethod
    def _from_state(cls, state: StateReader) -> ROCBinary:
        return cls._build(state)  # type: ignore[return-value]


class ROCMultiClass(_PerOutputROC):
    """One-vs-all ROC per class of a single-label classifier (DL4J's ``ROCMultiClass``).

    Labels are class indices ``(n,)`` or one-hot rows ``(n, classes)``; predictions are class
    probabilities ``(n, classes)``; class ``k``'s curve scores every example by its probability
    of ``k`` and counts it positive when its label is ``k``.

    Example:
        >>> roc = ROCMultiClass()
        >>> roc.eval([0, 1, 2], [[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]])
        >>> roc.average_auc()
        1.0
    """

    type_tag = "roc_multiclass"
    _what = "class"
    _size_arg = "n_classes"
    _names_arg = "labels"

    def __init__(
        self, threshold_steps: int = 0, n_classes: int | None = None, labels: Sequence[str] | None = None
    ) -> None:
        super().__init__(n_classes, labels, threshold_steps)

    def eval(self, labels: npt.ArrayLike, predictions: npt.ArrayLike, mask: npt.ArrayLike | None = None) -> None:
        """Accumulate a minibatch: labels ``(n,)``/``(n, classes)``, predictions ``(n, classes)``, mask ``(n,)``."""
        y, p, m, n = read_inputs(labels, predictions, mask)
        probs = class_probabilities(p)
        c = probs.shape[1]
        if self.n is not None and c != self.n:
            raise DataError(f"predictions have {c} class columns but this ROCMultiClass has n_classes={self.n}")
        actual = class_indices(y, c)
        keep = row_mask(m, n, c, per_output=False)
        if keep is not None:
            actual, probs = actual[keep], probs[keep]
        if actual.size == 0:
            return
        _check_unit_interval(probs, self.threshold_steps)
        for k, roc in enumerate(self._start(c)):
            roc._add(actual == k, probs[:, k])

    @property
    def n_classes(self) -> int | None:
        """Number of classes (None until the first batch)."""
        return self.n

    def auc(self, cls: int) -> float:
        """One-vs-all AUROC of class ``cls``."""
        return self._roc(cls).auc()

    def auprc(self, cls: int) -> float:
        """One-vs-all AUPRC of class ``cls``."""
        return self._roc(cls).auprc()

    def roc_curve(self, cls: int) -> Curve:
        """``(fpr, tpr, thresholds)`` of class ``cls`` against the rest."""
        return self._roc(cls).roc_curve()

    def pr_curve(self, cls: int) -> Curve:
        """``(precision, recall, thresholds)`` of class ``cls`` against the rest."""
        return self._roc(cls).pr_curve()

    @classmethod
    def _from_state(cls, state: StateReader) -> ROCMultiClass:
        return cls._build(state)  # type: ignore[return-value]
