"""Spark integration: local sessions, and (later) the distributed training facade and its masters."""

from __future__ import annotations

from deepspark.spark.session import local_spark

__all__ = ["local_spark"]
