"""deepspark: deep learning on Apache Spark with PyTorch.

The dozen names most users need are re-exported here; everything else lives in its subpackage.
"""

from deepspark.config import InputType, NetworkConfig
from deepspark.errors import (
    ConfigError,
    DataError,
    DeepSparkError,
    DistributedTrainingError,
    ModelFormatError,
    StorageError,
)
from deepspark.nn import Network

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DataError",
    "DeepSparkError",
    "DistributedTrainingError",
    "InputType",
    "ModelFormatError",
    "Network",
    "NetworkConfig",
    "StorageError",
    "__version__",
]
