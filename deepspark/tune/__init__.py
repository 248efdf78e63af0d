"""Hyperparameter search on Spark: spaces, ``Search`` (Optuna ask-and-tell on the driver, trials as Spark jobs,
pruning, journal resume) and its results.

Importing this package imports neither pyspark nor optuna; ``Search.fit`` does.
"""

from __future__ import annotations

from deepspark.tune.result import SearchResult, TrialSummary
from deepspark.tune.search import Search
from deepspark.tune.settings import SearchSettings
from deepspark.tune.space import Choice, Domain, Fixed, IntRange, LogUniform, Space, Uniform

__all__ = [
    "Choice",
    "Domain",
    "Fixed",
    "IntRange",
    "LogUniform",
    "Search",
    "SearchResult",
    "SearchSettings",
    "Space",
    "TrialSummary",
    "Uniform",
]
