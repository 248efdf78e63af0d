"""The Spark ML Params of the deepspark stages, with converters that fail early and name the param.

PySpark only wraps a converter's ``TypeError``; the converters here raise ``ConfigError`` (a
``ValueError``) whose path is the camelCase param name and whose message says how to fix the value.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import HasFeaturesCol, HasLabelCol, HasPredictionCol, HasSeed

from deepspark.errors import ConfigError


def network_config_json(value: Any) -> str:
    """A NetworkConfig / GraphConfig / ModuleConfig, or its JSON, as compact canonical JSON (validated now)."""
    from deepspark.config._spec import Spec
    from deepspark.config.root import RootConfig

    fix = "pass NetworkConfig(...).to_json() or the NetworkConfig itself"
    spec = value
    if isinstance(value, (str, bytes)):
        try:
            spec = Spec.from_json(value)
        except ConfigError as e:
            raise ConfigError(f"{e.message}; {fix}", e.with_prefix("networkConfig").path) from None
    if not isinstance(spec, RootConfig):
        raise ConfigError(f"expected a network config, got {type(spec).__name__}; {fix}", "networkConfig")
    return spec.to_json(indent=None)


def training_master_json(value: Any) -> str:
    """A training master spec, or its JSON, as compact canonical JSON."""
    from deepspark.config._spec import Spec
    from deepspark.spark.masters import TrainingMaster

    fix = "pass ParameterAveraging(...).to_json() or the ParameterAveraging itself"
    spec = value
    if isinstance(value, (str, bytes)):
        try:
            spec = Spec.from_json(value)
        except ConfigError as e:
            raise ConfigError(f"{e.message}; {fix}", e.with_prefix("trainingMaster").path) from None
    if not isinstance(spec, TrainingMaster):
        raise ConfigError(f"expected a training master, got {type(spec).__name__}; {fix}", "trainingMaster")
    return spec.to_json(indent=None)


def positive_int(name: str) -> Callable[[Any], int]:
    def convert(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            if isinstance(value, float) and value.is_integer() and value >= 1:
                return int(value)  # JSON metadata written by Spark's JVM side may carry 3.0
            raise ConfigError(f"expected a positive int, got {value!r}", name)
        return int(value)

    return convert


def non_negative_int(name: str) -> Callable[[Any], int]:
    def convert(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"expected an int >= 0, got {value!r}", name)
        return int(value)

    return convert


def finite_float(name: str, minimum: float | None = None, strict: bool = False) -> Callable[[Any], float]:
    def convert(value: Any) -> float:
        ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
        if ok and minimum is not None:
            ok = value > minimum if strict else value >= minimum
        if not ok:
            bound = "" if minimum is None else f" {'>' if strict else '>='} {minimum}"
            raise ConfigError(f"expected a finite number{bound}, got {value!r}", name)
        return float(value)

    return convert


def boolean(name: str) -> Callable[[Any], bool]:
    def convert(value: Any) -> bool:
        if not isinstance(value, bool):
            raise ConfigError(f"expected True or False, got {value!r}", name)
        return value

    return convert


def string(name: str) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        if not isinstance(value, str):
            raise ConfigError(f"expected a string, got {type(value).__name__} {value!r}", name)
        return value

    return convert


def column(name: str) -> Callable[[Any], str]:
    """A column name; ``""`` is allowed where Spark ML uses it to turn an output column off."""
    return string(name)


class DeepSparkParams(HasFeaturesCol, HasLabelCol, HasPredictionCol):
    """Params every deepspark estimator and model shares."""

    batchSize: Param[int] = Param(
        Params._dummy(),
        "batchSize",
        "rows per forward pass in transform (unset: sized to the network)",
        typeConverter=positive_int("batchSize"),
    )

    def getBatchSize(self) -> int | None:
        """Rows per forward pass in transform; None (unset) lets each executor's network pick a cache-sized batch
        (``Network.inference_batch_size``)."""
        return self.getOrDefault(self.batchSize) if self.isDefined(self.batchSize) else None


class TrainingParams(DeepSparkParams, HasSeed):
    """Params of the estimators: what to train and how."""

    networkConfig: Param[str] = Param(
        Params._dummy(), "networkConfig", "the network as NetworkConfig JSON", typeConverter=network_config_json
    )
    trainingMaster: Param[str] = Param(
        Params._dummy(), "trainingMaster", "training master JSON", typeConverter=training_master_json
    )
    epochs: Param[int] = Param(Params._dummy(), "epochs", "passes over the data", typeConverter=positive_int("epochs"))
    learningRate: Param[float] = Param(
        Params._dummy(),
        "learningRate",
        "overrides the updater's learning rate when set (handy in a ParamGridBuilder)",
        typeConverter=finite_float("learningRate", 0.0, strict=True),
    )
    checkpointDir: Param[str] = Param(
        Params._dummy(),
        "checkpointDir",
        "folder for an archive after every epoch; empty for none",
        typeConverter=string("checkpointDir"),
    )

    def getNetworkConfig(self) -> str:
        """The network config JSON."""
        return self.getOrDefault(self.networkConfig)

    def getTrainingMaster(self) -> str:
        """The training master JSON."""
        return self.getOrDefault(self.trainingMaster)

    def getEpochs(self) -> int:
        """Passes over the data."""
        return self.getOrDefault(self.epochs)

    def getLearningRate(self) -> float:
        """The learning rate override."""
        return self.getOrDefault(self.learningRate)

    def getCheckpointDir(self) -> str:
        """The checkpoint folder (empty: none)."""
        return self.getOrDefault(self.checkpointDir)


__all__ = [
    "DeepSparkParams",
    "TrainingParams",
    "TypeConverters",
    "boolean",
    "column",
    "finite_float",
    "network_config_json",
    "non_negative_int",
    "positive_int",
    "string",
    "training_master_json",
]
