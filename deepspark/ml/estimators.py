"""``DeepSparkClassifier`` / ``DeepSparkRegressor`` (Spark ML Estimators) and the ``DeepSparkModel`` they fit.

They wrap `SparkNetwork`: ``fit`` trains with the training master on the executors, ``transform`` runs
batched Arrow inference on the executors (nothing collected to the driver), and a saved model is a
Spark ML stage folder holding Spark's JSON metadata plus the deepspark archive ``model.zip``
(config JSON + safetensors, never pickle). Output columns are what Spark ML's evaluators read:
``prediction`` as a double, ``probability`` / ``rawPrediction`` as ML Vectors.
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
from typing import TYPE_CHECKING, Any

from pyspark import keyword_only
from pyspark.ml.base import Estimator, Model
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import HasProbabilityCol, HasRawPredictionCol
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable, MLReadable, MLReader, MLWritable, MLWriter

from deepspark.errors import ConfigError, DataError, ModelFormatError

from . import _transform
from ._params import DeepSparkParams, TrainingParams

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from deepspark.nn import Network

ARCHIVE = "model.zip"
FORMAT_VERSION = 1


def _is_classifier(net: Network) -> bool:
    return _transform.output_kind(net.heads[0]) == "class"


class _DeepSparkEstimator(
    Estimator["DeepSparkModel"], TrainingParams, DefaultParamsReadable[Any], DefaultParamsWritable
):
    """Shared fit: build the config and master from the Params, train on Spark, wrap the network."""

    _classifier: bool
    _input_kwargs: dict[str, Any]  # set by pyspark's keyword_only

    def _init_defaults(self) -> None:
        from deepspark.spark.masters import ParameterAveraging

        self._setDefault(
            featuresCol="features",
            labelCol="label",
            predictionCol="prediction",
            trainingMaster=ParameterAveraging().to_json(indent=None),
            epochs=1,
            checkpointDir="",
        )

    def _specs(self) -> tuple[Any, Any]:
        from deepspark.config._spec import Spec

        if not self.isDefined(self.networkConfig):
            raise ConfigError(
                f"not set; {type(self).__name__} needs the network to train: "
                "networkConfig=NetworkConfig(...).to_json()",
                "networkConfig",
            )
        config = Spec.from_json(self.getNetworkConfig())
        master = Spec.from_json(self.getTrainingMaster())
        if self.isSet(self.seed):
            config = dataclasses.replace(config, seed=self.getSeed())  # type: ignore[type-var]
            if hasattr(master, "seed"):
                master = dataclasses.replace(master, seed=self.getSeed())  # type: ignore[type-var]
        if self.isSet(self.learningRate):
            updater = config.updater  # type: ignore[attr-defined]
            config = dataclasses.replace(
                config,  # type: ignore[type-var]
                updater=dataclasses.replace(updater, learning_rate=self.getLearningRate()),
            )
        return config, master

    def _check_label(self, dataset: DataFrame) -> None:
        from pyspark.sql.types import NumericType

        label = self.getLabelCol()
        fields = {f.name: f.dataType for f in dataset.schema.fields}
        if label not in fields:
            raise DataError(
                f"labelCol column {label!r} not found; available: {list(fields)}; set labelCol to the label column"
            )
        if self._classifier and not isinstance(fields[label], NumericType):
            raise DataError(
                f"labelCol column {label!r} has type {fields[label].simpleString()}; class labels must be indices "
                f"0..C-1: index them with StringIndexer(inputCol={label!r}, outputCol='label_index') and set "
                "labelCol='label_index'"
            )

    def _fit(self, dataset: DataFrame) -> DeepSparkModel:
        from deepspark.nn import Network
        from deepspark.spark import SparkNetwork

        config, master = self._specs()
        net = Network(config)
        if _is_classifier(net) != self._classifier:
            want = (
                "a classification output (Output(n_out=C, activation='softmax', loss='mcxent'), C >= 2)"
                if self._classifier
                else "a regression output (e.g. Output(n_out=1, activation='identity', loss='mse'))"
            )
            other = "DeepSparkRegressor" if self._classifier else "DeepSparkClassifier"
            raise ConfigError(f"{type(self).__name__} needs {want}; or use {other}", "networkConfig")
        self._check_label(dataset)
        checkpoint = self.getCheckpointDir() or None
        try:
            trained = SparkNetwork(dataset.sparkSession, net, master).fit(
                dataset, self.getFeaturesCol(), self.getLabelCol(), self.getEpochs(), checkpoint_dir=checkpoint
            )
        except DataError as e:
            if self._classifier and "class index" in str(e):
                raise DataError(
                    f"{e}; labelCol {self.getLabelCol()!r} must hold class indices 0..C-1 for the network's "
                    "C outputs: index labels with StringIndexer or raise the output layer's n_out"
                ) from None
            raise
        model = DeepSparkModel(trained)
        self._copyValues(model)
        return model


class DeepSparkClassifier(_DeepSparkEstimator, HasProbabilityCol, HasRawPredictionCol):
    """Spark ML Estimator that trains a deepspark classifier on the executors.

    Labels are class indices (doubles, as ``StringIndexer`` writes them); features a Vector or
    ``array<number>`` column. The fitted `DeepSparkModel` appends ``prediction`` (double),
    ``probability`` (Vector of class probabilities) and ``rawPrediction`` (Vector of log-probabilities).

    Example:
        >>> clf = DeepSparkClassifier(networkConfig=conf.to_json(), epochs=5)   # doctest: +SKIP
        >>> model = Pipeline(stages=[indexer, assembler, clf]).fit(train_df)    # doctest: +SKIP
    """

    _classifier = True

    @keyword_only
    def __init__(
        self,
        *,
        featuresCol: str = "features",
        labelCol: str = "label",
        predictionCol: str = "prediction",
        probabilityCol: str = "probability",
        rawPredictionCol: str = "rawPrediction",
        networkConfig: Any = None,
        trainingMaster: Any = None,
        epochs: int = 1,
        learningRate: float | None = None,
        seed: int | None = None,
        checkpointDir: str = "",
        batchSize: int | None = None,
    ) -> None:
        super().__init__()
        self._init_defaults()
        self._set(**{k: v for k, v in self._input_kwargs.items() if v is not None})

    @keyword_only
    def setParams(self, **kwargs: Any) -> DeepSparkClassifier:
        """Set any of the constructor's params."""
        return self._set(**{k: v for k, v in self._input_kwargs.items() if v is not None})


