"""The features check ``predict`` and Spark ML ``transform`` run before returning their lazy DataFrame.

Inference is lazy: a null row, a ragged array or a NaN would otherwise fail inside a Python worker at the
user's next action, as a ``PythonException`` with a worker traceback. One aggregate job in the JVM (no
Python workers, one pass over the features column) counts the rows of each kind first, so the call itself
raises a ``DataError`` naming the column, the problem, how many rows and how to fix it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from deepspark._failures import spark_failures
from deepspark.errors import ConfigError, DataError

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

def check_features(
    df: DataFrame,
    column: Column,
    shown: str,
    names: list[str],
    width: int,
    *,
    role: str = "features",
    field: str = "",
    skip: str = "check_input=False",
) -> None:
    """Raise ``DataError`` when rows of ``column`` (the features as one array) are null, hold nulls, have another
    width than ``width`` or hold NaN/inf. ``shown`` names the column(s) in messages, ``names`` their real names;
    ``skip`` is the setting that turns the check off.
    """
    from pyspark.sql import functions as F

    if df.isStreaming:
        raise ConfigError(
            f"a streaming DataFrame cannot be checked before its query starts: use {skip} (the default) and let "
            "bad rows fail in the query"
        )

    def rows(condition: Column) -> Column:
        return F.sum(F.when(condition, 1).otherwise(0))

    present = F.col("x").isNotNull()
    inf = F.lit(float("inf"))
    stats = df.select(column.alias("x")).agg(
        F.count(F.lit(1)).alias("total"),
        rows(~present).alias("null_rows"),
        rows(present & (F.size("x") != width)).alias("ragged"),
        F.min(F.when(present, F.size("x"))).alias("narrowest"),
        F.max(F.when(present, F.size("x"))).alias("widest"),
        rows(present & F.exists("x", lambda v: v.isNull())).alias("null_values"),
        rows(present & F.exists("x", lambda v: F.isnan(v) | (F.abs(v) == inf))).alias("non_finite"),
    )
    with spark_failures(f"checking {role} {shown} before inference"):
        row = stats.collect()[0]
    total = int(row["total"])
    problems = []
    subset = names if len(names) > 1 else [shown]
    if row["null_rows"]:
        problems.append(
            f"{row['null_rows']} of {total} rows are null: drop them (df.dropna(subset={subset})) or fill them "
            "(pyspark.ml.feature.Imputer)"
        )
    if row["null_values"]:
        problems.append(
            f"{row['null_values']} rows hold null values inside the features: drop or impute those rows"
            + (" (a null in any listed column)" if len(names) > 1 else "")
        )
    if row["ragged"]:
        sizes = f"{row['narrowest']}" if row["narrowest"] == row["widest"] else f"{row['narrowest']} to {row['widest']}"
        fix = f"or the config's {field}" if field else "or the network"
        problems.append(
            f"{row['ragged']} rows do not hold the {width} values the network's input expects (sizes seen: {sizes}): "
            f"filter them (F.size('{shown}') == {width}) or fix the data {fix}"
        )
    if row["non_finite"]:
        problems.append(
            f"{row['non_finite']} rows hold NaN or infinite values, for which the network would output NaN: drop them "
            "or replace the values (pyspark.ml.feature.Imputer treats NaN as missing)"
        )
    if problems:
        how = f"{skip} skips this check, and bad rows then fail at the action"
        raise DataError(f"{role} column {shown!r}: " + "; ".join(problems) + f" ({how})")


__all__ = ["check_features"]
