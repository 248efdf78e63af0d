"""Fitting `Standardize` / `MinMax` / `ImageScaler` on a Spark DataFrame, and applying them to flat rows.

One job computes every statistic: Spark ML's ``Summarizer`` (count, mean, variance, min, max per
column, in float64 with a numerically stable update) plus a row and null count, in one aggregate.
Nothing but the per-column statistics reaches the driver. Per-channel statistics are pooled from the
per-column ones with Chan's formula (exact, no second pass): rows are channel-first, so channel ``c``
owns columns ``c * P .. (c + 1) * P - 1`` for ``P = width // channels`` positions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from deepspark.errors import ConfigError, DataError

from .normalizers import ImageScaler, MinMax, Normalizer, Standardize

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

__all__ = ["apply_normalizer", "features_vector", "fit_normalizer"]


def features_vector(df: DataFrame, features_col: str | Sequence[str], role: str = "features") -> Column:
    """The features as a Spark ML ``Vector`` column expression (built in the JVM, no Python per row).

    ``features_col`` names a Vector column, an ``array<number>`` column or one numeric column; a list
    names numeric columns assembled in order.
    """
    from pyspark.ml.functions import array_to_vector
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from .dataframe import _col, _field_type, _is_numeric, _is_vector, _kind

    if isinstance(features_col, str):
        dt = _field_type(df, features_col, role)
        kind = _kind(features_col, dt, role)
        if kind == "vector" and _is_vector(dt):
            return _col(features_col)
        if kind == "array":
            return array_to_vector(_col(features_col).cast(T.ArrayType(T.DoubleType())))
        return array_to_vector(F.array(_col(features_col).cast("double")))
    names = list(features_col)
    if not names:
        raise ConfigError("expected a column name or a non-empty list of numeric column names, got []", role)
    for name in names:
        dt = _field_type(df, name, role)
        if not _is_numeric(dt):
            raise DataError(
                f"{role} column '{name}' has type {dt.simpleString()}; a list of feature columns must all be "
                "numeric (assemble arrays or vectors with pyspark.ml.feature.VectorAssembler first)"
            )
    return array_to_vector(F.array(*[_col(n).cast("double") for n in names]))


def _shown(features_col: str | Sequence[str]) -> str:
    return repr(features_col) if isinstance(features_col, str) else repr(list(features_col))


def _check_channels(channels: int | None, width: int, normalizer: Normalizer, features: str) -> int:
    if channels is None:
        raise ConfigError(
            f"{type(normalizer).__name__}(per_channel=True) on flat rows needs the channel count; pass channels=C "
            "(rows are read channel-first: C blocks of height x width values)",
            "channels",
        )
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise ConfigError(f"expected a positive int, got {channels!r}", "channels")
    if width % channels:
        raise DataError(f"features {features} have {width} values per row, which {channels} channels do not divide")
    return channels


def _summary(df: DataFrame, vec: Column, features: str) -> tuple[int, dict[str, np.ndarray]]:
    """Rows and per-column count/mean/variance/min/max of ``vec`` in ONE Spark aggregate."""
    from pyspark.ml.stat import Summarizer
    from pyspark.sql import functions as F

    from deepspark._failures import is_spark_failure

    summarizer = Summarizer.metrics("mean", "variance", "min", "max")
    try:
        row = (
            df.select(vec.alias("v"))
            .agg(
                summarizer.summary(F.col("v")).alias("s"),
                F.count(F.lit(1)).alias("rows"),
                F.count(F.col("v")).alias("present"),
            )
            .first()
        )
    except Exception as e:
        if not is_spark_failure(e):
            raise
        text = str(e)
        if "mismatch" in text.lower() or "dimension" in text.lower() or "requirement failed" in text.lower():
            raise DataError(
                f"features {features}: rows have different numbers of values; every row must have the same width"
            ) from None
        if "null" in text.lower():
            raise DataError(f"features {features} contain null values; drop or impute them first") from None
        raise DataError(f"fitting a normalizer on features {features} failed in Spark: {text[:300]}") from e
    if row is None:  # an aggregate without grouping always returns one row; Spark broke that promise
        raise DataError(f"fitting a normalizer on features {features}: Spark returned no aggregate row")
    rows, present = int(row["rows"]), int(row["present"])
    if rows == 0:
        raise DataError(f"cannot fit a normalizer on features {features}: the DataFrame has no rows")
    if present != rows:
        raise DataError(
            f"features {features}: {rows - present} of {rows} rows are null; drop or impute them first "
            "(e.g. df.dropna(subset=[...]))"
        )
    s = row["s"]
    stats = {k: np.asarray(s[k].toArray(), dtype=np.float64) for k in ("mean", "variance", "min", "max")}
    bad = ~np.isfinite(stats["mean"]) | ~np.isfinite(stats["min"]) | ~np.isfinite(stats["max"])
    if bad.any():
        raise DataError(
            f"features {features}: column {int(np.argmax(bad))} contains NaN or inf; clean or impute the data first"
        )
    return rows, stats


def _pool_channels(n: int, mean: np.ndarray, m2: np.ndarray, channels: int) -> tuple[int, np.ndarray, np.ndarray]:
    """Per-channel (count, mean, M2) from per-column ones: Chan's merge of equal-count groups, in closed form."""
    means = mean.reshape(channels, -1)
    positions = means.shape[1]
    channel_mean = means.mean(axis=1)
    between = ((means - channel_mean[:, None]) ** 2).sum(axis=1) * n
    return n * positions, channel_mean, m2.reshape(channels, -1).sum(axis=1) + between


