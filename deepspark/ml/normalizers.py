"""Spark ML stages for deepspark's normalizers: ``Standardize``, ``MinMax``, ``ImageScaler`` -> ``NormalizerModel``.

``fit`` computes the statistics with one Spark aggregate (`deepspark.data.spark_normalizers.fit_normalizer`);
``transform`` applies the very same numpy code the networks use, on the executors, through an Arrow
UDF that receives only the input column. A saved ``NormalizerModel`` is Spark ML's metadata JSON with
the normalizer's JSON inside (no pickle).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pyspark import keyword_only
from pyspark.ml.base import Estimator, Model
from pyspark.ml.param import Param, Params
from pyspark.ml.param.shared import HasInputCol, HasOutputCol
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable, MLReadable, MLReader, MLWritable, MLWriter

from deepspark.data import normalizers as dn
from deepspark.errors import ConfigError, DataError, DeepSparkError, ModelFormatError

from ._params import boolean, finite_float, non_negative_int

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame

FORMAT_VERSION = 1


class _Cols(HasInputCol, HasOutputCol):
    pass


class _NormalizerEstimator(Estimator["NormalizerModel"], _Cols, DefaultParamsReadable[Any], DefaultParamsWritable):
    """Shared fit: build the unfitted deepspark normalizer from the Params, fit it on Spark, wrap it."""

    perChannel: Param[bool] = Param(
        Params._dummy(), "perChannel", "one statistic per channel instead of per column", boolean("perChannel")
    )
    channels: Param[int] = Param(
        Params._dummy(), "channels", "channels per row for perChannel (0: unset)", non_negative_int("channels")
    )

    _input_kwargs: dict[str, Any]  # set by pyspark's keyword_only

    def _normalizer(self) -> dn.Normalizer:
        raise NotImplementedError

    def _set_kwargs(self, kwargs: dict[str, Any]) -> Any:
        return self._set(**{k: v for k, v in kwargs.items() if v is not None})

    def _fit(self, dataset: DataFrame) -> NormalizerModel:
        from deepspark.data.spark_normalizers import fit_normalizer

        if not self.isDefined(self.inputCol):
            raise ConfigError(f"not set; {type(self).__name__} needs the features column: inputCol='raw'", "inputCol")
        channels = self.getOrDefault(self.channels) or None
        fitted = fit_normalizer(dataset, self._normalizer(), self.getInputCol(), channels=channels)
        model = NormalizerModel(fitted)
        self._copyValues(model)
        return model


class Standardize(_NormalizerEstimator):
    """Zero mean, unit variance per column (or per channel), fitted with one Spark aggregate.

    Example:
        >>> scaler = Standardize(inputCol="raw", outputCol="features")          # doctest: +SKIP
        >>> Pipeline(stages=[assembler, scaler, DeepSparkClassifier(...)])       # doctest: +SKIP
    """

    minStd: Param[float] = Param(
        Params._dummy(), "minStd", "stds below this leave their column unscaled", finite_float("minStd", 0.0)
    )

    @keyword_only
    def __init__(
        self,
        *,
        inputCol: str | None = None,
        outputCol: str | None = None,
        perChannel: bool = False,
        channels: int = 0,
        minStd: float = 1e-8,
    ) -> None:
        super().__init__()
        self._setDefault(perChannel=False, channels=0, minStd=1e-8)
        self._set_kwargs(self._input_kwargs)

    @keyword_only
    def setParams(self, **kwargs: Any) -> Standardize:
        """Set any of the constructor's params."""
        return self._set_kwargs(self._input_kwargs)  # type: ignore[no-any-return]

    def _normalizer(self) -> dn.Normalizer:
        return dn.Standardize(per_channel=self.getOrDefault(self.perChannel), min_std=self.getOrDefault(self.minStd))


class _HasRange(Params):
    minRange: Param[float] = Param(Params._dummy(), "minRange", "output range start", finite_float("minRange"))
    maxRange: Param[float] = Param(Params._dummy(), "maxRange", "output range end", finite_float("maxRange"))


