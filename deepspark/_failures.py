"""The one translator of Spark job failures into deepspark errors, for every package that runs Spark jobs.

A deepspark error raised inside a Spark task (a ``DataError`` for a NaN row, say) reaches the driver as a
``PythonException`` or ``Py4JJavaError`` whose text holds the worker's traceback. ``translate`` rebuilds the
worker's own error (same class, same message) so ``data/``, ``spark/`` and ``ml/`` raise the same type for
the same worker error; any other failure becomes a ``DistributedTrainingError`` naming the root cause and
the Spark setting involved. Text only: this module imports neither pyspark nor py4j.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import deepspark.errors as errors
from deepspark.errors import DeepSparkError, DistributedTrainingError

_WORKER_ERROR = re.compile(
    r"deepspark\.errors\.(DataError|ConfigError|StorageError|ModelFormatError|DistributedTrainingError|"
    r"TrainingDivergedError|DeepSparkError): (.+)"
)
_SPARK_FAILURES = {"Py4JJavaError", "PySparkException", "Py4JError", "PythonException", "SparkException"}
# Spark's own line for a task whose executor died: "ExecutorLostFailure (executor 1 exited caused by one of the
# running tasks) Reason: Command exited with code 137"
_EXECUTOR_LOST = re.compile(r"ExecutorLostFailure \(executor (\S+) exited ([^)]*)\)(?:\s*Reason:\s*(.+))?")
_EXIT_CODE = re.compile(r"exited with code (\d+)")
_SIGNALS = {
    137: "SIGKILL: the OS out-of-memory killer (raise spark.executor.memoryOverhead) or an operator",
    143: "SIGTERM: the cluster manager or an operator stopped it",
    134: "SIGABRT: the executor's JVM or a native library aborted",
}


def _text(e: BaseException) -> str:
    parts = [str(e)]
    java = getattr(e, "java_exception", None)
    if java is not None:
        parts.append(str(java))
    return "\n".join(parts)


def is_spark_failure(e: BaseException) -> bool:
    """Whether ``e`` is a failure reported by Spark (Py4J or PySpark), not a local programming error."""
    return bool({c.__name__ for c in type(e).__mro__} & _SPARK_FAILURES)


def executor_lost(text: str) -> str | None:
    """``executor 1 was lost (exited caused by one of the running tasks: Command exited with code 137, SIGKILL:
    ...)`` when a Spark failure's text says an executor died under a task, else None."""
    found = list(_EXECUTOR_LOST.finditer(text))
    if not found:
        return None
    executor, how, reason = found[-1].groups()
    detail = how.strip()
    if reason:
        detail += f": {reason.strip()}"
        code = _EXIT_CODE.search(reason)
        if code is not None and int(code.group(1)) in _SIGNALS:
            detail += f", {_SIGNALS[int(code.group(1))]}"
    return f"executor {executor} was lost ({detail})"


def root_cause(e: BaseException) -> str:
    """The most telling line of a Spark failure: a lost executor, else the last Python exception line a worker
    printed, if any."""
    lost = executor_lost(_text(e))
    if lost is not None:
        return lost[:500]
    lines = [ln.strip() for ln in _text(e).splitlines() if ln.strip()]
    for ln in reversed(lines):
        if re.match(r"^[A-Za-z_][\w.]*(Error|Exception): ", ln) and "py4j" not in ln.lower():
            return ln[:500]
    return (lines[0] if lines else type(e).__name__)[:500]


def worker_error(e: BaseException) -> DeepSparkError | None:
    """The deepspark error a worker raised inside the failed job, rebuilt on the driver; None if there is none."""
    matches = list(_WORKER_ERROR.finditer(_text(e)))
    if not matches:
        return None
    name, message = matches[-1].groups()
    cls: type[DeepSparkError] = getattr(errors, name, DeepSparkError)
    try:
        return cls(message.strip())
    except TypeError:  # an error class whose constructor wants more than a message
        return DeepSparkError(message.strip())


def translate(e: BaseException, what: str) -> DeepSparkError:
    """The deepspark error for a failed Spark job doing ``what``: the worker's own, else a
    ``DistributedTrainingError`` with the root cause and the retry setting involved."""
    own = worker_error(e)
    if own is not None:
        return own
    text = _text(e).lower()
    hint = "spark.task.maxFailures (task retries)"
    if "barrier" in text:
        hint = "spark.stage.maxConsecutiveAttempts (barrier stage retries)"
    return DistributedTrainingError(
        f"{what} failed and Spark's retries did not recover it: {root_cause(e)}. Setting involved: {hint}"
    )


@contextmanager
def spark_failures(what: str = "the Spark job") -> Iterator[None]:
    """Run a Spark action; a failed job is re-raised as ``translate(e, what)`` (the worker's own error has
    the whole message, so its Java and Python traces are not chained; other failures keep them as cause).

    Example:
        >>> with spark_failures("evaluate"):  # doctest: +SKIP
        ...     rows = frame.collect()
    """
    try:
        yield
    except DeepSparkError:
        raise
    except Exception as e:
        if not is_spark_failure(e):
            raise
        translated = translate(e, what)
        if isinstance(translated, DistributedTrainingError) and worker_error(e) is None:
            raise translated from e
        raise translated from None


__all__ = ["executor_lost", "is_spark_failure", "root_cause", "spark_failures", "translate", "worker_error"]
