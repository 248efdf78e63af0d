"""Spark ML stages (PySpark ML conventions, camelCase Params): deepspark networks and normalizers in a ``Pipeline``.

Example:
    >>> from pyspark.ml import Pipeline                                          # doctest: +SKIP
    >>> from deepspark.ml import DeepSparkClassifier, Standardize                # doctest: +SKIP
    >>> stages = [indexer, assembler, Standardize(inputCol="raw", outputCol="features"),
    ...           DeepSparkClassifier(networkConfig=conf.to_json(), epochs=20)]  # doctest: +SKIP
    >>> model = Pipeline(stages=stages).fit(train)                               # doctest: +SKIP
"""

from .estimators import DeepSparkClassifier, DeepSparkModel, DeepSparkRegressor
from .normalizers import ImageScaler, MinMax, NormalizerModel, Standardize

__all__ = [
    "DeepSparkClassifier",
    "DeepSparkModel",
    "DeepSparkRegressor",
    "ImageScaler",
    "MinMax",
    "NormalizerModel",
    "Standardize",
]
