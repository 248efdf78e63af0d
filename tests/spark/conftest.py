"""Spark test fixtures: one local[2] SparkSession for the whole run; every test here is marked ``spark``.

Python workers cannot import test modules (pytest puts their folder on the driver's ``sys.path`` only),
so test modules here are registered with pyspark's cloudpickle to ship their functions by value.
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
    # This hook sees every collected item of the run, not only this folder's: mark just ours.
    from pyspark import cloudpickle

    registered: set[str] = set()
    for item in items:
        if not item.path.is_relative_to(_HERE):
            continue
        item.add_marker(pytest.mark.spark)
        module = getattr(item, "module", None)
        if module is not None and module.__name__ not in registered:
            cloudpickle.register_pickle_by_value(module)
            registered.add(module.__name__)


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    """A local[2] SparkSession (UI off, 2 shuffle partitions), shared by the session and stopped at its end."""
    session = local_spark("local[2]", app_name="deepspark-tests", conf={"spark.sql.shuffle.partitions": "2"}, ui=False)
    try:
        yield session
    finally:
        session.stop()
