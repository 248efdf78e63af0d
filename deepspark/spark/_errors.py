"""Turning Spark job failures into deepspark errors: the worker's own ``DataError`` where there is one,
else a ``DistributedTrainingError`` naming the cause and the Spark setting involved — never a bare Py4J trace."""

from __future__ import annotations

import re
from typing import NoReturn

from deepspark.errors import DataError, DistributedTrainingError

_WORKER_ERROR = re.compile(r"deepspark\.errors\.(DataError|ConfigError|ModelFormatError): (.+)")


def _text(e: BaseException) -> str:
    parts = [str(e)]
    java = getattr(e, "java_exception", None)
    if java is not None:
        parts.append(str(java))
    return "\n".join(parts)


def root_cause(e: BaseException) -> str:
    """The most telling line of a Spark failure: the Python exception line if a worker raised one."""
    text = _text(e)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if re.match(r"^[A-Za-z_][\w.]*(Error|Exception): ", ln) and "py4j" not in ln.lower():
            return ln[:500]
    return (lines[0] if lines else type(e).__name__)[:500]


def raise_from_spark(e: BaseException, what: str) -> NoReturn:
    """Re-raise a failed Spark job as a deepspark error (call inside ``except``)."""
    text = _text(e)
    match = _WORKER_ERROR.search(text)
    if match and match.group(1) == "DataError":
        raise DataError(match.group(2).strip()) from None
    cause = root_cause(e)
    hint = "spark.task.maxFailures (task retries)"
    if "barrier" in text.lower():
        hint = "spark.stage.maxConsecutiveAttempts (barrier stage retries)"
    raise DistributedTrainingError(
        f"{what} failed and Spark's retries did not recover it: {cause}. Setting involved: {hint}"
    ) from e


def is_spark_failure(e: BaseException) -> bool:
    """Whether ``e`` is a failure reported by Spark (Py4J or PySpark), not a local programming error."""
    names = {c.__name__ for c in type(e).__mro__}
    return bool(names & {"Py4JJavaError", "PySparkException", "Py4JError", "PythonException", "SparkException"})
