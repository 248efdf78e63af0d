"""Training master specs: how ``SparkNetwork`` distributes training. Frozen, validated, JSON round-trippable."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from deepspark.config._spec import Spec, check, check_positive, register
from deepspark.errors import ConfigError
from deepspark.spark.thresholds import AdaptiveThreshold, ResidualClipping, ThresholdAlgorithm

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from deepspark.nn import Network
    from deepspark.spark._driver import FitContext
    from deepspark.spark._prepare import PreparedData
    from deepspark.spark.events import PhaseTimer

STORAGE_LEVELS = (
    "MEMORY_ONLY",
    "MEMORY_ONLY_2",
    "MEMORY_AND_DISK",
    "MEMORY_AND_DISK_2",
    "MEMORY_AND_DISK_DESER",
    "DISK_ONLY",
    "DISK_ONLY_2",
    "OFF_HEAP",
)


@dataclass(frozen=True, kw_only=True, slots=True)
class TrainingMaster(Spec):
    """Base of the training masters: the settings every master shares, and the protocol ``SparkNetwork.fit``
    drives (``prepare`` the data once, then ``train`` in a ``FitContext``).

    Attributes:
        batch_size_per_worker: examples per minibatch on each worker.
        num_workers: workers (partitions, ranks) trained in parallel; None = Spark's default parallelism.
        worker_prefetch: minibatches a worker slices ahead on a thread while torch computes; 0 turns it off.
        storage_level: Spark storage level of the cached training blocks.
        collect_training_stats: record phase timings (see ``SparkNetwork.training_stats``).
        seed: seed of the per-epoch shuffles on the workers.
    """

    kind = "training master"

    batch_size_per_worker: int = 16
    num_workers: int | None = None
    worker_prefetch: int = 2
    storage_level: str = "MEMORY_AND_DISK"
    collect_training_stats: bool = False
    seed: int = 0

    def _validate(self) -> None:
        check_positive(self, "batch_size_per_worker", "num_workers")
        check(self.worker_prefetch >= 0, "worker_prefetch", f"expected an int >= 0, got {self.worker_prefetch}")
        check(
            self.storage_level in STORAGE_LEVELS,
            "storage_level",
            f"unknown storage level {self.storage_level!r}; valid: {', '.join(STORAGE_LEVELS)}",
        )

    def block_strategy(self, partitions: int, workers: int) -> Literal["balanced", "spark_default", "keep"]:
        """How ``prepare`` lays the data out over ``workers`` given the input's ``partitions``."""
        return "balanced"

    def check(self, gpus: bool = False) -> None:
        """Refuse settings this fit cannot run, before any data is converted (default: nothing to refuse).

        ``gpus``: whether the tasks compute on GPUs Spark assigns them (``spark.task.resource.gpu.amount``).
        """

    def prepare(
        self,
        spark: SparkSession,
        data: DataFrame | str,
        net: Network,
        features_col: Any,
        label_col: str,
        workers: int,
        timer: PhaseTimer,
    ) -> PreparedData:
        """Convert the training data once per fit into cached per-worker blocks (an export path is read as is)."""
        from deepspark.spark import _prepare

        if isinstance(data, str):
            return _prepare.prepare_exported(spark, data, net, self, workers, timer)
        return _prepare.prepare(data, net, self, features_col, label_col, workers, timer)

    def train(self, ctx: FitContext) -> None:
        """Train ``ctx.epochs`` epochs on ``ctx.data``, keeping ``ctx.net`` at the last finished round."""
        raise NotImplementedError(f"{type(self).__name__} does not implement train")

    def review_epoch(self, epoch: int, reports: list[dict[str, Any]], n_params: int) -> None:
        """On the driver, look at the ranks' reports of a finished barrier-stage epoch (default: nothing)."""


