"""Probability calibration: reliability diagrams, residual and probability histograms (DL4J's calibration)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import numpy.typing as npt

from deepspark.errors import ConfigError, DataError
from deepspark.eval._base import (
    BaseEvaluation,
    FloatArray,
    IntArray,
    StateReader,
    check_index,
    check_positive_int,
    class_indices,
    class_probabilities,
    fmt,
    grid_index,
    nan_mean,
    read_inputs,
    row_mask,
    safe_div,
)

_COUNTS = ("reliability_count", "reliability_positive", "residual_by_class", "probability_by_class")
_TOTALS = ("residual_overall", "probability_overall", "label_counts", "prediction_counts")


@dataclasses.dataclass(frozen=True)
class ReliabilityDiagram:
    """One class's reliability diagram: per probability bin, how often the class really occurred.

    ``mean_predicted`` and ``observed_frequency`` are NaN for empty bins; a calibrated model has
    ``observed_frequency ≈ mean_predicted``.
    """

    bin_edges: FloatArray
    counts: IntArray
    mean_predicted: FloatArray
    observed_frequency: FloatArray


@dataclasses.dataclass(frozen=True)
class Histogram:
    """Counts of values in equal-width bins over [0, 1] (the last bin includes 1)."""

    bin_edges: FloatArray
    counts: IntArray


def _bins(values: FloatArray, bins: int) -> IntArray:
    return np.minimum(grid_index(values, bins), bins - 1)


class EvaluationCalibration(BaseEvaluation):
    """Calibration of a classifier's probabilities: reliability diagrams and residual/probability histograms.

    For every class ``k`` and every example, ``p_k`` falls in one of ``reliability_bins`` bins; the
    diagram shows per bin the count, the mean ``p_k`` and the fraction of those examples whose
    label is ``k``. Histograms (``histogram_bins`` over [0, 1]) cover the residuals
    ``|label_k - p_k|`` and the probabilities ``p_k`` of every (example, class) entry, and, per
    class ``k``, of the examples whose label is ``k``. Labels and predictions as in ``Evaluation``;
    predictions must be probabilities in [0, 1].

    Args:
        reliability_bins: Number of reliability-diagram bins.
        histogram_bins: Number of residual/probability histogram bins.

    Example:
        >>> cal = EvaluationCalibration(reliability_bins=5)
        >>> cal.eval([0, 1, 1], [[0.9, 0.1], [0.3, 0.7], [0.2, 0.8]])
        >>> cal.reliability_diagram(1).counts.tolist()
        [1, 0, 0, 1, 1]
    """

    type_tag = "calibration"
    state_keys = ("reliability_bins", "histogram_bins", "n_classes", "reliability_prob_sum", *_COUNTS, *_TOTALS)

    def __init__(self, reliability_bins: int = 10, histogram_bins: int = 50) -> None:
        self.reliability_bins: int = check_positive_int(reliability_bins, "reliability_bins") or 1
        self.histogram_bins: int = check_positive_int(histogram_bins, "histogram_bins") or 1
        self.n_classes: int | None = None
        self._counts: dict[str, IntArray] = {}
        self._prob_sum: FloatArray = np.zeros((0, self.reliability_bins))

    def _shapes(self, c: int) -> dict[str, tuple[int, ...]]:
        r, h = self.reliability_bins, self.histogram_bins
        return {
            "reliability_count": (c, r),
            "reliability_positive": (c, r),
            "residual_by_class": (c, h),
            "probability_by_class": (c, h),
            "residual_overall": (h,),
            "probability_overall": (h,),
            "label_counts": (c,),
            "prediction_counts": (c,),
        }

    def _start(self, c: int) -> None:
        if self.n_classes is None:
            self.n_classes = c
            self._counts = {k: np.zeros(s, np.int64) for k, s in self._shapes(c).items()}
            self._prob_sum = np.zeros((c, self.reliability_bins))

    def _edges(self, bins: int) -> FloatArray:
        return np.arange(bins + 1, dtype=np.float64) / bins

    def eval(self, labels: npt.ArrayLike, predictions: npt.ArrayLike, mask: npt.ArrayLike | None = None) -> None:
        """Accumulate a minibatch: labels ``(n,)``/``(n, c)``, probabilities ``(n, c)``, optional 0/1 mask ``(n,)``."""
        y, p, m, n = read_inputs(labels, predictions, mask)
        probs = class_probabilities(p)
        c = probs.shape[1]
        if self.n_classes is not None and c != self.n_classes:
            raise DataError(f"predictions have {c} class columns but this evaluation has n_classes={self.n_classes}")
        if probs.size and (probs.min() < 0.0 or probs.max() > 1.0):
            bad = probs[(probs < 0.0) | (probs > 1.0)][0]
            raise DataError(
                f"calibration needs probabilities in [0, 1], got {float(bad)!r}: apply softmax/sigmoid first"
            )
        actual = class_indices(y, c)
        keep = row_mask(m, n, c, per_output=False)
        if keep is not None:
            actual, probs = actual[keep], probs[keep]
        if actual.size == 0:
            return
        self._start(c)
        r, h = self.reliability_bins, self.histogram_bins
        rows = np.arange(actual.size)
        cnt = self._counts
        rel_bin = _bins(probs, r)
        rel = (np.arange(c) * r + rel_bin).ravel()
        cnt["reliability_count"] += np.bincount(rel, minlength=c * r).reshape(c, r)
        self._prob_sum += np.bincount(rel, weights=probs.ravel(), minlength=c * r).reshape(c, r)
        cnt["reliability_positive"] += np.bincount(actual * r + rel_bin[rows, actual], minlength=c * r).reshape(c, r)
        # residual |onehot - p| is p off the label and 1 - p on it: reuse the probability bins
        hist_bin = _bins(probs, h)
        prob_all = np.bincount(hist_bin.ravel(), minlength=h)
        own_hist = np.bincount(actual * h + hist_bin[rows, actual], minlength=c * h).reshape(c, h)
        residual_hist = np.bincount(actual * h + _bins(1.0 - probs[rows, actual], h), minlength=c * h).reshape(c, h)
        cnt["probability_overall"] += prob_all
        cnt["residual_overall"] += prob_all - own_hist.sum(axis=0) + residual_hist.sum(axis=0)
        cnt["probability_by_class"] += own_hist
        cnt["residual_by_class"] += residual_hist
        cnt["label_counts"] += np.bincount(actual, minlength=c)
        cnt["prediction_counts"] += np.bincount(np.argmax(probs, axis=1), minlength=c)

    def _merge(self, other: EvaluationCalibration) -> None:
        if (other.reliability_bins, other.histogram_bins) != (self.reliability_bins, self.histogram_bins):
            raise DataError(
                "cannot merge calibrations with different bins: "
                f"reliability {self.reliability_bins} vs {other.reliability_bins}, "
                f"histogram {self.histogram_bins} vs {other.histogram_bins}"
            )
        if other.n_classes is None:
            return
        if self.n_classes is not None and self.n_classes != other.n_classes:
            raise DataError(f"cannot merge evaluations with different n_classes: {self.n_classes} vs {other.n_classes}")
        self._start(other.n_classes)
        for k, v in other._counts.items():
            self._counts[k] += v
        self._prob_sum += other._prob_sum

    # ------------------------------------------------------------------------------------ results

    def _cls(self, cls: int) -> int:
        return check_index(cls, self.n_classes, "class", "n_classes")

    def num_examples(self) -> int:
        """How many examples were evaluated."""
        return int(self._counts["label_counts"].sum()) if self._counts else 0

    def label_counts(self) -> IntArray:
        """Examples per actual class."""
        return self._counts["label_counts"].copy() if self._counts else np.zeros(0, np.int64)

    def prediction_counts(self) -> IntArray:
        """Examples per predicted class (argmax)."""
        return self._counts["prediction_counts"].copy() if self._counts else np.zeros(0, np.int64)

    def reliability_diagram(self, cls: int) -> ReliabilityDiagram:
        """Per-bin counts, mean predicted probability and observed frequency of class ``cls``."""
        c = self._cls(cls)
        counts = self._counts["reliability_count"][c].copy()
        return ReliabilityDiagram(
            bin_edges=self._edges(self.reliability_bins),
            counts=counts,
            mean_predicted=safe_div(self._prob_sum[c], counts),
            observed_frequency=safe_div(self._counts["reliability_positive"][c], counts),
        )

    def expected_calibration_error(self, cls: int | None = None) -> float:
        """Count-weighted mean ``|observed - predicted|`` over the bins of class ``cls`` (None: mean over classes)."""
        if cls is None:
            return nan_mean([self.expected_calibration_error(k) for k in range(self.n_classes or 0)])
        d = self.reliability_diagram(cls)
        gap = np.nan_to_num(np.abs(d.observed_frequency - d.mean_predicted))
        return float(safe_div(np.sum(d.counts * gap), d.counts.sum()))

    def _histogram(self, overall: str, by_class: str, cls: int | None) -> Histogram:
        edges = self._edges(self.histogram_bins)
        if not self._counts:
            if cls is not None:
                self._cls(cls)
            return Histogram(edges, np.zeros(self.histogram_bins, np.int64))
        counts = self._counts[overall] if cls is None else self._counts[by_class][self._cls(cls)]
        return Histogram(edges, counts.copy())

    def residual_histogram(self, cls: int | None = None) -> Histogram:
        """Histogram of ``|label_k - p_k|``: all entries (None), or ``1 - p_cls`` over examples labelled ``cls``."""
        return self._histogram("residual_overall", "residual_by_class", cls)

    def probability_histogram(self, cls: int | None = None) -> Histogram:
        """Histogram of predicted probabilities: all entries (None), or ``p_cls`` over examples labelled ``cls``."""
        return self._histogram("probability_overall", "probability_by_class", cls)

    def stats(self) -> str:
        """Label/prediction counts and each class's reliability diagram as text."""
        lines = [
            "=====================Evaluation Calibration=====================",
            f" # of classes: {self.n_classes}   # of examples: {self.num_examples()}",
            f" Expected calibration error (mean over classes): {fmt(self.expected_calibration_error())}",
        ]
        for c in range(self.n_classes or 0):
            d = self.reliability_diagram(c)
            lines += [
                "",
                f"Class {c}: labels {self.label_counts()[c]}, predicted {self.prediction_counts()[c]}",
                f"  {'bin':>13}  {'count':>8}  {'mean p':>8}  {'observed':>8}",
            ]
            for b in range(self.reliability_bins):
                close = "]" if b == self.reliability_bins - 1 else ")"  # the last bin includes 1
                lines.append(
                    f"  [{d.bin_edges[b]:.3f},{d.bin_edges[b + 1]:.3f}{close}  {d.counts[b]:>8}  "
                    f"{fmt(d.mean_predicted[b]):>8}  {fmt(d.observed_frequency[b]):>8}"
                )
        return "\n".join(lines)

    def _state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "reliability_bins": self.reliability_bins,
            "histogram_bins": self.histogram_bins,
            "n_classes": self.n_classes,
            "reliability_prob_sum": self._prob_sum.tolist() if self._counts else None,
        }
        state.update({k: (self._counts[k].tolist() if self._counts else None) for k in (*_COUNTS, *_TOTALS)})
        return state

    @classmethod
    def _from_state(cls, state: StateReader) -> EvaluationCalibration:
        try:
            ev = cls(state.integer("reliability_bins", 1), state.integer("histogram_bins", 1))
        except ConfigError as e:
            raise DataError(f"calibration: malformed state: {e}") from e
        n = state.opt_integer("n_classes", minimum=2)
        if n is not None:
            ev._start(n)
            for k, shape in ev._shapes(n).items():
                ev._counts[k] = state.array(k, shape, np.int64)
            ev._prob_sum = state.array("reliability_prob_sum", (n, ev.reliability_bins), np.float64)
        return ev
