"""Batched Arrow inference for Spark ML stages: one iterator Arrow UDF that sends only the features.

``SparkNetwork.predict`` uses ``mapInArrow``, which ships every column to Python and back. A Spark ML
``transform`` appends columns, so here the JVM keeps the row and sends ONE ``array<float>`` column (a
Vector is turned into an array inside the JVM with ``vector_to_array``); Python returns only the
prediction (and probability) columns. Less than half the Arrow traffic of ``mapInArrow`` for wide rows.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np

from deepspark.errors import DataError

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.broadcast import Broadcast
    from pyspark.sql import Column, DataFrame

    from deepspark.nn import Network

Kind = Literal["class", "scalar", "vector"]
F = TypeVar("F", bound=Callable[..., Any])

_CACHE: dict[str, tuple[Network, str]] = {}  # config hash -> (network, params_key it holds); one per worker


@dataclass(frozen=True, kw_only=True, slots=True)
class TransformTask:
    """What every executor needs besides the parameters (which travel as one broadcast of bytes)."""

    config_json: str
    params_dtype: str
    params_key: str  # unique per transform call: a Python worker sets the parameters once per call
    normalizer_json: str | None
    width: int
    features: str  # how error messages name the features
    kind: Kind
    probability: bool
    raw_prediction: bool
    batch_size: int


def _network(task: TransformTask, params_bc: Broadcast[bytes]) -> Network:
    key = hashlib.sha256(task.config_json.encode()).hexdigest()
    cached = _CACHE.get(key)
    if cached is None:
        from deepspark.config._spec import Spec
        from deepspark.nn import Network

        _CACHE.clear()
        net = Network(Spec.from_json(task.config_json))  # type: ignore[arg-type]
        cached = (net, "")
    net, loaded = cached
    if loaded != task.params_key:
        net.set_params(np.frombuffer(params_bc.value, dtype=np.dtype(task.params_dtype)))
    _CACHE[key] = (net, task.params_key)
    return net


def _partition() -> str:
    from pyspark import TaskContext

    ctx = TaskContext.get()
    return "the batch" if ctx is None else f"partition {ctx.partitionId()}"


def features_matrix(task: TransformTask, arr: pa.Array, row_offset: int) -> np.ndarray:
    """``(n, width)`` features of one Arrow ``list<float>`` batch: one copy, or a DataError naming the row."""
    import pyarrow.compute as pc

    n = len(arr)
    dtype = np.dtype(task.params_dtype)
    if arr.null_count:
        row = row_offset + int(np.argmax(arr.is_null().to_numpy(zero_copy_only=False)))
        raise DataError(
            f"features {task.features}: row {row} of {_partition()} is null; drop or impute such rows first"
        )
    lengths = pc.list_value_length(arr).to_numpy(zero_copy_only=False)
    if n and (lengths != task.width).any():
        bad = int(np.argmax(lengths != task.width))
        raise DataError(
            f"features {task.features}: row {row_offset + bad} of {_partition()} has {int(lengths[bad])} values "
            f"but the network's input expects {task.width}; check featuresCol or the config's input_type"
        )
    values: pa.Array = arr.flatten()
    if values.null_count:
        raise DataError(f"features {task.features} hold null values in {_partition()}; impute them first")
    x: np.ndarray = values.to_numpy(zero_copy_only=False).reshape(n, task.width)
    if x.dtype != dtype:
        return x.astype(dtype)
    return x if x.flags.writeable else x.copy()  # torch.from_numpy warns on read-only Arrow memory


def _list_column(values: np.ndarray) -> pa.Array:
    """A 2-D array as an Arrow ``list<double>`` column (Spark's ``array<double>``), no per-row Python."""
    import pyarrow as pa

    n, width = values.shape
    offsets = pa.array(np.arange(0, n * width + 1, width, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(np.ascontiguousarray(values, dtype=np.float64).reshape(-1)))


def output_array(task: TransformTask, out: np.ndarray) -> pa.Array:
    """The UDF's result for one batch of network outputs."""
    import pyarrow as pa

    out = out.reshape(out.shape[0], -1)
    if task.kind == "scalar":
        return pa.array(out[:, 0].astype(np.float64))
    if task.kind == "vector":
        return _list_column(out)
    arrays = [pa.array(np.argmax(out, axis=1).astype(np.float64))]  # first maximum, as Evaluation
    names = ["prediction"]
    if task.raw_prediction:  # log-probabilities: the logits up to a per-row constant
        arrays.append(_list_column(np.log(np.maximum(out.astype(np.float64), np.finfo(np.float64).tiny))))
        names.append("rawPrediction")
    if task.probability:
        arrays.append(_list_column(out))
        names.append("probability")
    return pa.StructArray.from_arrays(arrays, names=names)


def predict_arrays(task: TransformTask, params_bc: Broadcast[bytes], arrays: Iterator[pa.Array]) -> Iterator[pa.Array]:
    """The Arrow UDF body: features batches in, prediction batches out (same lengths, same order)."""
    import torch

    from deepspark.data.normalizers import normalizer_from_json
    from deepspark.data.spark_normalizers import apply_normalizer

    net = _network(task, params_bc)
    norm = None if task.normalizer_json is None else normalizer_from_json(task.normalizer_json)
    rows = 0
    for arr in arrays:
        n = len(arr)
        if n == 0:
            yield output_array(task, np.zeros((0, net.heads[0].n_out), dtype=np.float32))
            continue
        x = features_matrix(task, arr, rows)
        if norm is not None:
            x = apply_normalizer(norm, x).astype(x.dtype, copy=False)
        with torch.inference_mode():
            out = net.output(x, batch_size=task.batch_size)
        yield output_array(task, out[0] if isinstance(out, list) else out)
        rows += n


# ----------------------------------------------------------------------------------------- driver side


def iterator_hints(fn: F) -> F:
    """``fn`` annotated ``Iterator[pa.Array] -> Iterator[pa.Array]`` with real objects: PySpark reads the kind of
    Arrow UDF from the hints (string hints from ``from __future__ import annotations`` do not resolve)."""
    import typing

    import pyarrow as pa

    fn.__annotations__ = {"arrays": typing.Iterator[pa.Array], "return": typing.Iterator[pa.Array]}
    return fn


def features_array(df: DataFrame, features_col: str | Sequence[str], dtype: str) -> tuple[Column, int | None]:
    """The features as ``array<float|double>`` built in the JVM, and their width when the schema tells it."""
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from deepspark.data.dataframe import _col, _field_type, _is_numeric, _kind

    element = T.FloatType() if dtype == "float32" else T.DoubleType()
    if not isinstance(features_col, str):
        names = list(features_col)
        for name in names:
            dt = _field_type(df, name, "featuresCol")
            if not _is_numeric(dt):
                raise DataError(
                    f"featuresCol column '{name}' has type {dt.simpleString()}; listed feature columns must be numeric "
                    "(assemble them with pyspark.ml.feature.VectorAssembler)"
                )
        return F.array(*[_col(n).cast(element) for n in names]), len(names)
    dt = _field_type(df, features_col, "featuresCol")
    kind = _kind(features_col, dt, "featuresCol")
    if kind == "vector":
        attrs = df.schema[features_col].metadata.get("ml_attr", {})
        width = attrs.get("num_attrs") if isinstance(attrs, dict) else None
        return vector_to_array(_col(features_col), "float32" if dtype == "float32" else "float64"), (
            int(width) if isinstance(width, int) else None
        )
    if kind == "array":
        return _col(features_col).cast(T.ArrayType(element)), None
    return F.array(_col(features_col).cast(element)), 1


def transform(
    df: DataFrame,
    net: Network,
    features_col: str | Sequence[str],
    kind: Kind,
    columns: dict[str, str],
    batch_size: int,
) -> DataFrame:
    """``df`` plus the prediction columns named in ``columns`` (keys: prediction, probability, rawPrediction).

    Lazy: the work runs in the caller's next action, on the executors, through one Arrow UDF.
    """
    from pyspark.ml.functions import array_to_vector
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.functions import arrow_udf

    from deepspark.config.graph import GraphConfig

    config = net.config
    if config is None:
        raise DataError("this network wraps a torch module and has no config to send to the executors")
    input_type = config.input_types[0] if isinstance(config, GraphConfig) else config.input_type
    width = int(input_type.flat_size())
    present = list(df.columns)
    for name in columns.values():
        if name in present:
            raise DataError(f"output column {name!r} already exists in the DataFrame ({present}); choose another name")
    params = net.params()
    feats, known = features_array(df, features_col, str(params.dtype))
    shown = repr(features_col) if isinstance(features_col, str) else repr(list(features_col))
    if known is not None and known != width:
        raise DataError(
            f"featuresCol {shown} has {known} values per row but the network's input expects {width}; "
            "check featuresCol or the config's input_type"
        )
    normalizer = net.normalizer
    task = TransformTask(
        config_json=config.to_json(indent=None),
        params_dtype=str(params.dtype),
        params_key=uuid.uuid4().hex,
        normalizer_json=None if normalizer is None else normalizer.to_json(),
        width=width,
        features=shown,
        kind=kind,
        probability="probability" in columns,
        raw_prediction="rawPrediction" in columns,
        batch_size=batch_size,
    )
    params_bc = df.sparkSession.sparkContext.broadcast(params.tobytes())
    if kind == "class":
        fields = ["prediction double"]
        fields += [f"{k} array<double>" for k in ("rawPrediction", "probability") if k in columns]
        return_type = ", ".join(fields)
    else:
        return_type = "double" if kind == "scalar" else "array<double>"

    def run(arrays: Iterator[pa.Array]) -> Iterator[pa.Array]:
        return predict_arrays(task, params_bc, arrays)

    udf = arrow_udf(iterator_hints(run), return_type)  # type: ignore[call-overload]
    tmp = f"__deepspark_{uuid.uuid4().hex}"
    out = df.withColumn(tmp, udf(feats))
    result = F.col(tmp)
    selected: list[Column] = [F.col("`" + c.replace("`", "``") + "`") for c in present]
    if kind == "class":
        selected.append(result["prediction"].alias(columns["prediction"]))
        for key in ("rawPrediction", "probability"):
            if key in columns:
                selected.append(array_to_vector(result[key]).alias(columns[key]))
    elif kind == "scalar":
        selected.append(result.alias(columns["prediction"]))
    else:
        selected.append(array_to_vector(result).alias(columns["prediction"]))
    return out.select(*selected)
