"""Feature normalizers fitted on one machine: `Standardize`, `MinMax`, `ImageScaler`, and their JSON form.

Fitting streams over minibatches with mergeable statistics (count/mean/M2 with Chan's parallel
update for `Standardize`, running min/max for `MinMax`), so fitting on batches gives the same result
as fitting on the whole array, and Spark aggregates can build the same normalizers through
`Standardize.from_sums` / `Standardize.from_moments` / `MinMax.from_min_max`. A fitted normalizer is
saved as JSON (never pickle) and rebuilt with `normalizer_from_json`.
"""

from __future__ import annotations

import difflib
import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar, TypeVar

import numpy as np

from deepspark.errors import ConfigError, DataError

from .dataset import DataSet

__all__ = ["ImageScaler", "MinMax", "Normalizer", "Standardize", "normalizer_from_dict", "normalizer_from_json"]

FORMAT_VERSION = 1
N = TypeVar("N", bound="Normalizer")
FitData = np.ndarray | DataSet | Iterable[np.ndarray | DataSet]


def _feature_batches(data: FitData) -> Iterator[np.ndarray]:
    """The feature arrays of an array, a DataSet, or an iterable (e.g. a DataSetIterator) of either."""
    if isinstance(data, np.ndarray):
        yield data
        return
    if isinstance(data, DataSet):
        yield data.features
        return
    if not isinstance(data, Iterable):
        raise DataError(f"fit: expected a numpy array, a DataSet or an iterable of them, got {type(data).__name__}")
    for i, item in enumerate(data):
        if isinstance(item, DataSet):
            yield item.features
        elif isinstance(item, np.ndarray):
            yield item
        else:
            raise DataError(f"fit: batch {i} is a {type(item).__name__}; expected a DataSet or a numpy array")


def _out_dtype(x: np.ndarray) -> type[np.floating[Any]]:
    """float64 stays float64 (precision the caller asked for); everything else becomes float32 (torch's default)."""
    return np.float64 if x.dtype == np.float64 else np.float32


def _float_array(value: Any, name: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError) as e:
        raise ConfigError(f"expected an array of numbers, got {type(value).__name__}", name) from e
    if arr.size == 0 or not np.isfinite(arr).all():
        raise ConfigError("expected a non-empty array of finite numbers", name)
    return arr


_FLOAT_MAX = float(np.finfo(np.float64).max)


