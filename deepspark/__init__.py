"""deepspark: deep learning on Apache Spark with PyTorch.

The dozen names most users need are re-exported here, lazily (PEP 562), so that ``import deepspark.eval``
or ``import deepspark.config`` on a Spark executor does not pull in torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from deepspark.errors import (
    ConfigError,
    DataError,
    DeepSparkError,
    DistributedTrainingError,
    ModelFormatError,
    StorageError,
)

if TYPE_CHECKING:
    from deepspark.config import GraphConfig, InputType, NetworkConfig
    from deepspark.nn import Network
    from deepspark.spark import GradientSharing, ParameterAveraging, SparkNetwork

__version__ = "0.1.0"

_LAZY = {
    "GraphConfig": "deepspark.config",
    "InputType": "deepspark.config",
    "NetworkConfig": "deepspark.config",
    "Network": "deepspark.nn",
    "SparkNetwork": "deepspark.spark",
    "ParameterAveraging": "deepspark.spark",
    "GradientSharing": "deepspark.spark",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'deepspark' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "ConfigError",
    "DataError",
    "DeepSparkError",
    "DistributedTrainingError",
    "GradientSharing",
    "GraphConfig",
    "InputType",
    "ModelFormatError",
    "Network",
    "NetworkConfig",
    "ParameterAveraging",
    "SparkNetwork",
    "StorageError",
    "__version__",
]