@register("parameter_averaging")
@dataclass(frozen=True, kw_only=True, slots=True)
class ParameterAveraging(TrainingMaster):
    """DL4J's synchronous parameter averaging: fit ``averaging_frequency`` minibatches, average, repeat.

    Each of ``num_workers`` workers fits ``averaging_frequency`` minibatches of ``batch_size_per_worker``
    examples of its own partition; then the parameters (and updater state) become the mean over the workers.
    ``transport="collective"`` (default) averages with all-reduces inside one Spark barrier stage that trains
    the whole fit: no Spark job per round. ``transport="spark"`` runs one Spark job per round (broadcast,
    fit, ``treeAggregate``): it needs no barrier mode, and Spark retries a failed task by itself. Both give
    the same parameters.

    Attributes:
        averaging_frequency: minibatches each worker fits between two averagings. Higher means less
            communication per example and more drift between workers.
        transport: ``collective`` or ``spark`` (see above).
        save_updater: average the updater state (e.g. Adam's moments) too, instead of resetting it.
        repartition: when to repartition the data into ``num_workers`` partitions.
        repartition_strategy: ``balanced`` gives every worker N // W or N // W + 1 examples exactly;
            ``spark_default`` uses ``DataFrame.repartition``.
        approach: ``direct`` converts the DataFrame once per fit and caches it; ``export`` writes
            minibatches to Parquet under ``export_dir`` first and trains from them.
        export_dir: where ``approach="export"`` writes (removed after fit unless ``keep_export``).
        keep_export: keep the exported minibatches after fit.
        aggregation_depth: depth of the ``treeAggregate`` of worker results (``transport="spark"``).
        epochs_per_stage: ``transport="collective"``: epochs one barrier stage trains; None (default) = the
            whole fit in one stage. The driver gets each epoch's state either way.
        collective_timeout: seconds a rendezvous or collective may wait for a peer before the stage fails.
        backend: ``auto`` (NCCL when every rank computes on a CUDA device, else gloo), ``gloo`` or ``nccl``
            (refused before any work when Spark hands the tasks no GPU).

    Example:
        >>> master = ParameterAveraging(batch_size_per_worker=32, averaging_frequency=5)
        >>> ParameterAveraging.from_json(master.to_json()) == master
        True
    """

    averaging_frequency: int = 5
    transport: Literal["collective", "spark"] = "collective"
    save_updater: bool = True
    repartition: Literal["always", "never", "num_partitions_differs"] = "always"
    repartition_strategy: Literal["balanced", "spark_default"] = "balanced"
    approach: Literal["direct", "export"] = "direct"
    export_dir: str | None = None
    keep_export: bool = False
    aggregation_depth: int = 2
    epochs_per_stage: int | None = None
    collective_timeout: float = 30.0
    backend: Literal["auto", "gloo", "nccl"] = "auto"

    def _validate(self) -> None:
        TrainingMaster._validate(self)
        check_positive(self, "averaging_frequency", "aggregation_depth", "epochs_per_stage", "collective_timeout")

    def block_strategy(self, partitions: int, workers: int) -> Literal["balanced", "spark_default", "keep"]:
        if self.repartition == "never" or (self.repartition == "num_partitions_differs" and partitions == workers):
            return "keep"
        return self.repartition_strategy

    def check(self, gpus: bool = False) -> None:
        _refuse_nccl(self.backend, gpus)

    def train(self, ctx: FitContext) -> None:
        from deepspark.spark import _averaging

        _averaging.train(self, ctx)

    def stage_trainer(self, net: Any, world: int, state: dict[str, float], timer: PhaseTimer) -> Any:
        """The collective transport's per-rank trainer (executor side)."""
        from deepspark.spark._averaging_worker import AveragingTrainer

        return AveragingTrainer(net, self, world, state, timer)


