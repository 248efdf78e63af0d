"""Spark integration: local sessions, the ``SparkNetwork`` facade and its training masters.

Importing this package does not import pyspark; the functions that need it import it when called.
"""

from __future__ import annotations

from deepspark.spark.masters import ParameterAveraging, TrainingMaster
from deepspark.spark.network import SparkNetwork
from deepspark.spark.session import local_spark

__all__ = ["ParameterAveraging", "SparkNetwork", "TrainingMaster", "local_spark"]
