"""``Search``: hyperparameter search on Spark, with Optuna's ask-and-tell on the driver and trials as Spark jobs.

The driver owns the Optuna study (sampling, pruning, the journal) and one thread per concurrent trial. A thread
asks for a trial, calls ``build(params)`` for its config, then runs the trial chunk by chunk (see
``deepspark.tune._trial_worker``): after each chunk it reports the per-epoch validation scores and asks the
pruner whether to go on. Every Spark job of a trial carries the trial's job tag, so a timeout cancels that
trial alone. Trials that fail (``build`` raises, the config does not compile, the metric is NaN) are recorded
as failed with their error text and the search goes on.
"""

from __future__ import annotations

import logging
import math
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepspark.config._spec import Spec
from deepspark.errors import ConfigError, DataError
from deepspark.tune import _study
from deepspark.tune._events import SearchEvents
from deepspark.tune._runner import ChunkRunner, DistributedRunner, TaskRunner, _cancelled
from deepspark.tune.result import SearchResult, TrialSummary
from deepspark.tune.settings import SearchSettings
from deepspark.tune.space import Params, Space

if TYPE_CHECKING:
    import optuna
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger("deepspark")

Build = Callable[[Params], Any]


@dataclass
class _Running:
    """A trial some driver thread is running: its tag, when it began, and why it was cancelled (if it was)."""

    tag: str
    start: float
    cancel_reason: str = ""


