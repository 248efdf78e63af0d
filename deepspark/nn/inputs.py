"""Checking and converting user arrays to tensors once, up front, with errors that say what to fix."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from deepspark.config.input_types import InputType
from deepspark.errors import DataError
from deepspark.nn.functional import CLASSIFICATION_LOSSES
from deepspark.nn.model import Head


def _as_numpy(a: Any, what: str) -> np.ndarray:
    if isinstance(a, Tensor):
        return a.detach().cpu().numpy()
    try:
        arr = np.asarray(a)
    except (TypeError, ValueError) as e:
        raise DataError(
            f"{what}: cannot convert to an array; rows of different lengths or non-numeric values? ({e})"
        ) from None
    if arr.dtype == object:
        raise DataError(f"{what}: expected a numeric array, got ragged or non-numeric values (dtype object)")
    return arr


def _check_finite(arr: np.ndarray, what: str) -> None:
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        row = int(bad[0])
        raise DataError(
            f"{what} contain NaN or infinite values (first at row {row}); clean or impute them before training"
        )


def to_dtype_finite(arr: np.ndarray, dtype: torch.dtype, what: str) -> Tensor:
    """``arr`` as a contiguous tensor of ``dtype``, refusing values that only overflow in the cast (1e39 -> float32)."""
    t = torch.from_numpy(np.ascontiguousarray(arr)).to(dtype)
    narrowed = arr.dtype.kind == "f" and t.is_floating_point() and t.dtype.itemsize < arr.dtype.itemsize
    if narrowed and not bool(torch.isfinite(t).all()):
        bad = np.argwhere(~torch.isfinite(t).numpy())[0]
        row, value = int(bad[0]), arr[tuple(bad)].item()
        limit = float(torch.finfo(dtype).max)
        raise DataError(
            f"{what} hold {value!r} at row {row}, beyond the range of the network's dtype "
            f"{str(dtype).removeprefix('torch.')} (largest finite value {limit:.4g}): rescale or normalize the "
            "data, or set the network config's dtype to 'float64'"
        )
    return t


def features_to_tensor(
    x: Any, input_type: InputType, dtype: torch.dtype, what: str = "features", field: str = "input_type"
) -> Tensor:
    """Validate features against the network's input type and return a contiguous tensor of ``dtype``.

    Flat images (N, h*w*c) and shaped images (N, c, h, w) are both accepted for convolutional inputs.
    """
    arr = _as_numpy(x, what)
    if arr.ndim == 0 or arr.shape[0] == 0:
        raise DataError(f"{what} are empty (shape {arr.shape}); pass at least one example")
    if arr.dtype.kind not in "fiub":
        raise DataError(f"{what}: expected numbers, got dtype {arr.dtype}")
    _check_finite(arr, what)
    expected = input_type.shape()
    per_example = arr.shape[1:]
    ok = len(per_example) == len(expected) and all(
        e is None or e == g for e, g in zip(expected, per_example, strict=True)
    )
    if not ok and input_type.form in ("convolutional", "convolutional_flat", "channels_last"):
        ok = int(np.prod(per_example)) == input_type.flat_size() and len(per_example) in (1, 3)
        if ok:
            arr = arr.reshape(arr.shape[0], *[e for e in expected if e is not None])
    if not ok:
        shown = tuple("T" if e is None else e for e in expected)
        raise DataError(
            f"{what} have shape {arr.shape} but the network's input type {input_type.describe()} expects "
            f"(N, {', '.join(map(str, shown))}); reshape the data or change {field}"
        )
    return to_dtype_finite(arr, dtype, what)


def labels_to_tensor(y: Any, n: int, head: Head, dtype: torch.dtype, what: str = "labels") -> Tensor:
    """Validate labels for ``head`` and convert: class indices stay int64, everything else ``dtype``."""
    arr = _as_numpy(y, what)
    if arr.ndim == 0:
        raise DataError(f"{what}: expected an array with one entry per example, got a scalar")
    if arr.shape[0] != n:
        raise DataError(f"{what} have {arr.shape[0]} rows but the features have {n}; pass one label per example")
    if arr.dtype.kind not in "fiub":
        raise DataError(f"{what}: expected numbers, got dtype {arr.dtype}; encode string labels as class indices")
    _check_finite(arr, what)
    step_dims = 1 if head.recurrent else 0  # sequences carry a time axis after the batch axis
    if head.loss in CLASSIFICATION_LOSSES:
        index_ndim = 1 + step_dims
        if arr.ndim == index_ndim + 1 and arr.shape[-1] == 1 and head.n_out > 1:
            arr = arr[..., 0]
        if arr.ndim == index_ndim:
            if arr.dtype.kind == "f" and not np.array_equal(arr, np.round(arr)):
                raise DataError(f"{what}: class indices must be whole numbers, got fractional values")
            idx = arr.astype(np.int64)
            lo, hi = int(idx.min()), int(idx.max())
            if lo < 0 or hi >= head.n_out:
                bad = lo if lo < 0 else hi
                raise DataError(
                    f"{what}: class index {bad} is out of range for {head.n_out} output classes "
                    f"(valid 0..{head.n_out - 1}); check the labels or the output layer's n_out"
                )
            return torch.from_numpy(np.ascontiguousarray(idx))
        if arr.ndim != index_ndim + 1 or arr.shape[-1] != head.n_out:
            raise DataError(
                f"{what} have shape {arr.shape}; expected class indices (N{', T' if step_dims else ''}) or "
                f"one-hot rows with {head.n_out} columns"
            )
        return to_dtype_finite(arr, dtype, what)
    expect_ndim = 2 + step_dims
    if arr.ndim == expect_ndim - 1 and head.n_out == 1:
        arr = arr[..., None]
    if arr.ndim != expect_ndim or arr.shape[-1] != head.n_out:
        raise DataError(
            f"{what} have shape {arr.shape} but the output layer emits {head.n_out} values per "
            f"{'step' if step_dims else 'example'}; expected (N{', T' if step_dims else ''}, {head.n_out})"
        )
    return to_dtype_finite(arr, dtype, what)


def mask_to_tensor(mask: Any, n: int, what: str, steps: int | None = None) -> Tensor | None:
    """A (N, T) 0/1 mask as a float tensor, or None. ``steps``: the features' T, when known."""
    if mask is None:
        return None
    arr = _as_numpy(mask, what)
    if arr.ndim != 2 or arr.shape[0] != n or (steps is not None and arr.shape[1] != steps):
        t = "T" if steps is None else f"T={steps}"
        raise DataError(f"{what} must have shape (N, T) with N={n}, {t}, got {arr.shape}")
    if arr.dtype.kind not in "fiub" or not np.isin(arr, (0, 1)).all():
        raise DataError(f"{what} must hold only 0 (padding) and 1 (real step) values")
    return torch.from_numpy(np.ascontiguousarray(arr)).to(torch.float32)


def check_embedding_indices(x: Tensor, vocab_size: int) -> None:
    """Features fed to an embedding must be whole indices in [0, vocab_size)."""
    if not torch.equal(x, x.round()):
        raise DataError("features for an Embedding layer must be whole-number indices, got fractional values")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi >= vocab_size:
        raise DataError(
            f"embedding index {int(lo if lo < 0 else hi)} is out of range for vocab_size {vocab_size}; "
            "raise vocab_size or re-index the data"
        )
