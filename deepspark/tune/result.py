"""``SearchResult``: the best trial (params, score, saved network) and every trial as a table."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepspark.errors import DeepSparkError
from deepspark.tune.space import Params, Space

if TYPE_CHECKING:
    import optuna
    import pandas as pd

    from deepspark.nn import Network


@dataclass(frozen=True, slots=True)
class TrialSummary:
    """One finished trial as the progress callback sees it."""

    number: int
    state: str  # complete, pruned, failed, interrupted
    score: float | None
    epochs: int
    params: Params
    error: str
    seconds: float


_STATES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running", "WAITING": "waiting"}


class SearchResult:
    """What a search found. Trials live in the Optuna study (and its journal); models under ``output_dir``.

    Example:
        >>> result.best_params, result.best_score         # doctest: +SKIP
        >>> result.best_network.evaluate(x_test, y_test)  # doctest: +SKIP
        >>> result.trials_frame().sort_values("score")    # doctest: +SKIP
    """

    def __init__(self, study: optuna.Study, space: Space, output_dir: Path, stop_reason: str) -> None:
        self.study = study
        self.space = space
        self.output_dir = output_dir
        self.stop_reason = stop_reason

    def _best(self) -> optuna.trial.FrozenTrial:
        try:
            return self.study.best_trial
        except ValueError:
            raise DeepSparkError(
                "no trial completed: see trials_frame()['error'] for why the trials failed or were pruned"
            ) from None

    def best_trial_number(self) -> int | None:
        """The best completed trial's number, or None when none completed."""
        try:
            return int(self.study.best_trial.number)
        except ValueError:
            return None

    @property
    def best_params(self) -> Params:
        """The best trial's parameters, as ``build`` received them."""
        return self.space.unflatten(self._best().params)

    @property
    def best_score(self) -> float:
        """The best trial's validation metric after its last epoch."""
        value = self._best().value
        return math.nan if value is None else float(value)

    @property
    def best_network(self) -> Network:
        """The best trial's trained network, loaded from its archive."""
        from deepspark.nn import Network

        path = self.archive(self._best().number)
        if not path.exists():
            raise DeepSparkError(f"the best trial's model archive {path} is missing; was output_dir cleaned?")
        return Network.load(path)

    def archive(self, number: int) -> Path:
        """Where a completed trial's model is saved."""
        return self.output_dir / f"trial-{number:04d}.zip"

    def trials(self) -> list[optuna.trial.FrozenTrial]:
        """Optuna's records of every trial (interrupted ones included)."""
        return list(self.study.get_trials(deepcopy=False))

    def epochs_run(self) -> int:
        """Epochs trained over all trials, counted from the trial records."""
        return sum(int(t.user_attrs.get("epochs_run", 0)) for t in self.trials())

    def trials_frame(self) -> pd.DataFrame:
        """One row per trial: number, state, score, epochs, seconds, error, workers, then one column per parameter."""
        import pandas as pd

        rows: list[dict[str, Any]] = []
        for t in self.trials():
            state = "interrupted" if "interrupted" in t.user_attrs else _STATES.get(t.state.name, t.state.name.lower())
            start, end = t.datetime_start, t.datetime_complete
            rows.append(
                {
                    "number": t.number,
                    "state": state,
                    "score": t.value,
                    "epochs": int(t.user_attrs.get("epochs_run", 0)),
                    "seconds": (end - start).total_seconds() if start and end else None,
                    "start": start,
                    "end": end,
                    "error": t.user_attrs.get("error", t.user_attrs.get("interrupted", "")),
                    "workers": ",".join(t.user_attrs.get("workers", [])),
                    **{f"params_{k}": v for k, v in t.params.items()},
                }
            )
        return pd.DataFrame(rows)
