"""``SparkNetwork``: the driver-side facade that trains, evaluates and predicts a ``Network`` on Spark."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepspark.errors import ConfigError, DataError, DeepSparkError
from deepspark.nn.fit_session import FitSession, StopFit, is_classifier, local_validator, validation_names
from deepspark.spark import _averaging, _sharing
from deepspark.spark.listeners import notify
from deepspark.spark.masters import GradientSharing, ParameterAveraging, TrainingMaster
from deepspark.spark.stats import TrainingStats, driver_event

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
        on_round: Callable[[_averaging.RoundInfo], None] | None = None,
        validation_data: Any = None,
        callbacks: Sequence[Callback] = (),
        verbose: int | bool | None = None,
    ) -> Network:
        """Train for ``epochs`` epochs and return the trained ``Network`` (also ``self.network``).

        ``data`` is a DataFrame, or the path of minibatches written by ``export_minibatches``. With
        ``checkpoint_dir`` an archive is written every ``checkpoint_every`` epochs; ``resume_from`` (an
        archive or a checkpoint folder) continues from the epoch it was written at, so on CPU with a
        fixed seed a resumed run ends with the same parameters as an uninterrupted one.
        ``validation_data`` (a DataFrame with the same columns, or ``(x, y)`` arrays evaluated on the driver),
        ``callbacks`` and ``verbose`` work as in ``Network.fit``; the epochs' metrics land in ``self.history``.
        """
        from deepspark.nn import Network

        if not isinstance(self.master, (ParameterAveraging, GradientSharing)):
            raise DeepSparkError(f"{type(self.master).__name__} is not supported by SparkNetwork.fit yet")
        if epochs < 1:
            raise DataError(f"epochs: expected a positive int, got {epochs}")
        if isinstance(self.master, GradientSharing):
            _sharing.check_master(self.master)
        if resume_from is not None:
            self.network = Network.load(_averaging.latest_checkpoint(resume_from))
            log.info("resuming from epoch %d (iteration %d)", self.network.epoch, self.network.iteration)
        session = self._fit_session(epochs, validation_data, features_col, label_col, callbacks, verbose)
        master = self.master
        workers = self._workers()
        stats = None
        if master.collect_training_stats:
            stats = TrainingStats(settings=master.to_dict(), num_workers=workers, start=time.time())

        def record(phase: str, start: float) -> None:
            if stats is not None:
                stats.add([driver_event(phase, start, time.time() - start)])

        export_path: Path | None = None
        if isinstance(data, (str, Path)) and isinstance(master, GradientSharing):
            raise DataError(
                "GradientSharing trains from a DataFrame, not from exported minibatches; pass the DataFrame, or "
                "use ParameterAveraging for an export path"
            )
        if isinstance(data, (str, Path)):
            prepared = _averaging.prepare_exported(self.spark, str(data), self.network, master, workers, record)
        else:
            if isinstance(master, ParameterAveraging) and master.approach == "export":
                export_path = self._export(data, features_col, label_col)
                prepared = _averaging.prepare_exported(
                    self.spark, str(export_path), self.network, master, workers, record
                )
            else:
                prepared = _averaging.prepare(data, self.network, master, features_col, label_col, workers, record)
        start_epoch = self.network.epoch

        def round_done(info: _averaging.RoundInfo) -> None:
            session.step(info.score, total=info.rounds_in_epoch)
            if on_round is not None:
                on_round(info)

        session.start()
        try:

            def on_epoch(epoch: int) -> None:
                if checkpoint_dir is not None and (epoch - start_epoch) % checkpoint_every == 0:
                    path = Path(checkpoint_dir) / f"checkpoint_epoch{epoch:04d}.zip"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    self.network.save(path)
                if not session.end_epoch():
                    raise StopFit

            notify(self.listeners, "on_spark_fit_start", self.network, self._listener_info(master, workers))
            if isinstance(master, GradientSharing):
                _sharing.train(
                    self.spark, self.network, master, prepared, epochs, stats, round_done, on_epoch, self.listeners
                )
            else:
                _averaging.train(
                    self.spark, self.network, master, prepared, epochs, stats, round_done, on_epoch, self.listeners
                )
        except StopFit:
            pass
        finally:
            session.progress.close()
            prepared.unpersist()
            if export_path is not None and not getattr(master, "keep_export", False):
                shutil.rmtree(export_path, ignore_errors=True)
        self.history = session.finish()
        if stats is not None:
            stats.end = time.time()
            self._stats = stats
            for finding in stats.advice()[:3]:
                log.info("training advice: %s — %s", finding.title, finding.detail)
        notify(self.listeners, "on_spark_fit_end", self.network, stats)
        return self.network

    def _fit_session(
        self, epochs: int, validation: Any, features_col: Any, label_col: str, callbacks: Any, verbose: Any
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
        return FitSession(self.network, epochs, callbacks=callbacks, validate=validate, val_names=names,
                          verbose=verbose, unit="round")

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
    ) -> DataFrame:
        """Every input row and column, plus the prediction (class index for classifiers, as Spark ML)."""
        from deepspark.spark import _inference

        return _inference.predict(df, self.network, features_col, output_col, probabilities_col)
