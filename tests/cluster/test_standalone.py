"""The standalone cluster fixture itself: separate processes, the shipped environment, the fault helpers."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .conftest import ENV_ALIAS, WORKERS
from .standalone import StandaloneCluster, registered_executors, wait_for_executors

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

pytestmark = pytest.mark.cluster


def _where_python_runs(_: int) -> str:
    """Runs on an executor: the interpreter, its prefix and where torch and deepspark were imported from."""
    import torch

    import deepspark

    return json.dumps(
        {
            "cwd": os.getcwd(),
            "executable": sys.executable,
            "prefix": sys.prefix,
            "torch": torch.__file__,
            "deepspark": deepspark.__file__,
            "ppid": os.getppid(),
        }
    )


def test_cluster_executors_run_the_shipped_environment_not_the_drivers(
    healthy_cluster_spark: SparkSession, standalone_cluster: StandaloneCluster, deepspark_zip: Path
) -> None:
    sc = healthy_cluster_spark.sparkContext
    assert sc.master == standalone_cluster.master_url and sc.master.startswith("spark://127.0.0.1:")
    reports = [json.loads(r) for r in sc.parallelize(range(8), 8).map(_where_python_runs).collect()]
    driver_prefix = Path(sys.prefix).resolve()
    for report in reports:
        unpacked = Path(report["cwd"]) / ENV_ALIAS
        # the interpreter is the archive's, unpacked in the executor's own work dir under the worker
        assert Path(report["executable"]).parent.parent == unpacked, report
        assert Path(report["prefix"]) == unpacked, report
        assert Path(report["torch"]).is_relative_to(unpacked), report
        assert not Path(report["prefix"]).resolve().is_relative_to(driver_prefix)
        assert Path(report["cwd"]).is_relative_to(standalone_cluster.root / "work"), report
        # deepspark comes from the shipped zip, not the driver's checkout
        assert deepspark_zip.name in report["deepspark"] and ".zip" in report["deepspark"], report
    executor_pids = {e.pid for e in standalone_cluster.executors(sc.applicationId)}
    assert len(executor_pids) == WORKERS
    python_parents = {r["ppid"] for r in reports}
    # Python workers are forked by pyspark's daemon, itself a child of an executor JVM
    assert all(pid not in (os.getpid(),) for pid in python_parents)


def test_cluster_executor_processes_belong_to_separate_workers(
    healthy_cluster_spark: SparkSession, standalone_cluster: StandaloneCluster
) -> None:
    executors = standalone_cluster.executors(healthy_cluster_spark.sparkContext.applicationId)
    assert sorted(e.worker for e in executors) == list(range(WORKERS))  # type: ignore[type-var]
    assert len({e.pid for e in executors}) == WORKERS
    assert all(e.pid not in (w.pid for w in standalone_cluster.workers if w) for e in executors)


def test_cluster_kill_executor_helper_gets_a_replacement_registered(
    healthy_cluster_spark: SparkSession, standalone_cluster: StandaloneCluster
) -> None:
    sc = healthy_cluster_spark.sparkContext
    victim = standalone_cluster.kill_executor(sc.applicationId, worker=0)
    assert victim.worker == 0
    # the master launches a new executor on the same worker; jobs keep working throughout
    standalone_cluster.heal(healthy_cluster_spark)
    after = standalone_cluster.executors(sc.applicationId)
    assert victim.pid not in {e.pid for e in after}
    assert sorted(e.worker for e in after) == list(range(WORKERS))  # type: ignore[type-var]
    assert sc.parallelize(range(100), 4).sum() == sum(range(100))


def test_cluster_kill_worker_helper_then_restart_brings_the_slot_back(
    healthy_cluster_spark: SparkSession, standalone_cluster: StandaloneCluster
) -> None:
    sc = healthy_cluster_spark.sparkContext
    before = {e.worker: e.pid for e in standalone_cluster.executors(sc.applicationId)}
    killed = standalone_cluster.kill_worker(1)
    assert standalone_cluster.alive_workers() == [0]
    # the lost worker's executor exits by itself (it watches its worker) and leaves the driver's list
    wait_for_executors(healthy_cluster_spark, WORKERS - 1, on_timeout=standalone_cluster.describe)
    standalone_cluster.wait_exited(before[1])
    assert sc.parallelize(range(10), 2).count() == 10  # the remaining executor still runs jobs
    standalone_cluster.restart_worker(1)
    wait_for_executors(healthy_cluster_spark, WORKERS, on_timeout=standalone_cluster.describe)
    assert standalone_cluster.workers[1] is not None and standalone_cluster.workers[1].pid != killed
    assert registered_executors(healthy_cluster_spark) == WORKERS
