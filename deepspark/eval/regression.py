"""Regression metrics per output column from mergeable streaming moments (DL4J's ``RegressionEvaluation``)."""

from __future__ import annotations

from collections.abc import Sequence
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
    check_names,
    check_positive_int,
    fmt,
    merge_names,
    nan_mean,
    read_inputs,
    row_mask,
    safe_div,
)

# float64 moments per column; merged with Chan et al.'s parallel update (exact up to rounding)
_MOMENTS = ("label_mean", "prediction_mean", "label_m2", "prediction_m2", "cross_m2", "sum_abs_error", "sum_sq_error")


class RegressionEvaluation(BaseEvaluation):
    """MSE, MAE, RMSE, relative squared error, R² and Pearson correlation per output column.

    The state per column is the example count, the means and centred second moments of labels and
    predictions, their co-moment, and the sums of absolute and squared errors (float64). Shards
    merge with the parallel-variance update, so merged metrics equal those of one pass up to
    rounding. Labels and predictions share one shape: ``(n,)``, ``(n, columns)`` or time series
    ``(n, t, columns)``; the mask may be ``(n,)`` (rows) or ``(n, columns)`` (per output).
    Metrics of a column without examples, or R²/RSE/Pearson of a constant column, are NaN.

    Args:
        n_columns: Number of outputs; inferred from the first non-empty batch when None.
        column_names: Optional names used by ``stats()``.

    Example:
        >>> ev = RegressionEvaluation()
        >>> ev.eval([1.0, 2.0, 3.0], [1.5, 2.0, 2.5])
        >>> round(ev.mean_squared_error(0), 4), round(ev.r_squared(0), 4)
        (0.1667, 0.75)
    """

    type_tag = "regression"
    state_keys = ("n_columns", "column_names", "count", *_MOMENTS)

    def __init__(self, n_columns: int | None = None, column_names: Sequence[str] | None = None) -> None:
        n = check_positive_int(n_columns, "n_columns", optional=True)
        self.column_names = check_names(column_names, "column_names", n)
        self.n_columns: int | None = len(self.column_names) if n is None and self.column_names is not None else n
        self._count: IntArray | None = None
        self._m: dict[str, FloatArray] = {}
        if self.n_columns is not None:
            self._reset(self.n_columns)

    def _reset(self, c: int) -> None:
        self.n_columns = c
        self._count = np.zeros(c, dtype=np.int64)
        self._m = {k: np.zeros(c) for k in _MOMENTS}

    def eval(self, labels: npt.ArrayLike, predictions: npt.ArrayLike, mask: npt.ArrayLike | None = None) -> None:
        """Accumulate a minibatch of targets and predictions of equal shape, with an optional 0/1 mask."""
        y, p, m, n = read_inputs(labels, predictions, mask)
        if y.ndim == 1:
            y = y[:, None]
        if p.ndim == 1:
            p = p[:, None]
        if p.ndim != 2 or y.shape != p.shape:
            raise DataError(f"labels {y.shape} and predictions {p.shape} must have the same shape (n, columns)")
        c = p.shape[1]
        if self.n_columns is not None and c != self.n_columns:
            raise DataError(
                f"predictions have {c} columns but this RegressionEvaluation has n_columns={self.n_columns}"
            )
        keep = row_mask(m, n, c, per_output=True)
        w = np.ones((n, c)) if keep is None else np.broadcast_to(keep if keep.ndim == 2 else keep[:, None], (n, c))
        w = w.astype(np.float64)
        count = w.sum(axis=0)
        if not count.any():
            return
        y_mean = np.nan_to_num(safe_div((w * y).sum(axis=0), count))
        p_mean = np.nan_to_num(safe_div((w * p).sum(axis=0), count))
        dy = (y - y_mean) * w
        dp = (p - p_mean) * w
        err = (y - p) * w
        batch = {
            "label_mean": y_mean,
            "prediction_mean": p_mean,
            "label_m2": (dy * dy).sum(axis=0),
            "prediction_m2": (dp * dp).sum(axis=0),
            "cross_m2": (dy * dp).sum(axis=0),
            "sum_abs_error": np.abs(err).sum(axis=0),
            "sum_sq_error": (err * err).sum(axis=0),
        }
        if self._count is None:
            self._reset(c)
        self._combine(count.astype(np.int64), batch)

    def _combine(self, count_b: IntArray, b: dict[str, FloatArray]) -> None:
        if self._count is None:
            raise DataError("internal: combine before the column count is known")
        na = self._count.astype(np.float64)
        nb = count_b.astype(np.float64)
        total = na + nb
        frac_b = np.nan_to_num(safe_div(nb, total))
        weight = np.nan_to_num(safe_div(na * nb, total))
        a = self._m
        d_y = b["label_mean"] - a["label_mean"]
        d_p = b["prediction_mean"] - a["prediction_mean"]
        self._m = {
            "label_mean": a["label_mean"] + d_y * frac_b,
            "prediction_mean": a["prediction_mean"] + d_p * frac_b,
            "label_m2": a["label_m2"] + b["label_m2"] + d_y * d_y * weight,
            "prediction_m2": a["prediction_m2"] + b["prediction_m2"] + d_p * d_p * weight,
            "cross_m2": a["cross_m2"] + b["cross_m2"] + d_y * d_p * weight,
            "sum_abs_error": a["sum_abs_error"] + b["sum_abs_error"],
            "sum_sq_error": a["sum_sq_error"] + b["sum_sq_error"],
        }
        self._count = self._count + count_b

    def _merge(self, other: RegressionEvaluation) -> None:
        if self.n_columns is not None and other.n_columns is not None and self.n_columns != other.n_columns:
            raise DataError(f"cannot merge evaluations with different n_columns: {self.n_columns} vs {other.n_columns}")
        self.column_names = merge_names(self.column_names, other.column_names, "column names")
        if other._count is not None:
            if self._count is None:
                self._reset(len(other._count))
            self._combine(other._count, other._m)
        if self.n_columns is None:
            self.n_columns = other.n_columns

    # ------------------------------------------------------------------------------------ metrics

    def _col(self, col: int) -> int:
        return check_index(col, self.n_columns, "column", "n_columns")

    def _get(self, key: str, col: int) -> float:
        c = self._col(col)
        if key == "count":
            return float(self._count[c]) if self._count is not None else 0.0
        return float(self._m[key][c])

    def num_examples(self, col: int | None = None) -> int:
        """Examples counted for column ``col``; with None the largest per-column count."""
        if col is not None:
            return int(self._get("count", col))
        return 0 if self._count is None else int(self._count.max())

    def mean_squared_error(self, col: int) -> float:
        """Mean of ``(label - prediction)^2`` for column ``col``."""
        return float(safe_div(self._get("sum_sq_error", col), self._get("count", col)))

    def mean_absolute_error(self, col: int) -> float:
        """Mean of ``|label - prediction|`` for column ``col``."""
        return float(safe_div(self._get("sum_abs_error", col), self._get("count", col)))

    def root_mean_squared_error(self, col: int) -> float:
        """Square root of the mean squared error of column ``col``."""
        return float(np.sqrt(self.mean_squared_error(col)))

    def relative_squared_error(self, col: int) -> float:
        """Sum of squared errors over the labels' sum of squared deviations from their mean."""
        if self._get("count", col) == 0:
            return float("nan")
        return float(safe_div(self._get("sum_sq_error", col), self._get("label_m2", col)))

    def r_squared(self, col: int) -> float:
        """Coefficient of determination ``1 - relative_squared_error`` (as scikit-learn's ``r2_score``)."""
        return 1.0 - self.relative_squared_error(col)

    def pearson_correlation(self, col: int) -> float:
        """Pearson correlation between labels and predictions of column ``col``."""
        den = np.sqrt(self._get("label_m2", col) * self._get("prediction_m2", col))
        return float(safe_div(self._get("cross_m2", col), den))

    def _average(self, metric: str) -> float:
        return nan_mean([getattr(self, metric)(c) for c in range(self.n_columns or 0)])

    def average_mean_squared_error(self) -> float:
        """Mean over columns of the MSE (columns without examples skipped)."""
        return self._average("mean_squared_error")

    def average_mean_absolute_error(self) -> float:
        """Mean over columns of the MAE."""
        return self._average("mean_absolute_error")

    def average_root_mean_squared_error(self) -> float:
        """Mean over columns of the RMSE."""
        return self._average("root_mean_squared_error")

    def average_relative_squared_error(self) -> float:
        """Mean over columns of the relative squared error."""
        return self._average("relative_squared_error")

    def average_r_squared(self) -> float:
        """Mean over columns of R²."""
        return self._average("r_squared")

    def average_pearson_correlation(self) -> float:
        """Mean over columns of the Pearson correlation."""
        return self._average("pearson_correlation")

    def stats(self) -> str:
        """A per-column table of MSE, MAE, RMSE, RSE, Pearson correlation and R²."""
        n = self.n_columns or 0
        names = [self.column_names[c] if self.column_names else f"col_{c}" for c in range(n)]
        width = max([7, *(len(x) for x in names)])
        metrics = (
            ("MSE", "mean_squared_error"),
            ("MAE", "mean_absolute_error"),
            ("RMSE", "root_mean_squared_error"),
            ("RSE", "relative_squared_error"),
            ("PC", "pearson_correlation"),
            ("R^2", "r_squared"),
        )
        lines = [
            "=====================Regression Evaluation Metrics=====================",
            f" # of columns: {n}   # of examples: {self.num_examples()}",
            f"{'Column':<{width}}  " + "  ".join(f"{label:>12}" for label, _ in metrics),
        ]
        for c in range(n):
            cells = "  ".join(f"{fmt(getattr(self, m)(c), 6):>12}" for _, m in metrics)
            lines.append(f"{names[c]:<{width}}  {cells}")
        lines.append(
            f"Average: MSE {fmt(self.average_mean_squared_error(), 6)}, "
            f"MAE {fmt(self.average_mean_absolute_error(), 6)}, R^2 {fmt(self.average_r_squared(), 6)}"
        )
        return "\n".join(lines)

    def _state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "n_columns": self.n_columns,
            "column_names": self.column_names,
            "count": None if self._count is None else self._count.tolist(),
        }
        state.update({k: (self._m[k].tolist() if self._count is not None else None) for k in _MOMENTS})
        return state

    @classmethod
    def _from_state(cls, state: StateReader) -> RegressionEvaluation:
        n = state.opt_integer("n_columns", minimum=1)
        if (n is None) != (state.data["count"] is None):
            raise DataError("regression: malformed state: n_columns and count must both be set or both null")
        try:
            ev = cls(n_columns=n, column_names=state.names("column_names"))
        except ConfigError as e:
            raise DataError(f"regression: malformed state: {e}") from e
        if n is not None:
            ev._count = state.array("count", (n,), np.int64)
            ev._m = {k: state.array(k, (n,), np.float64) for k in _MOMENTS}
        return ev
