"""Multi-process Spark fixtures: a ``local-cluster[2,1,1024]`` session with separate executor JVMs.

These tests run in their own pytest process (``make test`` runs ``-m cluster`` separately), because one
Python process holds one SparkContext and the rest of the suite shares a local[2] one.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from deepspark.spark import local_spark

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from pyspark import cloudpickle

    for item in items:
        if item.path.is_relative_to(_HERE):
            item.add_marker(pytest.mark.cluster)
            module = getattr(item, "module", None)
            if module is not None:
                cloudpickle.register_pickle_by_value(module)


@pytest.fixture(scope="session")
def cluster_spark() -> Iterator[SparkSession]:
    """Two executor JVMs of one core each; task retries on (spark.task.maxFailures=4)."""
    session = local_spark(
        "local-cluster[2,1,1024]",
        app_name="deepspark-cluster-tests",
        # no locality wait: both round tasks start at once, one per executor, wherever the cached blocks are
        conf={"spark.task.maxFailures": "4", "spark.sql.shuffle.partitions": "2", "spark.locality.wait": "0s"},
    )
    _wait_for_executors(session, 2)
    try:
        yield session
    finally:
        session.stop()


def _wait_for_executors(session: SparkSession, n: int, deadline_s: float = 120.0) -> None:
    """Poll until ``n`` executors registered (local-cluster ignores minRegisteredResourcesRatio)."""
    import time

    end = time.monotonic() + deadline_s
    tracker = session.sparkContext._jsc.sc().statusTracker()  # type: ignore[union-attr]
    while time.monotonic() < end:
        # getExecutorInfos lists the driver too
        if len(tracker.getExecutorInfos()) - 1 >= n:
            return
        session.sparkContext.parallelize(range(4), 4).count()  # a tiny job nudges registration along
    raise TimeoutError(f"{n} executors did not register within {deadline_s} s")
