"""The Optuna study behind a search: opening it (in memory or in a journal file, no DB server), checking that a
journal belongs to this search, recovering after a driver crash, and counting what is left to run."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from deepspark.errors import ConfigError, StorageError
from deepspark.tune.space import Space

if TYPE_CHECKING:
    import optuna

log = logging.getLogger("deepspark")

ATTR_SPACE = "deepspark_space"
ATTR_METRIC = "deepspark_metric"
INTERRUPTED = "interrupted"  # user attr: why a trial stopped without a verdict (driver crash, max_time...)


def quiet_optuna() -> None:
    """Optuna logs every trial at INFO; the search reports through its own events instead."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


def make_storage(storage: str | Path | None) -> Any:
    """An in-memory storage, or an Optuna journal file (``JournalStorage`` + ``JournalFileBackend``)."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    if storage is None:
        return optuna.storages.InMemoryStorage()
    path = Path(storage)
    if path.is_dir():
        raise ConfigError(f"{path} is a directory; give a journal file path such as search.journal", "storage")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    except (OSError, ValueError) as e:
        raise StorageError(f"cannot open the search journal {path}: {e}") from e
    except Exception as e:  # a damaged journal: Optuna raises its own errors while replaying the log
        raise StorageError(f"the search journal {path} cannot be read ({type(e).__name__}: {e}); use a new file") from e


def open_study(
    storage: Any,
    name: str,
    direction: Literal["minimize", "maximize"],
    sampler: Any,
    pruner: Any,
    space: Space,
    metric: str,
    where: str,
) -> optuna.Study:
    """Create the study, or load it from the journal after checking it searches the same space and metric."""
    import optuna

    try:
        study = optuna.create_study(
            storage=storage, sampler=sampler, pruner=pruner, study_name=name, direction=direction, load_if_exists=True
        )
    except Exception as e:
        raise StorageError(f"cannot open study {name!r} in {where}: {type(e).__name__}: {e}") from e
    space_json = space.to_json(indent=None)
    attrs = study.user_attrs
    if ATTR_SPACE not in attrs:
        if study.trials:
            raise ConfigError(
                f"study {name!r} in {where} was not written by a deepspark search; use another study_name or file",
                "storage",
            )
        study.set_user_attr(ATTR_SPACE, space_json)
        study.set_user_attr(ATTR_METRIC, metric)
        return study
    if attrs[ATTR_SPACE] != space_json:
        old = sorted(json.loads(attrs[ATTR_SPACE]))
        raise ConfigError(
            f"{where} holds study {name!r} over a different search space (parameters {old}; this search: "
            f"{space.names()}, or the same names with other domains); resume with the same space, or use a new "
            "storage file or study_name",
            "storage",
        )
    if attrs.get(ATTR_METRIC) != metric or study.direction.name.lower() != direction:
        raise ConfigError(
            f"{where} holds study {name!r} optimizing {attrs.get(ATTR_METRIC)!r} ({study.direction.name.lower()}); "
            f"this search optimizes {metric!r} ({direction}): use the same metric and mode, or a new storage file",
            "storage",
        )
    return study


def attach(study: optuna.Study, frozen: optuna.trial.FrozenTrial) -> optuna.trial.Trial:
    """A live ``Trial`` handle for a stored trial (Optuna builds these from the storage's trial id)."""
    import optuna

    return optuna.trial.Trial(study, frozen._trial_id)


def recover_interrupted(study: optuna.Study) -> list[int]:
    """Trials left RUNNING by a driver that died: mark them failed-as-interrupted and queue their params again.

    One driver owns a journal at a time, so a RUNNING trial seen at start belongs to a driver that stopped.
    """
    from optuna.trial import TrialState

    recovered = []
    for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        trial = attach(study, frozen)
        trial.set_user_attr(INTERRUPTED, "the driver stopped before the trial finished")
        study.tell(trial, state=TrialState.FAIL)
        requeue(study, frozen.params)
        recovered.append(frozen.number)
    if recovered:
        log.warning(
            "search: %d trial(s) interrupted by a previous driver were queued again: %s", len(recovered), recovered
        )
    return recovered


def requeue(study: optuna.Study, params: dict[str, Any]) -> None:
    """Queue a trial with these params (it runs before any newly sampled one)."""
    if params:
        study.enqueue_trial(params, skip_if_exists=False)


def counted(frozen: optuna.trial.FrozenTrial) -> bool:
    """Whether a trial counts toward ``max_trials``: finished with a verdict (complete, pruned or failed)."""
    return frozen.state.is_finished() and INTERRUPTED not in frozen.user_attrs


def finished_count(study: optuna.Study) -> int:
    """Trials that count toward ``max_trials``."""
    return sum(1 for t in study.get_trials(deepcopy=False) if counted(t))
