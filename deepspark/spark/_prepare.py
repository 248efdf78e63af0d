"""Data preparation for every training master: a DataFrame (or an export path) becomes cached per-worker blocks.

Both masters train from the same thing: a persisted DataFrame whose partition k holds worker k's examples as
Arrow binary blocks (``deepspark.data.dataframe.BLOCK_SCHEMA``), converted once per fit. Round jobs and
barrier stages read it with ``mapInArrow``; the executors decode it once and keep it (``_executor``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from deepspark._failures import spark_failures
from deepspark.errors import DataError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from deepspark.data._arrow import ColumnSpec
    from deepspark.nn import Network
    from deepspark.spark.events import PhaseTimer
    from deepspark.spark.masters import TrainingMaster


@dataclass
class PreparedData:
    """Training blocks cached on the executors, one partition per worker.

    Attributes:
        blocks: the persisted block DataFrame (``worker, part, n, x, y``): partition k is worker k's data.
        spec: how the blocks were encoded (feature and label layout).
        counts: examples per worker, in worker order.
        fit_id: names this fit's blocks in the executors' caches.
    """

    blocks: DataFrame
    spec: ColumnSpec
    counts: tuple[int, ...]
    fit_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def workers(self) -> int:
        return len(self.counts)

    def unpersist(self) -> None:
        self.blocks.unpersist()


def input_size(net: Network) -> int | None:
    """Values per example the network's (first) input reads, or None when the config does not say."""
    from deepspark.config.graph import GraphConfig

    config = net.config
    if isinstance(config, GraphConfig):
        return int(config.input_types[0].flat_size())
    input_type = getattr(config, "input_type", None)
    return None if input_type is None else int(input_type.flat_size())


def recurrent_input(net: Network) -> bool:
    """The network reads sequences (its input type is recurrent): the features column is array<array<...>>."""
    from deepspark.config.graph import GraphConfig

    config = net.config
    types = config.input_types if isinstance(config, GraphConfig) else [getattr(config, "input_type", None)]
    return bool(types) and getattr(types[0], "form", None) == "recurrent"


def _check_width(spec: ColumnSpec, net: Network) -> None:
    expected = input_size(net)
    if expected is not None and spec.n_features != expected:
        raise DataError(
            f"column {spec.features[0]!r} has {spec.n_features} features per row but the network's input "
            f"expects {expected}; check features_col or the config's "
            f"{getattr(net.config, 'INPUT_FIELD', 'input_type')}"
        )


def _is_scalar(df: DataFrame, column: str) -> bool:
    from pyspark.sql.types import NumericType

    fields = {f.name: f.dataType for f in df.schema.fields}
    return isinstance(fields.get(column), NumericType)


def _flat_label_kind(df: DataFrame, net: Network, label_col: str) -> Literal["index"] | None:
    """``"index"`` when a classifier reads a numeric label column (Spark ML keeps classes as doubles), else
    None: the column's type decides."""
    from deepspark.nn.functional import CLASSIFICATION_LOSSES

    head = net.heads[0]
    classes = head.loss in CLASSIFICATION_LOSSES and not head.recurrent and _is_scalar(df, label_col)
    return "index" if classes else None


def _describe(df: DataFrame, net: Network, features_col: Any, label_col: str) -> tuple[ColumnSpec, Any]:
    from deepspark.data.dataframe import describe_columns
    from deepspark.nn.functional import CLASSIFICATION_LOSSES

    if recurrent_input(net):
        from deepspark.data.sequences import describe_sequences, sequence_label_kind

        head = net.heads[0]
        kind = sequence_label_kind(df, label_col, head.recurrent, head.loss in CLASSIFICATION_LOSSES)
        return describe_sequences(df, features_col, label_col, label_kind=kind)
    return describe_columns(df, features_col, label_col, label_kind=_flat_label_kind(df, net, label_col))


def _worker_counts(blocks: DataFrame, workers: int) -> tuple[int, ...]:
    """Examples per worker, from one JVM aggregate over the cached blocks (it also fills the cache)."""
    from pyspark.sql import functions as F

    counts = [0] * workers
    for row in blocks.groupBy("worker").agg(F.sum("n").alias("n")).collect():
        counts[int(row["worker"])] = int(row["n"])
    return tuple(counts)


