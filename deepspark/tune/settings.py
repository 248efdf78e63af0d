"""``SearchSettings``: every scalar option of a search as one frozen, validated, JSON-round-trippable spec."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from deepspark.config._spec import Spec, check, check_positive, register
from deepspark.tune.metrics import METRICS, check_metric

SamplerName = Literal["tpe", "random", "grid"]
PrunerName = Literal["asha", "none"]


@register("search")
@dataclass(frozen=True, kw_only=True, slots=True)
class SearchSettings(Spec):
    """What to optimize, how to sample and prune, and when to stop.

    Attributes:
        metric: ``accuracy``, ``f1``, ``precision``, ``recall`` (classification), ``mse``, ``mae``, ``rmse``,
            ``r2`` (regression) or ``loss`` (either), computed on the validation data after every epoch.
        mode: ``max`` or ``min``; None takes the metric's own direction.
        sampler: Optuna's ``TPESampler``, ``RandomSampler`` or ``GridSampler`` (finite, flat spaces).
        pruner: ``asha`` (Optuna's ``SuccessiveHalvingPruner``, rungs at ``asha_min_epochs * asha_reduction_factor**k``
            epochs) or ``none``.
        max_trials: trials to finish (complete, pruned or failed); None = the grid's size (or unbounded with
            ``max_time``).
        max_epochs: epochs a trial trains when it is never pruned.
        max_time: seconds this ``fit`` may run; running trials are then stopped and queued again for a resume.
        target_score: stop once a trial finishes at least this good.
        trial_timeout: seconds one trial may run before it is cancelled and recorded as failed.
        parallelism: trials at once; None = the cluster's task slots (clamped to slots and max_trials).
        batch_size: minibatch size of every trial.
        seed: seeds the sampler (trials' own seeds come from their configs).
        study_name: the Optuna study's name inside the storage.
    """

    kind = "search settings"

    metric: str = "accuracy"
    mode: Literal["min", "max"] | None = None
    sampler: SamplerName = "tpe"
    pruner: PrunerName = "asha"
    max_trials: int | None = None
    max_epochs: int = 10
    max_time: float | None = None
    target_score: float | None = None
    trial_timeout: float | None = None
    parallelism: int | None = None
    batch_size: int = 32
    seed: int = 0
    asha_min_epochs: int = 1
    asha_reduction_factor: int = 3
    study_name: str = "deepspark-search"

    def _validate(self) -> None:
        mode = self.mode if self.mode is not None else (METRICS[self.metric].mode if self.metric in METRICS else "max")
        check_metric(self.metric, mode)
        object.__setattr__(self, "mode", mode)
        check_positive(self, "max_trials", "max_epochs", "max_time", "trial_timeout", "parallelism", "batch_size")
        check_positive(self, "asha_min_epochs")
        check(
            self.asha_reduction_factor >= 2,
            "asha_reduction_factor",
            f"expected an int >= 2, got {self.asha_reduction_factor}",
        )
        check(bool(self.study_name.strip()), "study_name", "expected a non-empty name")
        check(
            self.max_trials is not None or self.max_time is not None or self.sampler == "grid",
            "max_trials",
            "give max_trials or max_time (or use the grid sampler, which runs the grid once); a search needs an end",
        )

    @property
    def direction(self) -> Literal["minimize", "maximize"]:
        """Optuna's study direction."""
        return "maximize" if self.mode == "max" else "minimize"

    def chunk_ends(self) -> list[int]:
        """The epochs after which the driver asks the pruner: ASHA's rungs below ``max_epochs``, then the last."""
        ends = set()
        if self.pruner == "asha":
            step = self.asha_min_epochs
            while step < self.max_epochs:
                ends.add(step)
                step *= self.asha_reduction_factor
        ends.add(self.max_epochs)
        return sorted(ends)
