"""Arrow record batches <-> numpy, vectorized: the column spec, feature/label decoding, binary blocks and their layout.

Everything here works on whole column batches (list offsets, struct children, numpy fancy indexing);
nothing loops over rows in Python. Nothing here imports pyspark: executors and unit tests use it
directly, and `deepspark.data.dataframe` builds the Spark side on top of it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, get_args

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from deepspark.errors import ConfigError, DataError

__all__ = [
    "ColumnSpec",
    "FeatureKind",
    "LabelKind",
    "Piece",
    "arrays_to_block_batch",
    "balanced_ranges",
    "block_to_arrays",
    "blocks_to_arrays",
    "float_dtype",
    "hash_route_keys",
    "iter_slices",
    "plan_pieces",
    "raw_block_batch",
    "record_batch_to_arrays",
    "spark_int_hash",
]

FeatureKind = Literal["array", "vector", "columns", "sequence"]
LabelKind = Literal["index", "array", "scalar_float", "none", "sequence_index", "sequence_array"]

_FEATURE_KINDS: tuple[str, ...] = get_args(FeatureKind)
_LABEL_KINDS: tuple[str, ...] = get_args(LabelKind)
_VECTOR_FIELDS = ("type", "size", "indices", "values")
_SPARSE, _DENSE = 0, 1
_INDEX_DTYPE = np.dtype("<i8")
SEQUENCE_LABELS = ("sequence_index", "sequence_array")


@dataclass(frozen=True, kw_only=True, slots=True)
class ColumnSpec:
    """Which DataFrame columns hold features, labels and keys, and how they are encoded.

    Built by `deepspark.data.dataframe.resolve_columns` from a DataFrame's schema (one cheap aggregate
    finds the width); small, frozen and picklable, so it travels to executors inside task closures.

    Attributes:
        features: One array/vector column, or several numeric scalar columns (in feature order).
        feature_kind: ``"array"`` (array<number>), ``"vector"`` (Spark ML dense/sparse vector),
            ``"columns"`` (one feature per numeric column) or ``"sequence"`` (array<array<number>>,
            one inner array per time step, rows of any length; see `deepspark.data.sequences`).
        n_features: Values per example; every row must have exactly this many. For sequences: values
            per time step.
        label: The label column, or None for unlabeled data.
        label_kind: ``"index"`` (class index -> int64), ``"array"`` (one-hot or multi-output -> float
            (n, k)), ``"scalar_float"`` (regression target -> float (n, 1)) or ``"none"``.
        n_label_values: Width of array labels; 1 for index and scalar labels, 0 without labels. Left at
            -1 it is derived from ``label_kind`` (array labels must give it).
        key: A column carried along to join results back (e.g. an id), or None.

    Example:
        >>> spec = ColumnSpec(features=("px",), feature_kind="array", n_features=784, label="digit", label_kind="index")
        >>> spec.columns, spec.n_label_values
        (('px', 'digit'), 1)
    """

    features: tuple[str, ...]
    feature_kind: FeatureKind
    n_features: int
    label: str | None = None
    label_kind: LabelKind = "none"
    n_label_values: int = -1
    key: str | None = None
    timesteps: int = 0

    def __post_init__(self) -> None:
        if (
            not isinstance(self.features, tuple)
            or not self.features
            or not all(isinstance(c, str) for c in self.features)
        ):
            raise ConfigError(f"expected a non-empty tuple of column names, got {self.features!r}", "features")
        if self.feature_kind not in _FEATURE_KINDS:
            raise ConfigError(f"expected one of {list(_FEATURE_KINDS)}, got {self.feature_kind!r}", "feature_kind")
        if isinstance(self.n_features, bool) or not isinstance(self.n_features, int) or self.n_features < 1:
            raise ConfigError(f"expected a positive int, got {self.n_features!r}", "n_features")
        if self.feature_kind != "columns" and len(self.features) != 1:
            raise ConfigError(
                f"{self.feature_kind!r} features come from exactly one column, got {list(self.features)}", "features"
            )
        if self.feature_kind == "columns" and len(self.features) != self.n_features:
            raise ConfigError(
                f"'columns' features have one value per column: {len(self.features)} columns, "
                f"n_features={self.n_features}",
                "n_features",
            )
        if self.label_kind not in _LABEL_KINDS:
            raise ConfigError(f"expected one of {list(_LABEL_KINDS)}, got {self.label_kind!r}", "label_kind")
        if (self.label is None) != (self.label_kind == "none"):
            raise ConfigError(
                f"label={self.label!r} needs a label_kind other than 'none' (and only then)", "label_kind"
            )
        if isinstance(self.n_label_values, bool) or not isinstance(self.n_label_values, int):
            raise ConfigError(f"expected an int, got {self.n_label_values!r}", "n_label_values")
        self._check_sequence()
        expected = {"none": 0, "index": 1, "scalar_float": 1, "sequence_index": 1}.get(self.label_kind)
        if expected is not None and self.n_label_values == -1:
            object.__setattr__(self, "n_label_values", expected)
        if expected is not None and self.n_label_values != expected:
            raise ConfigError(
                f"{self.label_kind!r} labels have width {expected}, got {self.n_label_values}", "n_label_values"
            )
        if self.label_kind in ("array", "sequence_array") and self.n_label_values < 1:
            raise ConfigError(
                f"expected a positive int for {self.label_kind!r} labels, got {self.n_label_values}", "n_label_values"
            )

    def _check_sequence(self) -> None:
        if isinstance(self.timesteps, bool) or not isinstance(self.timesteps, int) or self.timesteps < 0:
            raise ConfigError(f"expected an int >= 0, got {self.timesteps!r}", "timesteps")
        if self.feature_kind != "sequence" and self.timesteps:
            raise ConfigError(f"only 'sequence' features have timesteps, got {self.timesteps}", "timesteps")
        if self.label_kind in SEQUENCE_LABELS and self.feature_kind != "sequence":
            raise ConfigError(f"{self.label_kind!r} labels need 'sequence' features", "label_kind")

    @property
    def row_width(self) -> int:
        """Values per example on the wire: features, or for sequences T*F padded values then T mask values."""
        if self.feature_kind == "sequence":
            return self.timesteps * (self.n_features + 1)
        return self.n_features

    @property
    def label_width(self) -> int:
        """Label values per example on the wire (index labels: one int64); sequences add T mask values."""
        if self.label_kind in SEQUENCE_LABELS:
            return self.timesteps * (self.n_label_values + 1)
        return self.n_label_values

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns to select, in order: features, then label and key (each once)."""
        out = list(self.features)
        for name in (self.label, self.key):
            if name is not None and name not in out:
                out.append(name)
        return tuple(out)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the minibatch export stores it in its sidecar file)."""
        return {
            "features": list(self.features),
            "feature_kind": self.feature_kind,
            "n_features": self.n_features,
            "label": self.label,
            "label_kind": self.label_kind,
            "n_label_values": self.n_label_values,
            "key": self.key,
            "timesteps": self.timesteps,
        }

    @classmethod
    def from_dict(cls, data: object) -> ColumnSpec:
        """Rebuild a spec from `to_dict` output; unknown or missing keys raise ConfigError."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"expected a JSON object, got {type(data).__name__}", "spec")
        known = {"features", "feature_kind", "n_features", "label", "label_kind", "n_label_values", "key", "timesteps"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown key(s) {unknown}; valid: {sorted(known)}", "spec")
        if "features" not in data or "feature_kind" not in data or "n_features" not in data:
            raise ConfigError("needs 'features', 'feature_kind' and 'n_features'", "spec")
        features = data["features"]
        if not isinstance(features, (list, tuple)):
            raise ConfigError(f"expected a list of column names, got {features!r}", "spec.features")
        fields = dict(data)
        fields["features"] = tuple(features)
        try:
            return cls(**fields)
        except ConfigError as e:
            raise e.with_prefix("spec") from None


def float_dtype(dtype: object) -> np.dtype[Any]:
    """``float32`` or ``float64`` as a little-endian numpy dtype; anything else raises ConfigError."""
    try:
        dt = np.dtype(dtype)  # type: ignore[call-overload]
    except TypeError as e:
        raise ConfigError(f"expected 'float32' or 'float64', got {dtype!r}", "dtype") from e
    if dt.kind != "f" or dt.itemsize not in (4, 8):
        raise ConfigError(f"expected 'float32' or 'float64', got {dtype!r}", "dtype")
    little: np.dtype[Any] = dt.newbyteorder("<")
    return little


# --------------------------------------------------------------------------------------------------
# Arrow -> numpy
# --------------------------------------------------------------------------------------------------


def _where(name: str, where: str, row: int) -> str:
    return f"column '{name}', row {row} of {where}"


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _column(batch: pa.RecordBatch, name: str) -> pa.Array:
    index = batch.schema.get_field_index(name)
    if index < 0:
        raise DataError(f"column '{name}' not found in the Arrow batch; available: {batch.schema.names}")
    return batch.column(index)


def _check_no_nulls(col: pa.Array, name: str, where: str, row_offset: int) -> None:
    if col.null_count:
        row = _first(col.is_null().to_numpy(zero_copy_only=False))
        raise DataError(
            f"{_where(name, where, row_offset + row)} is null ({col.null_count} null(s) in this batch); "
            f"drop or impute them first, e.g. df.dropna(subset=['{name}'])"
        )


def _numeric(arr: pa.Array, name: str, what: str) -> np.ndarray:
    """A null-free numeric Arrow array as numpy (zero-copy where Arrow allows; may be read-only)."""
    if not (pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type)):
        raise DataError(
            f"column '{name}': {what} of Arrow type {arr.type} are not numbers; supported: integer and float"
        )
    out: np.ndarray = arr.to_numpy(zero_copy_only=False)
    return out


