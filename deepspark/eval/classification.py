"""Classification metrics: ``Evaluation`` (single-label, confusion matrix) and ``EvaluationBinary`` (multi-label)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from deepspark.errors import ConfigError, DataError
from deepspark.eval._base import (
    BaseEvaluation,
    FloatArray,
    IntArray,
    StateReader,
    binary_labels,
    check_index,
    check_names,
    check_positive_int,
    class_indices,
    class_probabilities,
    fmt,
    merge_names,
    nan_mean,
    read_inputs,
    row_mask,
    safe_div,
)

Average = Literal["macro", "micro"]


class Evaluation(BaseEvaluation):
    """Single-label classification metrics accumulated in a confusion matrix (DL4J's ``Evaluation``).

    Labels are class indices ``(n,)`` or one-hot/probability rows ``(n, classes)`` (argmax);
    predictions are class probabilities ``(n, classes)``. A single prediction column (or ``(n,)``)
    is P(class 1) of a binary classifier: class 1 when it is above 0.5. Time series ``(n, t, classes)``
    with a mask ``(n, t)`` count every unmasked time step as one example.

    Undefined metrics (no examples; a class never predicted, for its precision) are NaN; macro
    averages skip undefined classes. Per-class F1 is ``2 tp / (2 tp + fp + fn)`` (as scikit-learn).

    Args:
        n_classes: Number of classes; inferred from the first non-empty batch when None.
        labels: Optional class names used by ``stats()``.
        top_n: ``top_n_accuracy()`` counts an example correct when its class is among the
            ``top_n`` highest predictions (ties broken towards the lower class index, as argmax).

    Example:
        >>> ev = Evaluation(n_classes=3)
        >>> ev.eval([0, 2, 1], [[0.8, 0.1, 0.1], [0.2, 0.2, 0.6], [0.5, 0.3, 0.2]])
        >>> round(ev.accuracy(), 4)
        0.6667
    """

    type_tag = "evaluation"
    state_keys = ("n_classes", "class_names", "top_n", "confusion", "top_n_correct")

    def __init__(self, n_classes: int | None = None, labels: Sequence[str] | None = None, top_n: int = 1) -> None:
        n = check_positive_int(n_classes, "n_classes", minimum=2, optional=True)
        names = check_names(labels, "labels", n)
        self.n_classes: int | None = len(names) if n is None and names is not None else n
        self.class_names: list[str] | None = names
        self.top_n: int = check_positive_int(top_n, "top_n") or 1
        self._confusion: IntArray | None = None if self.n_classes is None else self._zeros(self.n_classes)
        self._top_n_correct = 0

    @staticmethod
    def _zeros(n: int) -> IntArray:
        return np.zeros((n, n), dtype=np.int64)

    def eval(self, labels: npt.ArrayLike, predictions: npt.ArrayLike, mask: npt.ArrayLike | None = None) -> None:
        """Accumulate a minibatch: labels ``(n,)``/``(n, c)``, predictions ``(n, c)``, optional 0/1 mask ``(n,)``."""
        y, p, m, n = read_inputs(labels, predictions, mask)
        probs = class_probabilities(p)
        c = probs.shape[1]
        if self.n_classes is not None and c != self.n_classes:
            raise DataError(
                f"predictions have {c} class columns but this Evaluation has n_classes={self.n_classes}; "
                "use one Evaluation per model output"
            )
        actual = class_indices(y, c)
        keep = row_mask(m, n, c, per_output=False)
        if keep is not None:
            actual, probs = actual[keep], probs[keep]
        if actual.size == 0:
            return
        if self._confusion is None:
            self.n_classes = c
            self._confusion = self._zeros(c)
        predicted = np.argmax(probs, axis=1).astype(np.int64)  # first maximum: P(1) = 0.5 is class 0
        self._confusion += np.bincount(actual * c + predicted, minlength=c * c).reshape(c, c)
        rows = np.arange(actual.size)
        score = probs[rows, actual][:, None]
        lower = np.arange(c)[None, :] < actual[:, None]
        rank = np.count_nonzero((probs > score) | ((probs == score) & lower), axis=1)
        self._top_n_correct += int(np.count_nonzero(rank < self.top_n))

    def _merge(self, other: Evaluation) -> None:
        if other.top_n != self.top_n:
            raise DataError(f"cannot merge evaluations with different top_n: {self.top_n} vs {other.top_n}")
        if self.n_classes is not None and other.n_classes is not None and self.n_classes != other.n_classes:
            raise DataError(f"cannot merge evaluations with different n_classes: {self.n_classes} vs {other.n_classes}")
        self.class_names = merge_names(self.class_names, other.class_names, "class names")
        if other._confusion is not None:
            if self._confusion is None:
                self.n_classes = other.n_classes
                self._confusion = other._confusion.copy()
            else:
                self._confusion += other._confusion
        elif self.n_classes is None:
            self.n_classes = other.n_classes
        self._top_n_correct += other._top_n_correct

    # ------------------------------------------------------------------------------------- counts

    def confusion_matrix(self) -> IntArray:
        """The confusion matrix (int64, rows = actual class, columns = predicted class); a copy."""
        if self._confusion is None:
            return np.zeros((0, 0), dtype=np.int64)
        cm: IntArray = self._confusion.copy()
        return cm

    def _cm(self) -> IntArray:
        return self._confusion if self._confusion is not None else np.zeros((0, 0), dtype=np.int64)

    def num_examples(self) -> int:
        """How many examples were evaluated (masked ones excluded)."""
        return int(self._cm().sum())

    def _check_cls(self, cls: int) -> int:
        return check_index(cls, self.n_classes, "class", "n_classes")

    def class_count(self, cls: int) -> int:
        """How many examples have actual class ``cls``."""
        return int(self._cm()[self._check_cls(cls)].sum())

    def true_positives(self, cls: int) -> int:
        """Examples of class ``cls`` predicted as ``cls``."""
        c = self._check_cls(cls)
        return int(self._cm()[c, c])

    def false_positives(self, cls: int) -> int:
        """Examples of another class predicted as ``cls``."""
        c = self._check_cls(cls)
        return int(self._cm()[:, c].sum() - self._cm()[c, c])

    def false_negatives(self, cls: int) -> int:
        """Examples of class ``cls`` predicted as another class."""
        c = self._check_cls(cls)
        return int(self._cm()[c].sum() - self._cm()[c, c])

    def true_negatives(self, cls: int) -> int:
        """Examples of another class predicted as another class."""
        c = self._check_cls(cls)
        cm = self._cm()
        return int(cm.sum() - cm[c].sum() - cm[:, c].sum() + cm[c, c])

    def _tp_fp_fn(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        cm = self._cm().astype(np.float64)
        tp = np.diag(cm)
        return tp, cm.sum(axis=0) - tp, cm.sum(axis=1) - tp

    # ------------------------------------------------------------------------------------ metrics

    def accuracy(self) -> float:
        """Fraction of examples whose predicted class (argmax) is the actual class; NaN with no examples."""
        cm = self._cm()
        return float(safe_div(np.trace(cm), cm.sum()))

    def top_n_accuracy(self) -> float:
        """Fraction of examples whose actual class is among the ``top_n`` highest predictions."""
        return float(safe_div(self._top_n_correct, self.num_examples()))

    def _metric(self, per_class: FloatArray, micro: float, cls: int | None, average: Average) -> float:
        if cls is not None:
            return float(per_class[self._check_cls(cls)])
        if average == "macro":
            return nan_mean(per_class)
        if average == "micro":
            return micro
        raise ConfigError(f"expected 'macro' or 'micro', got {average!r}", "average")

    def precision(self, cls: int | None = None, average: Average = "macro") -> float:
        """Precision ``tp / (tp + fp)`` of class ``cls``, or the macro/micro average over classes."""
        tp, fp, _ = self._tp_fp_fn()
        return self._metric(safe_div(tp, tp + fp), float(safe_div(tp.sum(), tp.sum() + fp.sum())), cls, average)

    def recall(self, cls: int | None = None, average: Average = "macro") -> float:
        """Recall ``tp / (tp + fn)`` of class ``cls``, or the macro/micro average over classes."""
        tp, _, fn = self._tp_fp_fn()
        return self._metric(safe_div(tp, tp + fn), float(safe_div(tp.sum(), tp.sum() + fn.sum())), cls, average)

    def f1(self, cls: int | None = None, average: Average = "macro") -> float:
        """F1 ``2 tp / (2 tp + fp + fn)`` of class ``cls``, or the macro/micro average over classes."""
        tp, fp, fn = self._tp_fp_fn()
        micro = float(safe_div(2 * tp.sum(), 2 * tp.sum() + fp.sum() + fn.sum()))
        return self._metric(safe_div(2 * tp, 2 * tp + fp + fn), micro, cls, average)

    def mcc(self, cls: int | None = None) -> float:
        """Matthews correlation: one-vs-rest for class ``cls``, or the multiclass (Gorodkin) MCC when None."""
        cm = self._cm().astype(np.float64)
        s = cm.sum()
        if cls is not None:
            c = self._check_cls(cls)
            tp = cm[c, c]
            fp = cm[:, c].sum() - tp
            fn = cm[c].sum() - tp
            tn = s - tp - fp - fn
            den = (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)
            return float(safe_div(tp * tn - fp * fn, np.sqrt(den)))
        predicted, actual = cm.sum(axis=0), cm.sum(axis=1)
        num = np.trace(cm) * s - predicted @ actual
        den = np.sqrt((s * s - predicted @ predicted) * (s * s - actual @ actual))
        return float(safe_div(num, den))

    # -------------------------------------------------------------------------------------- text

    def _name(self, c: int) -> str:
        return self.class_names[c] if self.class_names is not None else str(c)

    def stats(self) -> str:
        """DL4J-style report: counts, accuracy, precision, recall, F1, MCC, per-class table, confusion matrix."""
        n = self.n_classes or 0
        lines = [
            "========================Evaluation Metrics========================",
            f" # of classes:    {self.n_classes if self.n_classes is not None else '(none seen yet)'}",
            f" # of examples:   {self.num_examples()}",
            f" Accuracy:        {fmt(self.accuracy())}",
        ]
        if self.top_n > 1:
            lines.append(f" Top {self.top_n} Accuracy:  {fmt(self.top_n_accuracy())}")
        lines += [
            f" Precision:       {fmt(self.precision())}",
            f" Recall:          {fmt(self.recall())}",
            f" F1 Score:        {fmt(self.f1())}",
            f" MCC:             {fmt(self.mcc())}",
            f"Precision, recall & F1: macro-averaged (equally weighted avg. of {n} classes; undefined ones skipped)",
        ]
        if n == 0:
            return "\n".join(lines)
        names = [self._name(c) for c in range(n)]
        width = max(9, *(len(x) for x in names))
        lines += ["", "Per class:", f"  {'class':>{width}}  {'count':>8}  {'precision':>9}  {'recall':>9}  {'f1':>9}"]
        for c in range(n):
            lines.append(
                f"  {names[c]:>{width}}  {self.class_count(c):>8}  {fmt(self.precision(c)):>9}  "
                f"{fmt(self.recall(c)):>9}  {fmt(self.f1(c)):>9}"
            )
        lines += ["", "=========================Confusion Matrix========================="]
        cm = self._cm()
        cell = max(len(str(n - 1)), len(str(int(cm.max()))))
        header = " ".join(f"{c:>{cell}}" for c in range(n))
        lines += [header, "-" * len(header)]
        for c in range(n):
            lines.append(" ".join(f"{v:>{cell}}" for v in cm[c]) + f" | {c} = {names[c]}")
        lines.append("Confusion matrix format: actual (rowClass) predicted as (columnClass) N times")
        lines.append("==================================================================")
        return "\n".join(lines)

    # ------------------------------------------------------------------------------------- state

    def _state(self) -> dict[str, Any]:
        return {
            "n_classes": self.n_classes,
            "class_names": self.class_names,
            "top_n": self.top_n,
            "confusion": None if self._confusion is None else self._confusion.tolist(),
            "top_n_correct": self._top_n_correct,
        }

    @classmethod
    def _from_state(cls, state: StateReader) -> Evaluation:
        n = state.opt_integer("n_classes", minimum=2)
        if (n is None) != (state.data["confusion"] is None):
            raise DataError("evaluation: malformed state: n_classes and confusion must both be set or both null")
        try:
            ev = cls(n_classes=n, labels=state.names("class_names"), top_n=state.integer("top_n", minimum=1))
        except ConfigError as e:
            raise DataError(f"evaluation: malformed state: {e}") from e
        if n is not None:
            ev._confusion = state.array("confusion", (n, n), np.int64)
        ev._top_n_correct = state.integer("top_n_correct")
        return ev


class EvaluationBinary(BaseEvaluation):
    """Multi-label metrics: an independent binary decision per output column (DL4J's ``EvaluationBinary``).

    Labels are 0/1 of shape ``(n, columns)``; predictions are probabilities of the same shape, and
    a column is predicted positive when its probability is above ``threshold``. A mask may be
    ``(n,)`` (rows) or ``(n, columns)`` (per output). Time series ``(n, t, columns)`` are flattened.

    Args:
        n_columns: Number of outputs; inferred from the first non-empty batch when None.
        threshold: Decision threshold in (0, 1) applied to every column.
        column_names: Optional output names used by ``stats()``.

    Example:
        >>> ev = EvaluationBinary()
        >>> ev.eval([[1, 0], [0, 1]], [[0.9, 0.2], [0.4, 0.3]])
        >>> ev.accuracy(0), ev.recall(1)
        (1.0, 0.0)
    """

    type_tag = "evaluation_binary"
    state_keys = ("n_columns", "threshold", "column_names", "counts")

    def __init__(
        self, n_columns: int | None = None, threshold: float = 0.5, column_names: Sequence[str] | None = None
    ) -> None:
        n = check_positive_int(n_columns, "n_columns", optional=True)
        names = check_names(column_names, "column_names", n)
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating)) or not 0 < threshold < 1:
            raise ConfigError(f"expected a number in (0, 1), got {threshold!r}", "threshold")
        self.n_columns: int | None = len(names) if n is None and names is not None else n
        self.threshold = float(threshold)
        self.column_names: list[str] | None = names
        # rows: tp, fp, tn, fn; one column per output
        self._counts: IntArray | None = None if self.n_columns is None else np.zeros((4, self.n_columns), np.int64)

    def eval(self, labels: npt.ArrayLike, predictions: npt.ArrayLike, mask: npt.ArrayLike | None = None) -> None:
        """Accumulate a minibatch: labels and predictions ``(n, columns)``, mask ``(n,)`` or ``(n, columns)``."""
        y, p, m, n = read_inputs(labels, predictions, mask)
        if p.ndim == 1:
            p = p[:, None]
        if p.ndim != 2:
            raise DataError(f"predictions must be (n, columns) or (n, t, columns), got shape {p.shape}")
        c = p.shape[1]
        if self.n_columns is not None and c != self.n_columns:
            raise DataError(f"predictions have {c} columns but this EvaluationBinary has n_columns={self.n_columns}")
        y = binary_labels(y, c)
        keep = row_mask(m, n, c, per_output=True)
        weight = (
            np.ones((n, c), dtype=np.int64)
            if keep is None
            else np.broadcast_to((keep if keep.ndim == 2 else keep[:, None]).astype(np.int64), (n, c))
        )
        if not weight.any():
            return
        if self._counts is None:
            self.n_columns = c
            self._counts = np.zeros((4, c), np.int64)
        actual = y == 1
        predicted = p > self.threshold
        self._counts[0] += np.sum(weight * (actual & predicted), axis=0)
        self._counts[1] += np.sum(weight * (~actual & predicted), axis=0)
        self._counts[2] += np.sum(weight * (~actual & ~predicted), axis=0)
        self._counts[3] += np.sum(weight * (actual & ~predicted), axis=0)

    def _merge(self, other: EvaluationBinary) -> None:
        if other.threshold != self.threshold:
            raise DataError(
                f"cannot merge evaluations with different thresholds: {self.threshold} vs {other.threshold}"
            )
        if self.n_columns is not None and other.n_columns is not None and self.n_columns != other.n_columns:
            raise DataError(f"cannot merge evaluations with different n_columns: {self.n_columns} vs {other.n_columns}")
        self.column_names = merge_names(self.column_names, other.column_names, "column names")
        if other._counts is not None:
            if self._counts is None:
                self._counts = other._counts.copy()
            else:
                self._counts += other._counts
        if self.n_columns is None:
            self.n_columns = other.n_columns

    def _col(self, col: int) -> IntArray:
        c = check_index(col, self.n_columns, "column", "n_columns")
        counts = self._counts if self._counts is not None else np.zeros((4, c + 1), np.int64)
        return counts[:, c]

    def true_positives(self, col: int) -> int:
        """Positive examples of column ``col`` predicted positive."""
        return int(self._col(col)[0])

    def false_positives(self, col: int) -> int:
        """Negative examples of column ``col`` predicted positive."""
        return int(self._col(col)[1])

    def true_negatives(self, col: int) -> int:
        """Negative examples of column ``col`` predicted negative."""
        return int(self._col(col)[2])

    def false_negatives(self, col: int) -> int:
        """Positive examples of column ``col`` predicted negative."""
        return int(self._col(col)[3])

    def num_examples(self, col: int | None = None) -> int:
        """Examples counted for column ``col``; None: the largest per-column count (rows, without per-output masks)."""
        if col is not None:
            return int(self._col(col).sum())
        return 0 if self._counts is None else int(self._counts.sum(axis=0).max())

    def accuracy(self, col: int) -> float:
        """Fraction of correct decisions for column ``col``."""
        tp, fp, tn, fn = self._col(col)
        return float(safe_div(tp + tn, tp + fp + tn + fn))

    def precision(self, col: int) -> float:
        """Precision of column ``col``; NaN when it was never predicted positive."""
        tp, fp, _, _ = self._col(col)
        return float(safe_div(tp, tp + fp))

    def recall(self, col: int) -> float:
        """Recall of column ``col``; NaN when it has no positive examples."""
        tp, _, _, fn = self._col(col)
        return float(safe_div(tp, tp + fn))

    def f1(self, col: int) -> float:
        """F1 ``2 tp / (2 tp + fp + fn)`` of column ``col``."""
        tp, fp, _, fn = self._col(col)
        return float(safe_div(2 * tp, 2 * tp + fp + fn))

    def _average(self, metric: str) -> float:
        return nan_mean([getattr(self, metric)(c) for c in range(self.n_columns or 0)])

    def average_accuracy(self) -> float:
        """Mean accuracy over columns (undefined columns skipped)."""
        return self._average("accuracy")

    def average_precision(self) -> float:
        """Mean precision over columns (undefined columns skipped)."""
        return self._average("precision")

    def average_recall(self) -> float:
        """Mean recall over columns (undefined columns skipped)."""
        return self._average("recall")

    def average_f1(self) -> float:
        """Mean F1 over columns (undefined columns skipped)."""
        return self._average("f1")

    def stats(self) -> str:
        """A per-column table of counts, accuracy, precision, recall and F1."""
        n = self.n_columns or 0
        names = [self.column_names[c] if self.column_names else str(c) for c in range(n)]
        width = max([6, *(len(x) for x in names)])
        lines = [
            "=====================EvaluationBinary Metrics=====================",
            f" # of columns:    {n}",
            f" Threshold:       {self.threshold}",
            f" Average Accuracy: {fmt(self.average_accuracy())}   Average F1: {fmt(self.average_f1())}",
            "",
            f"  {'column':>{width}}  {'accuracy':>9}  {'precision':>9}  {'recall':>9}  {'f1':>9}"
            f"  {'tp':>7}  {'fp':>7}  {'tn':>7}  {'fn':>7}",
        ]
        for c in range(n):
            tp, fp, tn, fn = self._col(c)
            lines.append(
                f"  {names[c]:>{width}}  {fmt(self.accuracy(c)):>9}  {fmt(self.precision(c)):>9}  "
                f"{fmt(self.recall(c)):>9}  {fmt(self.f1(c)):>9}  {tp:>7}  {fp:>7}  {tn:>7}  {fn:>7}"
            )
        return "\n".join(lines)

    def _state(self) -> dict[str, Any]:
        return {
            "n_columns": self.n_columns,
            "threshold": self.threshold,
            "column_names": self.column_names,
            "counts": None if self._counts is None else self._counts.tolist(),
        }

    @classmethod
    def _from_state(cls, state: StateReader) -> EvaluationBinary:
        n = state.opt_integer("n_columns", minimum=1)
        if (n is None) != (state.data["counts"] is None):
            raise DataError("evaluation_binary: malformed state: n_columns and counts must both be set or both null")
        try:
            ev = cls(n_columns=n, threshold=state.number("threshold"), column_names=state.names("column_names"))
        except ConfigError as e:
            raise DataError(f"evaluation_binary: malformed state: {e}") from e
        if n is not None:
            ev._counts = state.array("counts", (4, n), np.int64)
        return ev