class DeepSparkRegressor(_DeepSparkEstimator):
    """Spark ML Estimator that trains a deepspark regression network on the executors.

    The fitted `DeepSparkModel` appends ``prediction``: a double for one output, a Vector for several.

    Example:
        >>> reg = DeepSparkRegressor(networkConfig=conf.to_json(), epochs=10)   # doctest: +SKIP
        >>> RegressionEvaluator().evaluate(reg.fit(train).transform(test))     # doctest: +SKIP
    """

    _classifier = False

    @keyword_only
    def __init__(
        self,
        *,
        featuresCol: str = "features",
        labelCol: str = "label",
        predictionCol: str = "prediction",
        networkConfig: Any = None,
        trainingMaster: Any = None,
        epochs: int = 1,
        learningRate: float | None = None,
        seed: int | None = None,
        checkpointDir: str = "",
        batchSize: int | None = None,
    ) -> None:
        super().__init__()
        self._init_defaults()
        self._set(**{k: v for k, v in self._input_kwargs.items() if v is not None})

    @keyword_only
    def setParams(self, **kwargs: Any) -> DeepSparkRegressor:
        """Set any of the constructor's params."""
        return self._set(**{k: v for k, v in self._input_kwargs.items() if v is not None})


class DeepSparkModel(Model, DeepSparkParams, HasProbabilityCol, HasRawPredictionCol, MLReadable[Any], MLWritable):
    """A trained deepspark network as a Spark ML Transformer (batched Arrow inference on the executors).

    Saving writes a folder: Spark ML's ``metadata`` (JSON params) and ``model.zip`` (the deepspark
    archive, including the network's normalizer if it has one). ``DeepSparkModel.load`` and
    ``PipelineModel.load`` read it back without pickle.

    Example:
        >>> model.write().overwrite().save("/models/wine")               # doctest: +SKIP
        >>> DeepSparkModel.load("/models/wine").transform(df).show()     # doctest: +SKIP
    """

    checkInput: Param[bool] = Param(
        Params._dummy(),
        "checkInput",
        "before transform returns, one JVM pass refuses null, ragged or NaN feature rows with a DataError "
        "(off by default: transform stays lazy)",
        typeConverter=TypeConverters.toBoolean,
    )

    def __init__(self, network: Network | None = None) -> None:
        super().__init__()
        self._network = network
        self._setDefault(
            featuresCol="features",
            labelCol="label",
            predictionCol="prediction",
            probabilityCol="probability",
            rawPredictionCol="rawPrediction",
            checkInput=False,
        )

    @property
    def network(self) -> Network:
        """The trained `Network` (parameters, config and normalizer)."""
        if self._network is None:
            raise ModelFormatError("this DeepSparkModel holds no network; load one with DeepSparkModel.load(path)")
        return self._network

    @property
    def numClasses(self) -> int:
        """Classes the model predicts (0 for regression)."""
        return self.network.heads[0].n_out if _is_classifier(self.network) else 0

    def setFeaturesCol(self, value: str) -> DeepSparkModel:
        """The input column (``array<float>`` or a Vector)."""
        return self._set(featuresCol=value)

    def setPredictionCol(self, value: str) -> DeepSparkModel:
        return self._set(predictionCol=value)

    def setProbabilityCol(self, value: str) -> DeepSparkModel:
        """Classifiers: the class probabilities column; ``""`` leaves it out (less to compute and move)."""
        return self._set(probabilityCol=value)

    def setRawPredictionCol(self, value: str) -> DeepSparkModel:
        """Classifiers: the network's raw outputs column; ``""`` leaves it out."""
        return self._set(rawPredictionCol=value)

    def setBatchSize(self, value: int) -> DeepSparkModel:
        """Rows per inference batch on the executors (left unset, each executor's network picks a cache-sized
        batch: ``Network.inference_batch_size``)."""
        return self._set(batchSize=value)

    def setCheckInput(self, value: bool) -> DeepSparkModel:
        """Whether ``transform`` first checks the features (one JVM pass): null rows, null values, the wrong
        width and NaN/inf raise a ``DataError`` naming the column and the fix. Off by default, so ``transform``
        stays lazy as Spark ML expects (pipelines, streaming); bad rows then fail at the action (inside
        ``deepspark.spark.typed_errors()`` as the worker's ``DataError``)."""
        return self._set(checkInput=value)

    def getCheckInput(self) -> bool:
        """Whether ``transform`` checks the features first."""
        return bool(self.getOrDefault(self.checkInput))

    def _transform(self, dataset: DataFrame) -> DataFrame:
        net = self.network
        columns = {"prediction": self.getPredictionCol()}
        if _is_classifier(net):
            wanted = (("probability", self.getProbabilityCol()), ("rawPrediction", self.getRawPredictionCol()))
            for key, value in wanted:
                if value:
                    columns[key] = value
        return _transform.transform(
            dataset, net, self.getFeaturesCol(), columns, self.getBatchSize(), check_input=self.getCheckInput()
        )

    def write(self) -> MLWriter:
        """A writer of the stage folder (metadata JSON + ``model.zip``)."""
        return _ModelWriter(self)

    @classmethod
    def read(cls) -> MLReader[Any]:
        """A reader of folders written by `write`."""
        return _ModelReader()