@register("gradient_sharing")
@dataclass(frozen=True, kw_only=True, slots=True)
class GradientSharing(TrainingMaster):
    """DL4J's SharedTrainingMaster: peers exchange threshold-encoded updates over torch.distributed.

    Training runs as one Spark barrier stage (or one per ``epochs_per_stage`` epochs): the ``num_workers``
    tasks start together, join one process group (NCCL when every task has a GPU, else gloo) through a store
    the driver hosts, and train in lockstep. Each step a worker adds its update to a residual and sends only the
    elements with ``|r| >= tau`` as ``±tau`` (sparse indices, or a 2-bit bitmap when that is smaller); every
    worker applies the sum of all peers' messages, so the replicas stay identical. ``encoding="dense"``
    all-reduces the gradients instead (what DDP does), overlapped with backward.

    Nothing is shipped per step through Spark. After every epoch the ranks publish the state to the driver
    (checkpoints, listeners, and the restart point of a failed stage, relaunched up to
    ``spark.stage.maxConsecutiveAttempts`` times) without ending the stage.

    Attributes:
        encoding: ``threshold`` (default) or ``dense``.
        threshold_algorithm: how tau moves (``AdaptiveThreshold``, ``FixedThreshold``, ``TargetSparsity``).
        residual_post_processor: ``ResidualClipping`` (default) or None.
        flush_residual: at the end of every epoch, apply every rank's residual (what has not reached tau
            yet) at once. Off by default: the residuals carry on into the next epoch and what is left at the
            end of a fit (less than tau per element) is dropped; a relaunched stage, or a fit resumed from a
            checkpoint, continues from the residuals of its epoch. Flushing applies up to
            ``num_workers * tau`` to every parameter in one step, and that burst cost 3-5 points of MNIST test
            accuracy per epoch (docs/gradient-sharing.md).
        staleness: 0 = synchronous; 1 = apply the peers' updates one step late, so the exchange of step t
            overlaps the compute of step t + 1.
        epochs_per_stage: epochs one barrier stage trains; None (default) = the whole fit in one stage.
        repartition: ``always`` balances the data into ``num_workers`` partitions; ``never`` keeps the
            DataFrame's partitions (their number must equal ``num_workers``).
        collective_timeout: seconds any rendezvous or collective may wait for a peer before the stage fails
            (a dead or stuck peer fails every rank within this bound, never a hang).
        backend: ``auto`` (NCCL when every rank computes on a CUDA device, else gloo, logged), ``gloo`` or
            ``nccl`` (refused before any work when Spark hands the tasks no GPU).

    Example:
        >>> master = GradientSharing(batch_size_per_worker=32, num_workers=2)
        >>> GradientSharing.from_json(master.to_json()) == master
        True
    """

    encoding: Literal["threshold", "dense"] = "threshold"
    threshold_algorithm: ThresholdAlgorithm = field(default_factory=AdaptiveThreshold)
    residual_post_processor: ResidualClipping | None = field(default_factory=ResidualClipping)
    flush_residual: bool = False
    staleness: int = 0
    epochs_per_stage: int | None = None
    repartition: Literal["always", "never"] = "always"
    collective_timeout: float = 30.0
    backend: Literal["auto", "gloo", "nccl"] = "auto"

    def _validate(self) -> None:
        TrainingMaster._validate(self)
        check_positive(self, "collective_timeout", "epochs_per_stage")
        check(self.staleness in (0, 1), "staleness", f"expected 0 or 1, got {self.staleness}")

    def block_strategy(self, partitions: int, workers: int) -> Literal["balanced", "spark_default", "keep"]:
        return "keep" if self.repartition == "never" else "balanced"

    def check(self, gpus: bool = False) -> None:
        _refuse_nccl(self.backend, gpus)

    def train(self, ctx: FitContext) -> None:
        from deepspark.spark import _sharing

        _sharing.train(self, ctx)

    def review_epoch(self, epoch: int, reports: list[dict[str, Any]], n_params: int) -> None:
        """Log a warning naming ``threshold_algorithm`` when an epoch's threshold messages carried almost
        nothing (tau far above the updates: training cannot converge)."""
        if self.encoding != "threshold" or n_params <= 0:
            return
        from deepspark.spark.advice import threshold_stall

        steps = sum(int(r.get("steps", 0)) for r in reports)
        sent = sum(int(r.get("elements_sent", 0)) for r in reports)
        if steps <= 0:
            return
        tau = float(next((r.get("state") or {} for r in reports if r.get("rank") == 0), {}).get("tau", 0.0))
        settings = {"threshold_algorithm": self.threshold_algorithm}
        finding = threshold_stall(sent / (steps * n_params), tau, settings)
        if finding is not None:
            log = logging.getLogger("deepspark")
            log.warning("gradient sharing, epoch %d: %s. %s", epoch, finding.title, finding.detail)

    def stage_trainer(self, net: Any, world: int, state: dict[str, float], timer: PhaseTimer) -> Any:
        """This master's per-rank trainer (executor side): the dense or threshold exchange."""
        from deepspark.spark._sharing_trainer import Trainer

        return Trainer(net, self, world, state, timer)


def _refuse_nccl(backend: str, gpus: bool) -> None:
    if backend == "nccl" and not gpus:
        raise ConfigError(
            "NCCL moves CUDA tensors only and this fit's tasks compute on the CPU (Spark hands them no GPU); use "
            "'gloo' or 'auto', or give every task a GPU: spark.task.resource.gpu.amount=1 with executor GPUs and a "
            "discovery script (docs/gpu.md)",
            "backend",
        )
