"""Spark integration: local sessions, the ``SparkNetwork`` facade and its training masters.

Importing this package does not import pyspark; the functions that need it import it when called.
"""

from __future__ import annotations

from deepspark._failures import spark_failures as typed_errors
from deepspark.spark.masters import GradientSharing, ParameterAveraging, TrainingMaster
from deepspark.spark.network import SparkNetwork
from deepspark.spark.session import cluster_spark, local_spark
from deepspark.spark.thresholds import AdaptiveThreshold, FixedThreshold, ResidualClipping, TargetSparsity

__all__ = [
    "AdaptiveThreshold",
    "FixedThreshold",
    "GradientSharing",
    "ParameterAveraging",
    "ResidualClipping",
    "SparkNetwork",
    "TargetSparsity",
    "TrainingMaster",
    "cluster_spark",
    "local_spark",
    "typed_errors",
]