class MinMax(_NormalizerEstimator, _HasRange):
    """Scales each column (or channel) from its fitted [min, max] to [minRange, maxRange].

    Example:
        >>> MinMax(inputCol="raw", outputCol="features", minRange=-1.0).fit(df)   # doctest: +SKIP
    """

    @keyword_only
    def __init__(
        self,
        *,
        inputCol: str | None = None,
        outputCol: str | None = None,
        minRange: float = 0.0,
        maxRange: float = 1.0,
        perChannel: bool = False,
        channels: int = 0,
    ) -> None:
        super().__init__()
        self._setDefault(perChannel=False, channels=0, minRange=0.0, maxRange=1.0)
        self._set_kwargs(self._input_kwargs)

    @keyword_only
    def setParams(self, **kwargs: Any) -> MinMax:
        """Set any of the constructor's params."""
        return self._set_kwargs(self._input_kwargs)  # type: ignore[no-any-return]

    def _normalizer(self) -> dn.Normalizer:
        return dn.MinMax(
            self.getOrDefault(self.minRange),
            self.getOrDefault(self.maxRange),
            per_channel=self.getOrDefault(self.perChannel),
        )


class ImageScaler(_NormalizerEstimator, _HasRange):
    """Maps pixels [0, maxPixel] to [minRange, maxRange]; ``fit`` reads no data (there are no statistics).

    Example:
        >>> ImageScaler(inputCol="pixels", outputCol="features").fit(df)   # doctest: +SKIP
    """

    maxPixel: Param[float] = Param(
        Params._dummy(), "maxPixel", "the largest pixel value", finite_float("maxPixel", 0.0, strict=True)
    )

    @keyword_only
    def __init__(
        self,
        *,
        inputCol: str | None = None,
        outputCol: str | None = None,
        minRange: float = 0.0,
        maxRange: float = 1.0,
        maxPixel: float = 255.0,
    ) -> None:
        super().__init__()
        self._setDefault(perChannel=False, channels=0, minRange=0.0, maxRange=1.0, maxPixel=255.0)
        self._set_kwargs(self._input_kwargs)

    @keyword_only
    def setParams(self, **kwargs: Any) -> ImageScaler:
        """Set any of the constructor's params."""
        return self._set_kwargs(self._input_kwargs)  # type: ignore[no-any-return]

    def _normalizer(self) -> dn.Normalizer:
        return dn.ImageScaler(
            self.getOrDefault(self.minRange), self.getOrDefault(self.maxRange), self.getOrDefault(self.maxPixel)
        )


