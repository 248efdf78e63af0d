"""Fixtures for tests on a real Spark standalone cluster (master + 2 workers on 127.0.0.1, separate processes).

These tests run in their own pytest process (``make test`` runs ``-m cluster`` separately): one Python
process holds one SparkContext, and the rest of the suite shares a local[2] one.

- ``standalone_cluster``: the :class:`StandaloneCluster` (session scope): ``master_url``, ``workers``,
  ``executors(app_id)``, ``kill_executor(app_id, worker=None, sig=SIGKILL)``, ``kill_worker(index, sig=SIGKILL,
  whole_group=False)``, ``restart_worker(index)``, ``heal(spark)``, ``describe()``.
- ``cluster_spark``: the SparkSession on it (session scope), made by ``deepspark.spark.cluster_spark``:
  executors run this venv packed into a tar (``spark.archives``, alias ``environment``), deepspark itself
  shipped as a zip (``spark.submit.pyFiles``); one executor of 1 core per worker; tasks retried up to 4 times.
- ``healthy_cluster_spark``: the same session, after dead workers were restarted and both executors
  registered again. Every test that uses ``cluster_spark`` gets this for free (an autouse fixture heals the
  cluster before it), so each test starts on a whole cluster whatever the previous one killed.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import deepspark
from deepspark.spark import session as spark_session

from .packed_env import packed_venv, zipped_package
from .standalone import StandaloneCluster, wait_for_executors

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

_HERE = Path(__file__).parent

WORKERS = 2
"""Workers (each offering one core: one single-core executor per worker)."""

ENV_ALIAS = "environment"
"""The folder name executors unpack the venv archive under (``spark.archives`` ``path#alias``)."""

CLUSTER_CONF = {
    # the test machine's own choice (cluster_spark itself binds nothing): keep the driver on loopback
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.ui.enabled": "false",
    # getOrCreate waits for both executors instead of returning with none registered
    "spark.scheduler.minRegisteredResourcesRatio": "1.0",
    "spark.scheduler.maxRegisteredResourcesWaitingTime": "120s",
    "spark.executor.cores": "1",
    "spark.executor.memory": "1g",
    "spark.task.maxFailures": "4",
    "spark.sql.shuffle.partitions": "2",
    # no locality wait: both round tasks start at once, one per executor, wherever the cached blocks are
    "spark.locality.wait": "0s",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from pyspark import cloudpickle

    for item in items:
        if item.path.is_relative_to(_HERE):
            item.add_marker(pytest.mark.cluster)
            module = getattr(item, "module", None)
            if module is not None:
                cloudpickle.register_pickle_by_value(module)


@pytest.fixture(scope="session")
def standalone_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandaloneCluster]:
    """A master and two workers, started once for the session and stopped (process groups) at its end."""
    root = tmp_path_factory.mktemp("standalone")
    cluster = StandaloneCluster(root, workers=WORKERS, cores=1, memory="2g")
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
        # the executors' unpacked environments (~1.5 GB each); the daemons' logs stay for a post-mortem
        shutil.rmtree(root / "work", ignore_errors=True)
        shutil.rmtree(root / "local", ignore_errors=True)


@pytest.fixture(scope="session")
def executor_env_archive() -> Path:
    """This venv packed for executors (cached across runs by content; the first run packs it, ~30 s)."""
    return packed_venv()


@pytest.fixture(scope="session")
def deepspark_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The deepspark package of this checkout as a zip, for ``spark.submit.pyFiles``."""
    package = Path(deepspark.__file__).parent
    return zipped_package(package, tmp_path_factory.mktemp("pyfiles") / "deepspark.zip")


@pytest.fixture(scope="session")
def cluster_spark(
    standalone_cluster: StandaloneCluster, executor_env_archive: Path, deepspark_zip: Path
) -> Iterator[SparkSession]:
    """A SparkSession on the standalone cluster whose executors run the shipped environment."""
    previous_python = os.environ.get("PYSPARK_PYTHON")
    # An executor fetches the environment archive (~0.5 GB) into a fresh java.io.tmpdir folder that only its
    # shutdown hook removes: every executor the fault tests kill left one in /tmp until the disk filled. Inside
    # the cluster's root, the teardown removes them.
    executor_tmp = standalone_cluster.root / "local" / "executor-tmp"
    executor_tmp.mkdir(parents=True, exist_ok=True)
    session = spark_session.cluster_spark(
        standalone_cluster.master_url,
        app_name="deepspark-cluster-tests",
        conf={
            **CLUSTER_CONF,
            "spark.submit.pyFiles": str(deepspark_zip),
            "spark.executor.extraJavaOptions": f"-Djava.io.tmpdir={executor_tmp}",
        },
        archives=[f"{executor_env_archive}#{ENV_ALIAS}"],
        executor_python=f"./{ENV_ALIAS}/bin/python",
    )
    try:
        wait_for_executors(session, WORKERS, on_timeout=standalone_cluster.describe)
        yield session
    finally:
        session.stop()
        if previous_python is None:
            os.environ.pop("PYSPARK_PYTHON", None)
        else:
            os.environ["PYSPARK_PYTHON"] = previous_python


@pytest.fixture
def healthy_cluster_spark(cluster_spark: SparkSession, standalone_cluster: StandaloneCluster) -> SparkSession:
    """``cluster_spark`` once every worker runs again and each has an executor registered with the driver."""
    standalone_cluster.heal(cluster_spark)
    return cluster_spark


@pytest.fixture(autouse=True)
def _whole_cluster_before_each_test(request: pytest.FixtureRequest) -> None:
    """Every test that uses the session starts on a whole cluster, even after an earlier test killed
    an executor or a worker (a replacement executor unpacks the environment first: seconds to minutes)."""
    if "cluster_spark" in request.fixturenames:
        request.getfixturevalue("healthy_cluster_spark")
