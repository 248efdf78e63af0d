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


def _describe(df: DataFrame, net: Network, features_col: Any, label_col: str) -> tuple[ColumnSpec, Any]:
    from deepspark.data.dataframe import describe_columns
    from deepspark.nn.functional import CLASSIFICATION_LOSSES

    head = net.heads[0]
    classifier = head.loss in CLASSIFICATION_LOSSES
    if recurrent_input(net):
        from deepspark.data.sequences import describe_sequences, sequence_label_kind

        kind = sequence_label_kind(df, label_col, head.recurrent, classifier)
        return describe_sequences(df, features_col, label_col, label_kind=kind)
    scalar_classes = classifier and not head.recurrent and _is_scalar(df, label_col)
    return describe_columns(df, features_col, label_col, label_kind="index" if scalar_classes else None)


def _worker_counts(blocks: DataFrame, workers: int) -> tuple[int, ...]:
    """Examples per worker, from one JVM aggregate over the cached blocks (it also fills the cache)."""
    from pyspark.sql import functions as F

    counts = [0] * workers
    for row in blocks.groupBy("worker").agg(F.sum("n").alias("n")).collect():
        counts[int(row["worker"])] = int(row["n"])
    return tuple(counts)


def prepare(
    df: DataFrame,
    net: Network,
    master: TrainingMaster,
    features_col: Any,
    label_col: str,
    workers: int,
    timer: PhaseTimer,
) -> PreparedData:
    """Check the columns against the network, convert to per-worker blocks through Arrow, cache them."""
    from pyspark import StorageLevel

    from deepspark.data.dataframe import to_blocks

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
