"""Compiling specs to torch and training on one machine: ``Network``, flat buffers, listeners, reports."""

from deepspark.nn.callbacks import Callback, EarlyStopping, FitLoop, LearningRateLogger, ModelCheckpoint
from deepspark.nn.flat import FlatBuffers
from deepspark.nn.history import History
from deepspark.nn.listeners import (
    CheckpointListener,
    EvaluativeListener,
    IterationInfo,
    PerformanceListener,
    ScoreIterationListener,
    TrainingListener,
)
from deepspark.nn.network import Network
from deepspark.nn.report import MemoryReport
from deepspark.nn.updaters import FlatUpdater, make_updater

__all__ = [
    "Callback",
    "EarlyStopping",
    "FitLoop",
    "History",
    "LearningRateLogger",
    "ModelCheckpoint",
    "CheckpointListener",
    "EvaluativeListener",
    "FlatBuffers",
    "FlatUpdater",
    "IterationInfo",
    "MemoryReport",
    "Network",
    "PerformanceListener",
    "ScoreIterationListener",
    "TrainingListener",
    "make_updater",
]
