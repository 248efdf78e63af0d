"""Shared plumbing of the evaluations: the type registry, the JSON round trip and input normalization."""

from __future__ import annotations

import abc
import difflib
import json
from collections.abc import Sequence
from typing import Any, ClassVar, TypeVar

import numpy as np
import numpy.typing as npt

from deepspark.errors import ConfigError, DataError

FORMAT_VERSION = 1

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

_REGISTRY: dict[str, type[BaseEvaluation]] = {}

E = TypeVar("E", bound="BaseEvaluation")


class BaseEvaluation(abc.ABC):
    """Common interface of every evaluation: accumulate with ``eval``, combine with ``merge``, ship as JSON.

    Subclasses set ``type_tag`` (written under ``"type"`` in ``to_dict``) and ``state_keys`` (the keys
    ``_state`` writes), and implement ``eval``, ``_merge``, ``stats``, ``num_examples``, ``_state`` and
    ``_from_state``.
    """

    type_tag: ClassVar[str] = ""
    state_keys: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.type_tag:
            _REGISTRY[cls.type_tag] = cls

    @abc.abstractmethod
    def eval(self, labels: npt.ArrayLike, predictions: npt.ArrayLike, mask: npt.ArrayLike | None = None) -> None:
        """Accumulate one minibatch of labels and network outputs."""

    def merge(self: E, other: E) -> E:
        """Add ``other``'s counts into this evaluation and return ``self``.

        Merging the evaluations of shards equals evaluating all the data at once, so this is the
        combine step of a Spark ``treeAggregate``. Raises ``DataError`` when the two are incompatible.
        """
        if type(other) is not type(self):
            raise DataError(f"cannot merge {type(self).__name__} with {type(other).__name__}")
        self._merge(other)
        return self

    @abc.abstractmethod
    def _merge(self, other: Any) -> None:
        """Add the state of ``other`` (same class, checked) into ``self``."""

    @abc.abstractmethod
    def stats(self) -> str:
        """A human-readable multi-line summary."""

    @abc.abstractmethod
    def num_examples(self) -> int:
        """How many (unmasked) examples were evaluated."""

    @abc.abstractmethod
    def _state(self) -> dict[str, Any]:
        """Configuration and state as JSON-ready values (no ``type``/``format_version``)."""

    @classmethod
    @abc.abstractmethod
    def _from_state(cls: type[E], state: StateReader) -> E:
        """Rebuild from the values ``_state`` wrote."""

    def to_dict(self) -> dict[str, Any]:
        """Configuration and accumulated state as plain JSON values, tagged with ``"type"``."""
        return {"type": self.type_tag, "format_version": FORMAT_VERSION, **self._state()}

    @classmethod
    def from_dict(cls: type[E], data: dict[str, Any]) -> E:
        """Rebuild an evaluation of this class from ``to_dict`` output; raises ``DataError`` when malformed."""
        obj = from_dict(data)
        if not isinstance(obj, cls):
            raise DataError(f"expected an evaluation of type {cls.type_tag!r}, got {data.get('type')!r}")
        return obj

    def to_json(self) -> str:
        """``to_dict`` as a compact JSON string (standard JSON: no NaN or Infinity)."""
        return json.dumps(self.to_dict(), allow_nan=False, separators=(",", ":"))

    @classmethod
    def from_json(cls: type[E], text: str) -> E:
        """Rebuild an evaluation of this class from ``to_json`` output."""
        return cls.from_dict(_parse_json(text))

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.to_dict() == other.to_dict()  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_examples={self.num_examples()})"


