"""Readers from files to numpy arrays: IDX (MNIST's format, raw or gzip), MNIST, scikit-learn's digits, CSV.

Every reader validates before it allocates: a header that declares more data than the file can
hold is rejected from the file size, so a corrupt or hostile file costs an error, not the memory.
Nothing here unpickles anything.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import struct
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from deepspark.errors import ConfigError, DataError

from .dataset import DataSet

__all__ = ["CsvData", "load_digits", "load_mnist", "read_csv", "read_idx"]

PathLike = str | os.PathLike[str]

IDX_DTYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
"""IDX type codes (third magic byte) and their big-endian element types."""

_GZIP_MAGIC = b"\x1f\x8b"
_MAX_DEFLATE_RATIO = 1032  # deflate cannot expand data by more than this factor
_CHUNK = 1 << 22


def _describe_dims(dims: tuple[int, ...], dtype: np.dtype[Any]) -> str:
    return "x".join(str(d) for d in dims) + f" {dtype.newbyteorder('=').name}"


def _parse_header(read: Callable[[int], bytes], where: str) -> tuple[np.dtype[Any], tuple[int, ...], int]:
    """The element type, dims and header length of the IDX stream at its start."""
    magic = read(4)
    if len(magic) < 4:
        raise DataError(f"{where}: too short to be an IDX file ({len(magic)} bytes); expected a 4-byte magic number")
    if magic[:2] != b"\x00\x00":
        raise DataError(
            f"{where}: not an IDX file: expected magic bytes 00 00 <type> <ndims>, got {magic.hex(' ')}; "
            "pass an IDX file such as train-images-idx3-ubyte(.gz)"
        )
    dtype = IDX_DTYPES.get(magic[2])
    if dtype is None:
        valid = ", ".join(f"0x{c:02X} ({t.newbyteorder('=').name})" for c, t in IDX_DTYPES.items())
        raise DataError(f"{where}: unknown IDX type code 0x{magic[2]:02X}; valid: {valid}")
    ndims = magic[3]
    if ndims == 0:
        raise DataError(f"{where}: IDX header declares 0 dimensions; expected at least 1")
    raw = read(4 * ndims)
    if len(raw) < 4 * ndims:
        raise DataError(
            f"{where}: truncated IDX header: {ndims} dimensions need {4 * ndims} bytes of sizes, got {len(raw)}"
        )
    dims = struct.unpack(f">{ndims}I", raw)
    return dtype, dims, 4 + 4 * ndims


def _size_error(where: str, dims: tuple[int, ...], dtype: np.dtype[Any], expected: int, actual: str) -> DataError:
    return DataError(
        f"{where}: IDX header declares {_describe_dims(dims, dtype)} = {expected} payload bytes, "
        f"but the file holds {actual}; the file is truncated or corrupt: download it again"
    )


def _to_native(data: np.ndarray, dims: tuple[int, ...]) -> np.ndarray:
    native = data.dtype.newbyteorder("=")
    out = data if data.dtype.itemsize == 1 else data.astype(native)
    return out.reshape(dims)


def _read_raw(stream: io.BufferedReader, where: str, file_size: int) -> np.ndarray:
    dtype, dims, header = _parse_header(stream.read, where)
    expected = math.prod(dims) * dtype.itemsize
    actual = file_size - header
    if actual != expected:
        raise _size_error(where, dims, dtype, expected, f"{actual} bytes after the {header}-byte header")
    native = dtype.newbyteorder("=")
    out = np.empty(math.prod(dims), dtype=native)
    view = out.view(np.uint8).data
    filled = 0
    while filled < expected:
        n = stream.readinto(view[filled:])
        if not n:
            raise _size_error(where, dims, dtype, expected, f"only {filled} bytes when read")
        filled += n
    if dtype.itemsize > 1 and sys.byteorder == "little":
        out.byteswap(inplace=True)
    return out.reshape(dims)


def _read_gzip(stream: io.BufferedReader, where: str, file_size: int) -> np.ndarray:
    with gzip.GzipFile(fileobj=stream, mode="rb") as gz:
        dtype, dims, header = _parse_header(gz.read, where)
        expected = math.prod(dims) * dtype.itemsize
        if expected + header > file_size * _MAX_DEFLATE_RATIO + 1024:
            raise _size_error(
                where, dims, dtype, expected, f"{file_size} compressed bytes, which cannot inflate to that much"
            )
        # Read in bounded chunks so memory grows with the data actually present, not the header's claim.
        buf = bytearray()
        while len(buf) <= expected:
            chunk = gz.read(min(_CHUNK, expected + 1 - len(buf)))
            if not chunk:
                break
            buf += chunk
    if len(buf) != expected:
        actual = f"{len(buf)} bytes" if len(buf) < expected else f"more than {expected} bytes"
        raise _size_error(where, dims, dtype, expected, actual + f" after the {header}-byte header")
    return _to_native(np.frombuffer(buf, dtype=dtype), dims)


def read_idx(path: PathLike) -> np.ndarray:
    """Read an IDX file (raw or gzip-compressed) into a native-endian numpy array.

    Gzip is detected from the file's magic bytes, not its name. The header (``00 00 <type>
    <ndims>`` then one big-endian uint32 per dimension) is validated, and the payload must match
    the declared dims exactly: a truncated or oversized file raises `DataError` with the expected
    and actual byte counts, before any array of the declared size is allocated.

    Args:
        path: The file to read.

    Returns:
        An array of the declared shape: uint8, int8, int16, int32, float32 or float64.

    Example:
        >>> images = read_idx("t10k-images-idx3-ubyte.gz")  # doctest: +SKIP
        >>> images.shape, images.dtype  # doctest: +SKIP
        ((10000, 28, 28), dtype('uint8'))
    """
    where = os.fspath(path)
    try:
        stream = open(where, "rb")  # noqa: SIM115 - closed by the with block below
    except OSError as e:
        raise DataError(f"{where}: cannot open IDX file: {e.strerror or e}") from e
    with stream:
        file_size = os.fstat(stream.fileno()).st_size
        is_gzip = stream.read(2) == _GZIP_MAGIC
        stream.seek(0)
        if not is_gzip:
            return _read_raw(stream, where, file_size)
        try:
            return _read_gzip(stream, where, file_size)
        except (EOFError, zlib.error, gzip.BadGzipFile) as e:
            raise DataError(
                f"{where}: damaged gzip data ({e}); the file is truncated or corrupt: download it again"
            ) from e


def _find_file(directory: Path, names: list[str], what: str) -> Path:
    candidates = [n + suffix for n in names for suffix in ("", ".gz")]
    for name in candidates:
        if (directory / name).is_file():
            return directory / name
    raise DataError(
        f"{what} not found in {directory}; looked for: {', '.join(candidates)}; "
        "download the MNIST IDX files into that directory or pass the directory that holds them"
    )


def load_mnist(
    directory: PathLike,
    kind: Literal["t10k", "train"] = "t10k",
    flatten: bool = True,
    normalize: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Load MNIST (or a drop-in like Fashion-MNIST) from its IDX files in ``directory``.

    Looks for ``{kind}-images-idx3-ubyte`` and ``{kind}-labels-idx1-ubyte``, also with dots
    (``t10k-images.idx3-ubyte``) and with ``.gz``.

    Args:
        directory: Folder holding the files.
        kind: ``"t10k"`` (test set, 10,000 images) or ``"train"`` (60,000).
        flatten: ``(n, 784)`` rows for dense networks; otherwise ``(n, 1, 28, 28)`` images for convolutions.
        normalize: Scale pixels to ``[0, 1]``; otherwise float32 pixel values ``0..255``.

    Returns:
        ``(x, y)``: float32 images and int64 class labels.

    Example:
        >>> x, y = load_mnist("data/mnist", kind="t10k")  # doctest: +SKIP
        >>> x.shape, y.shape  # doctest: +SKIP
        ((10000, 784), (10000,))
    """
    if kind not in ("t10k", "train"):
        raise ConfigError(f"expected 't10k' or 'train', got {kind!r}", "kind")
    folder = Path(directory)
    if not folder.is_dir():
        raise DataError(f"MNIST directory {folder} does not exist or is not a directory")
    images_path = _find_file(folder, [f"{kind}-images-idx3-ubyte", f"{kind}-images.idx3-ubyte"], f"MNIST {kind} images")
    labels_path = _find_file(folder, [f"{kind}-labels-idx1-ubyte", f"{kind}-labels.idx1-ubyte"], f"MNIST {kind} labels")
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(
            f"{images_path}: expected uint8 images of shape (n, rows, cols), got {images.dtype} {images.shape}"
        )
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise DataError(
            f"{labels_path}: expected {images.shape[0]} labels (one per image in {images_path.name}), "
            f"got shape {labels.shape}; the two files do not belong together"
        )
    x = images.astype(np.float32)
    if normalize:
        x /= np.float32(255.0)
    n, rows, cols = images.shape
    x = x.reshape(n, rows * cols) if flatten else x.reshape(n, 1, rows, cols)
    return x, labels.astype(np.int64)


