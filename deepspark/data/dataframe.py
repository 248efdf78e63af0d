"""Spark DataFrames -> numpy through Arrow: column resolution, balanced binary blocks, minibatch export.

Data leaves the JVM a column batch at a time (``mapInArrow`` / ``toArrow``) and is decoded with the
vectorized functions of `deepspark.data._arrow`; no Python code runs per row and nothing is pickled
that a flat buffer can carry. Executor-side code is top-level functions bound to one small frozen plan.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np
import pyarrow as pa

from deepspark._failures import worker_error
from deepspark.config._spec import suggest
from deepspark.errors import ConfigError, DataError

from ._arrow import (
    ColumnSpec,
    LabelKind,
    Piece,
    balanced_ranges,
    blocks_to_arrays,
    float_dtype,
    hash_route_keys,
    iter_slices,
    plan_pieces,
    raw_block_batch,
    record_batch_to_arrays,
)

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame
    from pyspark.sql.types import DataType

__all__ = [
    "BLOCK_SCHEMA",
    "ColumnSpec",
    "ColumnStats",
    "blocks_to_arrays",
    "describe_columns",
    "dataframe_to_arrays",
    "executor_error",
    "record_batch_to_arrays",
    "resolve_columns",
    "to_blocks",
]

BLOCK_SCHEMA = "worker int, part int, n long, x binary, y binary"
_PIECE_SCHEMA = "worker int, part int, block long, route int, n long, x binary, y binary"
_MINIBATCH_SCHEMA = "batch long, n long, x binary, y binary"
_SIDECAR = "_deepspark_export.json"
_EXPORT_FORMAT = "deepspark-minibatch-export"
_EXPORT_VERSION = 1
_MAX_BLOCK_BYTES = 1 << 30
Strategy = Literal["balanced", "spark_default", "keep"]


# --------------------------------------------------------------------------------------------------
# Schema -> ColumnSpec
# --------------------------------------------------------------------------------------------------

_SUPPORTED = "numeric columns (byte/short/int/long/float/double), array<number> or a Spark ML vector"


def _col(name: str) -> Column:
    from pyspark.sql import functions as F

    return F.col("`" + name.replace("`", "``") + "`")


def _is_numeric(dt: DataType) -> bool:
    from pyspark.sql import types as T

    return isinstance(dt, (T.ByteType, T.ShortType, T.IntegerType, T.LongType, T.FloatType, T.DoubleType))


def _is_vector(dt: DataType) -> bool:
    from pyspark.sql import types as T

    if not isinstance(dt, T.UserDefinedType):
        return False
    sql = dt.sqlType()
    return isinstance(sql, T.StructType) and sorted(sql.names) == ["indices", "size", "type", "values"]


def _kind(name: str, dt: DataType, role: str) -> Literal["array", "vector", "scalar"]:
    """How a column encodes numbers, or a DataError naming the type and what is supported."""
    from pyspark.sql import types as T

    if _is_vector(dt):
        return "vector"
    if isinstance(dt, T.ArrayType) and _is_numeric(dt.elementType):
        return "array"
    if _is_numeric(dt):
        return "scalar"
    hint = ""
    if isinstance(dt, T.DecimalType) or (isinstance(dt, T.ArrayType) and isinstance(dt.elementType, T.DecimalType)):
        hint = f"; cast it first, e.g. df.withColumn('{name}', F.col('{name}').cast('double'))"
    elif isinstance(dt, T.ArrayType) and isinstance(dt.elementType, T.ArrayType):
        hint = (
            f"; flatten nested arrays first, e.g. F.flatten('{name}'), or read them as sequences with a "
            "recurrent network (input_type=InputType.recurrent(F))"
        )
    elif isinstance(dt, T.StringType):
        hint = "; index strings first (pyspark.ml.feature.StringIndexer)"
    raise DataError(
        f"{role} column '{name}' has type {dt.simpleString()}, which deepspark cannot read; "
        f"supported: {_SUPPORTED}{hint}"
    )


def _field_type(df: DataFrame, name: object, role: str) -> DataType:
    if not isinstance(name, str) or not name:
        raise ConfigError(f"expected a column name, got {name!r}", role)
    fields = {f.name: f.dataType for f in df.schema.fields}
    if name not in fields:
        hint = suggest(name, fields)
        extra = f"; {hint}" if hint.startswith("did you mean") else ""
        raise DataError(f"{role} column '{name}' not found; available: {list(fields)}{extra}")
    return fields[name]


def _width_expr(name: str, kind: str) -> Column:
    from pyspark.sql import functions as F

    col = _col(name)
    if kind == "vector":
        from pyspark.ml.functions import vector_to_array

        return F.when(col.isNotNull(), F.size(vector_to_array(col)))
    return F.when(col.isNotNull(), F.size(col))


def _common_width(df: DataFrame, name: str, kind: str) -> tuple[int, int]:
    """The width most rows of an array/vector column have, and how many rows have it (ties: the larger width)."""
    from pyspark.sql import functions as F

    top = (
        df.select(_width_expr(name, kind).alias("w"))
        .groupBy("w")
        .count()
        .orderBy(F.desc("count"), F.desc("w"))
        .first()
    )
    return (0, 0) if top is None or top["w"] is None else (int(top["w"]), int(top["count"]))


@dataclass(frozen=True, slots=True)
class ColumnStats:
    """What `describe_columns`' single aggregate saw: row count (None when the data pass was skipped),
    the largest class index of ``"index"`` labels, and rows per input partition (``(partition id,
    rows)``, None when the pass could not tell them apart), which `to_blocks` takes instead of counting again."""

    rows: int | None
    label_max: float | None = None
    partition_rows: tuple[tuple[int, int], ...] | None = None


_Combine = Callable[[Iterable[Any]], Any]


def _spark_order(value: Any) -> tuple[bool, Any]:
    """Spark's sort order for aggregates: NaN above every number (Python's min/max would depend on order)."""
    return (isinstance(value, float) and value != value, value)


def _least(values: Iterable[Any]) -> Any:
    return min(values, key=_spark_order)


def _greatest(values: Iterable[Any]) -> Any:
    return max(values, key=_spark_order)


def _aggregate_by_partition(
    df: DataFrame, aggregates: list[tuple[str, Column, _Combine]]
) -> tuple[dict[str, Any], tuple[tuple[int, int], ...] | None]:
    """One JVM aggregate, grouped by input partition, folded into whole-frame values on the driver.

    Grouping by ``spark_partition_id()`` costs the same single pass as a global aggregate and also
    yields the rows of each input partition, which the balanced block layout needs: that saves
    `to_blocks` a second pass over the data. Rows held by the driver (a ``LocalRelation``) evaluate
    the partition id on the driver, so there the per-partition rows are not reported.
    """
    from pyspark.sql import functions as F

    exprs = [expr.alias(name) for name, expr, _ in aggregates]
    if _is_local_relation(df):
        row = df.agg(*exprs).first()
        return ({name: None if row is None else row[name] for name, _, _ in aggregates}, None)
    groups = df.groupBy(F.spark_partition_id().alias("_deepspark_partition")).agg(*exprs).collect()
    folded = {}
    for name, _, combine in aggregates:
        values = [g[name] for g in groups if g[name] is not None]
        folded[name] = combine(values) if values else None
    partition_rows = tuple(sorted((int(g["_deepspark_partition"]), int(g["rows"])) for g in groups))
    return folded, partition_rows


def describe_columns(
    df: DataFrame,
    features_col: str | Sequence[str],
    label_col: str | None,
    key_col: str | None = None,
    *,
    label_kind: LabelKind | None = None,
    expected_features: int | None = None,
    expected_label_values: int | None = None,
) -> tuple[ColumnSpec, ColumnStats]:
    """Inspect a DataFrame's schema and data once and describe how to read its features and labels.

    Features are one ``array<number>`` column, one Spark ML vector column (dense or sparse), or one
    or more numeric columns. One Spark aggregate (JVM only) counts rows and nulls and finds the
    smallest and largest width of array/vector columns, so empty data, nulls and ragged rows fail
    here, on the driver, before any training starts.

    Args:
        df: The DataFrame.
        features_col: A column name, or several numeric column names (one feature each).
        label_col: The label column, or None for unlabeled data.
        key_col: A column to carry along (ids for joining predictions back), or None. Nulls allowed.
        label_kind: Override the label encoding. By default integer columns are class indices
            (``"index"``), float/double columns regression targets (``"scalar_float"``) and
            array/vector columns ``"array"``. Spark ML keeps class labels as doubles: pass
            ``"index"`` for those (whole-number values are checked here).
        expected_features: For unlabeled reads (inference): trust this width and check the schema
            only, skipping the data pass. Executors still check every batch's widths and nulls, so bad
            rows fail at the action instead of here, and a lazy ``predict`` costs no extra job.
        expected_label_values: With ``expected_features``, the same for labeled reads: trust this many
            values per label (1 for index and scalar labels) and skip the data pass. The conversion's
            executors check every row; class indices are checked against ``to_blocks(label_classes=)``.

    Returns:
        The ColumnSpec for `to_blocks`, `record_batch_to_arrays` and friends, and what the same pass
        counted (rows, largest class index), so callers need no second pass over the data.

    Raises:
        DataError: a column is missing (the message lists the available ones), has an unsupported type,
            holds nulls, has rows of different widths, or the DataFrame is empty.

    Example:
        >>> spec = resolve_columns(df, "features", "label")  # doctest: +SKIP
        >>> spec.feature_kind, spec.n_features  # doctest: +SKIP
        ('vector', 784)
    """
    from pyspark.sql import functions as F

    names = [features_col] if isinstance(features_col, str) else list(features_col)
    if not names:
        raise ConfigError("expected at least one feature column", "features_col")
    kinds = [_kind(n, _field_type(df, n, "features"), "features") for n in names]
    if len(names) > 1 and any(k != "scalar" for k in kinds):
        bad = next(n for n, k in zip(names, kinds, strict=True) if k != "scalar")
        raise DataError(
            f"features column '{bad}' is an {kinds[names.index(bad)]} column; several feature columns must each be "
            "a numeric scalar (or assemble them first: pyspark.ml.feature.VectorAssembler)"
        )
    if len(set(names)) != len(names):
        raise DataError(f"features columns repeat a name: {names}")
    feature_kind: Literal["array", "vector", "columns"] = "columns" if kinds[0] == "scalar" else kinds[0]

    resolved_label: LabelKind = "none"
    label_source = "scalar"
    label_float = False
    if label_col is not None:
        if label_col in names:
            raise DataError(f"label column '{label_col}' is also a features column; pick different columns")
        ltype = _field_type(df, label_col, "label")
        label_source = _kind(label_col, ltype, "label")
        auto: LabelKind
        from pyspark.sql import types as T

        if label_source != "scalar":
            auto = "array"
        elif isinstance(ltype, (T.FloatType, T.DoubleType)):
            auto = "scalar_float"
            label_float = True
        else:
            auto = "index"
        resolved_label = auto if label_kind is None else label_kind
        if resolved_label not in get_args(LabelKind) or resolved_label == "none":
            raise ConfigError(f"expected 'index', 'array' or 'scalar_float', got {label_kind!r}", "label_kind")
        if (resolved_label == "array") != (label_source != "scalar"):
            raise DataError(
                f"label column '{label_col}' has type {ltype.simpleString()}, which cannot hold {resolved_label!r} "
                "labels: 'array' needs an array/vector column, 'index' and 'scalar_float' a numeric one"
            )
    elif label_kind not in (None, "none"):
        raise ConfigError(f"label_kind={label_kind!r} needs a label_col", "label_kind")
    if key_col is not None:
        _field_type(df, key_col, "key")
    if expected_features is not None and (label_col is None or expected_label_values is not None):
        if feature_kind == "columns" and len(names) != expected_features:
            raise DataError(
                f"features {names} are {len(names)} columns but {expected_features} values per row are expected"
            )
        label_values = {"none": 0, "array": expected_label_values or 0}.get(resolved_label, 1)
        schema_only = ColumnSpec(
            features=tuple(names),
            feature_kind=feature_kind,
            n_features=expected_features,
            label=label_col,
            label_kind=resolved_label,
            n_label_values=label_values,
            key=key_col,
        )
        return schema_only, ColumnStats(rows=None)

    checked = [*names, *([label_col] if label_col is not None else [])]
    aggregates: list[tuple[str, Column, _Combine]] = [("rows", F.count(F.lit(1)), sum)]
    aggregates += [(f"nonnull_{i}", F.count(_col(c)), sum) for i, c in enumerate(checked)]
    widths: dict[str, tuple[str, str]] = {}
    if feature_kind != "columns":
        widths[names[0]] = ("feature", feature_kind)
    if label_col is not None and resolved_label == "array":
        widths[label_col] = ("label", label_source)
    for i, (c, (_, kind)) in enumerate(widths.items()):
        w = _width_expr(c, kind)
        aggregates += [(f"wmin_{i}", F.min(w), _least), (f"wmax_{i}", F.max(w), _greatest)]
    if label_col is not None and resolved_label == "index":
        lc = _col(label_col)
        aggregates += [("label_min", F.min(lc), _least), ("label_max", F.max(lc), _greatest)]
        if label_float:  # x % 1 (not floor, which overflows a long under ANSI) is NaN for NaN and inf
            fractional = F.isnan(lc) | F.isnan(lc % 1) | ((lc % 1) != 0)
            aggregates.append(("label_fractional", F.sum(F.when(fractional, 1).otherwise(0)), sum))
    stats, partition_rows = _aggregate_by_partition(df, aggregates)
    rows = int(stats["rows"] or 0)
    if rows == 0:
        raise DataError("the DataFrame has no rows; there is nothing to train or predict on")
    for i, c in enumerate(checked):
        nulls = rows - int(stats[f"nonnull_{i}"])
        if nulls:
            raise DataError(
                f"column '{c}' has {nulls} null value(s) in {rows} rows; drop or impute them first, "
                f"e.g. df.dropna(subset=['{c}'])"
            )
    found: dict[str, int] = {}
    for i, (c, (what, kind)) in enumerate(widths.items()):
        lo, hi = int(stats[f"wmin_{i}"]), int(stats[f"wmax_{i}"])
        if lo != hi:
            width, count = _common_width(df, c, kind)  # a second job, on this error path only
            raise DataError(
                f"column '{c}': {what}s have {lo}..{hi} values per row; every row needs the same width, most have "
                f"{width} ({count} of {rows} rows): filter or pad the others, e.g. keep F.size('{c}') == {width}"
            )
        if lo == 0:
            raise DataError(f"column '{c}': rows have 0 {what} values; every row needs at least one")
        found[c] = lo
    if label_col is not None and resolved_label == "index":
        if label_float and int(stats["label_fractional"] or 0):
            raise DataError(
                f"label column '{label_col}' has {int(stats['label_fractional'])} value(s) that are not whole numbers; "
                "index labels are class indices 0..C-1 (use label_kind='scalar_float' for regression targets)"
            )
        if float(stats["label_min"]) < 0:
            raise DataError(
                f"label column '{label_col}' has negative values (min {stats['label_min']}); class indices are 0..C-1"
            )
    spec = ColumnSpec(
        features=tuple(names),
        feature_kind=feature_kind,
        n_features=len(names) if feature_kind == "columns" else found[names[0]],
        label=label_col,
        label_kind=resolved_label,
        n_label_values={"none": 0, "array": found.get(label_col or "", 0)}.get(resolved_label, 1),
        key=key_col,
    )
    label_max = float(stats["label_max"]) if label_col is not None and resolved_label == "index" else None
    return spec, ColumnStats(rows=rows, label_max=label_max, partition_rows=partition_rows)


def resolve_columns(
    df: DataFrame,
    features_col: str | Sequence[str],
    label_col: str | None,
    key_col: str | None = None,
    *,
    label_kind: LabelKind | None = None,
    expected_features: int | None = None,
) -> ColumnSpec:
    """The ``ColumnSpec`` part of `describe_columns` (same checks, same single data pass)."""
    return describe_columns(
        df, features_col, label_col, key_col, label_kind=label_kind, expected_features=expected_features
    )[0]


# --------------------------------------------------------------------------------------------------
# Executor side: top-level functions, each bound to one frozen plan
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _PiecePlan:
    """What every input partition emits: its expected row count and its pieces (balanced layout)."""

    spec: ColumnSpec
    dtype: str
    counts: tuple[tuple[int, int], ...]
    pieces: tuple[tuple[int, tuple[Piece, ...]], ...]
    routes: tuple[int, ...]
    aliases: tuple[tuple[str, str], ...] = ()
    classes: int | None = None


@dataclass(frozen=True, slots=True)
class _PartitionPlan:
    """Blocks of whole partitions (spark_default layout), at most ``max_rows`` rows each."""

    spec: ColumnSpec
    dtype: str
    max_rows: int
    aliases: tuple[tuple[str, str], ...] = ()
    classes: int | None = None


def _partition_id() -> int:
    from pyspark import TaskContext

    context = TaskContext.get()
    return 0 if context is None else context.partitionId()


def _check_classes(y: np.ndarray | None, spec: ColumnSpec, classes: int | None, where: str, row_offset: int) -> None:
    """Index labels must name one of ``classes`` outputs (the network's); None: not checked here."""
    if classes is None or y is None or spec.label_kind != "index" or not len(y):
        return
    beyond = y >= classes
    if beyond.any():
        row = int(np.flatnonzero(beyond)[0])
        raise DataError(
            f"column '{spec.label}', row {row_offset + row} of {where}: class index {int(y[row])} is out of range "
            f"for {classes} output classes (valid 0..{classes - 1})"
        )


def _decoded(
    batches: Iterator[pa.RecordBatch],
    spec: ColumnSpec,
    dtype: str,
    where: str,
    seen: list[int],
    aliases: tuple[tuple[str, str], ...],
    classes: int | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    for batch in batches:
        try:
            x, y, _ = record_batch_to_arrays(batch, spec, dtype, where=where, row_offset=seen[0], copy=False)
            _check_classes(y, spec, classes, where, seen[0])
        except DataError as e:
            if not aliases:
                raise
            message = str(e)
            for alias, original in aliases:
                message = message.replace(f"'{alias}'", f"'{original}'")
            raise DataError(message) from e
        seen[0] += batch.num_rows
        yield x, y


def _joined(chunks: list[np.ndarray]) -> np.ndarray:
    return chunks[0] if len(chunks) == 1 else np.concatenate(chunks)


def _emit_pieces(plan: _PiecePlan, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """mapInArrow body: decode this input partition and emit its pieces, tagged with worker, part and route."""
    pid = _partition_id()
    expected = dict(plan.counts).get(pid, 0)
    pieces = dict(plan.pieces).get(pid, ())
    seen = [0]
    dt = float_dtype(plan.dtype)
    decoded = _decoded(batches, plan.spec, plan.dtype, f"input partition {pid}", seen, plan.aliases, plan.classes)
    for piece, xs, ys in iter_slices(decoded, pieces):
        x = _joined(xs).astype(dt, copy=False)
        y = _joined(ys) if ys else np.zeros(0, np.uint8)
        columns = {"worker": piece.worker, "part": piece.part, "block": piece.block, "route": plan.routes[piece.worker]}
        yield raw_block_batch(columns, len(x), x, y)
    if seen[0] != expected:
        raise DataError(
            f"input partition {pid} has {seen[0]} rows now but had {expected} when counted: the DataFrame is not "
            "deterministic (sample(), rand(), an unordered source); persist() it, or checkpoint it, before converting"
        )


def _emit_partition_blocks(plan: _PartitionPlan, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """mapInArrow body: this partition's rows as blocks of at most ``max_rows`` rows, worker = partition id."""
    pid = _partition_id()
    seen = [0]
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    buffered = part = 0
    dt = float_dtype(plan.dtype)

    def flush() -> pa.RecordBatch:
        x = _joined(xs).astype(dt, copy=False)
        y = _joined(ys) if ys else np.zeros(0, np.uint8)
        return raw_block_batch({"worker": pid, "part": part}, len(x), x, y)

    for x, y in _decoded(batches, plan.spec, plan.dtype, f"partition {pid}", seen, plan.aliases, plan.classes):
        offset = 0
        while offset < len(x):
            take = min(plan.max_rows - buffered, len(x) - offset)
            xs.append(x[offset : offset + take])
            if y is not None:
                ys.append(y[offset : offset + take])
            buffered += take
            offset += take
            if buffered == plan.max_rows:
                yield flush()
                xs, ys, buffered, part = [], [], 0, part + 1
    if buffered:
        yield flush()


def _merge_blocks(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """mapInArrow body: concatenate the byte pieces of each block (sorted by block, part) into one row each.

    The loop runs once per piece (a few per minibatch), never per example; bytes are joined as bytes.
    """
    current: int | None = None
    n = 0
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    for batch in batches:
        blocks = batch.column("block").to_numpy()
        counts = batch.column("n").to_numpy()
        xcol, ycol = batch.column("x"), batch.column("y")
        for i in range(batch.num_rows):
            block = int(blocks[i])
            if current is not None and block != current:
                yield raw_block_batch({"batch": current}, n, _joined(xs), _joined(ys))
                n, xs, ys = 0, [], []
            current = block
            n += int(counts[i])
            xs.append(np.frombuffer(xcol[i].as_buffer(), dtype=np.uint8))
            ys.append(np.frombuffer(ycol[i].as_buffer(), dtype=np.uint8))
    if current is not None:
        yield raw_block_batch({"batch": current}, n, _joined(xs), _joined(ys))


executor_error = worker_error
"""The deepspark error a failed Spark job carries, rebuilt on the driver (``deepspark._failures.worker_error``)."""


# --------------------------------------------------------------------------------------------------
# Driver side
# --------------------------------------------------------------------------------------------------


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"expected a positive int, got {value!r}", name)
    return value


def _workers(df: DataFrame, num_partitions: int | None) -> int:
    if num_partitions is None:
        return max(1, int(df.sparkSession.sparkContext.defaultParallelism))
    return _positive_int(num_partitions, "num_partitions")


def _row_bytes(spec: ColumnSpec, dtype: np.dtype[Any]) -> int:
    label = {"none": 0, "index": 8}.get(spec.label_kind, spec.label_width * dtype.itemsize)
    return spec.row_width * dtype.itemsize + label


def _partition_counts(df: DataFrame) -> dict[int, int]:
    """Rows per input partition, from one JVM aggregate (no Python workers involved)."""
    from pyspark.sql import functions as F

    if _is_local_relation(df):  # the optimizer evaluates spark_partition_id() on the driver there: always 0
        rows = df.mapInArrow(_count_rows, "p int, count long").collect()
    else:
        rows = df.groupBy(F.spark_partition_id().alias("p")).count().collect()
    return {int(r["p"]): int(r["count"]) for r in rows}


def _is_local_relation(df: DataFrame) -> bool:
    """Whether ``df`` is rows held by the driver (``createDataFrame`` of a list or a pandas frame)."""
    try:
        plan = df._jdf.queryExecution().optimizedPlan()
        return str(plan.getClass().getSimpleName()) == "LocalRelation"
    except Exception:  # Spark Connect or a changed internal API: the JVM aggregate is right everywhere else
        return False


def _is_persisted(df: DataFrame) -> bool:
    """Whether ``df`` is persisted, so its partitions stay the same from one job to the next."""
    level = df.storageLevel
    return bool(level.useMemory or level.useDisk)


def _count_rows(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """mapInArrow body: this partition's id and row count."""
    n = sum(b.num_rows for b in batches)
    yield pa.record_batch([pa.array([_partition_id()], pa.int32()), pa.array([n], pa.int64())], names=["p", "count"])


def _arrow_safe(df: DataFrame, spec: ColumnSpec) -> tuple[DataFrame, ColumnSpec, tuple[tuple[str, str], ...]]:
    """Select the spec's columns (keys dropped); names mapInArrow cannot resolve (dots, backticks) get aliases."""
    spec = replace(spec, key=None)
    aliases = {c: f"_deepspark_col{i}" if "." in c or "`" in c else c for i, c in enumerate(spec.columns)}
    selected = df.select(*[_col(c).alias(a) for c, a in aliases.items()])
    renamed = replace(
        spec,
        features=tuple(aliases[c] for c in spec.features),
        label=None if spec.label is None else aliases[spec.label],
    )
    return selected, renamed, tuple((a, c) for c, a in aliases.items() if a != c)


def _pieces_frame(
    df: DataFrame,
    spec: ColumnSpec,
    dtype: np.dtype[Any],
    blocks: list[tuple[int, int, int]],
    counts: dict[int, int],
    workers: int,
    aliases: tuple[tuple[str, str], ...],
    stable: bool,
    classes: int | None = None,
) -> DataFrame:
    """Each input partition emits its pieces; then worker k's pieces move alone into partition k.

    When no piece has to move (``df`` already has W partitions and partition k holds exactly worker k's
    rows, as after ``repartition(W)`` of N rows with W dividing N) and ``df``'s partitions are fixed
    (``stable``: a persisted frame; adaptive execution may lay out anything else differently in the next
    job) the shuffle is skipped: it is most of the conversion's cost (about half a second per 190 MB on
    local[2]).
    """
    pieces = plan_pieces(counts, blocks)
    plan = _PiecePlan(
        spec=spec,
        dtype=dtype.name,
        counts=tuple(sorted(counts.items())),
        pieces=tuple(sorted(pieces.items())),
        routes=tuple(hash_route_keys(workers)),
        aliases=aliases,
        classes=classes,
    )
    emitted = df.mapInArrow(partial(_emit_pieces, plan), _PIECE_SCHEMA)
    in_place = all(piece.worker == pid for pid, own in pieces.items() for piece in own)
    if stable and in_place and df.rdd.getNumPartitions() == workers:
        return emitted
    return emitted.repartition(workers, "route")


def to_blocks(
    df: DataFrame,
    spec: ColumnSpec,
    num_partitions: int | None = None,
    strategy: Strategy = "balanced",
    dtype: str = "float32",
    *,
    max_block_bytes: int = 8 << 20,
    partition_rows: Mapping[int, int] | None = None,
    label_classes: int | None = None,
) -> DataFrame:
    """Turn a DataFrame into per-worker binary blocks: partition k holds worker k's examples as raw bytes.

    The result has schema ``worker int, part int, n long, x binary, y binary``: each row is a block of
    ``n`` consecutive examples, ``x`` their features (little-endian ``dtype``, row-major ``(n,
    n_features)``) and ``y`` their labels (int64 class indices, or ``dtype`` ``(n, k)`` / ``(n, 1)``, or
    empty without labels). Partition k holds exactly the rows with ``worker == k``, in ``part`` order;
    `blocks_to_arrays` turns them back into numpy on the executor. Blocks stay under
    ``max_block_bytes``, so a worker may hold several; Row overhead is one object per block. A block is
    one row in Spark's shuffle, which the JVM holds whole per running task (with a write buffer that
    doubles as it grows): 64 MB blocks ran a 1 GB driver heap out of memory converting 60,000 MNIST rows
    on ``local[2]``, hence the 8 MB default.

    ``"balanced"`` counts rows per input partition once (a JVM aggregate), then worker k receives
    exactly rows ``[k*N//W, (k+1)*N//W)`` of the global order (partition id, then row): every worker
    holds N//W or N//W+1 examples. Each input partition emits slices tagged with their worker and one
    shuffle routes them (on keys chosen so no two workers share a partition). The DataFrame must give
    the same rows on both passes: persist it first if it is not deterministic (a mismatch raises
    DataError). When a persisted input's partitions already hold exactly those rows, nothing is shuffled.
    ``"spark_default"`` is ``df.repartition(W)`` (Spark's round-robin, sizes vary) with one
    block per partition, for comparison. ``"keep"`` converts the partitions as they are, without a
    shuffle (worker = input partition id; ``num_partitions`` is ignored; empty partitions stay empty).

    The result is lazy: persist it to convert once and train for many epochs.

    Args:
        df: The DataFrame.
        spec: From `resolve_columns`.
        num_partitions: Workers W; None uses ``sparkContext.defaultParallelism`` (the task slots).
        strategy: ``"balanced"``, ``"spark_default"`` or ``"keep"``.
        dtype: ``"float32"`` or ``"float64"`` for features and float labels.
        max_block_bytes: Largest block (bytes of x plus y); default 8 MiB, at most 1 GiB.
        partition_rows: Rows per input partition of ``df`` when already known (`describe_columns`
            reports them as ``ColumnStats.partition_rows``): balanced then skips its own counting pass.
            The conversion still checks every partition's rows against them.
        label_classes: The network's number of classes: the executors refuse index labels beyond it
            (a DataError naming the row), for specs made without a data pass. None: not checked.

    Returns:
        The block DataFrame: W partitions (``"keep"``: as many as ``df``).

    Raises:
        DataError: fewer rows than workers (balanced). Bad values (NaN, nulls, ragged rows) raise
            DataError inside the Spark job; `executor_error` recovers it from the job's exception.

    Example:
        >>> spec = resolve_columns(df, "features", "label")  # doctest: +SKIP
        >>> blocks = to_blocks(df, spec, num_partitions=4).persist()  # doctest: +SKIP
        >>> blocks.rdd.mapPartitions(lambda rows: [len(blocks_to_arrays(rows, spec)[0])]).collect()  # doctest: +SKIP
        [250, 250, 250, 250]
    """
    if strategy not in get_args(Strategy):
        raise ConfigError(f"expected 'balanced', 'spark_default' or 'keep', got {strategy!r}", "strategy")
    dt = float_dtype(dtype)
    workers = _workers(df, num_partitions)
    max_bytes = _positive_int(max_block_bytes, "max_block_bytes")
    if max_bytes > _MAX_BLOCK_BYTES:
        raise ConfigError(
            f"expected at most {_MAX_BLOCK_BYTES} (1 GiB, under Spark's 2 GiB row limit), got {max_bytes}",
            "max_block_bytes",
        )
    max_rows = max(1, max_bytes // _row_bytes(spec, dt))
    selected, spec, aliases = _arrow_safe(df, spec)  # keys do not travel in blocks
    if strategy != "balanced":
        plan = _PartitionPlan(spec=spec, dtype=dt.name, max_rows=max_rows, aliases=aliases, classes=label_classes)
        source = selected.repartition(workers) if strategy == "spark_default" else selected
        return source.mapInArrow(partial(_emit_partition_blocks, plan), BLOCK_SCHEMA)
    counts = dict(partition_rows) if partition_rows is not None else _partition_counts(selected)
    total = sum(counts.values())
    if total < workers:
        raise DataError(
            f"{total} row(s) cannot feed {workers} workers: every worker needs at least one example; "
            "lower num_partitions or add data"
        )
    blocks = [
        (k, s, min(s + max_rows, stop))
        for k, (start, stop) in enumerate(balanced_ranges(total, workers))
        for s in range(start, stop, max_rows)
    ]
    pieces = _pieces_frame(selected, spec, dt, blocks, counts, workers, aliases, _is_persisted(df), label_classes)
    return pieces.select("worker", "part", "n", "x", "y")


def dataframe_to_arrays(
    df: DataFrame,
    features_col: str | Sequence[str] = "features",
    label_col: str | None = "label",
    dtype: str = "float32",
    *,
    label_kind: LabelKind | None = None,
    spec: ColumnSpec | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Collect a (small) DataFrame to the driver as numpy features and labels, through ``toArrow()``.

    Args:
        df: The DataFrame; all of it is collected, so keep it small (tests, evaluation samples).
        features_col: As in `resolve_columns`.
        label_col: As in `resolve_columns`; None for features only.
        dtype: ``"float32"`` or ``"float64"``.
        label_kind: As in `resolve_columns`.
        spec: A ColumnSpec from `resolve_columns`, to skip resolving again (the column arguments are then ignored).

    Returns:
        ``(x, y)`` as `record_batch_to_arrays` returns them, in the DataFrame's row order.

    Example:
        >>> x, y = dataframe_to_arrays(df, "features", "label")  # doctest: +SKIP
    """
    dt = float_dtype(dtype)
    if spec is None:
        spec = resolve_columns(df, features_col, label_col, label_kind=label_kind)
    spec = replace(spec, key=None)
    table = df.select(*[_col(c) for c in spec.columns]).toArrow()
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    offset = 0
    for batch in table.to_batches():
        x, y, _ = record_batch_to_arrays(
            batch, spec, dt, where="the collected DataFrame", row_offset=offset, copy=False
        )
        offset += batch.num_rows
        xs.append(x)
        if y is not None:
            ys.append(y)
    x_all = np.concatenate(xs) if xs else np.zeros((0, spec.row_width), dt)
    return x_all, (np.concatenate(ys) if ys else None)
