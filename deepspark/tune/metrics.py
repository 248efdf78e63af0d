"""The metrics a search can optimize, the task type each belongs to, and how a trial computes them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from deepspark.config._spec import suggest
from deepspark.errors import ConfigError

Task = Literal["classification", "regression", "any"]
Mode = Literal["min", "max"]


@dataclass(frozen=True, slots=True)
class MetricInfo:
    """One metric: which task produces it and which direction is better."""

    task: Task
    mode: Mode
    description: str


METRICS: dict[str, MetricInfo] = {
    "accuracy": MetricInfo("classification", "max", "fraction of validation examples classified right"),
    "f1": MetricInfo("classification", "max", "macro-averaged F1 over classes"),
    "precision": MetricInfo("classification", "max", "macro-averaged precision"),
    "recall": MetricInfo("classification", "max", "macro-averaged recall"),
    "loss": MetricInfo("any", "min", "mean validation loss of the network's own loss function"),
    "mse": MetricInfo("regression", "min", "mean squared error, averaged over output columns"),
    "mae": MetricInfo("regression", "min", "mean absolute error, averaged over output columns"),
    "rmse": MetricInfo("regression", "min", "root mean squared error, averaged over output columns"),
    "r2": MetricInfo("regression", "max", "coefficient of determination, averaged over output columns"),
}


def check_metric(metric: object, mode: object, label_kind: str | None = None) -> None:
    """Reject unknown metrics, a mode against the metric's direction, and metrics the labels cannot produce."""
    if not isinstance(metric, str) or metric not in METRICS:
        raise ConfigError(f"unknown metric {metric!r}; {suggest(metric, METRICS)}", "metric")
    info = METRICS[metric]
    if mode not in ("min", "max"):
        raise ConfigError(f"expected 'min' or 'max', got {mode!r}", "mode")
    if mode != info.mode:
        raise ConfigError(
            f"{metric!r} is better when {'higher' if info.mode == 'max' else 'lower'}: use mode={info.mode!r}", "mode"
        )
    if label_kind is None or info.task == "any":
        return
    task = "regression" if label_kind == "scalar_float" else "classification" if label_kind == "index" else None
    if task is not None and task != info.task:
        fits = sorted(n for n, m in METRICS.items() if m.task in (task, "any"))
        raise ConfigError(
            f"{metric!r} is a {info.task} metric but the label column holds {task} targets "
            f"({'float values' if task == 'regression' else 'class indices'}); metrics for {task}: {fits}",
            "metric",
        )


def from_evaluation(metric: str, evaluation: Any) -> float:
    """Read a classification (``Evaluation``) or regression (``RegressionEvaluation``) metric off an evaluation."""
    if METRICS[metric].task == "classification":
        readers = {
            "accuracy": evaluation.accuracy,
            "f1": evaluation.f1,
            "precision": evaluation.precision,
            "recall": evaluation.recall,
        }
        return float(readers[metric]())
    per_column = {
        "mse": evaluation.mean_squared_error,
        "mae": evaluation.mean_absolute_error,
        "rmse": evaluation.root_mean_squared_error,
        "r2": evaluation.r_squared,
    }[metric]
    cols = range(evaluation.n_columns)
    return float(sum(per_column(c) for c in cols) / len(cols))


def compute_metric(net: Any, metric: str, x: Any, y: Any) -> float:
    """The metric of a trained network on validation arrays (runs on the executor)."""
    if metric == "loss":
        return float(net.score(x, y))
    if METRICS[metric].task == "classification":
        return from_evaluation(metric, net.evaluate(x, y))
    return from_evaluation(metric, net.evaluate_regression(x, y))