def load_digits(normalize: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 digits (1,797 images, 10 classes): a small real data set needing no download.

    Returns:
        ``(x, y)``: float32 ``(1797, 64)`` pixels (in ``[0, 1]`` when ``normalize``, else ``0..16``)
        and int64 labels.

    Example:
        >>> x, y = load_digits()
        >>> x.shape, float(x.max()), y.dtype
        ((1797, 64), 1.0, dtype('int64'))
    """
    from sklearn.datasets import load_digits as _sk_load_digits

    bunch = _sk_load_digits()
    x = np.asarray(bunch.data, dtype=np.float32)
    if normalize:
        x /= np.float32(16.0)
    return x, np.asarray(bunch.target, dtype=np.int64)


@dataclass(frozen=True, eq=False)
class CsvData:
    """What `read_csv` returns: features, labels and the names that give them meaning.

    Attributes:
        x: float32 features, one row per CSV record.
        y: int64 labels (class indices for string labels), or float32 for a float label column.
        class_names: The sorted class strings ``y`` indexes, or ``None`` for numeric labels.
        feature_names: The column names of ``x``, in order.
        label_name: The label column's name.
    """

    x: np.ndarray
    y: np.ndarray
    class_names: tuple[str, ...] | None
    feature_names: tuple[str, ...]
    label_name: str

    def to_dataset(self) -> DataSet:
        """The features and labels as a `DataSet`."""
        return DataSet(self.x, self.y)


def _row_hint(i: int, header: bool) -> str:
    return f"row {i + 1} (line {i + 1 + int(header)} of the file)"


def _resolve_column(col: str | int, names: list[str], what: str) -> str:
    if isinstance(col, bool) or not isinstance(col, (str, int)):
        raise ConfigError(f"expected a column name or index, got {col!r}", what)
    if isinstance(col, int):
        if not -len(names) <= col < len(names):
            raise DataError(f"{what}: column index {col} is out of range; the CSV has {len(names)} columns")
        return names[col]
    if col not in names:
        raise DataError(f"{what}: column {col!r} not found; available: {names}")
    return col


def _numeric_column(column: Any, name: str, header: bool) -> np.ndarray:
    """One feature column as float64, or a DataError naming the column and the first bad row."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if column.null_count:
        row = int(np.flatnonzero(pc.is_null(column).to_numpy(zero_copy_only=False))[0])
        raise DataError(f"column {name!r} has a missing value at {_row_hint(row, header)}; fill or drop it first")
    t = column.type
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t):
        values = np.asarray(column.to_numpy(), dtype=np.float64)
    elif pa.types.is_string(t) or pa.types.is_large_string(t):
        import pandas as pd

        text = column.to_numpy(zero_copy_only=False)
        values = pd.to_numeric(pd.Series(text), errors="coerce").to_numpy(dtype=np.float64)
        bad = np.flatnonzero(np.isnan(values))
        if bad.size:
            row = int(bad[0])
            raise DataError(
                f"column {name!r} has a non-numeric value {text[row]!r} at {_row_hint(row, header)}; "
                "features must be numbers: fix the value or leave the column out of feature_cols"
            )
    else:
        raise DataError(f"column {name!r} was read as {t}, not numbers; leave it out of feature_cols")
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise DataError(
            f"column {name!r} has the non-finite value {values[bad[0]]} at {_row_hint(int(bad[0]), header)}"
        )
    return values


