"""Minibatch export: fixed-size minibatches written to Parquet once, read back for training."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from deepspark._failures import spark_failures
from deepspark.errors import ConfigError, DataError, StorageError

from ._arrow import ColumnSpec, float_dtype
from .dataframe import (  # the pieces the export shares with to_blocks
    _EXPORT_FORMAT,
    _EXPORT_VERSION,
    _MINIBATCH_SCHEMA,
    _SIDECAR,
    _arrow_safe,
    _is_persisted,
    _merge_blocks,
    _partition_counts,
    _pieces_frame,
    _positive_int,
    _workers,
    resolve_columns,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


@dataclass(frozen=True, kw_only=True, slots=True)
class ExportInfo:
    """What a minibatch export holds; stored as ``_deepspark_export.json`` next to its Parquet files.

    Attributes:
        path: The export directory.
        spec: The ColumnSpec the minibatches were made with.
        batch_size: Examples per minibatch; every minibatch is full except the last one.
        n_examples: Examples in all minibatches.
        n_batches: Number of minibatches (Parquet rows).
        dtype: Feature dtype of the ``x`` bytes (``"float32"``/``"float64"``).
    """

    path: str
    spec: ColumnSpec
    batch_size: int
    n_examples: int
    n_batches: int
    dtype: str

    def to_json(self) -> str:
        """The sidecar file's JSON text (the path is not stored: it is where the file is)."""
        return json.dumps(
            {
                "format": _EXPORT_FORMAT,
                "format_version": _EXPORT_VERSION,
                "byte_order": "little",
                "spec": self.spec.to_dict(),
                "n_features": self.spec.n_features,
                "batch_size": self.batch_size,
                "n_examples": self.n_examples,
                "n_batches": self.n_batches,
                "dtype": self.dtype,
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str | bytes, path: str) -> ExportInfo:
        """Parse a sidecar; anything that is not a deepspark export of a known version raises DataError."""
        where = f"{path}/{_SIDECAR}"
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as e:
            raise DataError(f"{where} is not valid JSON ({e}); the export is damaged: export it again") from e
        if not isinstance(data, dict) or data.get("format") != _EXPORT_FORMAT:
            raise DataError(f"{where} does not describe a deepspark minibatch export")
        if data.get("format_version") != _EXPORT_VERSION:
            raise DataError(
                f"{where}: format_version {data.get('format_version')!r} is not supported (this deepspark reads "
                f"{_EXPORT_VERSION}); export it again with this version"
            )
        try:
            spec = ColumnSpec.from_dict(data.get("spec"))
            dtype = float_dtype(data.get("dtype")).name
            ints: dict[str, int] = {}
            for key in ("batch_size", "n_examples", "n_batches"):
                value = data.get(key)
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise ConfigError(f"expected a non-negative int, got {value!r}", key)
                ints[key] = value
        except ConfigError as e:
            raise DataError(f"{where}: {e}") from e
        return cls(path=path, spec=spec, dtype=dtype, **ints)


def _hadoop_path(spark: SparkSession, path: str) -> tuple[Any, Any, Any]:
    """(FileSystem, Path, jvm) for a path, through Spark's Hadoop configuration (local, HDFS, S3, ...)."""
    jvm = spark.sparkContext._jvm
    if jvm is None:
        raise StorageError(f"cannot reach the JVM to access {path!r}; a classic (non-Connect) SparkSession is needed")
    jpath = jvm.org.apache.hadoop.fs.Path(path)
    return jpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), jpath, jvm


def _java_message(e: Exception) -> str:
    java = getattr(e, "java_exception", None)
    return str(java.toString()) if java is not None else str(e).splitlines()[0]


def _prepare_export_dir(spark: SparkSession, path: str, overwrite: bool) -> None:
    try:
        fs, jpath, _ = _hadoop_path(spark, path)
        if fs.exists(jpath) and not overwrite:
            raise StorageError(f"export path {path!r} already exists; pass overwrite=True to replace it")
        if not fs.mkdirs(jpath):
            raise StorageError(f"cannot create the export directory {path!r}")
    except StorageError:
        raise
    except Exception as e:
        raise StorageError(f"cannot create the export directory {path!r}: {_java_message(e)}") from e