class Search:
    """Search hyperparameters by training one network per trial on Spark, pruning the bad ones early.

    Args:
        spark: the SparkSession.
        build: ``params -> config`` (``NetworkConfig``, ``GraphConfig`` or any config ``Network`` accepts); it runs
            on the driver, and only the config's JSON travels to the executors.
        space: parameter names -> domains (``LogUniform``, ``Uniform``, ``IntRange``, ``Choice``, ``Fixed``).
        storage: an Optuna journal file (resume after a crash by running the same search again), or None.
        output_dir: where completed trials' models are saved (``trial-0007.zip``); default: beside the journal.
        trial_master: None trains each trial in one Spark task on data cached per executor; a
            ``ParameterAveraging(...)`` or ``GradientSharing(...)`` makes each trial a distributed fit.
        stats_storage: a ``StatsStorage`` (SQLite file, ``RemoteStatsRouter``) for the UI's Search page.
        **settings: see ``SearchSettings`` (metric, mode, sampler, pruner, max_trials, max_epochs, ...).

    Example:
        >>> space = {"lr": LogUniform(1e-4, 1e-1), "units": Choice([64, 128, 256])}
        >>> search = Search(spark, build, space, metric="accuracy", max_trials=24, max_epochs=8)  # doctest: +SKIP
        >>> result = search.fit(train_df, validation_df)                                          # doctest: +SKIP
        >>> result.best_params, result.best_score                                                 # doctest: +SKIP
    """

    def __init__(
        self,
        spark: SparkSession,
        build: Build,
        space: Space | dict[str, Any],
        *,
        storage: str | Path | None = None,
        output_dir: str | Path | None = None,
        trial_master: Any = None,
        stats_storage: Any = None,
        **settings: Any,
    ) -> None:
        if not callable(build):
            raise ConfigError(f"expected a function params -> config, got {type(build).__name__}", "build")
        unknown = sorted(set(settings) - set(SearchSettings.__dataclass_fields__))
        if unknown:
            from deepspark.config._spec import suggest

            raise ConfigError(
                f"unknown option(s) {unknown}; {suggest(unknown[0], SearchSettings.__dataclass_fields__)}", unknown[0]
            )
        self.settings = SearchSettings(**settings)
        self.space = Space.of(space)
        self.spark = spark
        self.build = build
        self.storage = storage
        if output_dir is None:
            output_dir = (
                Path(f"{storage}.models") if storage is not None else Path(tempfile.mkdtemp(prefix="deepspark-search-"))
            )
        self.output_dir = Path(output_dir)
        self.trial_master = trial_master
        self.events = SearchEvents(stats_storage, self.settings.study_name)
        self._grid = self.space.grid() if self.settings.sampler == "grid" else None
        if trial_master is not None and type(trial_master).__name__ not in ("ParameterAveraging", "GradientSharing"):
            raise ConfigError(
                f"expected ParameterAveraging(...), GradientSharing(...) or None, got {type(trial_master).__name__}",
                "trial_master",
            )
        self._lock = threading.Lock()
        self._running: dict[int, _Running] = {}
        self._stop_reason = ""
        self._budget: int | None = None

    # ------------------------------------------------------------------ setup

    def _sampler(self) -> optuna.samplers.BaseSampler:
        import optuna

        s = self.settings
        if s.sampler == "random":
            return optuna.samplers.RandomSampler(seed=s.seed)
        if s.sampler == "grid":
            from deepspark.tune._grid import AskTellGridSampler

            return AskTellGridSampler(self._grid or {}, seed=s.seed)
        return optuna.samplers.TPESampler(seed=s.seed, constant_liar=True)

    def _pruner(self) -> optuna.pruners.BasePruner:
        import optuna

        s = self.settings
        if s.pruner == "asha":
            return optuna.pruners.SuccessiveHalvingPruner(
                min_resource=s.asha_min_epochs, reduction_factor=s.asha_reduction_factor, min_early_stopping_rate=0
            )
        return optuna.pruners.NopPruner()

    def planned_trials(self) -> int | None:
        """Trials this search runs in all (``max_trials``, or the grid's size); None when ``max_time`` bounds it."""
        s = self.settings
        if self._grid is None:
            return s.max_trials
        size = Space.grid_size(self._grid)
        if s.max_trials is not None and s.max_trials > size:
            warnings.warn(
                f"max_trials={s.max_trials} is above the grid's {size} points; running the grid once", stacklevel=3
            )
        return size if s.max_trials is None else min(s.max_trials, size)

    def _parallelism(self, remaining: int | None) -> int:
        slots = max(1, int(self.spark.sparkContext.defaultParallelism))
        if self.trial_master is not None:
            per_trial = getattr(self.trial_master, "num_workers", None) or slots
            slots = max(1, slots // per_trial)
        wanted = self.settings.parallelism
        n = slots if wanted is None else wanted
        if wanted is not None and wanted > slots:
            warnings.warn(
                f"parallelism={wanted} is above the {slots} free task slot(s); running {slots} trial(s) at once "
                "(more would only queue behind each other)",
                stacklevel=3,
            )
            n = slots
        if remaining is not None and n > remaining:
            if wanted is not None and remaining > 0:
                warnings.warn(
                    f"parallelism={n} is above the {remaining} trial(s) left to run; using {remaining}", stacklevel=3
                )
            n = remaining
        return max(1, n)

    def _runner(
        self, train_df: DataFrame, validation_df: DataFrame, features_col: Any, label_col: str
    ) -> tuple[ChunkRunner, Any]:
        from deepspark.data.dataframe import dataframe_to_arrays, describe_columns
        from deepspark.tune._data import TrialData, pack
        from deepspark.tune.metrics import check_metric

        spec, _ = describe_columns(train_df, features_col, label_col)
        check_metric(self.settings.metric, self.settings.mode, spec.label_kind)
        val_spec, _ = describe_columns(validation_df, features_col, label_col, label_kind=spec.label_kind)
        if (val_spec.n_features, val_spec.n_label_values) != (spec.n_features, spec.n_label_values):
            raise DataError(
                f"validation rows have {val_spec.n_features} features and {val_spec.n_label_values} label values, "
                f"training rows {spec.n_features} and {spec.n_label_values}; use matching DataFrames"
            )
        if self.trial_master is not None:
            runner = DistributedRunner(
                self.spark, self.trial_master, train_df, validation_df, features_col, label_col, self.settings.metric
            )
            return runner, None
        if spec.feature_kind == "sequence":
            raise DataError("sequence features are not supported by Search's task trials yet; pass trial_master=...")
        x, y = dataframe_to_arrays(train_df, spec=spec)
        xv, yv = dataframe_to_arrays(validation_df, spec=val_spec)
        if y is None or yv is None:
            raise DataError("the search needs labels in both DataFrames (label_col)")
        buffer = pack(TrialData(x_train=x, y_train=y, x_val=xv, y_val=yv))
        data_bc = self.spark.sparkContext.broadcast(buffer)
        data_id = uuid.uuid4().hex
        return TaskRunner(self.spark, data_bc, data_id, self.settings.batch_size, self.settings.metric), data_bc

    # ------------------------------------------------------------------ fit

    def fit(
        self,
        train_df: DataFrame,
        validation_df: DataFrame,
        features_col: str | Sequence[str] = "features",
        label_col: str = "label",
        *,
        on_trial: Callable[[TrialSummary], None] | None = None,
    ) -> SearchResult:
        """Run (or resume) the search; returns its results once a termination condition holds.

        The training data is converted once: collected through Arrow and broadcast to the executors, where each
        Python worker decodes it once and keeps it across trials (default trials), or left as DataFrames that
        every distributed trial fits (``trial_master``). ``on_trial`` is called after each trial (progress bars).
        """
        _study.quiet_optuna()
        s = self.settings
        where = str(self.storage) if self.storage is not None else "memory"
        study = _study.open_study(
            _study.make_storage(self.storage),
            s.study_name,
            s.direction,
            self._sampler(),
            self._pruner(),
            self.space,
            s.metric,
            where,
        )
        _study.recover_interrupted(study)
        max_trials = self.planned_trials()
        remaining = None if max_trials is None else max(0, max_trials - _study.finished_count(study))
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self._stop_reason = "max_trials" if remaining == 0 else ""
        if self._target_reached(study):
            self._stop_reason = "target_score"
        runner, data_bc = (
            (None, None) if self._stop_reason else self._runner(train_df, validation_df, features_col, label_col)
        )
        parallelism = self._parallelism(remaining)
        settings = {
            k: v
            for k, v in s.to_dict().items()
            if k in ("metric", "mode", "sampler", "pruner", "max_epochs", "study_name", "target_score", "max_time")
        }
        self.events.search_start(
            {**settings, "max_trials": max_trials, "parallelism": parallelism}, self.space.to_dict()
        )
        started = time.time()
        self._budget = remaining
        if runner is not None:
            self._run_threads(study, runner, parallelism, started, on_trial)
        if data_bc is not None:
            data_bc.unpersist()
        result = SearchResult(study, self.space, self.output_dir, self._stop_reason or "max_trials")
        best = result.best_trial_number()
        self.events.search_end(best, result.best_score if best is not None else None, result.stop_reason)
        return result

    def _run_threads(
        self,
        study: optuna.Study,
        runner: ChunkRunner,
        parallelism: int,
        started: float,
        on_trial: Callable[[TrialSummary], None] | None,
    ) -> None:
        from pyspark import InheritableThread

        errors: list[BaseException] = []

        def loop() -> None:
            try:
                while True:
                    asked = self._ask(study)
                    if asked is None:
                        return
                    summary = self._run_trial(study, runner, *asked)
                    if on_trial is not None:
                        on_trial(summary)
            except BaseException as e:  # a bug on the driver side: stop everything and re-raise in fit
                errors.append(e)
                self._stop("error")

        threads = [InheritableThread(target=loop, name=f"deepspark-search-{i}") for i in range(parallelism)]
        for t in threads:
            t.start()
        sc = self.spark.sparkContext
        while any(t.is_alive() for t in threads):
            next(t for t in threads if t.is_alive()).join(0.2)
            now = time.time()
            if self.settings.max_time is not None and now - started > self.settings.max_time and not self._stop_reason:
                self._stop("max_time")
            with self._lock:
                for number, run in self._running.items():
                    if run.cancel_reason:
                        continue
                    if self._stop_reason in ("max_time", "target_score", "error"):
                        run.cancel_reason = self._stop_reason
                    elif self.settings.trial_timeout is not None and now - run.start > self.settings.trial_timeout:
                        run.cancel_reason = "trial_timeout"
                    else:
                        continue
                    log.info("search: cancelling trial %d (%s)", number, run.cancel_reason)
                    sc.cancelJobsWithTag(run.tag)
        if errors:
            raise errors[0]

    def _stop(self, reason: str) -> None:
        with self._lock:
            if not self._stop_reason:
                self._stop_reason = reason

    def _target_reached(self, study: optuna.Study) -> bool:
        target = self.settings.target_score
        if target is None:
            return False
        from optuna.trial import TrialState

        values = [
            t.value for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None
        ]
        better = max if self.settings.mode == "max" else min
        return bool(values) and (better(values) >= target if self.settings.mode == "max" else better(values) <= target)

    def _ask(self, study: optuna.Study) -> tuple[optuna.trial.Trial, Params] | None:
        with self._lock:
            if self._stop_reason or (self._budget is not None and self._budget <= 0):
                return None
            if self._grid is not None and self._grid_exhausted(study):
                self._stop_reason = "grid exhausted"
                return None
            if self._budget is not None:
                self._budget -= 1
            trial = study.ask()
            params = self.space.suggest(trial)
            self._running[trial.number] = _Running(
                tag=f"deepspark-search-{uuid.uuid4().hex[:12]}-trial-{trial.number}", start=time.time()
            )
        return trial, params

    def _grid_exhausted(self, study: optuna.Study) -> bool:
        import optuna
        from optuna.trial import TrialState

        waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        sampler = study.sampler
        return not waiting and isinstance(sampler, optuna.samplers.GridSampler) and sampler.is_exhausted(study)

    # ------------------------------------------------------------------ one trial

    def _run_trial(
        self, study: optuna.Study, runner: ChunkRunner, trial: optuna.trial.Trial, params: Params
    ) -> TrialSummary:
        import optuna
        from optuna.trial import TrialState

        number = trial.number
        run = self._running[number]
        self.events.trial_start(number, dict(trial.params))
        epochs, scores, losses, workers, loads, chunks, spans = 0, [], [], [], [], [], []
        error, state_name, final = "", "complete", None
        state = b""
        config_json = ""
        try:
            config_json = self._config_json(params)
        except _TrialFailed as e:
            error, state_name = str(e), "failed"
        for end in [] if error else self.settings.chunk_ends():
            try:
                sent = time.time()
                result = runner.run(number, config_json, epochs, end, state, run.tag)
                chunks.append([round(time.time() - sent, 4), round(result.end - result.start, 4)])
                spans.append([round(result.start, 3), round(result.end, 3), result.pid])
            except Exception as e:
                if run.cancel_reason or _cancelled(e):
                    state_name, error = self._cancelled_outcome(run, e)
                else:
                    state_name, error = "failed", f"the trial's Spark job failed: {type(e).__name__}: {str(e)[:2000]}"
                break
            worker = f"{result.host}:{result.pid}"
            workers.append(worker)
            loads.append(result.data_loads)
            if result.error:
                state_name, error = "failed", result.error
                break
            for i, (score, loss) in enumerate(zip(result.scores, result.losses, strict=True)):
                if not math.isfinite(score):
                    state_name, error = (
                        "failed",
                        f"the metric was {score} after epoch {epochs + i + 1}: the training diverged "
                        "(lower the learning rate?)",
                    )
                    break
                with self._lock:
                    trial.report(score, epochs + i + 1)
                scores.append(score)
                losses.append(loss)
                self.events.epoch(number, epochs + i + 1, score, loss, worker)
            if error:
                break
            epochs, state = end, result.state
            if run.cancel_reason:
                state_name, error = self._cancelled_outcome(run, None)
                break
            if end < self.settings.max_epochs:
                with self._lock:
                    prune = trial.should_prune()
                if prune:
                    state_name = "pruned"
                    break
        if state_name == "complete":
            final = scores[-1]
            try:
                self._save(number, config_json, state)
            except Exception as e:
                log.warning("search: could not save trial %d's model: %s", number, e)
        trial.set_user_attr("epochs_run", epochs)
        trial.set_user_attr("train_loss", [round(v, 6) if math.isfinite(v) else None for v in losses])
        trial.set_user_attr("workers", workers)
        trial.set_user_attr("data_loads", loads)
        trial.set_user_attr("chunk_seconds", chunks)  # [driver wall, task wall] per chunk: the per-job overhead
        trial.set_user_attr("task_spans", spans)  # [start, end, pid] of each chunk's task, executor clock
        if error:
            trial.set_user_attr("error", error)
        if state_name == "interrupted":
            trial.set_user_attr(_study.INTERRUPTED, error)
        with self._lock:
            tell = {"complete": TrialState.COMPLETE, "pruned": TrialState.PRUNED}.get(state_name, TrialState.FAIL)
            try:
                study.tell(trial, final if tell == TrialState.COMPLETE else None, state=tell)
            except optuna.exceptions.OptunaError as e:  # pragma: no cover - a tell Optuna refuses is a bug here
                log.error("search: Optuna refused to record trial %d: %s", number, e)
            if state_name == "interrupted":
                _study.requeue(study, dict(trial.params))
            self._running.pop(number, None)
        self.events.trial_end(number, state_name, final, epochs, run.start, error, ",".join(sorted(set(workers))))
        if state_name == "complete" and self._target_reached(study):
            self._stop("target_score")
        return TrialSummary(
            number=number,
            state=state_name,
            score=final,
            epochs=epochs,
            params=params,
            error=error,
            seconds=time.time() - run.start,
        )

    def _cancelled_outcome(self, run: _Running, exc: BaseException | None) -> tuple[str, str]:
        if run.cancel_reason == "trial_timeout":
            return (
                "failed",
                f"timed out after {self.settings.trial_timeout} s (trial_timeout); its Spark job was cancelled",
            )
        reason = run.cancel_reason or self._stop_reason or "cancelled"
        return "interrupted", f"stopped by the search ({reason}); it is queued again for a resumed search"

    def _config_json(self, params: Params) -> str:
        try:
            config = self.build(params)
        except Exception as e:
            raise _TrialFailed(f"build raised {type(e).__name__}: {e}") from e
        if not isinstance(config, Spec):
            raise _TrialFailed(
                f"build returned {type(config).__name__}, expected a NetworkConfig, GraphConfig or another config "
                "that Network(...) accepts"
            )
        return config.to_json(indent=None)

    def _save(self, number: int, config_json: str, state: bytes) -> None:
        from deepspark.nn import Network
        from deepspark.tune._trial_worker import restore_state

        net = Network(Spec.from_json(config_json))  # type: ignore[arg-type]
        restore_state(net, state)
        net.save(self.output_dir / f"trial-{number:04d}.zip")


class _TrialFailed(Exception):
    """A trial failed on the driver (``build``); its text is the recorded error."""


__all__ = ["Search"]
