"""``SparkNetwork``: the driver-side facade that trains, evaluates and predicts a ``Network`` on Spark."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepspark.errors import ConfigError, DataError, DeepSparkError, StorageError
from deepspark.nn.fit_session import FitSession, OnDivergence, is_classifier, local_validator, validation_names
from deepspark.spark._driver import FitContext, RoundInfo, latest_checkpoint
from deepspark.spark._placement import TASK_AMOUNT_KEY, driver_placement
from deepspark.spark._trainer_state import (
    TrainerState,
    host_dtype,
    load_trainer_state,
    save_trainer_state,
    state_path,
)
from deepspark.spark.events import PhaseTimer
from deepspark.spark.listeners import notify
from deepspark.spark.masters import ParameterAveraging, TrainingMaster
from deepspark.spark.stats import TrainingStats

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from deepspark.config import GraphConfig, ModuleConfig, NetworkConfig
    from deepspark.nn import Network
    from deepspark.nn.callbacks import Callback
    from deepspark.nn.history import History

log = logging.getLogger("deepspark")


class SparkNetwork:
    """Train, evaluate and predict a deepspark network on a Spark DataFrame.

    Example:
        >>> master = ParameterAveraging(batch_size_per_worker=32, averaging_frequency=5)   # doctest: +SKIP
        >>> spark_net = SparkNetwork(spark, conf, master)                                   # doctest: +SKIP
        >>> spark_net.fit(df, features_col="features", label_col="label", epochs=5)         # doctest: +SKIP
        >>> spark_net.evaluate(test_df).stats()                                             # doctest: +SKIP
    """

    def __init__(
        self,
        spark: SparkSession,
        network: NetworkConfig | GraphConfig | ModuleConfig | Network,
        training_master: TrainingMaster | None = None,
        *,
        listeners: Sequence[Any] = (),
    ) -> None:
        from deepspark.nn import Network

        self.spark = spark
        self.network: Network = network if isinstance(network, Network) else Network(network)
        if self.network.config is None:
            raise ConfigError(
                "SparkNetwork cannot ship a network wrapped with Network.from_module (executors rebuild networks "
                "from their config); describe the module as ModuleConfig(factory='package.module:function', ...)",
                "network",
            )
        self.master = training_master or ParameterAveraging()
        self.history: History | None = None  # the epochs' metrics of the last fit
        self._stats: TrainingStats | None = None
        self.listeners: list[Any] = list(listeners)

    def set_listeners(self, *listeners: Any) -> SparkNetwork:
        """Replace the driver-side listeners (e.g. ``StatsListener``) called during ``fit``; returns self.

        A listener implements any of ``SparkTrainingListener``'s hooks (``deepspark.spark.listeners``).
        """
        self.listeners = list(listeners)
        return self

    def _workers(self) -> int:
        n = getattr(self.master, "num_workers", None)
        return int(n) if n else int(self.spark.sparkContext.defaultParallelism)

    def fit(
        self,
        data: DataFrame | str,
        features_col: str | Sequence[str] = "features",
        label_col: str = "label",
        epochs: int = 1,
        *,
        checkpoint_dir: str | Path | None = None,
        checkpoint_every: int = 1,
        resume_from: str | Path | None = None,
        on_round: Callable[[RoundInfo], None] | None = None,
        validation_data: Any = None,
        callbacks: Sequence[Callback] = (),
        verbose: int | bool | None = None,
        on_divergence: OnDivergence = "raise",
    ) -> Network:
        """Train for ``epochs`` epochs and return the trained ``Network`` (also ``self.network``).

        ``data`` is a DataFrame, or the path of minibatches written by ``export_minibatches``. With
        ``checkpoint_dir`` an archive is written every ``checkpoint_every`` epochs; ``resume_from`` (an
        archive or a checkpoint folder) continues from the epoch it was written at, so on CPU with a
        fixed seed a resumed run ends with the same parameters as an uninterrupted one. Gradient sharing's
        threshold state (tau, and every rank's residual) is checkpointed next to the archive
        (``<archive>.trainer.safetensors``) and handed back to the ranks on resume (same ``num_workers``).

        ``validation_data`` (a DataFrame with the same columns, or ``(x, y)`` arrays evaluated on the driver),
        ``callbacks`` and ``verbose`` work as in ``Network.fit``; the epochs' metrics land in ``self.history``.
        Training runs in one barrier stage for the whole fit; a validation DataFrame needs task slots between
        epochs, so with one the stage ends (and restarts) at every epoch. Callbacks that can stop training
        (``EarlyStopping``) make the workers wait for the driver's verdict after each epoch.

        The driver checks the score and its network's parameters after every round (or epoch): NaN or infinite
        values raise ``TrainingDivergedError`` (``on_divergence="warn"``: warn once and go on), before any
        checkpoint of them is written.
        """
        from deepspark.nn import Network

        if epochs < 1:
            raise DataError(f"epochs: expected a positive int, got {epochs}")
        if checkpoint_dir is not None:
            _check_checkpoint_dir(Path(checkpoint_dir))
        master = self.master
        placement = driver_placement(self.spark.sparkContext)  # bad device settings fail here, before any work
        master.check(placement.gpus)
        if placement.gpus:
            log.info("tasks compute on the GPU Spark assigns each (%s=%g)", TASK_AMOUNT_KEY, placement.task_amount)
        resumed: TrainerState | None = None
        if resume_from is not None:
            archive = latest_checkpoint(resume_from)
            self.network = Network.load(archive)
            resumed = _resumed_trainer_state(archive, self.network)
            log.info("resuming from epoch %d (iteration %d)", self.network.epoch, self.network.iteration)
        session = self._fit_session(
            epochs, validation_data, features_col, label_col, callbacks, verbose, on_divergence
        )
        workers = self._workers()
        stats = None
        if master.collect_training_stats:
            stats = TrainingStats(settings=master.to_dict(), num_workers=workers, start=time.time())
        timer = PhaseTimer("driver")
        export_path: Path | None = None
        source: DataFrame | str = str(data) if isinstance(data, (str, Path)) else data
        if not isinstance(source, str) and getattr(master, "approach", "direct") == "export":
            export_path = self._export(source, features_col, label_col)
            source = str(export_path)
        prepared = master.prepare(self.spark, source, self.network, features_col, label_col, workers, timer)
        start_epoch = self.network.epoch

        def on_round_done(info: RoundInfo) -> None:
            session.step(info.score, total=info.rounds_in_epoch)
            if on_round is not None:
                on_round(info)

        def on_epoch(epoch: int) -> bool:
            if checkpoint_dir is not None and (epoch - start_epoch) % checkpoint_every == 0:
                path = Path(checkpoint_dir) / f"checkpoint_epoch{epoch:04d}.zip"
                path.parent.mkdir(parents=True, exist_ok=True)
                _save_trainer_state(ctx.trainer_state, epoch, path)  # first: a checkpoint's archive is its last file
                self.network.save(path)
            return not session.end_epoch()

        ctx = FitContext(
            spark=self.spark,
            net=self.network,
            data=prepared,
            epochs=epochs,
            timer=timer,
            stats=stats,
            listeners=self.listeners,
            on_round=on_round_done,
            on_epoch=on_epoch,
            synchronous=bool(session.callbacks),
            on_diverged=session.guard.diverged,
            epoch_per_stage=hasattr(validation_data, "sparkSession"),  # a validation DataFrame
            trainer_state=resumed,
        )
        session.start()
        try:
            notify(self.listeners, "on_spark_fit_start", self.network, self._listener_info(master, prepared.workers))
            master.train(ctx)
        finally:
            session.progress.close()
            prepared.unpersist()
            if export_path is not None and not getattr(master, "keep_export", False):
                shutil.rmtree(export_path, ignore_errors=True)
        self.history = session.finish()
        ctx.flush_events()
        if stats is not None:
            stats.end = time.time()
            self._stats = stats
            for finding in stats.advice()[:3]:
                log.info("training advice: %s — %s", finding.title, finding.detail)
        notify(self.listeners, "on_spark_fit_end", self.network, stats)
        return self.network

    def _fit_session(
        self,
        epochs: int,
        validation: Any,
        features_col: Any,
        label_col: str,
        callbacks: Any,
        verbose: Any,
        on_divergence: OnDivergence = "raise",
    ) -> FitSession:
        """Validation (a DataFrame is checked against the network now), callbacks and progress of one fit."""
        from pyspark.sql import DataFrame

        from deepspark.spark import _inference

        if validation is None or not isinstance(validation, DataFrame):
            validate = None if validation is None else local_validator(self.network, validation)
        else:
            _inference._resolve(validation, self.network, features_col, label_col)

            def validate() -> dict[str, float]:
                metrics = {"val_loss": self.score(validation, features_col, label_col)}
                if is_classifier(self.network):
                    metrics["val_accuracy"] = float(self.evaluate(validation, features_col, label_col).accuracy())
                return metrics

        names = validation_names(self.network) if validation is not None else ()
        return FitSession(
            self.network, epochs, callbacks=callbacks, validate=validate, val_names=names, verbose=verbose,
            unit="round", on_divergence=on_divergence,
        )

    def _listener_info(self, master: TrainingMaster, workers: int) -> dict[str, Any]:
        """What listeners learn once per fit: master settings, workers, Spark version, master URL, app id."""
        sc = self.spark.sparkContext
        return {
            "master": master.to_dict(),
            "num_workers": workers,
            "spark_version": str(sc.version),
            "spark_master": str(sc.master),
            "app_id": str(sc.applicationId),
        }

    def _export(self, df: DataFrame, features_col: Any, label_col: str) -> Path:
        from deepspark.data.export import export_minibatches

        master = self.master
        base = getattr(master, "export_dir", None)
        if base is None:
            raise DataError("approach='export' needs export_dir (ParameterAveraging.export_dir)")
        path = Path(base) / f"deepspark-export-{int(time.time() * 1000)}"
        export_minibatches(
            df,
            str(path),
            master.batch_size_per_worker,  # type: ignore[attr-defined]
            features_col=features_col,
            label_col=label_col,
        )
        return path

    def training_stats(self) -> TrainingStats:
        """Phase timings of the last ``fit`` (needs ``collect_training_stats=True``)."""
        if self._stats is None:
            raise DeepSparkError("no training stats: set collect_training_stats=True on the training master and fit")
        return self._stats

    def evaluate(
        self,
        df: DataFrame,
        features_col: str | Sequence[str] = "features",
        label_col: str = "label",
        evaluations: Sequence[Any] | None = None,
    ) -> Any:
        """Evaluate on Spark; returns the first evaluation (``do_evaluation`` returns them all)."""
        return self.do_evaluation(df, features_col, label_col, evaluations)[0]

    def do_evaluation(
        self,
        df: DataFrame,
        features_col: str | Sequence[str] = "features",
        label_col: str = "label",
        evaluations: Sequence[Any] | None = None,
    ) -> list[Any]:
        """Run any deepspark evaluations over the DataFrame, merged across partitions with treeAggregate."""
        from deepspark.spark import _inference

        return list(_inference.evaluate(df, self.network, features_col, label_col, evaluations))

    def score(self, df: DataFrame, features_col: str | Sequence[str] = "features", label_col: str = "label") -> float:
        """Mean loss over the DataFrame."""
        from deepspark.spark import _inference

        return _inference.score(df, self.network, features_col, label_col)

    def score_examples(
        self,
        df: DataFrame,
        features_col: str | Sequence[str] = "features",
        label_col: str = "label",
        key_col: str = "id",
        output_col: str = "score",
    ) -> DataFrame:
        """Per-example loss keyed by ``key_col`` (DL4J's scoreExamples)."""
        from deepspark.spark import _inference

        return _inference.score_examples(df, self.network, features_col, label_col, key_col, output_col)

    def predict(
        self,
        df: DataFrame,
        features_col: str | Sequence[str] = "features",
        output_col: str = "prediction",
        probabilities_col: str | None = None,
        check_input: bool = False,
    ) -> DataFrame:
        """Every input row and column, plus the prediction (class index for classifiers, as Spark ML).

        Lazy, like any DataFrame transformation: no job runs here. Null rows, null values, the wrong width and
        NaN/inf fail at the action; run it inside ``deepspark.spark.typed_errors()`` to get the worker's
        ``DataError`` (naming the column, partition and row) instead of Spark's ``PythonException``. With
        ``check_input=True`` one pass over the features in the JVM refuses such rows here, at the call, with a
        ``DataError`` naming the column, how many rows and the fix (it costs about one more decode of every
        feature array, so it is off by default).

        Example:
            >>> from deepspark.spark import typed_errors
            >>> with typed_errors("scoring"):                                    # doctest: +SKIP
            ...     spark_net.predict(df).write.parquet("predictions")
            >>> spark_net.predict(untrusted_df, check_input=True)  # DataError here if rows are bad  # doctest: +SKIP
        """
        from deepspark.spark import _inference

        return _inference.predict(
            df, self.network, features_col, output_col, probabilities_col, check_input=check_input
        )


def _check_checkpoint_dir(path: Path) -> None:
    """Create the checkpoint folder now, so that a bad path fails before the first epoch trains, not after it."""
    if path.exists() and not path.is_dir():
        raise ConfigError(
            f"{path} is an existing file; checkpoints are written into a directory: pass a directory path "
            "(it is created if missing)",
            "checkpoint_dir",
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        reason = e.strerror or e
        raise StorageError(f"checkpoint_dir: cannot create {path} ({reason}); pass a writable directory") from e


def _save_trainer_state(state: TrainerState | None, epoch: int, archive: Path) -> None:
    """Write the trainer state of ``epoch`` next to checkpoint ``archive`` (or remove a stale one there)."""
    target = state_path(archive)
    if state is None or state.epoch != epoch or state.empty:
        target.unlink(missing_ok=True)  # a file of an earlier fit in the same folder must not be resumed
        return
    save_trainer_state(state, target)


def _resumed_trainer_state(archive: Path, net: Network) -> TrainerState | None:
    """The trainer state saved with checkpoint ``archive`` (gradient sharing's tau and residuals), if any."""
    path = state_path(archive)
    if not path.exists():
        return None
    state = load_trainer_state(path, net.flat.n_trainable, host_dtype(net))
    if state.epoch != net.epoch:
        log.warning(
            "%s belongs to epoch %d but %s to epoch %d: resuming without it (empty residuals)",
            path, state.epoch, archive, net.epoch,
        )
        return None
    return state
