"""A SparkSession for a command-line run: Spark's own output in a log file, Ctrl-C answered at once.

Spark's JVM writes startup chatter (and, with the default configuration, every failed task's trace
twice) to the stderr it inherits; Python workers started by the JVM inherit the same stream. Handing
the JVM a log file as its stderr while it starts keeps the terminal for the command's own output.

Ctrl-C: pyspark's own SIGINT handler calls into the JVM from inside the signal handler, on the
connection the interrupted call is still using, and can wait there for good; and py4j logs the
interrupted call with two tracebacks. Here Ctrl-C only raises ``KeyboardInterrupt``, py4j's report of
it is dropped, and the command ends at once (``deepspark.cli.main.entry``): the JVM exits by itself
when this process does (it watches its stdin, and stops the SparkContext in its shutdown hook), and
the Python workers follow it.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@contextmanager
def _stderr_into(path: Path) -> Iterator[None]:
    """File descriptor 2 points at ``path`` inside the block: processes started there keep it as stderr."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(path, "ab") as log:
            os.dup2(log.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


class _DropInterruptReports(logging.Filter):
    """Drops log records that report a ``KeyboardInterrupt`` (py4j logs Ctrl-C as an error, twice)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, KeyboardInterrupt) or isinstance(getattr(exc, "__context__", None), KeyboardInterrupt):
            return False
        return "KeyboardInterrupt" not in record.getMessage()


_DROP_INTERRUPT_REPORTS = _DropInterruptReports()


def quiet_interrupt_reports() -> None:
    """Keep py4j from printing tracebacks when Ctrl-C lands in the middle of a call into the JVM."""
    for name in ("", "py4j", "py4j.java_gateway", "py4j.clientserver"):
        logger = logging.getLogger(name)
        if _DROP_INTERRUPT_REPORTS not in logger.filters:
            logger.addFilter(_DROP_INTERRUPT_REPORTS)


@contextmanager
def cli_spark(master: str, app_name: str, log_path: Path | None = None) -> Iterator[SparkSession]:
    """Start a session for a CLI command (``local_spark``: loopback for local masters, a quiet log).

    Args:
        master: Spark master URL (``local[*]``, ``spark://host:7077``, ...).
        app_name: Application name.
        log_path: Where the JVM's stderr (Spark's log, Python worker output) goes; None keeps the terminal.

    Yields:
        The session, stopped when the block ends; on Ctrl-C a stop is started and ``KeyboardInterrupt``
        goes on at once.
    """
    from deepspark.spark import local_spark

    if log_path is None:
        spark = local_spark(master, app_name=app_name)
    else:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with _stderr_into(log_path):
            spark = local_spark(master, app_name=app_name)
    quiet_interrupt_reports()
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.default_int_handler) if main_thread else None  # not pyspark's
    try:
        yield spark
    except KeyboardInterrupt:
        # stopping cleanly can take many seconds while tasks wind down: start it, do not wait for it
        threading.Thread(target=spark.stop, name="deepspark-spark-stop", daemon=True).start()
        raise
    else:
        spark.stop()
    finally:
        if main_thread:
            signal.signal(signal.SIGINT, previous)


__all__ = ["cli_spark", "quiet_interrupt_reports"]
