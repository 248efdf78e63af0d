"""Spark ML ``transform``: the shared inference path of ``deepspark.spark`` with Spark ML's column types.

The work is ``deepspark.spark._predict``'s Arrow UDF over the features alone (the same path as
``SparkNetwork.predict``); this module only names its fields the Spark ML way and turns output vectors into
``pyspark.ml.linalg`` Vectors (``probability``, ``rawPrediction``; the prediction of a vector regressor).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

from deepspark.errors import DataError
from deepspark.spark._predict import Kind, output_kind, prediction_struct

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

    from deepspark.nn import Network

__all__ = ["Kind", "output_kind", "transform"]


def transform(
    df: DataFrame,
    net: Network,
    features_col: str | Sequence[str],
    columns: dict[str, str],
    batch_size: int | None,
    *,
    check_input: bool = False,
) -> DataFrame:
    """``df`` plus the prediction columns named in ``columns`` (keys: prediction, probability, rawPrediction).

    Lazy: the work runs in the caller's next action, on the executors, through one Arrow UDF. With
    ``check_input``, one JVM pass first refuses null, ragged or NaN feature rows with a ``DataError``.
    """
    from pyspark.ml.functions import array_to_vector
    from pyspark.sql import functions as F

    if net.config is None:
        raise DataError("this network wraps a torch module and has no config to send to the executors")
    present = list(df.columns)
    for name in columns.values():
        if name in present:
            raise DataError(f"output column {name!r} already exists in the DataFrame ({present}); choose another name")
    kind: Kind = output_kind(net.heads[0])
    struct, _ = prediction_struct(
        df,
        net,
        features_col,
        probability=kind == "class" and "probability" in columns,
        raw=kind == "class" and "rawPrediction" in columns,
        batch_size=batch_size,
        element="double",
        role="featuresCol",
        check_input=check_input,
        skip="setCheckInput(False)",
    )
    tmp = f"__deepspark_{uuid.uuid4().hex}"
    result = F.col(tmp)
    selected: list[Column] = [F.col("`" + c.replace("`", "``") + "`") for c in present]
    prediction = result["prediction"]
    selected.append((array_to_vector(prediction) if kind == "vector" else prediction).alias(columns["prediction"]))
    if kind == "class":
        for key, field in (("rawPrediction", "raw"), ("probability", "probability")):
            if key in columns:
                selected.append(array_to_vector(result[field]).alias(columns[key]))
    return df.withColumn(tmp, struct).select(*selected)
