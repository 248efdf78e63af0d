"""Arrow list-of-lists columns -> padded sequence rows and masks, vectorized over list offsets.

A sequence example travels as one fixed-width row so that the block machinery of `deepspark.data._arrow`
(balanced pieces, binary blocks, minibatch export) carries it unchanged: ``T*F`` padded values, then ``T``
mask values (1 = real step, 0 = padding; DL4J's masking). Per-step labels travel the same way. `unpack`
turns such rows back into ``(N, T, F)`` arrays and ``(N, T)`` masks. Nothing here loops over rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from deepspark.data._arrow import ColumnSpec, _check_finite, _check_no_nulls, _first, _numeric, _where
from deepspark.data.dataset import DataSet
from deepspark.errors import DataError

__all__ = ["sequence_feature_rows", "sequence_label_rows", "unpack"]


def _is_list(t: pa.DataType) -> bool:
    return bool(pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t))


def _lengths(col: pa.Array) -> np.ndarray:
    out: np.ndarray = pc.fill_null(pc.list_value_length(col), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    return out


def _steps(
    col: pa.Array, name: str, width: int, where: str, row_offset: int, what: str
) -> tuple[np.ndarray, np.ndarray]:
    """Per-row sequence lengths and the (total_steps, width) step values of a list or list-of-lists column."""
    _check_no_nulls(col, name, where, row_offset)
    if not _is_list(col.type):
        raise DataError(
            f"column '{name}': Arrow type {col.type} is not a sequence; expected array<array<number>> "
            "(one inner array per time step) or array<number> (one value per step)"
        )
    lengths = _lengths(col)
    empty = lengths == 0
    if empty.any():
        row = _first(empty)
        raise DataError(
            f"{_where(name, where, row_offset + row)} is an empty sequence; every sequence needs at least one step "
            f"(filter them out, e.g. df.filter(F.size('{name}') > 0))"
        )
    steps = col.flatten()
    rows = np.repeat(np.arange(len(col)), lengths)
    if _is_list(steps.type):
        if steps.null_count:
            row = int(rows[_first(steps.is_null().to_numpy(zero_copy_only=False))])
            raise DataError(f"{_where(name, where, row_offset + row)} has a null time step; drop or impute it first")
        widths = _lengths(steps)
        wrong = widths != width
        if wrong.any():
            step = _first(wrong)
            raise DataError(
                f"{_where(name, where, row_offset + int(rows[step]))} has a time step of {int(widths[step])} {what} "
                f"values; every step needs {width}"
            )
        flat = steps.flatten()
    else:
        if width != 1:
            raise DataError(
                f"column '{name}' holds one number per time step but {width} {what} values per step are expected; "
                "use array<array<number>> with one inner array per step"
            )
        flat = steps
    if flat.null_count:
        value = _first(flat.is_null().to_numpy(zero_copy_only=False))
        raise DataError(f"{_where(name, where, row_offset + int(rows[value // width]))} contains a null element")
    values = _numeric(flat, name, f"sequence {what}s").reshape(-1, width)
    return lengths, values


def _padded_rows(
    lengths: np.ndarray,
    values: np.ndarray,
    timesteps: int,
    dtype: np.dtype[Any],
    name: str,
    where: str,
    row_offset: int,
) -> np.ndarray:
    """(n, T*width + T): values scattered to (row, step) by one fancy-index assignment, then the mask."""
    n, width = len(lengths), values.shape[1]
    t = timesteps if timesteps > 0 else (int(lengths.max()) if n else 1)
    long = lengths > t
    if long.any():
        row = _first(long)
        raise DataError(
            f"{_where(name, where, row_offset + row)} has {int(lengths[row])} time steps but sequences were prepared "
            f"for at most {t} (the longest found when the data was described); describe the data again"
        )
    rows = np.repeat(np.arange(n), lengths)
    pos = np.arange(len(values)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    padded = np.zeros((n, t, width), dtype=dtype)
    padded[rows, pos] = values
    mask = np.zeros((n, t), dtype=dtype)
    mask[rows, pos] = 1
    return np.concatenate([padded.reshape(n, t * width), mask], axis=1)


def sequence_feature_rows(
    col: pa.Array, name: str, spec: ColumnSpec, dtype: np.dtype[Any], where: str, row_offset: int
) -> np.ndarray:
    """Wire rows ``(n, T*F + T)`` of a sequence features column: padded steps, then the features mask."""
    lengths, values = _steps(col, name, spec.n_features, where, row_offset, "feature")
    rows = _padded_rows(lengths, values, spec.timesteps, dtype, name, where, row_offset)
    _check_finite(rows, name, where, row_offset, "features")  # on padded rows: the message names the example
    return rows


def sequence_label_rows(
    col: pa.Array, name: str, spec: ColumnSpec, dtype: np.dtype[Any], where: str, row_offset: int
) -> np.ndarray:
    """Wire rows ``(n, T*K + T)`` of per-step labels: padded labels, then the labels mask (their own lengths)."""
    lengths, values = _steps(col, name, spec.n_label_values, where, row_offset, "label")
    if spec.label_kind == "sequence_index":
        bad = (values < 0) | (values != np.floor(values))
        if bad.any():
            row = int(np.repeat(np.arange(len(lengths)), lengths)[_first(bad.reshape(-1))])
            raise DataError(
                f"{_where(name, where, row_offset + row)} has a per-step label that is not a class index 0..C-1 "
                "(negative or fractional); use label_kind='sequence_array' for per-step regression targets"
            )
    rows = _padded_rows(lengths, values, spec.timesteps, dtype, name, where, row_offset)
    _check_finite(rows, name, where, row_offset, "labels")
    return rows


def unpack(spec: ColumnSpec, x: np.ndarray, y: np.ndarray | None) -> DataSet:
    """Wire rows back to a `DataSet`: features ``(n, T, F)``, labels, features mask and labels mask ``(n, T)``.

    Per-sequence labels (index, array, scalar) pass through unchanged; per-step labels become ``(n, T)``
    int64 class indices or ``(n, T, K)`` values with their own mask. Views where numpy allows.
    """
    n, f = len(x), spec.n_features
    t = x.shape[1] // (f + 1)
    features = x[:, : t * f].reshape(n, t, f)
    fmask = x[:, t * f :]
    if y is None or spec.label_kind not in ("sequence_index", "sequence_array"):
        return DataSet(features, y, fmask, None)
    k = spec.n_label_values
    lt = y.shape[1] // (k + 1)
    labels = y[:, : lt * k].reshape(n, lt, k)
    lmask = y[:, lt * k :]
    if spec.label_kind == "sequence_index":
        return DataSet(features, labels[:, :, 0].astype(np.int64), fmask, lmask)
    return DataSet(features, labels, fmask, lmask)
