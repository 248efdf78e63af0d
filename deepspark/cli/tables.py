"""Labelled examples from a Parquet file or folder for the CLI, read through Arrow without starting Spark.

``deepspark train`` reads Parquet with Spark; ``evaluate`` reads the same files here, with the same
column conventions: features in one ``array<number>`` column, one Spark ML vector column or several
numeric columns; labels as class indices (integers, or whole-number doubles as Spark ML writes them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from deepspark.errors import DataError

PARQUET_SUFFIXES = (".parquet", ".pq")


def is_parquet(path: Path) -> bool:
    """A ``.parquet`` file, or a folder of them (what Spark's ``df.write.parquet`` leaves)."""
    if path.is_file():
        return path.suffix.lower() in PARQUET_SUFFIXES
    return path.is_dir() and any(p.suffix.lower() in PARQUET_SUFFIXES for p in path.iterdir())


def _width(column: Any, kind: str) -> int:
    import pyarrow.compute as pc

    col = column.combine_chunks()
    if kind == "array":
        lengths = pc.list_value_length(col)
    else:  # Spark ML vector: dense rows keep every value, sparse ones say their size
        kinds = col.field("type")
        lengths = pc.if_else(pc.equal(kinds, 1), pc.list_value_length(col.field("values")), col.field("size"))
    largest = pc.max(lengths).as_py()
    return int(largest or 0)


def read_parquet_examples(path: Path, features_col: list[str], label_col: str) -> tuple[np.ndarray, np.ndarray]:
    """Features (float32) and class-index labels (int64) of every row of a Parquet file or folder.

    Raises:
        DataError: a column is missing (the message lists the available ones), of an unsupported type,
            null, ragged, or the labels are not whole non-negative numbers.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from deepspark.data._arrow import ColumnSpec, record_batch_to_arrays

    schema = pq.read_schema(path) if path.is_file() else pq.ParquetDataset(path).schema
    missing = [c for c in [*features_col, label_col] if c not in schema.names]
    if missing:
        raise DataError(
            f"{path}: column(s) {missing} not found; available: {schema.names} (set --features-col/--label-col)"
        )
    table = pq.read_table(path, columns=[*features_col, label_col])
    if table.num_rows == 0:
        raise DataError(f"{path}: no rows to evaluate")
    first = table.schema.field(features_col[0]).type
    if len(features_col) > 1 or pa.types.is_integer(first) or pa.types.is_floating(first):
        kind, width = "columns", len(features_col)
    elif pa.types.is_struct(first):
        kind, width = "vector", _width(table.column(features_col[0]), "vector")
    else:
        kind, width = "array", _width(table.column(features_col[0]), "array")
    spec = ColumnSpec(
        features=tuple(features_col), feature_kind=kind, n_features=width,  # type: ignore[arg-type]
        label=label_col, label_kind="index",
    )
    xs, ys = [], []
    offset = 0
    for batch in table.combine_chunks().to_batches():
        x, y, _ = record_batch_to_arrays(batch, spec, np.float32, where=str(path), row_offset=offset)
        offset += batch.num_rows
        xs.append(x)
        ys.append(y)
    return np.concatenate(xs), np.concatenate([y for y in ys if y is not None])


__all__ = ["PARQUET_SUFFIXES", "is_parquet", "read_parquet_examples"]
