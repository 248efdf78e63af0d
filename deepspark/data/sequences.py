"""Variable-length sequences in DataFrames: describe an ``array<array<float>>`` column for recurrent networks.

A sequence example is one row whose features column holds one inner array per time step (any number
of steps; every step the same width). Labels are one per sequence (a class index, a one-hot/vector, a
regression target: for ``LastTimeStep`` + ``Output`` networks) or one per step (``array<number>`` class
indices or ``array<array<number>>`` vectors: for ``RnnOutput`` networks). Sequences are right-padded to
the longest one and carry a features mask, and per-step labels their own labels mask (DL4J's masking);
``LSTM``/``GRU`` layers pack by the mask so padding never reaches the hidden state.

`describe_sequences` is the driver side: one Spark aggregate (JVM only) checks nulls, lengths and
widths and finds the padding length. The executors decode Arrow batches with
`deepspark.data._sequence_arrow` (vectorized over list offsets) and `unpack` wire rows into arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np

from deepspark.data._arrow import SEQUENCE_LABELS, ColumnSpec, LabelKind
from deepspark.data._sequence_arrow import unpack
from deepspark.data.dataframe import ColumnStats, _col, _field_type, _is_numeric, _is_vector
from deepspark.errors import ConfigError, DataError

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame
    from pyspark.sql.types import DataType

__all__ = ["describe_sequences", "is_sequence_type", "sequence_label_kind", "sequences_to_arrays", "unpack"]

_Depth = Literal[0, 1, 2]


def _depth(dt: DataType) -> _Depth:
    """0 for a number, 1 for array<number>, 2 for array<array<number>>; anything else -1 -> DataError by callers."""
    from pyspark.sql import types as T

    if _is_numeric(dt):
        return 0
    if isinstance(dt, T.ArrayType) and _is_numeric(dt.elementType):
        return 1
    if (
        isinstance(dt, T.ArrayType)
        and isinstance(dt.elementType, T.ArrayType)
        and _is_numeric(dt.elementType.elementType)
    ):
        return 2
    raise DataError(f"type {dt.simpleString()} is not a number, array<number> or array<array<number>>")


def is_sequence_type(dt: DataType) -> bool:
    """True for ``array<array<number>>``: a column that only a recurrent network can read."""
    try:
        return _depth(dt) == 2
    except DataError:
        return False


def sequence_label_kind(df: DataFrame, label_col: str | None, per_step: bool, classifier: bool) -> LabelKind | None:
    """The label encoding a network needs: per-step kinds for ``RnnOutput`` heads, class indices for classifiers.

    Args:
        df: The DataFrame.
        label_col: The label column, or None.
        per_step: The network emits one output per time step (its head is recurrent).
        classifier: The head is a classifier (softmax / cross-entropy): numbers are class indices.

    Returns:
        A label kind for `describe_sequences`, or None to let it decide from the column type.
    """
    if label_col is None or label_col not in df.columns:
        return None
    try:
        depth = _depth(_field_type(df, label_col, "label"))
    except DataError:
        return None  # describe_sequences reports the type
    if per_step:
        return "sequence_index" if depth == 1 and classifier else "sequence_array"
    return "index" if depth == 0 and classifier else None


def _size(name: str) -> Column:
    from pyspark.sql import functions as F

    return F.when(_col(name).isNotNull(), F.size(_col(name)))


def _inner(name: str, reduce: str) -> Column:
    """Smallest/largest inner-array size of a list-of-lists column (null steps count as size -1)."""
    from pyspark.sql import functions as F

    sizes = F.transform(_col(name), lambda step: F.coalesce(F.size(step), F.lit(-1)))
    return F.array_min(sizes) if reduce == "min" else F.array_max(sizes)


def describe_sequences(
    df: DataFrame,
    features_col: str,
    label_col: str | None,
    *,
    label_kind: LabelKind | None = None,
    expected_features: int | None = None,
) -> tuple[ColumnSpec, ColumnStats]:
    """Check a sequence DataFrame with one Spark aggregate and describe how to read it.

    Features: ``array<array<number>>`` (one inner array of F values per time step) or ``array<number>``
    (one value per step, F = 1), rows of any length >= 1. Labels, by default from the column type:
    a number is one class index (integers) or regression target (floats) per sequence,
    ``array<number>`` one vector per sequence, ``array<array<number>>`` one vector per step; pass
    ``label_kind="sequence_index"`` for ``array<number>`` class indices per step (`sequence_label_kind`
    picks it from the network). Per-step label sequences may be shorter than their features sequence.

    Args:
        df: The DataFrame.
        features_col: The sequence column.
        label_col: The label column, or None.
        label_kind: Override the label encoding (see `ColumnSpec`).
        expected_features: For unlabeled reads (inference): trust this step width, skip the data pass
            and pad each Arrow batch to its own longest sequence (``timesteps=0``).

    Returns:
        The `ColumnSpec` (``feature_kind="sequence"``, ``n_features`` = values per step, ``timesteps`` =
        the longest sequence) and the row count / largest class index the same pass saw.

    Raises:
        DataError: a column is missing or of an unsupported type, holds nulls or empty sequences, has
            steps of different widths, per-step labels longer than their sequence, or the DataFrame is empty.

    Example:
        >>> spec, stats = describe_sequences(df, "steps", "label")  # doctest: +SKIP
        >>> spec.n_features, spec.timesteps, stats.rows  # doctest: +SKIP
        (8, 8, 1797)
    """
    from pyspark.sql import functions as F

    if not isinstance(features_col, str):
        raise ConfigError(f"sequences come from one column, got {features_col!r}", "features_col")
    ftype = _field_type(df, features_col, "features")
    try:
        fdepth = _depth(ftype)
    except DataError as e:
        raise DataError(f"features column '{features_col}': {e}; a sequence is array<array<number>>") from None
    if fdepth == 0 or _is_vector(ftype):
        raise DataError(
            f"features column '{features_col}' has type {ftype.simpleString()}, which holds no sequence; the "
            "network's input is recurrent: use array<array<number>> (one inner array per time step)"
        )
    resolved: LabelKind = "none"
    ldepth = 0
    if label_col is not None:
        if label_col == features_col:
            raise DataError(f"label column '{label_col}' is also the features column; pick different columns")
        ltype = _field_type(df, label_col, "label")
        try:
            ldepth = _depth(ltype)
        except DataError as e:
            hint = " (index strings first: pyspark.ml.feature.StringIndexer)" if "string" in str(e) else ""
            raise DataError(f"label column '{label_col}': {e}{hint}") from None
        auto: LabelKind = {0: "index", 1: "array", 2: "sequence_array"}[ldepth]  # type: ignore[assignment]
        if ldepth == 0:
            from pyspark.sql import types as T

            auto = "scalar_float" if isinstance(ltype, (T.FloatType, T.DoubleType)) else "index"
        resolved = auto if label_kind is None else label_kind
        allowed = {
            0: ("index", "scalar_float"),
            1: ("array", "sequence_index", "sequence_array"),
            2: ("sequence_array",),
        }
        if resolved not in allowed[ldepth]:
            raise DataError(
                f"label column '{label_col}' has type {ltype.simpleString()}, which cannot hold {resolved!r} labels; "
                f"it can hold {list(allowed[ldepth])}"
            )
    elif label_kind not in (None, "none"):
        raise ConfigError(f"label_kind={label_kind!r} needs a label_col", "label_kind")
    step_width = 1 if fdepth == 1 else None
    if expected_features is not None and label_col is None:
        if step_width is not None and expected_features != 1:
            raise DataError(
                f"features column '{features_col}' holds one value per time step but the network expects "
                f"{expected_features} per step; use array<array<number>>"
            )
        spec = ColumnSpec(
            features=(features_col,), feature_kind="sequence", n_features=expected_features, label_kind="none"
        )
        return spec, ColumnStats(rows=None)

    checked = [features_col, *([label_col] if label_col is not None else [])]
    exprs: list[Column] = [F.count(F.lit(1)).alias("rows")]
    exprs += [F.count(_col(c)).alias(f"nonnull_{i}") for i, c in enumerate(checked)]
    exprs += [F.min(_size(features_col)).alias("len_min"), F.max(_size(features_col)).alias("len_max")]
    if fdepth == 2:
        exprs += [F.min(_inner(features_col, "min")).alias("w_min"), F.max(_inner(features_col, "max")).alias("w_max")]
    lc = None if label_col is None else _col(label_col)
    if label_col is not None and lc is not None:
        if resolved in ("array", *SEQUENCE_LABELS):
            exprs += [F.min(_size(label_col)).alias("llen_min"), F.max(_size(label_col)).alias("llen_max")]
        if resolved in SEQUENCE_LABELS:
            longer = F.size(lc) > F.size(_col(features_col))
            exprs.append(F.sum(F.when(longer, 1).otherwise(0)).alias("label_longer"))
        if resolved == "sequence_array" and ldepth == 2:
            exprs += [F.min(_inner(label_col, "min")).alias("lw_min"), F.max(_inner(label_col, "max")).alias("lw_max")]
        if resolved == "index":
            exprs += [F.min(lc).alias("label_min"), F.max(lc).alias("label_max")]
        if resolved == "sequence_index":
            exprs += [F.min(F.array_min(lc)).alias("label_min"), F.max(F.array_max(lc)).alias("label_max")]
    stats = df.agg(*exprs).first()
    rows = 0 if stats is None else int(stats["rows"])
    if rows == 0 or stats is None:
        raise DataError("the DataFrame has no rows; there is nothing to train or predict on")
    for i, c in enumerate(checked):
        nulls = rows - int(stats[f"nonnull_{i}"])
        if nulls:
            raise DataError(
                f"column '{c}' has {nulls} null value(s) in {rows} rows; drop or impute them first, "
                f"e.g. df.dropna(subset=['{c}'])"
            )
    if int(stats["len_min"]) < 1:
        raise DataError(
            f"column '{features_col}' has empty sequences; every sequence needs at least one step "
            f"(filter them out, e.g. df.filter(F.size('{features_col}') > 0))"
        )
    n_features = 1 if step_width is not None else _same_width(stats, "w_min", "w_max", features_col, "time step")
    n_labels = {"none": 0, "index": 1, "scalar_float": 1, "sequence_index": 1}.get(resolved, 0)
    if resolved == "array":
        n_labels = _same_width(stats, "llen_min", "llen_max", str(label_col), "label")
    if resolved in SEQUENCE_LABELS:
        if int(stats["llen_min"]) < 1:
            raise DataError(f"label column '{label_col}' has empty label sequences; every sequence needs a label step")
        if int(stats["label_longer"] or 0):
            raise DataError(
                f"label column '{label_col}': {int(stats['label_longer'])} row(s) have more label steps than "
                f"time steps in '{features_col}'; per-step labels cannot be longer than their sequence"
            )
        if resolved == "sequence_array":
            n_labels = 1 if ldepth == 1 else _same_width(stats, "lw_min", "lw_max", str(label_col), "label step")
    label_max = None
    if resolved in ("index", "sequence_index"):
        lo, hi = float(stats["label_min"]), float(stats["label_max"])
        if lo < 0:
            raise DataError(f"label column '{label_col}' has negative values (min {lo:g}); class indices are 0..C-1")
        label_max = hi
    spec = ColumnSpec(
        features=(features_col,),
        feature_kind="sequence",
        n_features=n_features,
        label=label_col,
        label_kind=resolved,
        n_label_values=n_labels,
        timesteps=int(stats["len_max"]),
    )
    return spec, ColumnStats(rows=rows, label_max=label_max)


def _same_width(stats: object, lo_key: str, hi_key: str, column: str, what: str) -> int:
    lo, hi = int(stats[lo_key]), int(stats[hi_key])  # type: ignore[index]
    if lo < 0:
        raise DataError(f"column '{column}' has a null {what}; drop or impute it first")
    if lo != hi:
        raise DataError(
            f"column '{column}': each {what} has {lo}..{hi} values; every {what} needs the same width "
            "(pad or filter the rows)"
        )
    if lo == 0:
        raise DataError(f"column '{column}': a {what} has 0 values; every {what} needs at least one")
    return lo


def sequences_to_arrays(
    df: DataFrame,
    features_col: str,
    label_col: str | None = None,
    dtype: str = "float32",
    *,
    label_kind: LabelKind | None = None,
) -> Sequence[np.ndarray | None]:
    """Collect a (small) sequence DataFrame as ``(x, y, features_mask, labels_mask)`` numpy arrays.

    ``x`` is ``(N, T, F)`` padded with zeros, ``features_mask`` ``(N, T)`` with 1 for real steps;
    ``labels_mask`` is None unless labels are per step. Ready for ``Network.fit(x, y, features_mask=...,
    labels_mask=...)`` on one machine.

    Example:
        >>> x, y, fmask, lmask = sequences_to_arrays(df, "steps", "label")  # doctest: +SKIP
        >>> x.shape, fmask.sum(axis=1)[:3]  # doctest: +SKIP
        ((1797, 8, 8), array([8., 5., 7.], dtype=float32))
    """
    from deepspark.data.dataframe import dataframe_to_arrays

    spec, _ = describe_sequences(df, features_col, label_col, label_kind=label_kind)
    x, y = dataframe_to_arrays(df, spec=spec, dtype=dtype)
    ds = unpack(spec, x, y)
    return ds.features, ds.labels, ds.features_mask, ds.labels_mask
