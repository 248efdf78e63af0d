"""Distributed inference and evaluation: predict, evaluate, score and score_examples over a DataFrame.

The driver helpers check the columns against the network before any job, broadcast the flat
parameters once per call and run one top-level executor function per partition through
``mapInArrow``: Arrow batch -> numpy -> ``Network`` -> Arrow columns, with no per-row Python and
nothing collected to the driver except per-partition metric state (as JSON) or loss sums.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from deepspark._failures import spark_failures
from deepspark.errors import DataError, DeepSparkError
from deepspark.nn.functional import CLASSIFICATION_LOSSES
from deepspark.nn.inference_batch import checked_batch_size
from deepspark.spark._executor import ModelShipment, load_model, normalizer, ship
from deepspark.spark._predict import output_kind, prediction_struct

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame
    from pyspark.sql.types import StructType

    from deepspark.config.input_types import InputType
    from deepspark.data._arrow import ColumnSpec, LabelKind
    from deepspark.data.dataset import DataSet
    from deepspark.nn import Network


@dataclass(frozen=True, kw_only=True, slots=True)
class InferenceTask:
    """Everything an executor needs to evaluate or score (the parameters travel in ``model``'s broadcast)."""

    model: ModelShipment
    columns: ColumnSpec
    batch_size: int | None = None  # rows per forward pass; None: the executor's network sizes it
    output_col: str = "score"
    evaluations_json: tuple[str, ...] = ()
    key_col: str | None = None
    include_regularization: bool = False


# ----------------------------------------------------------------------------------------- executor side


def _pass_rows(task: InferenceTask, net: Network) -> int:
    """Rows per forward pass: the task's, or what the executor's network picks for its device."""
    return task.batch_size if task.batch_size is not None else net.inference_batch_size()


def _float_dtype(task: InferenceTask) -> type[np.floating[Any]]:
    return np.float64 if task.model.dtype == "float64" else np.float32


def _where() -> str:
    """How executor error messages name the data: the partition being read."""
    from pyspark import TaskContext

    ctx = TaskContext.get()
    return "the batch" if ctx is None else f"partition {ctx.partitionId()}"


def _arrays(task: InferenceTask, batch: pa.RecordBatch, row_offset: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Features (normalized when the model has a normalizer) and labels of one Arrow batch."""
    from deepspark.data._arrow import record_batch_to_arrays

    x, y, _ = record_batch_to_arrays(batch, task.columns, _float_dtype(task), where=_where(), row_offset=row_offset)
    norm = normalizer(task.model.normalizer_json)
    if norm is not None:
        from deepspark.data.spark_normalizers import apply_normalizer

        x = apply_normalizer(norm, x)
    return x, y


def _sequences(task: InferenceTask, x: np.ndarray, y: np.ndarray | None) -> DataSet:
    """Sequence wire rows as padded steps, labels and masks (see `deepspark.data.sequences`)."""
    from deepspark.data._sequence_arrow import unpack

    return unpack(task.columns, x, y)


def evaluate_batches(
    task: InferenceTask, batches: Iterator[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """mapInArrow body of ``evaluate``: one row per non-empty partition, its evaluations as a JSON list."""
    import pyarrow as pa

    from deepspark.eval import from_json

    net = load_model(task.model)
    evaluations = [from_json(text) for text in task.evaluations_json]
    rows = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        x, y = _arrays(task, batch, rows)
        if task.columns.feature_kind == "sequence":  # padded steps and masks, in minibatches
            net.do_evaluation(_sequences(task, x, y).batches(_pass_rows(task, net)), None, *evaluations)
        else:
            net.do_evaluation(x, y, *evaluations, batch_size=_pass_rows(task, net))
        rows += batch.num_rows
    if rows:
        text = json.dumps([e.to_dict() for e in evaluations], allow_nan=False, separators=(",", ":"))
        yield pa.RecordBatch.from_arrays([pa.array([text], type=pa.string())], names=["evaluations"])


def score_batches(
    task: InferenceTask, batches: Iterator[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """mapInArrow body of ``score``: one row per non-empty partition, (sum of batch score x rows, rows)."""
    import pyarrow as pa

    net = load_model(task.model)
    total, rows = 0.0, 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        x, y = _arrays(task, batch, rows)
        if task.columns.feature_kind == "sequence":
            total += net.score(_sequences(task, x, y).batches(_pass_rows(task, net))) * batch.num_rows
        else:
            total += net.score(x, y, batch_size=_pass_rows(task, net)) * batch.num_rows
        rows += batch.num_rows
    if rows:
        yield pa.RecordBatch.from_arrays(
            [pa.array([total], type=pa.float64()), pa.array([rows], type=pa.int64())], names=["loss_sum", "count"]
        )


def example_losses(net: Network, task: InferenceTask, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Loss of every example (float64), without the mean over the batch."""
    import torch

    from deepspark.config.graph import GraphConfig
    from deepspark.nn.functional import per_example_loss
    from deepspark.nn.inputs import features_to_tensor, labels_to_tensor

    config = net.config
    if config is None:  # pragma: no cover - the driver only ships networks built from a config
        raise DeepSparkError("score_examples needs a network built from a config")
    input_type = config.input_types[0] if isinstance(config, GraphConfig) else config.input_type
    head = net.heads[0]
    losses = np.empty(len(x), dtype=np.float64)
    net.model.eval()
    with torch.no_grad():
        rows = _pass_rows(task, net)
        for start in range(0, len(x), rows):
            stop = start + rows
            xt = features_to_tensor(x[start:stop], input_type, net.dtype)
            yt = labels_to_tensor(y[start:stop], xt.shape[0], head, net.dtype)
            xd, yd, _, _ = net.to_device((xt, yt, None, None))
            preout, _ = net.preouts(xd)[0]
            loss = per_example_loss(head.loss, head.activation, preout, yd)  # type: ignore[arg-type]
            losses[start:stop] = loss.double().cpu().numpy()
    if task.include_regularization:
        losses += float(net.post.regularization_score())
    return losses


def score_examples_batches(
    task: InferenceTask, batches: Iterator[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """mapInArrow body of ``score_examples``: the key column of each batch and the loss of each row."""
    import pyarrow as pa

    net = load_model(task.model)
    key_col = cast(str, task.key_col)
    rows = 0
    for batch in batches:
        if batch.num_rows == 0:
            losses = np.zeros(0, dtype=np.float64)
        else:
            x, y = _arrays(task, batch, rows)
            losses = example_losses(net, task, x, cast(np.ndarray, y))
            rows += batch.num_rows
        yield pa.RecordBatch.from_arrays(
            [batch.column(key_col), pa.array(losses, type=pa.float64())], names=[key_col, task.output_col]
        )


def merge_evaluations_json(a: str | None, b: str | None) -> str | None:
    """treeAggregate operator: merge two JSON lists of evaluations into one (state travels as JSON, never pickle)."""
    if a is None:
        return b
    if b is None:
        return a
    from deepspark.eval import from_dict

    left = [from_dict(d) for d in json.loads(a)]
    right = [from_dict(d) for d in json.loads(b)]
    merged = [x.merge(y) for x, y in zip(left, right, strict=True)]
    return json.dumps([e.to_dict() for e in merged], allow_nan=False, separators=(",", ":"))


def _first_field(row: Any) -> str:
    return cast(str, row[0])


# ----------------------------------------------------------------------------------------- driver side


def _check_network(net: Network, what: str, per_example: bool) -> None:
    from deepspark.config.graph import GraphConfig

    config = net.config
    if config is None:
        raise DeepSparkError(
            f"{what} on Spark needs a network built from a NetworkConfig or GraphConfig; one wrapped with "
            "Network.from_module has no config to send to the executors"
        )
    if isinstance(config, GraphConfig) and len(config.inputs) != 1:
        raise DataError(
            f"{what} on Spark reads one features column, but the graph has {len(config.inputs)} inputs "
            f"{list(config.inputs)}; use a graph with one input"
        )
    if per_example and net.heads[0].recurrent:
        raise DataError(
            f"{what} on Spark writes one value per row, but the network's output is a sequence per example; "
            "use evaluate() or score() for sequence outputs"
        )


def _input_type(net: Network) -> InputType:
    from deepspark.config.graph import GraphConfig

    config = net.config
    return config.input_types[0] if isinstance(config, GraphConfig) else cast(Any, config).input_type


def _resolve(
    df: DataFrame,
    net: Network,
    features_col: str | Sequence[str],
    label_col: str | None,
    key_col: str | None = None,
    scan: bool = True,
) -> ColumnSpec:
    """Column spec of ``df``, checked against the network's input size (``DataError`` on mismatch)."""
    from pyspark.sql.types import DoubleType, FloatType

    from deepspark.data.dataframe import resolve_columns

    if _input_type(net).form == "recurrent":
        return _resolve_sequences(df, net, features_col, label_col, scan)
    label_kind: LabelKind | None = None
    classes = net.heads[0].loss in CLASSIFICATION_LOSSES
    if classes and label_col is not None and label_col in df.columns:
        # Spark ML keeps class labels as doubles: read them as class indices (resolve_columns checks they are whole).
        floats = isinstance(df.schema[label_col].dataType, (FloatType, DoubleType))
        label_kind = "index" if floats else None
    expected = int(_input_type(net).flat_size())
    spec = resolve_columns(
        df, features_col, label_col, key_col, label_kind=label_kind, expected_features=None if scan else expected
    )
    if spec.n_features != expected:
        shown = features_col if isinstance(features_col, str) else list(features_col)
        raise DataError(
            f"features {shown!r} have {spec.n_features} values per row but the network's input expects {expected}; "
            f"check features_col or the config's {getattr(net.config, 'INPUT_FIELD', 'input_type')}"
        )
    return spec


def _resolve_sequences(
    df: DataFrame, net: Network, features_col: str | Sequence[str], label_col: str | None, scan: bool
) -> ColumnSpec:
    """Spec of a sequence column for a recurrent network; each Arrow batch is padded to its own longest sequence."""
    from dataclasses import replace

    from deepspark.data.sequences import describe_sequences, sequence_label_kind

    if not isinstance(features_col, str):
        raise DataError(
            f"the network's input is a sequence ({_input_type(net).describe()}): features come from one "
            f"array<array<number>> column, got {list(features_col)}"
        )
    if net.normalizer is not None:
        raise DataError(
            "the network carries a normalizer, which Spark inference does not apply to sequence inputs yet; "
            "normalize the sequence column before calling, and set network.normalizer = None"
        )
    head = net.heads[0]
    kind = sequence_label_kind(df, label_col, head.recurrent, head.loss in CLASSIFICATION_LOSSES)
    expected = int(_input_type(net).flat_size())
    spec, _ = describe_sequences(
        df, features_col, label_col, label_kind=kind, expected_features=None if scan else expected
    )
    if spec.n_features != expected:
        raise DataError(
            f"features {features_col!r} have {spec.n_features} values per time step but the network's input "
            f"expects {expected} ({_input_type(net).describe()}); check features_col or the config's "
            f"{getattr(net.config, 'INPUT_FIELD', 'input_type')}"
        )
    return replace(spec, timesteps=0)


def _needed(df: DataFrame, spec: ColumnSpec) -> DataFrame:
    """Only the columns the executors read (less Arrow traffic); names quoted so dots are not struct paths."""
    from pyspark.sql import functions as F

    return df.select(*[F.col("`" + c.replace("`", "``") + "`") for c in spec.columns])


def _task(df: DataFrame, net: Network, spec: ColumnSpec, batch_size: int | None, **fields: Any) -> InferenceTask:
    """The task spec of one call, with ONE broadcast of the flat parameters."""
    model = ship(df.sparkSession.sparkContext, net, with_updater=False, key=uuid.uuid4().hex)
    return InferenceTask(model=model, columns=spec, batch_size=batch_size, **fields)


def _new_columns(df: DataFrame, *names: str | None) -> None:
    present = list(df.columns)
    wanted = [n for n in names if n is not None]
    for name in wanted:
        if name in present:
            raise DataError(f"output column {name!r} already exists in the DataFrame ({present}); choose another name")
    if len(set(wanted)) != len(wanted):
        raise DataError(f"output columns must differ, got {wanted}")


def predict(
    df: DataFrame,
    net: Network,
    features_col: str | Sequence[str] = "features",
    output_col: str = "prediction",
    probabilities_col: str | None = None,
    batch_size: int | None = None,
    check_input: bool = False,
) -> DataFrame:
    """Append the network's prediction to every row of ``df``, on the executors.

    Rows, their order within partitions and every input column are kept. The prediction is the class
    index (a double, as Spark ML) for classifiers (softmax / multi-class cross-entropy heads), else the
    output vector as ``array<float>``, or a double when the network emits one value. The result is lazy
    (no job runs here, as with any Spark ML ``transform``): null, ragged or NaN rows fail at the action inside
    a Python worker; run the action inside ``deepspark.spark.typed_errors()`` to get the worker's
    ``DataError`` (column, partition, row). ``check_input=True`` (flat features, batch DataFrames) refuses
    them at the call instead, for the price of one more pass over the features in the JVM (about as long as
    decoding every feature array once).

    Args:
        df: Input rows.
        net: A network built from a config; its normalizer, when set, is applied on the executors.
        features_col: Features column (array or Vector), or numeric columns assembled in order.
        output_col: Name of the prediction column.
        probabilities_col: Also append the raw output vector (probabilities for classifiers) here.
        batch_size: Rows per forward pass; None (the default) lets each executor's network pick a cache-sized
            batch (`Network.inference_batch_size`).
        check_input: Check the features (one extra pass in the JVM) before returning; off by default.

    Returns:
        ``df``'s columns plus ``output_col`` (and ``probabilities_col``).

    Raises:
        DataError: a column is missing, has the wrong width, or an output column already exists; with
            ``check_input``, rows are null, ragged or hold NaN/inf.

    Example:
        >>> predict(df, net, "features", probabilities_col="probability").show()  # doctest: +SKIP
    """
    from pyspark.sql import functions as F

    _check_network(net, "predict", per_example=True)
    checked_batch_size(batch_size)
    _new_columns(df, output_col, probabilities_col)
    sequence = None
    if _input_type(net).form == "recurrent":
        sequence = _resolve_sequences(df, net, features_col, None, scan=False)
    struct, _ = prediction_struct(
        df,
        net,
        features_col,
        probability=probabilities_col is not None,
        raw=False,
        batch_size=batch_size,
        element="float",
        sequence=sequence,
        check_input=check_input,
    )
    tmp = f"__deepspark_{uuid.uuid4().hex}"
    columns = [F.col("`" + c.replace("`", "``") + "`") for c in df.columns]
    out = [F.col(tmp)["prediction"].alias(output_col)]
    if probabilities_col is not None:
        out.append(F.col(tmp)["probability"].alias(probabilities_col))
    return df.withColumn(tmp, struct).select(*columns, *out)


def default_evaluations(net: Network) -> list[Any]:
    """What ``Network.do_evaluation`` users get by default: ``Evaluation`` for classifiers, else regression."""
    from deepspark.eval import Evaluation, EvaluationBinary, RegressionEvaluation

    head = net.heads[0]
    if output_kind(head) == "class":
        return [Evaluation(n_classes=head.n_out)]
    if head.loss == "xent" and head.activation == "sigmoid":
        return [Evaluation(n_classes=2)] if head.n_out == 1 else [EvaluationBinary(n_columns=head.n_out)]
    return [RegressionEvaluation(n_columns=head.n_out)]


def evaluate(
    df: DataFrame,
    net: Network,
    features_col: str | Sequence[str] = "features",
    label_col: str = "label",
    evaluations: Sequence[Any] | None = None,
    batch_size: int | None = None,
    aggregation_depth: int = 2,
) -> list[Any]:
    """Evaluate ``net`` on ``df``: each partition fills its own evaluations, merged with a treeAggregate.

    Evaluation state crosses processes only as JSON. The given evaluations must be empty (DL4J's
    ``emptyEvaluations``); they receive the merged result, as with ``Network.do_evaluation``.

    Args:
        df: Rows with features and labels.
        net: A network built from a config.
        features_col: Features column (array or Vector), or numeric columns assembled in order.
        label_col: Label column (class index, one-hot/array, or number).
        evaluations: deepspark evaluations; default ``Evaluation`` for classifiers, else ``RegressionEvaluation``.
        batch_size: Rows per forward pass; None (the default) lets each executor's network pick a cache-sized
            batch (`Network.inference_batch_size`).
        aggregation_depth: Depth of the treeAggregate.

    Returns:
        The evaluations, filled.

    Raises:
        DataError: bad columns (before any job), or bad values found on the executors (NaN, class out of range).
        DistributedTrainingError: the job failed for another reason.

    Example:
        >>> print(evaluate(df, net, "features", "label")[0].stats())  # doctest: +SKIP
    """
    from deepspark.eval import BaseEvaluation

    _check_network(net, "evaluate", per_example=False)
    checked_batch_size(batch_size)
    evals = list(evaluations) if evaluations is not None else default_evaluations(net)
    if not evals:
        raise DataError("evaluations: expected at least one evaluation, got an empty list")
    for i, e in enumerate(evals):
        if not isinstance(e, BaseEvaluation):
            raise DataError(f"evaluations[{i}]: expected a deepspark evaluation, got {type(e).__name__}")
        if e.num_examples() > 0:
            raise DataError(
                f"evaluations[{i}] already holds {e.num_examples()} examples; pass empty evaluations "
                "(every partition starts from a copy)"
            )
    spec = _resolve(df, net, features_col, label_col)
    task = _task(df, net, spec, batch_size, evaluations_json=tuple(e.to_json() for e in evals))
    try:
        rows = (
            _needed(df, spec)
            .mapInArrow(partial(evaluate_batches, task), "evaluations string")
            .rdd.map(_first_field)
        )
        with spark_failures("evaluate"):
            merged = rows.treeAggregate(None, merge_evaluations_json, merge_evaluations_json, depth=aggregation_depth)
    finally:
        task.model.unpersist()
    if merged is not None:
        from deepspark.eval import from_dict

        for e, d in zip(evals, json.loads(merged), strict=True):
            e.merge(from_dict(d))
    return evals


def score(
    df: DataFrame,
    net: Network,
    features_col: str | Sequence[str] = "features",
    label_col: str = "label",
    batch_size: int | None = None,
) -> float:
    """Mean loss of ``net`` over every row of ``df`` (plus regularization), as ``Network.score``.

    Raises:
        DataError: bad columns, an empty DataFrame, or bad values found on the executors.
        DistributedTrainingError: the job failed for another reason.

    Example:
        >>> score(df, net, "features", "label")  # doctest: +SKIP
        0.4213
    """
    _check_network(net, "score", per_example=False)
    checked_batch_size(batch_size)
    spec = _resolve(df, net, features_col, label_col)
    task = _task(df, net, spec, batch_size)
    try:
        parts = _needed(df, spec).mapInArrow(partial(score_batches, task), "loss_sum double, count long")
        with spark_failures("score"):
            row = parts.groupBy().sum("loss_sum", "count").collect()[0]
    finally:
        task.model.unpersist()
    count = row[1]
    if not count:
        raise DataError("score: the DataFrame has no rows")
    return float(row[0]) / int(count)


def score_examples(
    df: DataFrame,
    net: Network,
    features_col: str | Sequence[str] = "features",
    label_col: str = "label",
    key_col: str = "id",
    output_col: str = "score",
    batch_size: int | None = None,
    include_regularization: bool = False,
) -> DataFrame:
    """The loss of every example, keyed (DL4J's ``scoreExamples`` / ``feedForwardWithKey``).

    Lazy like ``predict``: executor errors surface at the action.

    Args:
        df: Rows with features, labels and a key.
        net: A network built from a config.
        features_col: Features column (array or Vector), or numeric columns assembled in order.
        label_col: Label column.
        key_col: Column copied to the output to identify each row.
        output_col: Name of the loss column (double).
        batch_size: Rows per forward pass; None (the default) lets each executor's network pick a cache-sized
            batch (`Network.inference_batch_size`).
        include_regularization: Add the network's regularization term to every loss.

    Returns:
        A DataFrame of (``key_col``, ``output_col``), one row per input row.

    Example:
        >>> score_examples(df, net, key_col="id").orderBy("score", ascending=False).show(5)  # doctest: +SKIP
    """
    from pyspark.sql.types import DoubleType, StructField, StructType

    _check_network(net, "score_examples", per_example=True)
    if _input_type(net).form == "recurrent":
        raise DataError("score_examples on Spark does not support sequence inputs yet; use score() or evaluate()")
    checked_batch_size(batch_size)
    spec = _resolve(df, net, features_col, label_col, key_col)
    if output_col == key_col:
        raise DataError(f"output_col and key_col are both {key_col!r}; choose another output_col")
    schema: StructType = StructType([df.schema[key_col], StructField(output_col, DoubleType())])
    task = _task(
        df, net, spec, batch_size, output_col=output_col, key_col=key_col, include_regularization=include_regularization
    )
    return _needed(df, spec).mapInArrow(partial(score_examples_batches, task), schema)


__all__ = [
    "InferenceTask",
    "default_evaluations",
    "evaluate",
    "evaluate_batches",
    "example_losses",
    "merge_evaluations_json",
    "predict",
    "score",
    "score_batches",
    "score_examples",
    "score_examples_batches",
]