def fit_normalizer(
    df: DataFrame,
    normalizer: Normalizer,
    features_col: str | Sequence[str] = "features",
    *,
    channels: int | None = None,
) -> Normalizer:
    """A copy of ``normalizer`` fitted on ``df``'s features with ONE pass of Spark aggregates.

    The data never reaches the driver: only per-column statistics do. The result equals fitting the
    same normalizer with numpy on the collected features (to rounding, ~1e-12 relative).

    Args:
        df: Rows holding the features.
        normalizer: An unfitted `Standardize`, `MinMax` or `ImageScaler` whose settings are kept.
        features_col: A Vector, ``array<number>`` or numeric column, or a list of numeric columns.
        channels: For ``per_channel=True``: channels per row; rows are read channel-first.

    Returns:
        A fitted normalizer of the same class, ready for `SparkNetwork` (``spark_net.network.normalizer``),
        `Network.save` or `apply_normalizer`.

    Raises:
        DataError: a missing or unreadable column, nulls, NaN/inf, rows of different widths, no rows.
        ConfigError: per_channel without ``channels``.

    Example:
        >>> norm = fit_normalizer(df, Standardize(), "features")  # doctest: +SKIP
        >>> spark_net.network.normalizer = norm  # fit, evaluate and predict apply it  # doctest: +SKIP
    """
    if not isinstance(normalizer, Normalizer):
        got = type(normalizer).__name__
        raise ConfigError(f"expected a Standardize, MinMax or ImageScaler, got {got}", "normalizer")
    features = _shown(features_col)
    vec = features_vector(df, features_col)
    if isinstance(normalizer, ImageScaler):
        return ImageScaler(normalizer.min_range, normalizer.max_range, normalizer.max_pixel)
    per_channel = bool(getattr(normalizer, "per_channel", False))
    if per_channel:
        _check_channels(channels, channels or 1, normalizer, features)  # before any job
    n, stats = _summary(df, vec, features)
    width = stats["mean"].shape[0]
    c = _check_channels(channels, width, normalizer, features) if per_channel else 0
    if isinstance(normalizer, Standardize):
        m2 = np.maximum(stats["variance"], 0.0) * (n - 1)
        count, mean = n, stats["mean"]
        if per_channel:
            count, mean, m2 = _pool_channels(n, mean, m2, c)
        return Standardize.from_moments(count, mean, m2, per_channel=per_channel, min_std=normalizer.min_std)
    if isinstance(normalizer, MinMax):
        lo, hi = stats["min"], stats["max"]
        if per_channel:
            lo, hi = lo.reshape(c, -1).min(axis=1), hi.reshape(c, -1).max(axis=1)
        return MinMax.from_min_max(
            lo, hi, min_range=normalizer.min_range, max_range=normalizer.max_range, per_channel=per_channel, count=n
        )
    raise ConfigError(f"fit_normalizer does not know {type(normalizer).__name__}", "normalizer")


def apply_normalizer(normalizer: Any, x: np.ndarray) -> np.ndarray:
    """``normalizer.transform(x)`` for rows of flat features ``(n, width)``, per-channel normalizers included.

    A per-channel normalizer fitted on ``(n, C, ...)`` data holds C statistics; flat rows are viewed as
    ``(n, C, width // C)`` (channel-first) for the transform and come back flat.
    """
    if getattr(normalizer, "per_channel", False) and x.ndim == 2:
        shape = getattr(normalizer, "_shape", None)
        c = int(shape[0]) if shape else 0
        if c < 1 or x.shape[1] % c:
            raise DataError(
                f"a per-channel normalizer with {c} channels cannot read rows of {x.shape[1]} values; "
                "fit it on features shaped like these"
            )
        out: np.ndarray = normalizer.transform(x.reshape(x.shape[0], c, -1)).reshape(x.shape[0], -1)
        return out
    result: np.ndarray = normalizer.transform(x)
    return result