def _check_finite(x: np.ndarray, name: str, where: str, row_offset: int, what: str) -> None:
    if x.dtype.kind != "f" or x.size == 0:
        return
    # One float64 reduction first (a finite float32 sum cannot overflow float64); the exact scan only on failure.
    with np.errstate(over="ignore", invalid="ignore"):
        total = np.add.reduce(x, axis=None, dtype=np.float64)
    if np.isfinite(total) or np.isfinite(x).all():
        return
    bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)
    row = _first(bad)
    overflow = " or beyond float32's range (|x| > 3.4e38: rescale them)" if x.dtype.itemsize == 4 else ""
    raise DataError(
        f"{_where(name, where, row_offset + row)} has NaN or infinite {what}{overflow} ({int(bad.sum())} such row(s) "
        "in this batch); clean or impute them before training (e.g. df.na.fill or a filter on isnan)"
    )


def _list_matrix(col: pa.Array, name: str, width: int, where: str, row_offset: int, what: str) -> np.ndarray:
    """A list column (every row ``width`` numbers) as an (n, width) array, via one flatten and an offsets check."""
    n = len(col)
    if pa.types.is_fixed_size_list(col.type):
        lengths = np.full(n, col.type.list_size, dtype=np.int64)
    else:
        lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
    wrong = lengths != width
    if wrong.any():
        row = _first(wrong)
        raise DataError(
            f"{_where(name, where, row_offset + row)} has {int(lengths[row])} {what} values; every row needs {width}"
        )
    flat = col.flatten()
    if flat.null_count:
        value = _first(flat.is_null().to_numpy(zero_copy_only=False))
        raise DataError(
            f"{_where(name, where, row_offset + value // width)} contains a null element; drop or impute it first"
        )
    return _numeric(flat, name, f"{what} elements").reshape(n, width)


