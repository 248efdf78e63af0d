"""Training master specs: how ``SparkNetwork`` distributes training. Frozen, validated, JSON round-trippable."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from deepspark.config._spec import Spec, check, check_positive, register
from deepspark.spark.thresholds import AdaptiveThreshold, ResidualClipping, ThresholdAlgorithm

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
    """Base of the training masters."""

    kind = "training master"


@register("parameter_averaging")
@dataclass(frozen=True, kw_only=True, slots=True)
class ParameterAveraging(TrainingMaster):
    """DL4J's synchronous parameter averaging, with Spark as the only transport.

    Each round the driver broadcasts the flat parameters (and updater state), each of ``num_workers``
    partitions fits ``averaging_frequency`` minibatches of ``batch_size_per_worker`` examples, a
    ``treeAggregate`` sums the results and the driver averages them. Worker tasks are pure functions of
    (broadcast, partition, seed), so Spark's task retry recovers a lost executor without changing the result.

    Attributes:
        batch_size_per_worker: examples per minibatch on each worker.
        averaging_frequency: minibatches each worker fits between two averagings. Higher means less
            driver overhead per example and more drift between workers.
        num_workers: partitions trained in parallel; None = Spark's default parallelism.
        worker_prefetch: minibatches a worker slices ahead on a thread while torch computes; 0 turns it off.
        save_updater: average the updater state (e.g. Adam's moments) too, instead of resetting it.
        repartition: when to repartition the data into ``num_workers`` partitions.
        repartition_strategy: ``balanced`` gives every worker N // W or N // W + 1 examples exactly;
            ``spark_default`` uses ``DataFrame.repartition``.
        approach: ``direct`` converts the DataFrame once per fit and caches it; ``export`` writes
            minibatches to Parquet under ``export_dir`` first and trains from them.
        export_dir: where ``approach="export"`` writes (removed after fit unless ``keep_export``).
        keep_export: keep the exported minibatches after fit.
        storage_level: Spark storage level of the cached training blocks.
        aggregation_depth: depth of the ``treeAggregate`` of worker results.
        collect_training_stats: record phase timings (see ``SparkNetwork.training_stats``).
        seed: seed of the per-epoch shuffles on the workers.

    Example:
        >>> master = ParameterAveraging(batch_size_per_worker=32, averaging_frequency=5)
        >>> ParameterAveraging.from_json(master.to_json()) == master
        True
    """

    batch_size_per_worker: int = 16
    averaging_frequency: int = 5
    num_workers: int | None = None
    worker_prefetch: int = 2
    save_updater: bool = True
    repartition: Literal["always", "never", "num_partitions_differs"] = "always"
    repartition_strategy: Literal["balanced", "spark_default"] = "balanced"
    approach: Literal["direct", "export"] = "direct"
    export_dir: str | None = None
    keep_export: bool = False
    storage_level: str = "MEMORY_AND_DISK"
    aggregation_depth: int = 2
    collect_training_stats: bool = False
    seed: int = 0

    def _validate(self) -> None:
        check_positive(self, "batch_size_per_worker", "averaging_frequency", "num_workers", "aggregation_depth")
        check(self.worker_prefetch >= 0, "worker_prefetch", f"expected an int >= 0, got {self.worker_prefetch}")
        check(
            self.storage_level in STORAGE_LEVELS,
            "storage_level",
            f"unknown storage level {self.storage_level!r}; valid: {', '.join(STORAGE_LEVELS)}",
        )


@register("gradient_sharing")
@dataclass(frozen=True, kw_only=True, slots=True)
class GradientSharing(TrainingMaster):
    """DL4J's SharedTrainingMaster: peers exchange threshold-encoded updates over torch.distributed.

    Training runs as Spark barrier stages, one per ``epochs_per_stage`` epochs: the ``num_workers`` tasks start
    together, join one
    gloo process group through a store the driver hosts, and
    train in lockstep. Each step a worker adds its update to a residual and sends only the elements with
    ``|r| >= tau`` as ``±tau`` (sparse indices, or a 2-bit bitmap when that is smaller); every worker applies
    the sum of all peers' messages, so the replicas stay identical. ``encoding="dense"`` all-reduces the
    gradients instead (what DDP does): the baseline threshold encoding must beat on bytes.

    Nothing is shipped per step through Spark; the driver gets the parameters back at the end of each stage,
    which is also where a failed stage restarts from (relaunched up to ``spark.stage.maxConsecutiveAttempts``
    times).

    Attributes:
        batch_size_per_worker: examples per minibatch on each worker.
        num_workers: barrier tasks (ranks); None = Spark's default parallelism.
        encoding: ``threshold`` (default) or ``dense``.
        threshold_algorithm: how tau moves (``AdaptiveThreshold``, ``FixedThreshold``, ``TargetSparsity``).
        residual_post_processor: ``ResidualClipping`` (default) or None.
        staleness: 0 = synchronous; 1 = apply the peers' updates one step late, so the exchange of step t
            overlaps the compute of step t + 1.
        epochs_per_stage: epochs one barrier stage trains. 1 (default) gives the driver the state after every
            epoch (checkpoints, listeners, the restart point of a failed stage); more saves the per-stage
            cost (a Spark job, the broadcast, re-reading the cached partitions: ~0.2 s here) per epoch.
        worker_prefetch: minibatches sliced ahead on a thread while torch computes; 0 turns it off.
        repartition: ``always`` balances the data into ``num_workers`` partitions; ``never`` keeps the
            DataFrame's partitions (their number must equal ``num_workers``).
        storage_level: Spark storage level of the cached training blocks.
        collective_timeout: seconds any rendezvous or collective may wait for a peer before the stage fails
            (a dead or stuck peer fails every rank within this bound, never a hang).
        backend: ``auto`` or ``gloo``; ``nccl`` is refused while ``Network`` computes on the CPU only.
        collect_training_stats: record per-step phase timings, bytes, sparsity and tau.
        seed: seed of the per-epoch shuffles on the workers.

    Example:
        >>> master = GradientSharing(batch_size_per_worker=32, num_workers=2)
        >>> GradientSharing.from_json(master.to_json()) == master
        True
    """

    batch_size_per_worker: int = 16
    num_workers: int | None = None
    encoding: Literal["threshold", "dense"] = "threshold"
    threshold_algorithm: ThresholdAlgorithm = field(default_factory=AdaptiveThreshold)
    residual_post_processor: ResidualClipping | None = field(default_factory=ResidualClipping)
    staleness: int = 0
    epochs_per_stage: int = 1
    worker_prefetch: int = 2
    repartition: Literal["always", "never"] = "always"
    storage_level: str = "MEMORY_AND_DISK"
    collective_timeout: float = 30.0
    backend: Literal["auto", "gloo", "nccl"] = "auto"
    collect_training_stats: bool = False
    seed: int = 0

    def _validate(self) -> None:
        check_positive(self, "batch_size_per_worker", "num_workers", "collective_timeout", "epochs_per_stage")
        check(self.staleness in (0, 1), "staleness", f"expected 0 or 1, got {self.staleness}")
        check(self.worker_prefetch >= 0, "worker_prefetch", f"expected an int >= 0, got {self.worker_prefetch}")
        check(
            self.storage_level in STORAGE_LEVELS,
            "storage_level",
            f"unknown storage level {self.storage_level!r}; valid: {', '.join(STORAGE_LEVELS)}",
        )