def _join(path: str, name: str) -> str:
    return posixpath.join(path, name) if "://" in path else os.path.join(path, name)


class _ModelWriter(MLWriter):
    def __init__(self, instance: DeepSparkModel) -> None:
        super().__init__()
        self.instance = instance

    def saveImpl(self, path: str) -> None:
        from pyspark.ml.util import DefaultParamsWriter

        net = self.instance.network
        extra = {"deepspark": {"format_version": FORMAT_VERSION, "archive": ARCHIVE}}
        DefaultParamsWriter.saveMetadata(self.instance, path, self.sparkSession, extraMetadata=extra)
        net.save(_join(path, ARCHIVE))


class _ModelReader(MLReader[Any]):
    def load(self, path: str) -> DeepSparkModel:
        from pyspark.ml.util import DefaultParamsReader

        from deepspark.nn import Network

        expected = f"{DeepSparkModel.__module__}.{DeepSparkModel.__name__}"
        metadata = DefaultParamsReader.loadMetadata(path, self.sparkSession)
        info = metadata.get("deepspark")
        if metadata.get("class") != expected or not isinstance(info, dict):
            raise ModelFormatError(f"{path} holds a {metadata.get('class')!r} stage, not a {expected}")
        if info.get("format_version") != FORMAT_VERSION or info.get("archive") != ARCHIVE:
            raise ModelFormatError(
                f"{path}: unsupported deepspark stage format {info!r}; this deepspark reads version {FORMAT_VERSION}"
            )
        model = DeepSparkModel(Network.load(_join(path, ARCHIVE)))
        model._resetUid(metadata["uid"])
        DefaultParamsReader.getAndSetParams(model, metadata)
        return model


__all__ = ["DeepSparkClassifier", "DeepSparkModel", "DeepSparkRegressor"]
