"""The deepspark exception hierarchy: one typed error per kind of failure, each naming what was wrong."""

from __future__ import annotations


class DeepSparkError(Exception):
    """Base class of every error deepspark raises on purpose."""


class ConfigError(DeepSparkError, ValueError):
    """A configuration value is invalid. ``path`` names the field, e.g. ``layers[2].n_out``."""

    def __init__(self, message: str, path: str = "") -> None:
        self.message = message
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)

    def with_prefix(self, prefix: str) -> ConfigError:
        """The same error located under ``prefix`` (``layers[2]`` + ``n_out`` -> ``layers[2].n_out``)."""
        if not prefix:
            return self
        if not self.path:
            path = prefix
        elif self.path.startswith("["):
            path = prefix + self.path
        else:
            path = f"{prefix}.{self.path}"
        return ConfigError(self.message, path)

    def __reduce__(self) -> tuple[type[ConfigError], tuple[str, str]]:
        return (type(self), (self.message, self.path))


class DataError(DeepSparkError, ValueError):
    """Input data is unusable: wrong shape, NaN/inf, labels out of range, empty, mismatched lengths."""


class ModelFormatError(DeepSparkError, ValueError):
    """A model archive or config file is truncated, corrupted, hostile or of an unsupported version."""


class ModelImportError(ModelFormatError):
    """A model from another framework (a Keras ``.keras``/``.h5`` file) cannot be imported: an unsupported or
    custom layer, code in the file (``Lambda``), weights that are missing or do not fit the architecture."""


class DistributedTrainingError(DeepSparkError, RuntimeError):
    """Distributed training failed in a way Spark's retries could not recover."""


class TrainingDivergedError(DeepSparkError, FloatingPointError):
    """Training produced a NaN or infinite score or parameters. ``iteration`` is where it was seen and
    ``last_finite_score`` the last finite score before it (None when there was none)."""

    def __init__(self, message: str, iteration: int = -1, last_finite_score: float | None = None) -> None:
        self.message = message
        self.iteration = iteration
        self.last_finite_score = last_finite_score
        super().__init__(message)

    def __reduce__(self) -> tuple[type[TrainingDivergedError], tuple[str, int, float | None]]:
        return (type(self), (self.message, self.iteration, self.last_finite_score))


class StorageError(DeepSparkError, OSError):
    """Reading or writing stats storage, checkpoints or exported data failed."""


class EnvironmentStepError(DeepSparkError, RuntimeError):
    """A reinforcement-learning environment raised in ``reset`` or ``step``; the message names the env and step."""


class DownloadError(StorageError):
    """A data set could not be downloaded or failed its checksum; the message names the URL and where to put
    a manually downloaded copy."""


__all__ = [
    "ConfigError",
    "DataError",
    "DeepSparkError",
    "DistributedTrainingError",
    "EnvironmentStepError",
    "DownloadError",
    "ModelFormatError",
    "ModelImportError",
    "StorageError",
    "TrainingDivergedError",
]