def _vector_matrix(col: pa.StructArray, name: str, width: int, where: str, row_offset: int, what: str) -> np.ndarray:
    """Spark ML vectors (struct type/size/indices/values) as a dense (n, width) float64 array, sparse ones scattered."""
    names = [col.type.field(i).name for i in range(col.type.num_fields)]
    if sorted(names) != sorted(_VECTOR_FIELDS):
        raise DataError(
            f"column '{name}': struct<{', '.join(names)}> is not a Spark ML vector "
            f"(expected fields {list(_VECTOR_FIELDS)})"
        )
    children = dict(zip(names, col.flatten(), strict=True))
    n = len(col)
    kinds = children["type"].to_numpy(zero_copy_only=False)
    values = children["values"]
    lengths = pc.fill_null(pc.list_value_length(values), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    flat = values.flatten().to_numpy(zero_copy_only=False)
    dense = kinds == _DENSE
    bad_kind = ~dense & (kinds != _SPARSE)
    if bad_kind.any():
        row = _first(bad_kind)
        raise DataError(f"{_where(name, where, row_offset + row)}: unknown vector type code {int(kinds[row])}")
    wrong = dense & (lengths != width)
    if wrong.any():
        row = _first(wrong)
        raise DataError(
            f"{_where(name, where, row_offset + row)} is a dense vector of {int(lengths[row])} {what} values; "
            f"every row needs {width}"
        )
    if dense.all():
        reshaped: np.ndarray = flat.reshape(n, width)
        return reshaped
    sparse = ~dense
    sizes = pc.fill_null(children["size"], width).to_numpy(zero_copy_only=False)
    wrong = sparse & (sizes != width)
    if wrong.any():
        row = _first(wrong)
        raise DataError(
            f"{_where(name, where, row_offset + row)} is a sparse vector of size {int(sizes[row])}; every row needs "
            f"{width} {what} values"
        )
    indices = children["indices"]
    index_lengths = pc.fill_null(pc.list_value_length(indices), 0).to_numpy(zero_copy_only=False)
    wrong = sparse & (index_lengths != lengths)
    if wrong.any():
        row = _first(wrong)
        raise DataError(
            f"{_where(name, where, row_offset + row)}: sparse vector has a different number of indices and values"
        )
    # Column of every stored value: its position within the row for dense rows, its index for sparse rows.
    rows = np.repeat(np.arange(n), lengths)
    starts = np.cumsum(lengths) - lengths
    cols = np.arange(len(flat), dtype=np.int64) - np.repeat(starts, lengths)
    from_sparse = np.repeat(sparse, lengths)
    sparse_index = indices.flatten().to_numpy(zero_copy_only=False).astype(np.int64)
    cols[from_sparse] = sparse_index
    out_of_range = (sparse_index < 0) | (sparse_index >= width)
    if out_of_range.any():
        row = int(rows[from_sparse][_first(out_of_range)])
        raise DataError(f"{_where(name, where, row_offset + row)}: sparse vector index out of range [0, {width})")
    out = np.zeros((n, width), dtype=np.float64)
    out[rows, cols] = flat
    return out


def _matrix(col: pa.Array, name: str, width: int, where: str, row_offset: int, what: str) -> np.ndarray:
    """One array or vector column as (n, width) numbers; nulls, wrong widths and non-numbers raise DataError."""
    _check_no_nulls(col, name, where, row_offset)
    if pa.types.is_list(col.type) or pa.types.is_large_list(col.type) or pa.types.is_fixed_size_list(col.type):
        return _list_matrix(col, name, width, where, row_offset, what)
    if pa.types.is_struct(col.type):
        return _vector_matrix(col, name, width, where, row_offset, what)
    raise DataError(
        f"column '{name}': Arrow type {col.type} cannot hold {what}; supported: a list of numbers or a Spark ML vector"
    )


def _features(batch: pa.RecordBatch, spec: ColumnSpec, dtype: np.dtype[Any], where: str, row_offset: int) -> np.ndarray:
    if spec.feature_kind == "sequence":
        from deepspark.data._sequence_arrow import sequence_feature_rows

        name = spec.features[0]
        return sequence_feature_rows(_column(batch, name), name, spec, dtype, where, row_offset)
    if spec.feature_kind == "columns":
        x = np.empty((batch.num_rows, spec.n_features), dtype=dtype)
        for j, name in enumerate(spec.features):
            col = _column(batch, name)
            _check_no_nulls(col, name, where, row_offset)
            x[:, j] = _numeric(col, name, "features")
        name = "/".join(spec.features) if len(spec.features) <= 4 else f"{spec.features[0]}..."
    else:
        name = spec.features[0]
        raw = _matrix(_column(batch, name), name, spec.n_features, where, row_offset, "feature")
        x = raw.astype(dtype, copy=False)
    _check_finite(x, name, where, row_offset, "features")
    return x


def _labels(
    batch: pa.RecordBatch, spec: ColumnSpec, dtype: np.dtype[Any], where: str, row_offset: int
) -> np.ndarray | None:
    if spec.label is None or spec.label_kind == "none":
        return None
    name = spec.label
    col = _column(batch, name)
    if spec.label_kind in SEQUENCE_LABELS:
        from deepspark.data._sequence_arrow import sequence_label_rows

        return sequence_label_rows(col, name, spec, dtype, where, row_offset)
    if spec.label_kind == "array":
        y = _matrix(col, name, spec.n_label_values, where, row_offset, "label").astype(dtype, copy=False)
        _check_finite(y, name, where, row_offset, "labels")
        return y
    _check_no_nulls(col, name, where, row_offset)
    values = _numeric(col, name, "labels")
    if spec.label_kind == "scalar_float":
        y = values.astype(dtype, copy=False).reshape(-1, 1)
        _check_finite(y, name, where, row_offset, "labels")
        return y
    if values.dtype.kind == "f":
        bad = ~np.isfinite(values) | (values != np.floor(values))
        if bad.any():
            row = _first(bad)
            raise DataError(
                f"{_where(name, where, row_offset + row)} is {values[row].item()!r}; index labels must be whole "
                "numbers (class indices 0..C-1): use label_kind='scalar_float' for regression targets"
            )
    negative = values < 0
    if negative.any():
        row = _first(negative)
        raise DataError(
            f"{_where(name, where, row_offset + row)} is {values[row].item()!r}; "
            "class indices must be 0..C-1 (non-negative)"
        )
    return values.astype(_INDEX_DTYPE, copy=False)


def _writable(a: np.ndarray) -> np.ndarray:
    return a if a.flags.writeable else a.copy()


def record_batch_to_arrays(
    batch: pa.RecordBatch,
    spec: ColumnSpec,
    dtype: object = np.float32,
    *,
    where: str = "the batch",
    row_offset: int = 0,
    copy: bool = True,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Decode one Arrow record batch into features, labels and keys, one vectorized pass per column.

    Array columns go through one ``flatten()`` plus a list-length check; Spark ML vectors (Arrow
    struct ``type``/``size``/``indices``/``values``, type 1 = dense, 0 = sparse) are reshaped when all
    dense and scattered into a zero matrix with numpy fancy indexing otherwise.

    Args:
        batch: The Arrow batch (e.g. one that ``mapInArrow`` or ``toArrow`` delivers).
        spec: Which columns to read and how (from ``resolve_columns``).
        dtype: ``float32`` or ``float64`` for features and float labels; index labels are int64.
        where: How error messages name the batch (executors say which partition).
        row_offset: Added to row numbers in error messages (rows before this batch in its partition).
        copy: False lets features alias Arrow memory (read-only) when no conversion is needed.

    Returns:
        ``(x, y, keys)``: features ``(n, n_features)``; labels ``(n,)`` int64 for index labels,
        ``(n, k)`` for array labels, ``(n, 1)`` for scalar float labels, None without a label; the
        key column as numpy (object dtype for strings), or None.

    Raises:
        DataError: a column is missing, null, of the wrong type or width, holds NaN/inf, or index labels
            are not whole non-negative numbers. The message names the column and the first bad row.

    Example:
        >>> batch = pa.RecordBatch.from_pydict({"f": [[1.0, 2.0]], "y": [1]})
        >>> spec = ColumnSpec(features=("f",), feature_kind="array", n_features=2, label="y", label_kind="index")
        >>> x, y, _ = record_batch_to_arrays(batch, spec)
        >>> x.shape, y.tolist()
        ((1, 2), [1])
    """
    dt = float_dtype(dtype)
    x = _features(batch, spec, dt, where, row_offset)
    if spec.feature_kind == "sequence" and spec.timesteps == 0:  # labels pad to this batch's longest sequence
        spec = dataclasses.replace(spec, timesteps=x.shape[1] // (spec.n_features + 1))
    y = _labels(batch, spec, dt, where, row_offset)
    keys = None if spec.key is None else _column(batch, spec.key).to_numpy(zero_copy_only=False)
    if copy:
        x = _writable(x)
        y = None if y is None else _writable(y)
        keys = None if keys is None else _writable(keys)
    return x, y, keys


# --------------------------------------------------------------------------------------------------
# Binary blocks: raw little-endian buffers, one Arrow row per block
# --------------------------------------------------------------------------------------------------


def _label_layout(spec: ColumnSpec, dtype: np.dtype[Any]) -> tuple[np.dtype[Any], tuple[int, ...]] | None:
    if spec.label_kind == "none":
        return None
    if spec.label_kind == "index":
        return _INDEX_DTYPE, ()
    return dtype, (spec.label_width,)


def _binary(buffer: np.ndarray) -> pa.Array:
    """A one-value binary Arrow array holding the bytes of ``buffer``, without copying them."""
    data = np.ascontiguousarray(buffer).view(np.uint8).reshape(-1)
    if data.nbytes >= 2**31:
        raise DataError(f"a block of {data.nbytes} bytes does not fit Spark's binary type; lower max_block_bytes")
    offsets = pa.py_buffer(np.array([0, data.nbytes], dtype=np.int32))
    return pa.Array.from_buffers(pa.binary(), 1, [None, offsets, pa.py_buffer(data)])


_LONG_COLUMNS = frozenset({"block", "batch"})


def raw_block_batch(columns: Mapping[str, int], n: int, x: np.ndarray, y: np.ndarray) -> pa.RecordBatch:
    """A one-row block batch from buffers already in their final layout (int32 columns, ``block``/``batch`` int64)."""
    arrays: list[pa.Array] = [
        pa.array([v], pa.int64() if k in _LONG_COLUMNS else pa.int32()) for k, v in columns.items()
    ]
    arrays += [pa.array([n], pa.int64()), _binary(x), _binary(y)]
    return pa.RecordBatch.from_arrays(arrays, names=[*columns, "n", "x", "y"])


def arrays_to_block_batch(
    columns: Mapping[str, int], x: np.ndarray, y: np.ndarray | None, dtype: object = np.float32
) -> pa.RecordBatch:
    """One block as a one-row Arrow batch: the int columns given, ``n``, ``x`` and ``y`` as little-endian bytes.

    Args:
        columns: Leading integer columns in order, e.g. ``{"worker": 1, "part": 0}`` (int32; ``block``/``batch`` int64).
        x: Features ``(n, n_features)``; cast to ``dtype`` if needed.
        y: Labels as `record_batch_to_arrays` returns them, or None (stored as empty bytes).
        dtype: Feature dtype of the block.

    Returns:
        A batch with the given columns, then ``n`` (int64), ``x`` (binary), ``y`` (binary).
    """
    dt = float_dtype(dtype)
    xb = np.asarray(x).astype(dt, copy=False)
    if y is None:
        yb = np.zeros(0, dtype=np.uint8)
    else:
        yb = np.asarray(y).astype(_INDEX_DTYPE if np.asarray(y).dtype.kind in "iu" else dt, copy=False)
    return raw_block_batch(columns, len(xb), xb, yb)


def block_to_arrays(
    n: int, x: bytes | bytearray | memoryview, y: bytes | bytearray | memoryview | None, spec: ColumnSpec, dtype: object
) -> tuple[np.ndarray, np.ndarray | None]:
    """Views (no copy, read-only) of one block's bytes as ``(n, n_features)`` features and labels."""
    dt = float_dtype(dtype)
    xs = np.frombuffer(x, dtype=dt)
    width = spec.row_width
    if xs.size != n * width:
        raise DataError(
            f"block says n={n} with {width} {dt.name} features but holds {len(x)} bytes: "
            "it was written with another ColumnSpec or dtype"
        )
    layout = _label_layout(spec, dt)
    if layout is None:
        return xs.reshape(n, width), None
    ydt, tail = layout
    ys = np.frombuffer(y if y is not None else b"", dtype=ydt)
    if ys.size != n * math.prod(tail):
        raise DataError(f"block says n={n} {spec.label_kind} labels but holds {ys.nbytes} bytes of labels")
    return xs.reshape(n, width), ys.reshape((n, *tail))


def _field(row: Any, name: str) -> Any:
    try:
        return row[name]
    except (KeyError, ValueError, IndexError, TypeError):
        return None


def blocks_to_arrays(
    rows: Iterable[Any], spec: ColumnSpec, dtype: object = np.float32
) -> tuple[np.ndarray, np.ndarray | None]:
    """Concatenate the binary blocks of one partition into features and labels (executor side).

    Rows are anything indexable by field name with ``n``, ``x`` and ``y`` (PySpark ``Row`` objects from
    ``blocks.rdd.mapPartitions``, dicts, a minibatch row of ``read_exported``). Rows carrying ``part`` are
    put in ``part`` order first, so the result is the same however the shuffle delivered them. The bytes
    are read with ``np.frombuffer`` and copied once, by the concatenation.

    Args:
        rows: The blocks (``to_blocks`` output rows) of one partition.
        spec: The ColumnSpec the blocks were made with.
        dtype: The feature dtype the blocks were made with.

    Returns:
        ``(x, y)``: writable features ``(n, n_features)`` and labels (None when the spec has no label).

    Example:
        >>> def train_partition(rows):  # doctest: +SKIP
        ...     x, y = blocks_to_arrays(rows, spec)
        ...     yield fit_some_steps(x, y)
        >>> blocks.rdd.mapPartitions(train_partition).collect()  # doctest: +SKIP
    """
    blocks = list(rows)
    parts = [_field(r, "part") for r in blocks]
    if all(p is not None for p in parts):
        blocks = [b for _, b in sorted(zip(parts, blocks, strict=True), key=lambda pb: int(pb[0]))]
    dt = float_dtype(dtype)
    decoded = [block_to_arrays(int(r["n"]), r["x"], r["y"], spec, dt) for r in blocks]
    if not decoded:
        layout = _label_layout(spec, dt)
        y_empty = None if layout is None else np.zeros((0, *layout[1]), dtype=layout[0])
        return np.zeros((0, spec.row_width), dtype=dt), y_empty
    x = np.concatenate([d[0] for d in decoded]) if len(decoded) > 1 else decoded[0][0].copy()
    ys = [d[1] for d in decoded if d[1] is not None]
    y = None if not ys else (np.concatenate(ys) if len(ys) > 1 else ys[0].copy())
    return x, y


# --------------------------------------------------------------------------------------------------
# Layout: which global rows go into which worker's blocks
# --------------------------------------------------------------------------------------------------


class Piece(NamedTuple):
    """A run of rows of one input partition that goes into one block of one worker.

    ``part`` orders a worker's pieces in global row order; ``block`` numbers blocks globally (pieces of
    one block are concatenated when a block must be a single row, as minibatches are).
    """

    worker: int
    part: int
    block: int
    start: int
    stop: int


def balanced_ranges(n_rows: int, n_workers: int) -> list[tuple[int, int]]:
    """Worker k's global row range ``[k*N//W, (k+1)*N//W)``: every worker gets N//W or N//W+1 rows."""
    return [(k * n_rows // n_workers, (k + 1) * n_rows // n_workers) for k in range(n_workers)]


def plan_pieces(counts: Mapping[int, int], blocks: Sequence[tuple[int, int, int]]) -> dict[int, tuple[Piece, ...]]:
    """Cut blocks along input partition boundaries: the pieces each input partition emits, in row order.

    Args:
        counts: Rows per input partition id; the global order is partition id, then row within it.
        blocks: ``(worker, start, stop)`` global row ranges, contiguous, in global order, covering all rows.

    Returns:
        For each partition id with rows, its pieces sorted by ``start`` (partition-local row numbers).
    """
    order = sorted(p for p, c in counts.items() if c > 0)
    total = sum(counts[p] for p in order)
    covered = (blocks[0][1], blocks[-1][2]) if blocks else (0, 0)
    if covered != (0, total):
        raise ValueError(f"blocks must cover rows [0, {total})")
    out: dict[int, list[Piece]] = {p: [] for p in order}
    next_part: dict[int, int] = {}
    i = 0
    base = 0  # global row number of the first row of order[i]
    for block_id, (worker, start, stop) in enumerate(blocks):
        pos = start
        while pos < stop:
            while base + counts[order[i]] <= pos:
                base += counts[order[i]]
                i += 1
            end = min(stop, base + counts[order[i]])
            part = next_part.get(worker, 0)
            next_part[worker] = part + 1
            out[order[i]].append(Piece(worker, part, block_id, pos - base, end - base))
            pos = end
    return {p: tuple(pieces) for p, pieces in out.items()}


def spark_int_hash(value: int, seed: int = 42) -> int:
    """Spark's ``hash()`` of an int column (Murmur3 x86 32-bit, seed 42), as HashPartitioning computes it."""
    mask = 0xFFFFFFFF

    def rotl(v: int, r: int) -> int:
        return ((v << r) | (v >> (32 - r))) & mask

    k1 = rotl((value & mask) * 0xCC9E2D51 & mask, 15) * 0x1B873593 & mask
    h1 = (rotl(seed ^ k1, 13) * 5 + 0xE6546B64) & mask
    h1 ^= 4
    h1 ^= h1 >> 16
    h1 = h1 * 0x85EBCA6B & mask
    h1 ^= h1 >> 13
    h1 = h1 * 0xC2B2AE35 & mask
    h1 ^= h1 >> 16
    return h1 - (1 << 32) if h1 & 0x80000000 else h1


def hash_route_keys(n_partitions: int) -> list[int]:
    """For each target partition k, the smallest int that ``repartition(n, col)`` sends to partition k.

    ``repartition(W, "worker")`` hashes worker ids, so two workers can share a partition and another
    stays empty; routing on these keys instead puts worker k alone in partition k.
    """
    keys: list[int | None] = [None] * n_partitions
    missing = n_partitions
    candidate = 0
    while missing:
        target = spark_int_hash(candidate) % n_partitions
        if keys[target] is None:
            keys[target] = candidate
            missing -= 1
        candidate += 1
    return [k for k in keys if k is not None]


def iter_slices(
    batches: Iterable[tuple[np.ndarray, np.ndarray | None]], pieces: Sequence[Piece]
) -> Iterator[tuple[Piece, list[np.ndarray], list[np.ndarray]]]:
    """Stream decoded batches into the given pieces; yields each piece with its x and y chunks once complete."""
    todo = iter(pieces)
    current = next(todo, None)
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    pos = 0
    for x, y in batches:
        lo, hi = pos, pos + len(x)
        while current is not None and current.start < hi:
            a, b = max(current.start, lo) - lo, min(current.stop, hi) - lo
            xs.append(x[a:b])
            if y is not None:
                ys.append(y[a:b])
            if current.stop > hi:
                break
            yield current, xs, ys
            xs, ys = [], []
            current = next(todo, None)
        pos = hi