def normalize_arrays(normalizer_json: str, column: str, arrays: Iterator[pa.Array]) -> Iterator[pa.Array]:
    """Arrow UDF body: ``list<double>`` rows in, normalized ``list<double>`` rows out."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from deepspark.data.spark_normalizers import apply_normalizer

    norm = dn.normalizer_from_json(normalizer_json)
    for arr in arrays:
        n = len(arr)
        if arr.null_count:
            raise DataError(f"inputCol column {column!r} has null rows; drop or impute them first")
        lengths = pc.list_value_length(arr).to_numpy(zero_copy_only=False)
        width = int(lengths[0]) if n else 0
        if n and (lengths != width).any():
            raise DataError(f"inputCol column {column!r}: rows have different numbers of values")
        x = arr.flatten().to_numpy(zero_copy_only=False).astype(np.float64, copy=False).reshape(n, width)
        out = apply_normalizer(norm, x) if n else x
        offsets = pa.array(np.arange(0, n * width + 1, max(width, 1), dtype=np.int32)[: n + 1])
        yield pa.ListArray.from_arrays(offsets, pa.array(np.ascontiguousarray(out, dtype=np.float64).reshape(-1)))


class NormalizerModel(Model, _Cols, MLReadable[Any], MLWritable):
    """A fitted deepspark normalizer as a Spark ML Transformer: ``outputCol`` gets the normalized Vector.

    Example:
        >>> model = Standardize(inputCol="raw", outputCol="features").fit(df)   # doctest: +SKIP
        >>> model.normalizer.mean                                               # doctest: +SKIP
    """

    def __init__(self, normalizer: dn.Normalizer | None = None) -> None:
        super().__init__()
        self._normalizer = normalizer

    @property
    def normalizer(self) -> dn.Normalizer:
        """The fitted deepspark normalizer (usable on numpy arrays and in a network archive)."""
        if self._normalizer is None:
            raise ModelFormatError("this NormalizerModel holds no normalizer; load one with NormalizerModel.load(path)")
        return self._normalizer

    def _transform(self, dataset: DataFrame) -> DataFrame:
        from pyspark.ml.functions import array_to_vector
        from pyspark.sql.pandas.functions import arrow_udf

        from deepspark.data.dataframe import _col
        from deepspark.spark._predict import features_column, iterator_hints

        column = self.getInputCol()
        if not self.isDefined(self.outputCol) or not self.getOutputCol():
            raise ConfigError("not set; name the column for the normalized features: outputCol='features'", "outputCol")
        out_col = self.getOutputCol()
        if out_col in dataset.columns:
            raise DataError(f"outputCol {out_col!r} already exists in the DataFrame ({dataset.columns}); pick another")
        text = self.normalizer.to_json()
        feats, _ = features_column(dataset, column, "float64")

        def run(arrays: Iterator[pa.Array]) -> Iterator[pa.Array]:
            return normalize_arrays(text, column, arrays)

        udf = arrow_udf(iterator_hints(run), "array<double>")  # type: ignore[call-overload]
        tmp = f"__deepspark_{uuid.uuid4().hex}"
        return dataset.withColumn(tmp, udf(feats)).select(
            *[_col(c) for c in dataset.columns], array_to_vector(_col(tmp)).alias(out_col)
        )

    def write(self) -> MLWriter:
        """A writer of the stage folder (Spark ML metadata JSON with the normalizer JSON inside)."""
        return _NormalizerWriter(self)

    @classmethod
    def read(cls) -> MLReader[Any]:
        """A reader of folders written by `write`."""
        return _NormalizerReader()


class _NormalizerWriter(MLWriter):
    def __init__(self, instance: NormalizerModel) -> None:
        super().__init__()
        self.instance = instance

    def saveImpl(self, path: str) -> None:
        from pyspark.ml.util import DefaultParamsWriter

        extra = {"deepspark": {"format_version": FORMAT_VERSION, "normalizer": self.instance.normalizer.to_dict()}}
        DefaultParamsWriter.saveMetadata(self.instance, path, self.sparkSession, extraMetadata=extra)


class _NormalizerReader(MLReader[Any]):
    def load(self, path: str) -> NormalizerModel:
        from pyspark.ml.util import DefaultParamsReader

        expected = f"{NormalizerModel.__module__}.{NormalizerModel.__name__}"
        metadata = DefaultParamsReader.loadMetadata(path, self.sparkSession)
        info = metadata.get("deepspark")
        if metadata.get("class") != expected or not isinstance(info, dict):
            raise ModelFormatError(f"{path} holds a {metadata.get('class')!r} stage, not a {expected}")
        if info.get("format_version") != FORMAT_VERSION:
            raise ModelFormatError(f"{path}: unsupported stage format {info.get('format_version')!r}")
        try:
            normalizer = dn.normalizer_from_dict(info.get("normalizer"))  # type: ignore[arg-type]
        except DeepSparkError as e:
            raise ModelFormatError(f"{path}: the saved normalizer is invalid: {e}") from None
        model = NormalizerModel(normalizer)
        model._resetUid(metadata["uid"])
        DefaultParamsReader.getAndSetParams(model, metadata)
        return model


__all__ = ["ImageScaler", "MinMax", "NormalizerModel", "Standardize"]
