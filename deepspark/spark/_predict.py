"""The one inference path of ``SparkNetwork.predict`` and the Spark ML ``transform``: an Arrow UDF over the
features alone.

The JVM keeps every row and sends ONE column to Python: the features as ``array<float|double>`` (a Vector
is turned into an array inside the JVM with ``vector_to_array``; several numeric columns become one array
there too; a sequence column goes as it is). Python decodes each Arrow batch straight to numpy (no pandas,
no per-row Python), runs the network and returns only the output columns. Callers pick the fields they want
from the UDF's struct and name them (``predict``: arrays; Spark ML: vectors).
"""

from __future__ import annotations

import typing
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np

from deepspark.data._arrow import ColumnSpec
from deepspark.errors import DataError
from deepspark.nn.functional import CLASSIFICATION_LOSSES
from deepspark.spark._executor import ModelShipment, load_model, normalizer, ship

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import Column, DataFrame

    from deepspark.nn import Network
    from deepspark.nn.model import Head

Kind = Literal["class", "scalar", "vector"]
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, kw_only=True, slots=True)
class PredictTask:
    """What every executor needs to predict (parameters travel in ``model``'s broadcast).

    Attributes:
        model: the shipped network.
        spec: how the UDF's one input column reads (``spec.features[0]`` names it in error messages).
        kind: ``class`` (argmax index), ``scalar`` (one output) or ``vector`` (the output vector).
        probability: also return the output vector (probabilities for classifiers).
        raw: also return log-probabilities (Spark ML's ``rawPrediction``).
        batch_size: rows per forward pass; None: the executor's network picks it (`Network.inference_batch_size`).
        element: ``float`` or ``double``: the element type of returned vectors.
    """

    model: ModelShipment
    spec: ColumnSpec
    kind: Kind
    probability: bool
    raw: bool
    batch_size: int | None
    element: Literal["float", "double"] = "float"


def output_kind(head: Head) -> Kind:
    """``class`` for classifiers (softmax / multi-class cross-entropy heads), ``scalar`` for one output."""
    if head.n_out > 1 and (head.loss in CLASSIFICATION_LOSSES or head.activation == "softmax"):
        return "class"
    return "scalar" if head.n_out == 1 else "vector"


# ----------------------------------------------------------------------------------------- executor side


def _where() -> str:
    from pyspark import TaskContext

    ctx = TaskContext.get()
    return "the batch" if ctx is None else f"partition {ctx.partitionId()}"


def _list_column(values: np.ndarray, element: str) -> pa.Array:
    """A 2-D array as an Arrow ``list<float|double>`` column, without per-row Python."""
    import pyarrow as pa

    n, width = values.shape
    offsets = pa.array(np.arange(0, n * width + 1, width, dtype=np.int32))
    dtype = np.float32 if element == "float" else np.float64
    return pa.ListArray.from_arrays(offsets, pa.array(np.ascontiguousarray(values, dtype=dtype).reshape(-1)))


def output_struct(task: PredictTask, out: np.ndarray) -> pa.Array:
    """The UDF's result for one batch of network outputs: a struct of the requested fields."""
    import pyarrow as pa

    out = out.reshape(out.shape[0], -1)
    if task.kind == "class":
        arrays = [pa.array(np.argmax(out, axis=1).astype(np.float64))]  # first maximum, as Evaluation
    elif task.kind == "scalar":
        arrays = [pa.array(out[:, 0].astype(np.float64))]
    else:
        arrays = [_list_column(out, task.element)]
    names = ["prediction"]
    if task.raw:  # log-probabilities: the logits up to a per-row constant
        arrays.append(_list_column(np.log(np.maximum(out.astype(np.float64), np.finfo(np.float64).tiny)), task.element))
        names.append("raw")
    if task.probability:
        arrays.append(_list_column(out, task.element))
        names.append("probability")
    return pa.StructArray.from_arrays(arrays, names=names)


def predict_arrays(task: PredictTask, arrays: Iterator[pa.Array]) -> Iterator[pa.Array]:
    """The Arrow UDF body: feature batches in, output structs out (same lengths, same order)."""
    import pyarrow as pa
    import torch

    from deepspark.data._arrow import record_batch_to_arrays

    net = load_model(task.model)
    norm = normalizer(task.model.normalizer_json)
    dtype = np.dtype(task.model.dtype)
    name = task.spec.features[0]
    rows = 0
    for arr in arrays:
        if len(arr) == 0:
            yield output_struct(task, np.zeros((0, net.heads[0].n_out), dtype=np.float32))
            continue
        batch = pa.RecordBatch.from_arrays([arr], names=[name])
        x, _, _ = record_batch_to_arrays(batch, task.spec, dtype, where=_where(), row_offset=rows)
        with torch.inference_mode():
            if task.spec.feature_kind == "sequence":
                from deepspark.data._sequence_arrow import unpack

                seq = unpack(task.spec, x, None)
                out = net.output(seq.features, batch_size=task.batch_size, features_mask=seq.features_mask)
            else:
                if norm is not None:
                    from deepspark.data.spark_normalizers import apply_normalizer

                    x = apply_normalizer(norm, x).astype(x.dtype, copy=False)
                out = net.output(x, batch_size=task.batch_size)
        yield output_struct(task, out[0] if isinstance(out, list) else out)
        rows += len(arr)


# ----------------------------------------------------------------------------------------- driver side


