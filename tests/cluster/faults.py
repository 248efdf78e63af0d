"""Fault injection on a running fit: find the executor JVM that computes the fit's stage right now and SIGKILL it.

Used by the cluster tests and by ``bench/fault_runs.py`` (no pytest here). A fit's Spark jobs are found
through its job group (``deepspark.spark._averaging.JOB_GROUP``, ``..._sharing.JOB_GROUP``); a barrier stage
reports ``numActiveTasks = 0`` while its tasks run, so a stage counts as running when it is among the active
stage ids; an executor is a victim when the driver's status store shows a task running on it (a relaunched
barrier stage may wait for a replacement executor, and a busy executor is not always running the fit's task:
it can still be ending the failed attempt's) and the processes below it (pyspark's daemon and its Python
workers) used CPU during a short sample.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

SAMPLE_S = 0.05
"""How long the CPU use of each executor's Python workers is sampled to tell which one computes."""


def executor_pids(app_id: str) -> list[int]:
    """PIDs of this application's executor JVMs, read from /proc (ps may cut long Java command lines)."""
    return sorted(executor_ids(app_id).values())


def executor_ids(app_id: str) -> dict[str, int]:
    """This application's executor JVMs: executor id -> pid, read from /proc."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if "org.apache.spark.executor.CoarseGrainedExecutorBackend" in args and app_id in args:
            flag = args.index("--executor-id") if "--executor-id" in args else -1
            found[args[flag + 1] if 0 <= flag < len(args) - 1 else f"pid{proc.name}"] = int(proc.name)
    return found


def executors_running_job(spark: SparkSession, job: int) -> set[str]:
    """IDs of the executors the driver's status store shows running a task of ``job``'s result stage now: the
    barrier stage that trains. Not a task of an earlier, failed attempt that is still ending (it holds its slot
    but is not the fit's), nor one of a stage that recomputes cached blocks lost with an executor (Spark
    retries those by itself, unseen by the fit)."""
    tracker = spark.sparkContext.statusTracker()
    store: Any = spark.sparkContext._jsc.sc().statusStore()  # type: ignore[union-attr]
    info = tracker.getJobInfo(job)
    running: set[str] = set()
    if info is None or not info.stageIds:
        return running
    for stage in (max(info.stageIds),):  # a job's result stage is its last
        stage_info = tracker.getStageInfo(stage)
        if stage_info is None:
            continue
        tasks = store.taskList(stage, stage_info.currentAttemptId, 10_000)
        for i in range(tasks.size()):
            task = tasks.apply(i)
            if str(task.status()) == "RUNNING":
                running.add(str(task.executorId()))
    return running


def cpu_ticks_below(root: int) -> int:
    """CPU ticks used so far by the processes below ``root`` (its Python daemon and workers)."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(proc.name)] = int(fields[1])
        ticks[int(proc.name)] = int(fields[11]) + int(fields[12])
    total, frontier = 0, {root}
    while frontier:
        children = {pid for pid, ppid in parents.items() if ppid in frontier}
        total += sum(ticks[c] for c in children)
        frontier = children
    return total


def running_fit_job(spark: SparkSession, group: str, jobs_before: set[int]) -> int | None:
    """The newest job of ``group`` (started after ``jobs_before``) with a stage running now, if any."""
    tracker = spark.sparkContext.statusTracker()
    active = set(tracker.getActiveStageIds())
    for job in sorted(set(tracker.getJobIdsForGroup(group)) - jobs_before, reverse=True):
        info = tracker.getJobInfo(job)
        if info is not None and set(info.stageIds) & active:
            return int(job)
    return None


@dataclass(frozen=True)
class Kill:
    """One injected fault: the executor JVM's pid, the Spark job it was computing, when (``time.monotonic``)."""

    pid: int
    job: int
    at: float


@dataclass
class ExecutorKiller:
    """A background thread that SIGKILLs a computing executor of ``spark``'s application during a fit.

    Args:
        spark: the session whose fit runs.
        group: the fit's Spark job group.
        every_job: kill once in every new job of the group (each relaunched stage attempt); else once only.
        delay_s: once a job of the fit runs, wait this long before killing (when the fault lands).
        victim: among the computing executors (by pid order), which one to kill (modulo their number).
        deadline_s: stop looking for a running job after this long.
        fault: what to do to the chosen executor JVM (given its pid); default: SIGKILL it. A worker test
            passes one that kills the executor's worker instead.

    Use as a context manager around the fit; ``kills`` lists what was done::

        with ExecutorKiller(spark, JOB_GROUP) as killer:
            net = SparkNetwork(spark, conf, master).fit(df, epochs=2)
        assert killer.kills
    """

    spark: SparkSession
    group: str
    every_job: bool = False
    delay_s: float = 0.0
    victim: int = 0
    deadline_s: float = 600.0
    fault: Callable[[int], None] | None = None
    kills: list[Kill] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _jobs_before: set[int] = field(default_factory=set)

    def __enter__(self) -> ExecutorKiller:
        tracker = self.spark.sparkContext.statusTracker()
        self._jobs_before = set(tracker.getJobIdsForGroup(self.group))
        self._thread = threading.Thread(target=self._run, name="executor-killer", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        app_id = self.spark.sparkContext.applicationId
        seen = set(self._jobs_before)
        end = time.monotonic() + self.deadline_s
        while not self._stop.is_set() and time.monotonic() < end:
            job = running_fit_job(self.spark, self.group, seen)
            if job is None:
                self._stop.wait(0.002)
                continue
            if self.delay_s > 0 and self._stop.wait(self.delay_s):
                return
            pid = self._busy_executor(app_id, job)
            if pid is None:
                continue  # nothing computes yet (the stage is starting): sample again
            at = time.monotonic()
            if self.fault is None:
                os.kill(pid, signal.SIGKILL)
            else:
                self.fault(pid)
            self.kills.append(Kill(pid, job, at))
            if not self.every_job:
                return
            seen |= set(self.spark.sparkContext.statusTracker().getJobIdsForGroup(self.group))

    def _busy_executor(self, app_id: str, job: int) -> int | None:
        running = executors_running_job(self.spark, job)
        pids = sorted(pid for executor, pid in executor_ids(app_id).items() if executor in running)
        first = {p: cpu_ticks_below(p) for p in pids}
        self._stop.wait(SAMPLE_S)
        busy = [p for p in pids if cpu_ticks_below(p) > first[p]]
        return busy[self.victim % len(busy)] if busy else None


def stage_attempts(spark: SparkSession, attempts: int | None) -> str | None:
    """Set ``spark.stage.maxConsecutiveAttempts`` on the running context's live conf (where deepspark's barrier
    training reads it at each fit); None removes it. Returns the previous value, to restore it afterwards.

    A test-only shortcut: a user sets it when building the session (``--conf`` or ``SparkSession.builder``).
    """
    key = "spark.stage.maxConsecutiveAttempts"
    conf = spark.sparkContext._conf  # the JVM SparkContext's own SparkConf, which getConf() copies
    previous = conf.get(key, None)
    if attempts is None:
        spark.sparkContext._jsc.sc().conf().remove(key)  # type: ignore[union-attr]
    else:
        conf.set(key, str(attempts))
    return previous


__all__ = [
    "ExecutorKiller",
    "Kill",
    "cpu_ticks_below",
    "executor_ids",
    "executor_pids",
    "executors_running_job",
    "running_fit_job",
    "stage_attempts",
]