def _prepare_in_place(
    df: DataFrame,
    net: Network,
    master: TrainingMaster,
    features_col: Any,
    label_col: str,
    workers: int,
    timer: PhaseTimer,
) -> PreparedData | None:
    """One data pass for a persisted frame whose partitions may already be the workers' shares; else None.

    A persisted DataFrame with exactly ``workers`` partitions is converted where it lies, without the describe
    pass: the schema is checked here and every row on the executors (the network's input width, nulls, NaN,
    class indices). The blocks' counts then say whether partition k held exactly worker k's balanced share
    (``"keep"`` takes any split). If not, or if a row was bad, the blocks are dropped and None sends the caller
    down the usual path, which describes the data first and reports bad rows with its full message.
    """
    from pyspark import StorageLevel

    from deepspark.data._arrow import balanced_ranges
    from deepspark.data.dataframe import _is_persisted, describe_columns, to_blocks

    width = input_size(net)
    if width is None or recurrent_input(net) or not _is_persisted(df) or df.rdd.getNumPartitions() != workers:
        return None
    strategy = master.block_strategy(workers, workers)
    if strategy == "spark_default":
        return None
    head = net.heads[0]
    spec, _ = describe_columns(
        df,
        features_col,
        label_col,
        label_kind=_flat_label_kind(df, net, label_col),
        expected_features=width,
        expected_label_values=head.n_out,
    )
    classes = head.n_out if spec.label_kind == "index" else None
    blocks: DataFrame | None = None
    with timer.phase("repartition", round=0, in_place=True):
        try:
            with spark_failures("converting the training data"):
                blocks = to_blocks(df, spec, num_partitions=workers, strategy="keep", label_classes=classes)
                blocks = blocks.persist(getattr(StorageLevel, master.storage_level))
                counts = _worker_counts(blocks, workers)
        except DataError:  # bad rows: the usual path names them with its full message
            if blocks is not None:
                blocks.unpersist()
            return None
        except BaseException:
            if blocks is not None:
                blocks.unpersist()
            raise
    total = sum(counts)
    shares = tuple(stop - start for start, stop in balanced_ranges(total, workers))
    if total >= workers and (strategy == "keep" or counts == shares):
        return PreparedData(blocks, spec, counts)
    blocks.unpersist()
    return None


def prepare(
    df: DataFrame,
    net: Network,
    master: TrainingMaster,
    features_col: Any,
    label_col: str,
    workers: int,
    timer: PhaseTimer,
) -> PreparedData:
    """Check the columns against the network, convert to per-worker blocks through Arrow, cache them.

    A persisted frame already split over the workers takes one data pass (`_prepare_in_place`); any other
    takes two: one JVM aggregate that checks the columns and counts rows per partition, then the conversion
    (with a shuffle when rows must move to their worker).
    """
    from pyspark import StorageLevel

    from deepspark.data.dataframe import to_blocks

    in_place = _prepare_in_place(df, net, master, features_col, label_col, workers, timer)
    if in_place is not None:
        return in_place

    with timer.phase("count", round=0), spark_failures("reading the training columns"):
        spec, seen = _describe(df, net, features_col, label_col)
    _check_width(spec, net)
    total = seen.rows or 0  # describe_columns already refused an empty DataFrame
    if total < workers:
        raise DataError(
            f"{total} rows cannot feed {workers} workers; lower num_workers ({type(master).__name__}.num_workers) "
            "or add data"
        )
    head = net.heads[0]
    if seen.label_max is not None and seen.label_max >= head.n_out:
        raise DataError(
            f"label column {label_col!r}: class index {int(seen.label_max)} is out of range for {head.n_out} output "
            f"classes (valid 0..{head.n_out - 1})"
        )
    strategy: Literal["balanced", "spark_default", "keep"] = master.block_strategy(df.rdd.getNumPartitions(), workers)
    blocks: DataFrame | None = None
    with timer.phase("repartition", round=0):
        try:
            with spark_failures("converting the training data"):
                blocks = to_blocks(
                    df, spec, num_partitions=workers, strategy=strategy, partition_rows=seen.partition_rows
                )
                blocks = blocks.persist(getattr(StorageLevel, master.storage_level))
                counts = _worker_counts(blocks, blocks.rdd.getNumPartitions())
        except BaseException:
            if blocks is not None:
                blocks.unpersist()
            raise
    return PreparedData(blocks, spec, counts)


def prepare_exported(
    spark: SparkSession, path: str, net: Network, master: TrainingMaster, workers: int, timer: PhaseTimer
) -> PreparedData:
    """Training blocks from minibatches written by ``export_minibatches``: minibatch j goes to worker j % W."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from deepspark.data._arrow import hash_route_keys
    from deepspark.data.export import read_exported

    with timer.phase("repartition", round=0):
        frame, info = read_exported(spark, path)
        _check_width(info.spec, net)
        if info.n_batches < workers:
            raise DataError(
                f"the export at {path} holds {info.n_batches} minibatches, fewer than {workers} workers; lower "
                "num_workers or export smaller minibatches"
            )
        routes = hash_route_keys(workers)  # keys Spark's hash partitioner sends to partitions 0..W-1, one each
        route = F.element_at(F.array(*[F.lit(r) for r in routes]), (F.col("batch") % workers + 1).cast("int"))
        keyed = frame.select(
            (F.col("batch") % workers).cast("int").alias("worker"),
            F.col("batch").cast("int").alias("part"),
            "n",
            "x",
            "y",
            route.alias("route"),
        )
        blocks = keyed.repartition(workers, "route").drop("route")
        blocks = blocks.persist(getattr(StorageLevel, master.storage_level))
        try:
            with spark_failures("reading the exported minibatches"):
                counts = _worker_counts(blocks, workers)
        except BaseException:
            blocks.unpersist()
            raise
    return PreparedData(blocks, info.spec, counts)


__all__ = ["PreparedData", "input_size", "prepare", "prepare_exported", "recurrent_input"]