def export_minibatches(
    df: DataFrame,
    path: str,
    batch_size: int,
    features_col: str | Sequence[str] = "features",
    label_col: str | None = "label",
    spec: ColumnSpec | None = None,
    *,
    num_partitions: int | None = None,
    dtype: str = "float32",
    overwrite: bool = False,
) -> ExportInfo:
    """Write a DataFrame once as fixed-size minibatches in Parquet, for many fast epochs later.

    Each Parquet row is one minibatch: ``batch`` (its index), ``n``, ``x`` and ``y`` as little-endian
    bytes (the block layout of `to_blocks`). Minibatch j holds global rows ``[j*B, (j+1)*B)`` (global
    order: input partition, then row), so every minibatch is full except the very last one; pieces
    that straddle input partitions are joined after one shuffle. Minibatches are spread over
    ``num_partitions`` files in contiguous runs. ``_deepspark_export.json`` records the ColumnSpec,
    dtype, batch size and counts; it is written last, so a failed export is not mistaken for one.

    Args:
        df: The DataFrame (read twice: counted, then written; persist it if it is not deterministic).
        path: Export directory (any filesystem Spark can write: local, HDFS, S3...).
        batch_size: Examples per minibatch.
        features_col: As in `resolve_columns` (ignored when ``spec`` is given).
        label_col: As in `resolve_columns` (ignored when ``spec`` is given).
        spec: A ColumnSpec from `resolve_columns`, to skip resolving again.
        num_partitions: Output partitions (files); None uses ``defaultParallelism``.
        dtype: ``"float32"`` or ``"float64"``.
        overwrite: Replace an existing directory at ``path``.

    Returns:
        The ExportInfo also stored in the sidecar.

    Raises:
        StorageError: the path exists (without ``overwrite``) or cannot be created.
        DataError: the data is unusable (see `resolve_columns`, `record_batch_to_arrays`).

    Example:
        >>> info = export_minibatches(df, "/data/mnist-b64", 64)  # doctest: +SKIP
        >>> batches, info = read_exported(spark, "/data/mnist-b64")  # doctest: +SKIP
    """
    size = _positive_int(batch_size, "batch_size")
    dt = float_dtype(dtype)
    if spec is None:
        spec = resolve_columns(df, features_col, label_col)
    spec = replace(spec, key=None)  # keys are not exported
    spark = df.sparkSession
    _prepare_export_dir(spark, path, overwrite)
    selected, renamed, aliases = _arrow_safe(df, spec)
    counts = _partition_counts(selected)
    total = sum(counts.values())
    if total == 0:
        raise DataError("the DataFrame has no rows; there is nothing to export")
    n_batches = math.ceil(total / size)
    workers = min(_workers(df, num_partitions), n_batches)
    blocks = [(j * workers // n_batches, j * size, min((j + 1) * size, total)) for j in range(n_batches)]
    pieces = _pieces_frame(selected, renamed, dt, blocks, counts, workers, aliases, _is_persisted(df))
    merged = pieces.sortWithinPartitions("block", "part").mapInArrow(_merge_blocks, _MINIBATCH_SCHEMA)
    with spark_failures("exporting minibatches"):
        merged.write.mode("overwrite").parquet(path)
    info = ExportInfo(path=path, spec=spec, batch_size=size, n_examples=total, n_batches=n_batches, dtype=dt.name)
    try:
        fs, jpath, jvm = _hadoop_path(spark, path)
        out = fs.create(jvm.org.apache.hadoop.fs.Path(jpath, _SIDECAR), True)
        try:
            out.write(bytearray(info.to_json().encode()))
        finally:
            out.close()
    except Exception as e:
        raise StorageError(f"cannot write {path}/{_SIDECAR}: {_java_message(e)}") from e
    return info


def read_exported(spark: SparkSession, path: str) -> tuple[DataFrame, ExportInfo]:
    """Open a minibatch export: a DataFrame with one row per minibatch (``batch, n, x, y``) and its ExportInfo.

    Decode a row (or a partition's rows) with ``blocks_to_arrays(rows, info.spec, info.dtype)``.

    Raises:
        DataError: ``path`` is not a deepspark export (no or a foreign ``_deepspark_export.json``).
        StorageError: the sidecar cannot be read.

    Example:
        >>> batches, info = read_exported(spark, "/data/mnist-b64")  # doctest: +SKIP
        >>> x, y = blocks_to_arrays([batches.first()], info.spec, info.dtype)  # doctest: +SKIP
    """
    try:
        fs, jpath, jvm = _hadoop_path(spark, path)
        sidecar = jvm.org.apache.hadoop.fs.Path(jpath, _SIDECAR)
        exists = bool(fs.exists(sidecar))
    except Exception as e:
        raise StorageError(f"cannot access {path!r}: {_java_message(e)}") from e
    if not exists:
        raise DataError(
            f"{path!r} is not a deepspark minibatch export (no {_SIDECAR}); write one with export_minibatches()"
        )
    try:
        stream = fs.open(sidecar)
        try:
            text = bytes(stream.readAllBytes())
        finally:
            stream.close()
    except Exception as e:
        raise StorageError(f"cannot read {path}/{_SIDECAR}: {_java_message(e)}") from e
    info = ExportInfo.from_json(text, path)
    frame = spark.read.parquet(path)
    missing = [c for c in ("batch", "n", "x", "y") if c not in frame.columns]
    if missing:
        raise DataError(f"{path!r}: the Parquet files lack column(s) {missing}; the export is damaged: export it again")
    return frame, info


__all__ = ["ExportInfo", "export_minibatches", "read_exported"]