def _label_column(column: Any, name: str, header: bool) -> tuple[np.ndarray, tuple[str, ...] | None]:
    import pyarrow as pa
    import pyarrow.compute as pc

    t = column.type
    if column.null_count:
        row = int(np.flatnonzero(pc.is_null(column).to_numpy(zero_copy_only=False))[0])
        raise DataError(f"label column {name!r} has a missing value at {_row_hint(row, header)}")
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        classes = sorted(pc.unique(column).to_pylist())
        index = pc.index_in(column, value_set=pa.array(classes, type=t))
        return np.asarray(index.to_numpy(), dtype=np.int64), tuple(classes)
    if pa.types.is_integer(t) or pa.types.is_boolean(t):
        return np.asarray(column.to_numpy(), dtype=np.int64), None
    if pa.types.is_floating(t):
        return _numeric_column(column, name, header).astype(np.float32), None
    raise DataError(f"label column {name!r} was read as {t}; expected integers, floats or class-name strings")


def read_csv(
    path: PathLike,
    label_col: str | int,
    feature_cols: list[str | int] | None = None,
    delimiter: str = ",",
    header: bool = True,
) -> CsvData:
    """Read a CSV file of numeric features and one label column, column-at-a-time through pyarrow.

    Integer labels stay integers; string labels become class indices into the sorted
    ``class_names``; float labels (regression targets) become float32. A missing or non-numeric
    feature value raises `DataError` naming the column and row.

    Args:
        path: The CSV file.
        label_col: The label column, by name or index (without a header, names are ``f0, f1, ...``).
        feature_cols: Feature columns by name or index; default every column but the label.
        delimiter: The field separator.
        header: Whether the first line holds column names.

    Example:
        >>> data = read_csv("iris.csv", label_col="species")  # doctest: +SKIP
        >>> data.x.shape, data.class_names  # doctest: +SKIP
        ((150, 4), ('setosa', 'versicolor', 'virginica'))
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    where = os.fspath(path)
    if not Path(where).is_file():
        raise DataError(f"{where}: no such CSV file")
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        raise ConfigError(f"expected a single character, got {delimiter!r}", "delimiter")
    try:
        table = pacsv.read_csv(
            where,
            read_options=pacsv.ReadOptions(autogenerate_column_names=not header),
            parse_options=pacsv.ParseOptions(delimiter=delimiter),
            convert_options=pacsv.ConvertOptions(strings_can_be_null=True),
        )
    except pa.ArrowInvalid as e:
        raise DataError(f"{where}: cannot parse as CSV: {e}") from e
    names = list(table.column_names)
    label = _resolve_column(label_col, names, "label_col")
    if feature_cols is None:
        features = [n for n in names if n != label]
    else:
        features = [_resolve_column(c, names, f"feature_cols[{i}]") for i, c in enumerate(feature_cols)]
        if label in features:
            raise ConfigError(f"the label column {label!r} is also listed as a feature; remove it", "feature_cols")
    if table.num_rows == 0:
        raise DataError(f"{where}: the CSV has no data rows")
    if not features:
        raise DataError(f"{where}: no feature columns: the CSV holds only the label column {label!r}")
    x = np.empty((table.num_rows, len(features)), dtype=np.float32)
    for j, name in enumerate(features):
        x[:, j] = _numeric_column(table.column(name), name, header)
    y, class_names = _label_column(table.column(label), label, header)
    return CsvData(x=x, y=y, class_names=class_names, feature_names=tuple(features), label_name=label)