def _number(d: dict[str, Any], key: str) -> float:
    value = d[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not -_FLOAT_MAX <= value <= _FLOAT_MAX:
        raise ConfigError(f"expected a finite number, got {value!r:.60}", key)  # NaN fails the comparison
    return float(value)


class Normalizer(ABC):
    """Base of the normalizers: streaming `fit`, `transform` / `revert`, and the JSON round trip.

    ``fit`` accepts a numpy array, a `DataSet`, or any iterable of either (a `DataSetIterator`),
    consuming one batch at a time; ``partial_fit`` adds one more batch to the statistics.
    ``transform`` returns a new array (float64 for float64 input, float32 otherwise).
    """

    tag: ClassVar[str]

    @property
    @abstractmethod
    def is_fitted(self) -> bool:
        """Whether `transform` can be called."""

    @abstractmethod
    def _reset(self) -> None: ...

    @abstractmethod
    def _update(self, x: np.ndarray) -> None: ...

    @abstractmethod
    def _forward(self, x: np.ndarray, dtype: type[np.floating[Any]]) -> np.ndarray: ...

    @abstractmethod
    def _backward(self, x: np.ndarray, dtype: type[np.floating[Any]]) -> np.ndarray: ...

    @abstractmethod
    def _fields(self) -> dict[str, Any]: ...

    @classmethod
    @abstractmethod
    def _from_fields(cls: type[N], d: dict[str, Any]) -> N: ...

    def fit(self: N, data: FitData) -> N:
        """Forget previous statistics and fit on ``data``; returns ``self`` for chaining.

        Example:
            >>> Standardize().fit(np.array([[1.0], [3.0]])).mean.tolist()
            [2.0]
        """
        self._reset()
        seen = False
        for batch in _feature_batches(data):
            self.partial_fit(batch)
            seen = True
        if not seen:
            raise DataError(f"{type(self).__name__}.fit: the data held no batches; expected at least one example")
        return self

    def partial_fit(self: N, x: np.ndarray) -> N:
        """Add one batch of examples (axis 0) to the statistics; returns ``self``."""
        x = np.asarray(x)
        if x.ndim == 0 or x.size == 0:
            raise DataError(f"{type(self).__name__}.partial_fit: expected a non-empty batch, got shape {x.shape}")
        self._update(x)
        return self

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise DataError(
                f"{type(self).__name__} is not fitted: call fit(x) or fit(iterator) before transform/revert"
            )

    def transform(self, x: np.ndarray) -> np.ndarray:
        """The normalized copy of ``x`` (float64 for float64 input, float32 otherwise)."""
        self._check_fitted()
        x = np.asarray(x)
        return self._forward(x, _out_dtype(x))

    def revert(self, x: np.ndarray) -> np.ndarray:
        """Undo `transform`: the values in the original units (float64 for float64 input, float32 otherwise)."""
        self._check_fitted()
        x = np.asarray(x)
        return self._backward(x, _out_dtype(x))

    def transform_dataset(self, data: DataSet) -> DataSet:
        """A `DataSet` whose features are transformed (labels and masks unchanged)."""
        return data.replace(features=self.transform(data.features))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with a ``"type"`` tag; `normalizer_from_dict` reads it back."""
        return {"type": self.tag, "format_version": FORMAT_VERSION, **self._fields()}

    def to_json(self) -> str:
        """The normalizer as JSON text (exact: floats are written with full precision)."""
        return json.dumps(self.to_dict(), sort_keys=True, allow_nan=False)

    @classmethod
    def from_dict(cls: type[N], d: dict[str, Any]) -> N:
        """Rebuild a normalizer of this class from `to_dict` output."""
        if not isinstance(d, dict):
            raise ConfigError(f"expected a JSON object, got {type(d).__name__}")
        if d.get("type") != cls.tag:
            raise ConfigError(f"expected {cls.tag!r} for {cls.__name__}, got {d.get('type')!r}", "type")
        if d.get("format_version") != FORMAT_VERSION:
            raise ConfigError(
                f"unsupported version {d.get('format_version')!r}; this deepspark reads {FORMAT_VERSION}",
                "format_version",
            )
        fields = {k: v for k, v in d.items() if k not in ("type", "format_version")}
        expected = set(cls._field_names())
        unknown = sorted(set(fields) - expected)
        if unknown:
            close = difflib.get_close_matches(unknown[0], expected, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"valid: {sorted(expected)}"
            raise ConfigError(f"unknown key for {cls.tag!r}; {hint}", unknown[0])
        missing = sorted(expected - set(fields))
        if missing:
            raise ConfigError(f"missing key for {cls.tag!r}; every one of {sorted(expected)} is required", missing[0])
        return cls._from_fields(fields)

    @classmethod
    def from_json(cls: type[N], text: str) -> N:
        """Rebuild a normalizer of this class from `to_json` output."""
        return cls.from_dict(_parse_json(text))

    @classmethod
    def _field_names(cls) -> tuple[str, ...]:
        return tuple(cls()._fields())

    def __repr__(self) -> str:
        stats = ("count", "shape", "mean", "m2", "data_min", "data_max")
        params = ", ".join(f"{k}={v!r}" for k, v in self._fields().items() if k not in stats)
        return f"{type(self).__name__}({params}, fitted={self.is_fitted})"


class _PerFeature(Normalizer):
    """Shared shape handling: statistics per column (all of ``x.shape[1:]``) or per channel (axis 1)."""

    def __init__(self, per_channel: bool) -> None:
        if not isinstance(per_channel, bool):
            raise ConfigError(f"expected a bool, got {per_channel!r}", "per_channel")
        self.per_channel = per_channel
        self._shape: tuple[int, ...] | None = None

    def _axes(self, x: np.ndarray) -> tuple[int, ...]:
        """Axes reduced over; also checks ``x`` against the fitted shape."""
        if self.per_channel:
            if x.ndim < 2:
                raise DataError(
                    f"{type(self).__name__}(per_channel=True): expected (n, channels, ...) data, got shape {x.shape}"
                )
            shape: tuple[int, ...] = (x.shape[1],)
            axes = (0, *range(2, x.ndim))
        else:
            shape, axes = tuple(x.shape[1:]), (0,)
        if self._shape is not None and shape != self._shape:
            what = "channels" if self.per_channel else "example shape"
            raise DataError(
                f"{type(self).__name__}: fitted on {what} {self._shape}, got {shape} (array shape {x.shape}); "
                "transform data shaped like the data the normalizer was fitted on"
            )
        self._shape = shape
        return axes

    def _bcast(self, stat: np.ndarray, x: np.ndarray, dtype: type[np.floating[Any]]) -> np.ndarray:
        """``stat`` reshaped to broadcast against ``x`` (channel axis 1 when per channel)."""
        self._axes(x)
        if self.per_channel:
            return stat.astype(dtype).reshape((1, -1) + (1,) * (x.ndim - 2))
        return stat.astype(dtype)

    def _shape_field(self) -> list[int] | None:
        return None if self._shape is None else list(self._shape)

    def _stat_from_list(self, values: Any, name: str) -> np.ndarray | None:
        if values is None:
            return None
        if self._shape is None:
            raise ConfigError("statistics are given but 'shape' is null", name)
        arr = _float_array(values, name)
        if arr.size != int(np.prod(self._shape)):
            raise ConfigError(
                f"expected {int(np.prod(self._shape))} values for shape {self._shape}, got {arr.size}", name
            )
        return arr.reshape(self._shape)


def _first_bad(stat: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argwhere(~np.isfinite(stat))[0])


class Standardize(_PerFeature):
    """Zero mean, unit variance per column (or per channel): ``(x - mean) / std``.

    Statistics are exact and order-independent: each batch contributes its count, mean and M2
    (sum of squared deviations, in float64) and batches merge with Chan et al.'s parallel formula,
    so fitting on minibatches equals fitting on the whole array. ``std`` is the population standard
    deviation (ddof=0). A column whose std is below ``min_std`` (e.g. a constant pixel) is only
    centred, divided by 1 as in scikit-learn: dividing by a tiny floor would turn rounding noise
    into huge values, and dividing by zero into inf/NaN.

    Args:
        per_channel: For ``(n, c, h, w)`` images (or ``(n, c, t)`` sequences), one mean/std per
            channel over all positions instead of one per pixel.
        min_std: Standard deviations below this leave their column unscaled.

    Example:
        >>> s = Standardize().fit(np.array([[0.0, 5.0], [2.0, 5.0]]))
        >>> s.transform(np.array([[2.0, 5.0]])).tolist()
        [[1.0, 0.0]]
    """

    tag = "standardize"

    def __init__(self, per_channel: bool = False, min_std: float = 1e-8) -> None:
        super().__init__(per_channel)
        if isinstance(min_std, bool) or not isinstance(min_std, (int, float)) or not min_std >= 0:
            raise ConfigError(f"expected a non-negative number, got {min_std!r}", "min_std")
        self.min_std = float(min_std)
        self._reset()

    def _reset(self) -> None:
        self._shape = None
        self._count = 0
        self._mean: np.ndarray | None = None
        self._m2: np.ndarray | None = None

    @classmethod
    def from_moments(
        cls, count: int, mean: Any, m2: Any, *, per_channel: bool = False, min_std: float = 1e-8
    ) -> Standardize:
        """A fitted `Standardize` from ``count`` examples, their per-column ``mean`` and ``m2``.

        ``m2`` is the sum of squared deviations from the mean (``variance * count``). For per-channel
        statistics ``count`` counts values per channel (examples x positions).

        Example:
            >>> Standardize.from_moments(4, [1.0], [16.0]).std.tolist()
            [2.0]
        """
        s = cls(per_channel=per_channel, min_std=min_std)
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
            raise ConfigError(f"expected a positive int, got {count!r}", "count")
        mean_arr, m2_arr = _float_array(mean, "mean"), _float_array(m2, "m2")
        if mean_arr.shape != m2_arr.shape:
            raise ConfigError(f"expected the shape of mean {mean_arr.shape}, got {m2_arr.shape}", "m2")
        if (m2_arr < 0).any():
            raise ConfigError("expected non-negative sums of squared deviations", "m2")
        s._count, s._mean, s._m2, s._shape = int(count), mean_arr, m2_arr, mean_arr.shape
        return s

    @classmethod
    def from_sums(
        cls, count: int, total: Any, total_sq: Any, *, per_channel: bool = False, min_std: float = 1e-8
    ) -> Standardize:
        """A fitted `Standardize` from ``count``, per-column ``sum(x)`` and ``sum(x**2)`` (e.g. Spark aggregates).

        Computes ``mean = total / count`` and ``m2 = total_sq - total * mean`` (clipped at 0). That
        subtraction loses precision when ``|mean| >> std``; prefer `from_moments` when the source can
        produce means and variances (Spark's ``Summarizer`` can).

        Example:
            >>> Standardize.from_sums(2, [4.0], [10.0]).mean.tolist()
            [2.0]
        """
        n_total = _float_array(total, "total")
        n_sq = _float_array(total_sq, "total_sq")
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
            raise ConfigError(f"expected a positive int, got {count!r}", "count")
        mean = n_total / count
        return cls.from_moments(
            count, mean, np.maximum(n_sq - n_total * mean, 0.0), per_channel=per_channel, min_std=min_std
        )

    @property
    def is_fitted(self) -> bool:
        """Whether statistics exist."""
        return self._count > 0

    @property
    def count(self) -> int:
        """Values seen per column (examples, times positions when per channel)."""
        return self._count

    @property
    def mean(self) -> np.ndarray:
        """Per-column (or per-channel) mean, float64."""
        self._check_fitted()
        return np.array(self._mean)

    @property
    def std(self) -> np.ndarray:
        """Per-column (or per-channel) population standard deviation, float64 (before the ``min_std`` rule)."""
        self._check_fitted()
        return np.sqrt(np.asarray(self._m2) / self._count)

    def moments(self) -> tuple[int, np.ndarray, np.ndarray]:
        """The sufficient statistics ``(count, mean, m2)``, mergeable with `merge` or `from_moments`."""
        self._check_fitted()
        return self._count, np.array(self._mean), np.array(self._m2)

    def merge(self, other: Standardize) -> Standardize:
        """A new `Standardize` fitted on the union of both normalizers' data (Chan's formula)."""
        other._check_fitted()
        merged = Standardize.from_moments(*self.moments(), per_channel=self.per_channel, min_std=self.min_std)
        merged._merge_moments(*other.moments())
        return merged

    def _merge_moments(self, n_b: int, mean_b: np.ndarray, m2_b: np.ndarray) -> None:
        if self._mean is None or self._m2 is None:
            self._count, self._mean, self._m2, self._shape = n_b, mean_b, m2_b, mean_b.shape
            return
        if mean_b.shape != self._mean.shape:
            raise DataError(f"Standardize: cannot merge statistics of shape {mean_b.shape} into {self._mean.shape}")
        n_a = self._count
        n = n_a + n_b
        delta = mean_b - self._mean
        self._mean = self._mean + delta * (n_b / n)
        self._m2 = self._m2 + m2_b + delta**2 * (n_a * n_b / n)
        self._count = n

    def _update(self, x: np.ndarray) -> None:
        axes = self._axes(x)
        work = x.astype(np.float64)  # a private copy, centred and squared in place
        n_b = int(work.size // max(1, int(np.prod(self._shape or (1,)))))
        mean_b = work.mean(axis=axes)
        if not np.isfinite(mean_b).all():
            raise DataError(
                f"Standardize.fit: feature {_first_bad(mean_b)} contains NaN or inf; clean or impute the data first"
            )
        work -= mean_b.reshape((1, -1) + (1,) * (x.ndim - 2)) if self.per_channel else mean_b
        np.square(work, out=work)
        self._merge_moments(n_b, mean_b, work.sum(axis=axes))

    def _scale(self) -> np.ndarray:
        std = self.std
        return np.where(std < self.min_std, 1.0, std)

    def _forward(self, x: np.ndarray, dtype: type[np.floating[Any]]) -> np.ndarray:
        mean, scale = self._bcast(self.mean, x, dtype), self._bcast(self._scale(), x, dtype)
        out: np.ndarray = (x.astype(dtype) - mean) / scale
        return out

    def _backward(self, x: np.ndarray, dtype: type[np.floating[Any]]) -> np.ndarray:
        mean, scale = self._bcast(self.mean, x, dtype), self._bcast(self._scale(), x, dtype)
        out: np.ndarray = x.astype(dtype) * scale + mean
        return out

    def _fields(self) -> dict[str, Any]:
        return {
            "per_channel": self.per_channel,
            "min_std": self.min_std,
            "count": self._count,
            "shape": self._shape_field(),
            "mean": None if self._mean is None else self._mean.reshape(-1).tolist(),
            "m2": None if self._m2 is None else self._m2.reshape(-1).tolist(),
        }

    @classmethod
    def _from_fields(cls, d: dict[str, Any]) -> Standardize:
        s = cls(per_channel=d["per_channel"], min_std=_number(d, "min_std"))
        count, shape = d["count"], d["shape"]
        if count == 0 and d["mean"] is None and d["m2"] is None:
            return s
        if not isinstance(shape, list) or not all(isinstance(v, int) and v > 0 for v in shape):
            raise ConfigError(f"expected a list of positive ints, got {shape!r}", "shape")
        s._shape = tuple(shape)
        mean, m2 = s._stat_from_list(d["mean"], "mean"), s._stat_from_list(d["m2"], "m2")
        return cls.from_moments(count, mean, m2, per_channel=s.per_channel, min_std=s.min_std)


def _check_range(min_range: float, max_range: float) -> tuple[float, float]:
    for name, value in (("min_range", min_range), ("max_range", max_range)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
            raise ConfigError(f"expected a finite number, got {value!r}", name)
    if not min_range < max_range:
        raise ConfigError(f"expected max_range > min_range ({min_range}), got {max_range}", "max_range")
    return float(min_range), float(max_range)


class MinMax(_PerFeature):
    """Scales each column (or channel) linearly from its fitted ``[min, max]`` to ``[min_range, max_range]``.

    A constant column (``max == min``) maps to ``min_range`` instead of dividing by zero.
    Values outside the fitted range map outside ``[min_range, max_range]`` (no clipping), so
    `revert` stays exact.

    Example:
        >>> m = MinMax(min_range=-1, max_range=1).fit(np.array([[0.0], [10.0]]))
        >>> m.transform(np.array([[5.0]])).tolist()
        [[0.0]]
    """

    tag = "minmax"

    def __init__(self, min_range: float = 0.0, max_range: float = 1.0, per_channel: bool = False) -> None:
        super().__init__(per_channel)
        self.min_range, self.max_range = _check_range(min_range, max_range)
        self._reset()

    def _reset(self) -> None:
        self._shape = None
        self._count = 0
        self._min: np.ndarray | None = None
        self._max: np.ndarray | None = None

    @classmethod
    def from_min_max(
        cls,
        data_min: Any,
        data_max: Any,
        *,
        min_range: float = 0.0,
        max_range: float = 1.0,
        per_channel: bool = False,
        count: int = 1,
    ) -> MinMax:
        """A fitted `MinMax` from per-column minima and maxima (e.g. Spark ``min``/``max`` aggregates).

        Example:
            >>> MinMax.from_min_max([0.0], [4.0]).transform(np.array([[1.0]])).tolist()
            [[0.25]]
        """
        m = cls(min_range=min_range, max_range=max_range, per_channel=per_channel)
        lo, hi = _float_array(data_min, "data_min"), _float_array(data_max, "data_max")
        if lo.shape != hi.shape:
            raise ConfigError(f"expected the shape of data_min {lo.shape}, got {hi.shape}", "data_max")
        if (lo > hi).any():
            first = tuple(int(i) for i in np.argwhere(lo > hi)[0])
            raise ConfigError(f"expected data_max >= data_min everywhere; first violation at {first}", "data_max")
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
            raise ConfigError(f"expected a positive int, got {count!r}", "count")
        m._min, m._max, m._shape, m._count = lo, hi, lo.shape, int(count)
        return m

    @property
    def is_fitted(self) -> bool:
        """Whether minima and maxima exist."""
        return self._min is not None

    @property
    def data_min(self) -> np.ndarray:
        """Per-column (or per-channel) minimum seen in fitting, float64."""
        self._check_fitted()
        return np.array(self._min)

    @property
    def data_max(self) -> np.ndarray:
        """Per-column (or per-channel) maximum seen in fitting, float64."""
        self._check_fitted()
        return np.array(self._max)

    def merge(self, other: MinMax) -> MinMax:
        """A new `MinMax` fitted on the union of both normalizers' data."""
        other._check_fitted()
        self._check_fitted()
        return MinMax.from_min_max(
            np.minimum(self.data_min, other.data_min),
            np.maximum(self.data_max, other.data_max),
            min_range=self.min_range,
            max_range=self.max_range,
            per_channel=self.per_channel,
            count=self._count + other._count,
        )

    def _update(self, x: np.ndarray) -> None:
        axes = self._axes(x)
        lo = np.min(x, axis=axes).astype(np.float64)
        hi = np.max(x, axis=axes).astype(np.float64)
        if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
            raise DataError(
                f"MinMax.fit: feature {_first_bad(lo + hi)} contains NaN or inf; clean or impute the data first"
            )
        self._min = lo if self._min is None else np.minimum(self._min, lo)
        self._max = hi if self._max is None else np.maximum(self._max, hi)
        self._count += int(x.shape[0])

    def _spans(self) -> tuple[np.ndarray, float]:
        span = self.data_max - self.data_min
        return np.where(span > 0, span, 1.0), self.max_range - self.min_range

    def _forward(self, x: np.ndarray, dtype: type[np.floating[Any]]) -> np.ndarray:
        span, out_span = self._spans()
        lo, scale = self._bcast(self.data_min, x, dtype), self._bcast(out_span / span, x, dtype)
        out: np.ndarray = (x.astype(dtype) - lo) * scale + dtype(self.min_range)
        return out

    def _backward(self, x: np.ndarray, dtype: type[np.floating[Any]]) -> np.ndarray:
        span, out_span = self._spans()
        lo, scale = self._bcast(self.data_min, x, dtype), self._bcast(span / out_span, x, dtype)
        out: np.ndarray = (x.astype(dtype) - dtype(self.min_range)) * scale + lo
        return out

    def _fields(self) -> dict[str, Any]:
        return {
            "min_range": self.min_range,
            "max_range": self.max_range,
            "per_channel": self.per_channel,
            "count": self._count,
            "shape": self._shape_field(),
            "data_min": None if self._min is None else self._min.reshape(-1).tolist(),
            "data_max": None if self._max is None else self._max.reshape(-1).tolist(),
        }

    @classmethod
    def _from_fields(cls, d: dict[str, Any]) -> MinMax:
        m = cls(_number(d, "min_range"), _number(d, "max_range"), per_channel=d["per_channel"])
        shape = d["shape"]
        if d["data_min"] is None and d["data_max"] is None:
            return m
        if not isinstance(shape, list) or not all(isinstance(v, int) and v > 0 for v in shape):
            raise ConfigError(f"expected a list of positive ints, got {shape!r}", "shape")
        m._shape = tuple(shape)
        lo, hi = m._stat_from_list(d["data_min"], "data_min"), m._stat_from_list(d["data_max"], "data_max")
        return cls.from_min_max(
            lo, hi, min_range=m.min_range, max_range=m.max_range, per_channel=m.per_channel, count=d["count"]
        )


class ImageScaler(Normalizer):
    """Maps pixel values ``[0, max_pixel]`` linearly to ``[min_range, max_range]`` (DL4J's image scaler).

    It needs no statistics: `fit` only checks its input and is optional, so a scaler built in
    code or read from JSON is ready to use.

    Example:
        >>> ImageScaler(min_range=-1, max_range=1).transform(np.array([0, 255], dtype=np.uint8)).tolist()
        [-1.0, 1.0]
    """

    tag = "image_scaler"

    def __init__(self, min_range: float = 0.0, max_range: float = 1.0, max_pixel: float = 255.0) -> None:
        self.min_range, self.max_range = _check_range(min_range, max_range)
        if isinstance(max_pixel, bool) or not isinstance(max_pixel, (int, float)) or not 0 < max_pixel < np.inf:
            raise ConfigError(f"expected a positive finite number, got {max_pixel!r}", "max_pixel")
        self.max_pixel = float(max_pixel)

    @property
    def is_fitted(self) -> bool:
        """Always true: the scaling is fixed by the parameters."""
        return True

    def _reset(self) -> None:
        pass

    def _update(self, x: np.ndarray) -> None:
        pass

    def _forward(self, x: np.ndarray, dtype: type[np.floating[Any]]) -> np.ndarray:
        scale = dtype((self.max_range - self.min_range) / self.max_pixel)
        out: np.ndarray = x.astype(dtype) * scale + dtype(self.min_range)
        return out

    def _backward(self, x: np.ndarray, dtype: type[np.floating[Any]]) -> np.ndarray:
        scale = dtype(self.max_pixel / (self.max_range - self.min_range))
        out: np.ndarray = (x.astype(dtype) - dtype(self.min_range)) * scale
        return out

    def _fields(self) -> dict[str, Any]:
        return {"min_range": self.min_range, "max_range": self.max_range, "max_pixel": self.max_pixel}

    @classmethod
    def _from_fields(cls, d: dict[str, Any]) -> ImageScaler:
        return cls(_number(d, "min_range"), _number(d, "max_range"), _number(d, "max_pixel"))


NORMALIZERS: dict[str, type[Normalizer]] = {c.tag: c for c in (Standardize, MinMax, ImageScaler)}
"""Every normalizer class by its JSON ``"type"`` tag."""


def _parse_json(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"normalizer JSON is not valid JSON: {e}") from e
    if not isinstance(value, dict):
        raise ConfigError(f"normalizer JSON: expected an object, got {type(value).__name__}")
    return value


def normalizer_from_dict(d: dict[str, Any]) -> Normalizer:
    """Rebuild any normalizer from `Normalizer.to_dict` output, dispatching on its ``"type"`` tag.

    Example:
        >>> normalizer_from_dict(MinMax().to_dict())
        MinMax(min_range=0.0, max_range=1.0, per_channel=False, fitted=False)
    """
    if not isinstance(d, dict):
        raise ConfigError(f"expected a JSON object, got {type(d).__name__}")
    tag = d.get("type")
    cls = NORMALIZERS.get(tag) if isinstance(tag, str) else None
    if cls is None:
        close = difflib.get_close_matches(tag, NORMALIZERS, n=1) if isinstance(tag, str) else []
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(f"unknown normalizer type {tag!r}; {hint}valid: {sorted(NORMALIZERS)}", "type")
    return cls.from_dict(d)


def normalizer_from_json(text: str) -> Normalizer:
    """Rebuild any normalizer from `Normalizer.to_json` output.

    Example:
        >>> normalizer_from_json(ImageScaler(max_pixel=15).to_json()).max_pixel
        15.0
    """
    return normalizer_from_dict(_parse_json(text))
