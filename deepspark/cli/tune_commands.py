"""``deepspark tune``: a hyperparameter search described by one JSON file, run on Spark with a progress bar.

The file holds ``space`` (as ``Space.to_json`` writes it), ``network`` (a config template with ``{"$param": ...}``
placeholders, see ``deepspark.tune.template``) and ``search`` (``SearchSettings`` fields). Running the same
command again with the same ``--storage`` resumes the search.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from deepspark.errors import ConfigError, DeepSparkError

_KEYS = ("space", "network", "search")


def add_tune_command(sub: Any) -> None:
    """Register ``tune`` on the ``deepspark`` parser's subcommands."""
    tune = sub.add_parser("tune", help="search hyperparameters on Spark (Optuna sampling, ASHA pruning, resumable)")
    tune.add_argument("--config", required=True, help="search JSON: {'space': ..., 'network': ..., 'search': ...}")
    tune.add_argument("--data", required=True, help="training data: Parquet directory/file or CSV file")
    tune.add_argument("--validation", default=None, help="validation data (default: a split of --data)")
    tune.add_argument("--validation-fraction", type=float, default=0.2, help="split of --data without --validation")
    tune.add_argument("--features-col", default="features", help="array/vector column, or comma-separated columns")
    tune.add_argument("--label-col", default="label", help="label column of the data")
    tune.add_argument("--master", default="local[*]", help="Spark master URL")
    tune.add_argument("--storage", default="search.journal", help="Optuna journal file (run again to resume)")
    tune.add_argument("--output", default=None, help="folder for the trials' models (default: <storage>.models)")
    tune.add_argument("--stats", default=None, help="SQLite stats file for 'deepspark ui' / 'deepspark report'")
    tune.set_defaults(func=_tune)


class TrialProgress:
    """A one-line progress bar over trials: done/total, best score, states, elapsed time."""

    def __init__(self, total: int | None, mode: str, stream: TextIO | None = None, width: int = 24) -> None:
        self.total, self.mode, self.width = total, mode, width
        self.stream = stream or sys.stderr
        self.start = time.perf_counter()
        self.counts: dict[str, int] = {}
        self.best: tuple[float, int] | None = None

    def __call__(self, trial: Any) -> None:
        self.counts[trial.state] = self.counts.get(trial.state, 0) + 1
        if trial.score is not None and (
            self.best is None or (trial.score > self.best[0] if self.mode == "max" else trial.score < self.best[0])
        ):
            self.best = (trial.score, trial.number)
        done = sum(v for k, v in self.counts.items() if k != "interrupted")
        frac = min(done / self.total, 1.0) if self.total else 0.0
        bar = "#" * int(frac * self.width) + "-" * (self.width - int(frac * self.width))
        best = f"best {self.best[0]:.4f} (trial {self.best[1]})" if self.best else "best -"
        states = " ".join(f"{k} {v}" for k, v in sorted(self.counts.items()))
        self.stream.write(
            f"\r[{bar}] {done}/{self.total or '?'} trials | {best} | {states} | "
            f"{time.perf_counter() - self.start:.0f} s"
        )
        self.stream.flush()


def read_search_file(path: str) -> dict[str, Any]:
    """Parse and check the search JSON's top-level shape (the parts are validated by their own specs)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no such search file: {path}")
    try:
        data = json.loads(p.read_bytes())
    except (ValueError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object with keys {list(_KEYS)}")
    unknown = sorted(set(data) - set(_KEYS))
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {unknown}; a search file has {list(_KEYS)}")
    missing = [k for k in ("space", "network") if k not in data]
    if missing:
        raise ConfigError(f"{path}: missing {missing}; a search file has {list(_KEYS)}")
    return data


def _read(spark: Any, path: str) -> Any:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no such data path: {path}")
    if p.suffix.lower() == ".csv":
        return spark.read.csv(str(p), header=True, inferSchema=True)
    return spark.read.parquet(str(p))


def _tune(args: argparse.Namespace) -> int:
    from deepspark.tune import Search, SearchSettings, Space
    from deepspark.tune.template import TemplateBuild

    data = read_search_file(args.config)
    space = Space.from_dict(data["space"])
    build = TemplateBuild(data["network"])
    settings = SearchSettings.from_dict(data.get("search", {}), "search")
    if not 0.0 < args.validation_fraction < 1.0:
        raise ConfigError(f"expected a fraction in (0, 1), got {args.validation_fraction}", "--validation-fraction")
    build(space.unflatten(_first_point(space)))  # a template that cannot produce a config fails before Spark starts
    from deepspark.spark import local_spark

    spark = local_spark(args.master, app_name="deepspark-tune")
    try:
        train = _read(spark, args.data)
        if args.validation:
            validation = _read(spark, args.validation)
        else:
            train, validation = train.randomSplit(
                [1 - args.validation_fraction, args.validation_fraction], seed=settings.seed
            )
        stats = None
        if args.stats:
            from deepspark.stats import SQLiteStatsStorage

            stats = SQLiteStatsStorage(args.stats)
        options = {k: v for k, v in settings.to_dict().items() if k != "type"}
        search = Search(
            spark, build, space, storage=args.storage, output_dir=args.output, stats_storage=stats, **options
        )
        features: Any = args.features_col.split(",") if "," in args.features_col else args.features_col
        progress = TrialProgress(search.planned_trials(), settings.mode or "max")
        try:
            result = search.fit(train, validation, features, args.label_col, on_trial=progress)
        finally:
            sys.stderr.write("\n")
            if stats is not None:
                stats.close()
        frame = result.trials_frame()
        print(
            f"trials: {frame['state'].value_counts().to_dict()}; epochs run: {result.epochs_run()}; "
            f"stopped by: {result.stop_reason}"
        )
        number = result.best_trial_number()
        if number is None:
            raise DeepSparkError(
                "no trial completed; the errors: " + "; ".join(frame["error"].astype(str).unique()[:3])
            )
        print(f"best trial {number}: {settings.metric} {result.best_score:.4f}")
        print(f"best params: {json.dumps(result.best_params)}")
        print(f"model archive: {result.archive(number)}")
    finally:
        spark.stop()
    return 0


def _first_point(space: Any) -> dict[str, Any]:
    """Flat params of one point of the space (each domain's low end / first option), to check the template."""
    from deepspark.tune.space import Choice, Fixed, IntRange, LogUniform, Uniform

    flat: dict[str, Any] = {}

    def walk(sp: Any, prefix: str) -> None:
        for name, d in sp.entries:
            key = prefix + name
            if isinstance(d, Choice):
                flat[key] = d.options[0]
                if d.branches is not None:
                    walk(d.branches[0], f"{key}.{d.options[0]}.")
            elif isinstance(d, (LogUniform, Uniform, IntRange)):
                flat[key] = d.low
            elif not isinstance(d, Fixed):
                raise ConfigError(f"unknown domain {type(d).__name__}", key)

    walk(space, "")
    return flat