class StateReader:
    """Typed access to a state dict that reports malformed values as ``DataError`` naming the key."""

    def __init__(self, tag: str, data: dict[str, Any], keys: Sequence[str]) -> None:
        extra = sorted(set(data) - set(keys) - {"type", "format_version"})
        missing = sorted(set(keys) - set(data))
        if extra or missing:
            raise DataError(f"{tag}: malformed state dict (unknown keys {extra}, missing keys {missing})")
        self.tag = tag
        self.data = data

    def _fail(self, key: str, expected: str) -> DataError:
        text = repr(self.data[key])
        text = text if len(text) <= 60 else text[:57] + "..."
        return DataError(f"{self.tag}.{key}: expected {expected}, got {text}")

    def opt_integer(self, key: str, minimum: int = 0) -> int | None:
        """An int >= ``minimum`` or None."""
        value = self.data[key]
        return None if value is None else self.integer(key, minimum)

    def integer(self, key: str, minimum: int = 0) -> int:
        """An int >= ``minimum``."""
        value = self.data[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self._fail(key, f"an int >= {minimum}")
        return value

    def number(self, key: str) -> float:
        """A finite number."""
        value = self.data[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
            raise self._fail(key, "a finite number")
        return float(value)

    def names(self, key: str) -> list[str] | None:
        """A list of strings or None."""
        value = self.data[key]
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self._fail(key, "a list of strings or null")
        return list(value)

    def array(self, key: str, shape: tuple[int, ...], dtype: type[np.generic]) -> npt.NDArray[Any]:
        """A nested list of numbers with exactly ``shape`` (``-1`` = any length), as an array of ``dtype``."""
        try:
            arr = np.asarray(self.data[key], dtype=dtype)
        except (TypeError, ValueError, OverflowError) as e:
            raise self._fail(key, f"a nested list of {np.dtype(dtype).name} numbers") from e
        ok = arr.ndim == len(shape) and all(s in (-1, a) for s, a in zip(shape, arr.shape, strict=False))
        if not ok:
            raise self._fail(key, f"an array of shape {shape}")
        if dtype is np.int64 and arr.size and arr.min() < 0:
            raise self._fail(key, "non-negative counts")
        if dtype is np.float64 and not np.all(np.isfinite(arr)):
            raise self._fail(key, "finite numbers")
        return arr


def _parse_json(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except (TypeError, ValueError) as e:
        raise DataError(f"not valid evaluation JSON: {e}") from e
    if not isinstance(data, dict):
        raise DataError(f"evaluation JSON must be an object, got {type(data).__name__}")
    return data


def from_dict(data: dict[str, Any]) -> BaseEvaluation:
    """Rebuild any evaluation from its ``to_dict`` output, dispatching on the ``"type"`` tag.

    Example:
        >>> ev = from_dict(Evaluation(n_classes=3).to_dict())  # doctest: +SKIP
    """
    if not isinstance(data, dict):
        raise DataError(f"an evaluation dict is expected, got {type(data).__name__}")
    tag = data.get("type")
    cls = _REGISTRY.get(tag) if isinstance(tag, str) else None
    if cls is None:
        options = sorted(_REGISTRY)
        close = difflib.get_close_matches(str(tag), options, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"valid: {', '.join(map(repr, options))}"
        raise DataError(f"unknown evaluation type {tag!r}: {hint}")
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise DataError(f"{tag}: unsupported format_version {version!r}; this deepspark reads {FORMAT_VERSION}")
    return cls._from_state(StateReader(str(tag), data, cls.state_keys))


def from_json(text: str) -> BaseEvaluation:
    """Rebuild any evaluation from its ``to_json`` output (JSON only, never pickle)."""
    return from_dict(_parse_json(text))


def registered_types() -> dict[str, type[BaseEvaluation]]:
    """Every evaluation class by its ``"type"`` tag."""
    return dict(_REGISTRY)


# ---------------------------------------------------------------------------------------------- inputs


def check_positive_int(value: object, name: str, minimum: int = 1, optional: bool = False) -> int | None:
    """Validate a constructor argument; raises ``ConfigError`` naming it."""
    if value is None and optional:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"expected an int >= {minimum}{' or None' if optional else ''}, got {value!r}", name)
    return int(value)


def check_names(names: Sequence[str] | None, name: str, count: int | None) -> list[str] | None:
    """Validate a list of class/column names against an expected count."""
    if names is None:
        return None
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"expected a list of strings, got {names!r}", name)
    out = list(names)
    if count is not None and len(out) != count:
        raise ConfigError(f"expected {count} names, got {len(out)}", name)
    return out


def as_float(x: npt.ArrayLike, what: str) -> FloatArray:
    """``x`` as a float64 array; raises ``DataError`` for non-numeric input or NaN/inf values."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise DataError(f"{what} must be numeric: {e}") from e
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise DataError(f"{what} contain {bad} NaN or infinite value(s); check the model output or the input data")
    return arr


def flatten_time(
    labels: FloatArray, predictions: FloatArray, mask: FloatArray | None
) -> tuple[FloatArray, FloatArray, FloatArray | None]:
    """Fold time series ``(n, t, c)`` (labels ``(n, t, c)`` or ``(n, t)``, mask ``(n, t)``) into ``n * t`` rows."""
    if predictions.ndim != 3:
        if labels.ndim == 3:
            raise DataError(
                f"labels are 3-D {labels.shape} but predictions are {predictions.ndim}-D {predictions.shape}: "
                "time series need (n, t, c) arrays for both"
            )
        return labels, predictions, mask
    n, t, c = predictions.shape
    if labels.shape[:2] != (n, t) or labels.ndim not in (2, 3):
        raise DataError(
            f"time-series predictions have shape {predictions.shape} (n, t, c), so labels must be (n, t) or "
            f"(n, t, c) with n={n}, t={t}; got {labels.shape}"
        )
    labels = labels.reshape((n * t, *labels.shape[2:]))
    if mask is not None:
        if mask.shape[:2] != (n, t) or mask.ndim not in (2, 3):
            raise DataError(f"time-series mask must have shape (n, t) = {(n, t)} or (n, t, c), got {mask.shape}")
        mask = mask.reshape((n * t, *mask.shape[2:]))
    return labels, predictions.reshape(n * t, c), mask


def read_inputs(
    labels: npt.ArrayLike, predictions: npt.ArrayLike, mask: npt.ArrayLike | None
) -> tuple[FloatArray, FloatArray, FloatArray | None, int]:
    """Validate finite numeric inputs, fold time series into rows; returns labels, predictions, mask, rows."""
    y, p, m = flatten_time(
        as_float(labels, "labels"),
        as_float(predictions, "predictions"),
        None if mask is None else as_float(mask, "mask"),
    )
    return y, p, m, check_rows(y, p)


def check_index(index: object, size: int | None, what: str, size_name: str) -> int:
    """``index`` as an int in ``[0, size)``; raises ``DataError`` naming the valid range otherwise."""
    n = size or 0
    if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)) or not 0 <= index < n:
        raise DataError(f"{what} index {index!r} is outside [0, {n}) for {size_name}={size}")
    return int(index)


def check_rows(labels: FloatArray, predictions: FloatArray) -> int:
    """The shared number of rows; raises ``DataError`` naming both lengths when they differ."""
    if labels.ndim == 0 or predictions.ndim == 0:
        raise DataError("labels and predictions must be arrays with one row per example, got scalars")
    if labels.shape[0] != predictions.shape[0]:
        raise DataError(
            f"labels have {labels.shape[0]} rows but predictions have {predictions.shape[0]}: "
            "pass one label per prediction row"
        )
    return int(labels.shape[0])


def row_mask(mask: FloatArray | None, n: int, n_cols: int, per_output: bool) -> BoolArray | None:
    """Validate a 0/1 mask: ``(n,)`` rows, or ``(n, n_cols)`` per output when ``per_output``; True = keep."""
    if mask is None:
        return None
    if mask.ndim == 2 and mask.shape[1] == 1:
        mask = mask[:, 0]
    ok_shape = mask.shape == (n,) or (per_output and mask.shape == (n, n_cols))
    if not ok_shape:
        expected = f"(n,) = ({n},)" + (f" or (n, columns) = ({n}, {n_cols})" if per_output else "")
        raise DataError(f"mask must have shape {expected}, got {mask.shape}")
    if not np.all((mask == 0) | (mask == 1)):
        raise DataError("mask values must be 0 (skip) or 1 (keep)")
    keep: BoolArray = mask == 1
    return keep


def class_indices(labels: FloatArray, n_classes: int | None, what: str = "labels") -> IntArray:
    """Class indices from ``(n,)``/``(n, 1)`` indices or ``(n, c)`` one-hot/probability rows (argmax)."""
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim == 2:
        if n_classes is not None and labels.shape[1] != n_classes:
            raise DataError(f"{what} have {labels.shape[1]} columns but there are {n_classes} classes")
        return np.argmax(labels, axis=1).astype(np.int64) if labels.shape[0] else np.zeros(0, np.int64)
    if labels.ndim != 1:
        raise DataError(f"{what} must be class indices (n,) or one-hot rows (n, classes), got shape {labels.shape}")
    idx = labels.astype(np.int64)
    if np.any(idx != labels):
        bad = float(labels[idx != labels][0])
        raise DataError(f"{what} as class indices must be whole numbers, got {bad!r}")
    if n_classes is not None and idx.size and (idx.min() < 0 or idx.max() >= n_classes):
        bad = int(idx[(idx < 0) | (idx >= n_classes)][0])
        raise DataError(f"{what} contain class index {bad}, outside [0, {n_classes}) for n_classes={n_classes}")
    return idx


def class_probabilities(predictions: FloatArray) -> FloatArray:
    """``(n, c)`` class scores; a single column or ``(n,)`` is P(class 1) of a binary classifier -> ``[1-p, p]``."""
    if predictions.ndim == 1:
        predictions = predictions[:, None]
    if predictions.ndim != 2:
        raise DataError(f"predictions must be (n, classes) or (n, t, classes), got shape {predictions.shape}")
    if predictions.shape[1] == 1:
        return np.concatenate([1.0 - predictions, predictions], axis=1)
    return predictions


def binary_labels(labels: FloatArray, n_cols: int, what: str = "labels") -> FloatArray:
    """Validate 0/1 labels of shape ``(n, n_cols)`` (``(n,)`` when ``n_cols == 1``); returns ``(n, n_cols)``."""
    if labels.ndim == 1:
        labels = labels[:, None]
    if labels.ndim != 2 or labels.shape[1] != n_cols:
        raise DataError(f"{what} must have shape (n, {n_cols}) to match the predictions, got {labels.shape}")
    if not np.all((labels == 0) | (labels == 1)):
        raise DataError(
            f"{what} must be 0 or 1 for binary evaluation; got {float(labels[(labels != 0) & (labels != 1)][0])!r}"
        )
    return labels


def grid_index(values: FloatArray, steps: int) -> IntArray:
    """For values in [0, 1], the ``i`` with ``i / steps <= value < (i + 1) / steps`` (``steps`` for 1.0).

    Exact with respect to the float grid ``np.arange(steps + 1) / steps``; faster than ``searchsorted``.
    """
    idx = np.clip(np.floor(values * steps), 0, steps)  # float, then corrected against the grid i / steps
    idx -= idx / steps > values
    idx += (idx < steps) & ((idx + 1) / steps <= values)
    return idx.astype(np.int64)


def safe_div(num: npt.ArrayLike, den: npt.ArrayLike) -> FloatArray:
    """Element-wise ``num / den`` as float64 with NaN where ``den == 0`` (never warns)."""
    n = np.asarray(num, dtype=np.float64)
    d = np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast(n, d).shape, np.nan)
    np.divide(n, d, out=out, where=d != 0)
    return out


def nan_mean(values: npt.ArrayLike) -> float:
    """Mean over the defined (non-NaN) values; NaN when none is defined (never warns)."""
    arr = np.asarray(values, dtype=np.float64)
    ok = ~np.isnan(arr)
    return float(arr[ok].mean()) if ok.any() else float("nan")


def merge_names(a: list[str] | None, b: list[str] | None, what: str) -> list[str] | None:
    """The names two merged evaluations share; raises ``DataError`` when both set and different."""
    if a is not None and b is not None and a != b:
        raise DataError(f"cannot merge evaluations with different {what}: {a} vs {b}")
    return a if a is not None else b


def fmt(value: float, digits: int = 4) -> str:
    """A metric for ``stats()`` text: fixed digits, ``nan`` spelled out."""
    return "nan" if np.isnan(value) else f"{value:.{digits}f}"
