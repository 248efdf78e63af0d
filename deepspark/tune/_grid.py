"""Optuna's grid sampler, adapted to ask-and-tell (imported only when a search uses ``sampler="grid"``)."""

from __future__ import annotations

from typing import Any

import optuna


class AskTellGridSampler(optuna.samplers.GridSampler):
    """Optuna's ``GridSampler`` whose ``after_trial`` does not call ``study.stop()``: that only works inside
    ``study.optimize``, and the search's driver checks ``is_exhausted`` itself before asking for a trial."""

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        return None