def iterator_hints(fn: F) -> F:
    """``fn`` annotated ``Iterator[pa.Array] -> Iterator[pa.Array]`` with real objects: PySpark reads the kind of
    Arrow UDF from the hints (string hints from ``from __future__ import annotations`` do not resolve)."""
    import pyarrow as pa

    fn.__annotations__ = {"arrays": typing.Iterator[pa.Array], "return": typing.Iterator[pa.Array]}
    return fn


def features_column(
    df: DataFrame,
    features_col: str | Sequence[str],
    dtype: str,
    width: int | None = None,
    role: str = "features",
    field: str = "input_type",
) -> tuple[Column, str]:
    """The features as one JVM-side ``array<float|double>`` column a UDF reads, and how messages name it.

    A Vector becomes an array with ``vector_to_array``; several numeric columns one array; an array column is
    cast to ``dtype``'s float type. ``width`` (when known) is checked against the schema where it tells (a
    Vector's ML attributes, the number of columns). ``role`` names the argument in errors (``featuresCol``).
    """
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as sf
    from pyspark.sql import types as T

    from deepspark.data.dataframe import _col, _field_type, _is_numeric, _kind

    element = T.FloatType() if dtype == "float32" else T.DoubleType()
    if not isinstance(features_col, str):
        names = list(features_col)
        for name in names:
            dt = _field_type(df, name, role)
            if not _is_numeric(dt):
                raise DataError(
                    f"{role} column '{name}' has type {dt.simpleString()}; listed feature columns must be numeric "
                    "(assemble them with pyspark.ml.feature.VectorAssembler)"
                )
        if width is not None and len(names) != width:
            raise DataError(f"{role} {names} are {len(names)} columns but the network's input expects {width}")
        return sf.array(*[_col(n).cast(element) for n in names]), "[" + ", ".join(names) + "]"
    dt = _field_type(df, features_col, role)
    kind = _kind(features_col, dt, role)
    if kind == "vector":
        attrs = df.schema[features_col].metadata.get("ml_attr", {})
        known = attrs.get("num_attrs") if isinstance(attrs, dict) else None
        if width is not None and isinstance(known, int) and known != width:
            raise DataError(
                f"{role} '{features_col}' has {known} values per row but the network's input expects {width}; "
                f"check {role} or the config's {field}"
            )
        return vector_to_array(_col(features_col), dtype), features_col
    if kind == "array":
        return _col(features_col).cast(T.ArrayType(element)), features_col
    if width is not None and width != 1:
        raise DataError(
            f"{role} column '{features_col}' holds one number per row but the network's input expects "
            f"{width}; check {role} or the config's {field}"
        )
    return sf.array(_col(features_col).cast(element)), features_col


def prediction_struct(
    df: DataFrame,
    net: Network,
    features_col: str | Sequence[str],
    *,
    probability: bool,
    raw: bool,
    batch_size: int | None,
    element: Literal["float", "double"],
    sequence: ColumnSpec | None = None,
    role: str = "features",
    check_input: bool = False,
    skip: str = "check_input=False",
) -> tuple[Column, Kind]:
    """The UDF applied to ``df``'s features: a struct column with ``prediction`` (and ``raw``, ``probability``).

    Lazy: the work runs in the caller's next action. One broadcast of the parameters per call. With
    ``check_input`` (flat features only), one JVM pass first refuses null, ragged or NaN rows with a ``DataError``
    (``skip`` names the setting that turns it off).
    """
    from pyspark.sql.pandas.functions import arrow_udf

    from deepspark.data.dataframe import _col
    from deepspark.spark._prepare import input_size

    width = input_size(net)
    if width is None:
        raise DataError("the network's config has no input type, so the features' width cannot be checked")
    params_dtype = str(net.flat.params.dtype).replace("torch.", "")
    if sequence is not None:  # a sequence column goes as it is; its spec pads each batch to its longest row
        column, spec = _col(sequence.features[0]), sequence
    else:
        field = getattr(net.config, "INPUT_FIELD", "input_type")
        column, shown = features_column(df, features_col, params_dtype, width, role, field)
        spec = ColumnSpec(features=(shown,), feature_kind="array", n_features=width)
        if check_input:
            from deepspark.spark._input_check import check_features

            names = [features_col] if isinstance(features_col, str) else list(features_col)
            check_features(df, column, shown, names, width, role=role, field=field, skip=skip)
    kind = output_kind(net.heads[0])
    task = PredictTask(
        model=ship(df.sparkSession.sparkContext, net, with_updater=False, key=uuid.uuid4().hex),
        spec=spec,
        kind=kind,
        probability=probability,
        raw=raw,
        batch_size=batch_size,
        element=element,
    )
    vector = f"array<{element}>"
    fields = ["prediction double" if kind != "vector" else f"prediction {vector}"]
    if raw:
        fields.append(f"raw {vector}")
    if probability:
        fields.append(f"probability {vector}")

    def run(arrays: Iterator[pa.Array]) -> Iterator[pa.Array]:
        return predict_arrays(task, arrays)

    udf = arrow_udf(iterator_hints(run), ", ".join(fields))  # type: ignore[call-overload]
    return udf(column), kind


__all__ = [
    "PredictTask",
    "features_column",
    "iterator_hints",
    "output_kind",
    "output_struct",
    "predict_arrays",
    "prediction_struct",
]
