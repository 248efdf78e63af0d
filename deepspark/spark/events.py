"""Phase events of distributed training and their pickle-free wire format: what an executor may import.

Executors record ``PhaseEvent``s with a ``PhaseTimer`` and send them back as ``encode_events`` bytes;
the driver-side aggregate, ``TrainingStats``, lives in ``deepspark.spark.stats``.
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt

from deepspark.errors import DataError

Side: TypeAlias = Literal["driver", "worker"]
Detail: TypeAlias = dict[str, float | int | str | bool]

# Phases DL4J's SparkTrainingStats knows; the set stays open (any string is a phase).
PHASE_COUNT = "count"
PHASE_BROADCAST = "broadcast"
PHASE_REPARTITION = "repartition"
PHASE_SPLIT = "split"
PHASE_MAP = "map"
PHASE_AGGREGATE = "aggregate"
PHASE_PROCESS_PARAMS = "process_params"
PHASE_BROADCAST_GET = "broadcast_get"
PHASE_MODEL_INIT = "model_init"
PHASE_DATA_FETCH = "data_fetch"
PHASE_FIT = "fit"
PHASE_ENCODE = "encode"
PHASE_EXCHANGE = "exchange"
PHASE_DECODE = "decode"
PHASE_COMPUTE = "compute"
PHASE_RETRY = "retry"
PHASE_RENDEZVOUS = "rendezvous"
PHASE_AVERAGE = "average"
PHASE_GC = "gc"  # seconds the garbage collector took in a round or epoch (one event per worker)

DRIVER_PHASES: tuple[str, ...] = (
    PHASE_COUNT,
    PHASE_BROADCAST,
    PHASE_REPARTITION,
    PHASE_SPLIT,
    PHASE_MAP,
    PHASE_AGGREGATE,
    PHASE_PROCESS_PARAMS,
)
WORKER_PHASES: tuple[str, ...] = (
    PHASE_BROADCAST_GET,
    PHASE_MODEL_INIT,
    PHASE_DATA_FETCH,
    PHASE_FIT,
    PHASE_ENCODE,
    PHASE_EXCHANGE,
    PHASE_DECODE,
    PHASE_COMPUTE,
    PHASE_RENDEZVOUS,
    PHASE_AVERAGE,
    PHASE_GC,
)

FORMAT_VERSION = 1
_MAGIC = b"DSEV"
_FRAME_HEAD = 4 + 1 + 4 + 4  # magic, version, header length, event count
_DTYPE = np.dtype(
    [
        ("start", "<f8"),
        ("duration", "<f8"),
        ("phase", "<u4"),
        ("host", "<u4"),
        ("detail", "<i4"),
        ("worker", "<i4"),
        ("pid", "<i4"),
        ("round", "<i4"),
        ("attempt", "<i4"),
        ("side", "u1"),
    ]
)
_SIDES: tuple[Side, Side] = ("driver", "worker")
_HOST = socket.gethostname()


_SCALARS = (int, float, str, bool)


def _scalar(key: str, value: object) -> float | int | str | bool:
    """A detail value as a plain JSON scalar (numpy scalars unwrapped); raises ``DataError`` otherwise."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, _SCALARS):
        return value
    raise DataError(f"PhaseEvent.detail[{key!r}]: expected an int, float, str or bool, got {value!r}")


@dataclass(frozen=True, slots=True)
class PhaseEvent:
    """One timed phase on the driver or on one worker.

    Attributes:
        phase: Phase name, e.g. ``"fit"`` (see ``DRIVER_PHASES`` / ``WORKER_PHASES``; any string is allowed).
        side: ``"driver"`` or ``"worker"``.
        worker: Worker (partition) index; ``-1`` on the driver.
        host: Host name of the process that recorded it.
        pid: Process id of the process that recorded it.
        start: Start as epoch seconds (``time.time()``).
        duration: Seconds; a negative one (the clock stepped back) is stored as 0.
        round: Training round (averaging round) the phase belongs to.
        attempt: Spark task attempt number; ``> 0`` means Spark retried the task.
        detail: Small extras such as ``{"examples": 32}`` or ``{"bytes": 4096}``.

    Example:
        >>> PhaseEvent("fit", "worker", 0, "node-1", 4242, 1.7e9, 0.012, round=3, detail={"examples": 32}).phase
        'fit'
    """

    phase: str
    side: Side
    worker: int
    host: str
    pid: int
    start: float
    duration: float
    round: int
    attempt: int = 0
    detail: Detail = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.side not in _SIDES:
            raise DataError(f"PhaseEvent.side: expected 'driver' or 'worker', got {self.side!r}")
        if not (self.phase and isinstance(self.phase, str) and isinstance(self.host, str)):
            raise DataError(
                f"PhaseEvent: expected a non-empty str phase and a str host, got {self.phase!r}, {self.host!r}"
            )
        if not (math.isfinite(self.start) and math.isfinite(self.duration)):
            raise DataError(
                f"PhaseEvent({self.phase!r}): start and duration must be finite numbers, "
                f"got start={self.start!r}, duration={self.duration!r}"
            )
        if self.duration < 0:  # the wall clock stepped back between the two time.time() calls
            object.__setattr__(self, "duration", 0.0)
        if self.detail and not all(type(v) in _SCALARS for v in self.detail.values()):
            object.__setattr__(self, "detail", {k: _scalar(k, v) for k, v in self.detail.items()})
        for key, value in self.detail.items():
            if not isinstance(key, str) or (type(value) is float and not math.isfinite(value)):
                raise DataError(f"PhaseEvent.detail[{key!r}]: expected a str key and a finite value, got {value!r}")

    @property
    def end(self) -> float:
        """``start + duration`` in epoch seconds."""
        return self.start + self.duration


class _Span:
    """The open phase a ``PhaseTimer.phase`` block measures; set ``detail`` entries inside the block."""

    __slots__ = ("_t0", "detail", "name", "round", "timer")

    def __init__(self, timer: PhaseTimer, name: str, round: int, detail: Detail) -> None:
        self.timer, self.name, self.round, self.detail, self._t0 = timer, name, round, detail, 0.0

    def __enter__(self) -> _Span:
        self._t0 = time.time()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.timer.record(self.name, self._t0, time.time() - self._t0, round=self.round, **self.detail)


class PhaseTimer:
    """Records phases of one process (the driver or one worker task) into a list, cheaply and without I/O.

    The one phase recorder of the Spark runtime: the driver and every worker task hold one. A disabled
    timer (``enabled=False``: stats not collected) records nothing and costs one attribute check per call.

    Args:
        side: ``"driver"`` or ``"worker"``.
        worker: The worker (partition) index on a worker; ``-1`` on the driver.
        enabled: Record events (False: every call is a no-op).
        attempt: Spark task attempt number (``TaskContext.attemptNumber()``) on a worker.
        host: Host name; defaults to ``socket.gethostname()``.
        pid: Process id; defaults to ``os.getpid()``.

    Example:
        >>> timer = PhaseTimer("worker", worker=0)
        >>> with timer.phase("fit", round=0) as span:
        ...     span.detail["examples"] = 32
        >>> t0 = time.time(); timer("exchange", t0, 0, bytes_sent=4096)   # a phase that began at t0, ends now
        >>> [e.phase for e in timer.events]
        ['fit', 'exchange']
    """

    __slots__ = ("attempt", "enabled", "events", "host", "pid", "side", "worker")

    def __init__(
        self,
        side: Side = "driver",
        worker: int = -1,
        *,
        enabled: bool = True,
        attempt: int = 0,
        host: str | None = None,
        pid: int | None = None,
    ) -> None:
        if side not in _SIDES:
            raise DataError(f"PhaseTimer.side: expected 'driver' or 'worker', got {side!r}")
        if (side == "worker") != (worker >= 0):
            raise DataError(f"PhaseTimer.worker: expected -1 on the driver and >= 0 on a worker, got {worker} ({side})")
        self.side: Side = side
        self.worker = worker
        self.enabled = enabled
        self.attempt = attempt
        self.host = _HOST if host is None else host
        self.pid = os.getpid() if pid is None else pid
        self.events: list[PhaseEvent] = []

    def phase(self, name: str, *, round: int, **detail: float | int | str | bool) -> _Span:
        """A context manager that times its block as phase ``name`` of ``round`` (two ``time.time()`` calls)."""
        return _Span(self, name, round, dict(detail))

    def record(
        self, name: str, start: float, duration: float, *, round: int, **detail: float | int | str | bool
    ) -> PhaseEvent | None:
        """Append a phase measured elsewhere (``start`` in epoch seconds, ``duration`` in seconds) and return it."""
        if not self.enabled:
            return None
        event = PhaseEvent(
            name, self.side, self.worker, self.host, self.pid, start, duration, round, self.attempt, detail
        )
        self.events.append(event)
        return event

    def __call__(self, name: str, start: float, round: int = 0, **detail: float | int | str | bool) -> None:
        """Record phase ``name`` that began at ``start`` (``time.time()``) and ends now."""
        if self.enabled:
            self.record(name, start, time.time() - start, round=round, **detail)

    def drain(self) -> list[PhaseEvent]:
        """The events recorded so far; the timer starts over empty."""
        events, self.events = self.events, []
        return events


def driver_event(
    phase: str, start: float, duration: float, round: int = 0, attempt: int = 0, **detail: float | int | str | bool
) -> PhaseEvent:
    """A driver-side event of this process (host and pid filled in), e.g. for a phase timed by hand.

    Example:
        >>> t0 = time.time(); ...; event = driver_event("count", t0, time.time() - t0)  # doctest: +SKIP
    """
    return PhaseEvent(phase, "driver", -1, _HOST, os.getpid(), start, duration, round, attempt, detail)


def _columns(events: Iterable[PhaseEvent]) -> tuple[list[str], list[Detail], npt.NDArray[Any]]:
    """Events as a structured array whose strings and details index the two returned tables."""
    strings: dict[str, int] = {}
    details: dict[tuple[tuple[str, str, float | int | str | bool], ...], int] = {}
    detail_list: list[Detail] = []
    rows = []
    for e in events:
        d = -1
        if e.detail:
            key = tuple(sorted((k, type(v).__name__, v) for k, v in e.detail.items()))
            d = details.setdefault(key, len(detail_list))
            if d == len(detail_list):
                detail_list.append(dict(e.detail))
        p = strings.setdefault(e.phase, len(strings))
        h = strings.setdefault(e.host, len(strings))
        rows.append((e.start, e.duration, p, h, d, e.worker, e.pid, e.round, e.attempt, _SIDES.index(e.side)))
    try:
        return list(strings), detail_list, np.array(rows, dtype=_DTYPE)
    except (OverflowError, ValueError) as e:
        raise DataError(f"cannot encode events: worker, pid, round and attempt must fit in int32: {e}") from e


def _check_tables(strings: Any, details: Any) -> tuple[list[str], list[Detail]]:
    if not isinstance(strings, list) or not all(isinstance(s, str) for s in strings):
        raise DataError("event strings must be a list of strings")
    if not isinstance(details, list) or not all(
        isinstance(d, dict) and all(isinstance(v, (int, float, str, bool)) for v in d.values()) for d in details
    ):
        raise DataError("event details must be a list of objects with scalar values")
    return strings, details


def _events_from_rows(rows: npt.NDArray[Any], strings: list[str], details: list[Detail]) -> list[PhaseEvent]:
    """Validate the rows against the tables, then build events; raises ``DataError`` on any inconsistency."""
    if len(rows) == 0:
        return []
    if int(rows["phase"].max()) >= len(strings) or int(rows["host"].max()) >= len(strings):
        raise DataError(f"event string index out of range (table has {len(strings)} entries)")
    if int(rows["detail"].min()) < -1 or int(rows["detail"].max()) >= len(details):
        raise DataError(f"event detail index out of range (table has {len(details)} entries)")
    if int(rows["side"].max()) > 1:
        raise DataError("event side must be 0 (driver) or 1 (worker)")
    if not (np.isfinite(rows["start"]).all() and np.isfinite(rows["duration"]).all()) or rows["duration"].min() < 0:
        raise DataError("event start/duration must be finite and duration >= 0")
    columns = [rows[name].tolist() for name in ("phase", "side", "worker", "host", "pid", "start", "duration")]
    columns += [rows["round"].tolist(), rows["attempt"].tolist(), rows["detail"].tolist()]
    return [
        PhaseEvent(strings[p], _SIDES[s], w, strings[h], pid, t, dur, r, a, dict(details[d]) if d >= 0 else {})
        for p, s, w, h, pid, t, dur, r, a, d in zip(*columns, strict=True)
    ]


def _rows_from_columns(columns: dict[str, Any]) -> npt.NDArray[Any]:
    """The structured array of ``to_dict``'s event columns; raises ``ValueError`` on wrong types or ranges."""
    lengths = {len(v) if isinstance(v, list) else -1 for v in columns.values()}
    if len(lengths) > 1 or -1 in lengths:
        raise ValueError("columns must be lists of one length")
    rows = np.zeros(lengths.pop() if lengths else 0, dtype=_DTYPE)
    for name, values in columns.items():
        kind = _DTYPE.fields[name][0] if _DTYPE.fields else _DTYPE
        if kind.kind == "f":
            if not all(type(v) in (int, float) for v in values):
                raise ValueError(f"column {name!r} must hold numbers")
        else:
            info = np.iinfo(kind)
            if not all(type(v) is int and info.min <= v <= info.max for v in values):
                raise ValueError(f"column {name!r} must hold integers in [{info.min}, {info.max}]")
        rows[name] = values
    return rows


def encode_events(events: Iterable[PhaseEvent]) -> bytes:
    """Pack events into a compact, pickle-free byte string to send back from an executor.

    Layout: ``b"DSEV"``, a version byte, the JSON header length and the event count (little-endian
    uint32), a UTF-8 JSON header ``{"strings": [...], "details": [...]}``, then one fixed 45-byte
    record per event. Concatenated encodings decode as the concatenation of their events, so a
    ``treeAggregate`` may combine them with ``+``.

    Example:
        >>> timer = PhaseTimer("worker", worker=1)
        >>> _ = timer.record("fit", 1.7e9, 0.01, round=0)
        >>> decode_events(encode_events(timer.events)) == timer.events
        True
    """
    strings, details, rows = _columns(events)
    header = json.dumps({"strings": strings, "details": details}, allow_nan=False, separators=(",", ":")).encode()
    head = _MAGIC + bytes([FORMAT_VERSION]) + len(header).to_bytes(4, "little") + len(rows).to_bytes(4, "little")
    return head + header + rows.tobytes()


def decode_events(data: bytes | bytearray | memoryview) -> list[PhaseEvent]:
    """Unpack ``encode_events`` output (or several concatenated); raises ``DataError`` on anything malformed."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DataError(f"encoded events must be bytes, got {type(data).__name__}")
    view = memoryview(data).cast("B")
    events: list[PhaseEvent] = []
    offset = 0
    while offset < len(view):
        head = bytes(view[offset : offset + _FRAME_HEAD])
        if len(head) < _FRAME_HEAD or head[:4] != _MAGIC:
            raise DataError(f"encoded events: no 'DSEV' frame at byte {offset} (truncated or not deepspark events)")
        if head[4] != FORMAT_VERSION:
            raise DataError(f"encoded events: unsupported version {head[4]}; this deepspark reads {FORMAT_VERSION}")
        header_len, count = int.from_bytes(head[5:9], "little"), int.from_bytes(head[9:13], "little")
        body = offset + _FRAME_HEAD
        end = body + header_len + count * _DTYPE.itemsize
        if end > len(view):
            raise DataError(
                f"encoded events: frame at byte {offset} needs {end - offset} bytes, {len(view) - offset} left"
            )
        try:
            header = json.loads(bytes(view[body : body + header_len]).decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            raise DataError(f"encoded events: bad JSON header at byte {body}: {e}") from e
        if not isinstance(header, dict):
            raise DataError("encoded events: JSON header must be an object")
        strings, details = _check_tables(header.get("strings"), header.get("details"))
        rows = np.frombuffer(view[body + header_len : end], dtype=_DTYPE, count=count)
        events += _events_from_rows(rows, strings, details)
        offset = end
    return events


__all__ = [
    "DRIVER_PHASES",
    "PHASE_AGGREGATE",
    "PHASE_AVERAGE",
    "PHASE_BROADCAST",
    "PHASE_BROADCAST_GET",
    "PHASE_COMPUTE",
    "PHASE_COUNT",
    "PHASE_DATA_FETCH",
    "PHASE_DECODE",
    "PHASE_ENCODE",
    "PHASE_EXCHANGE",
    "PHASE_FIT",
    "PHASE_GC",
    "PHASE_MAP",
    "PHASE_MODEL_INIT",
    "PHASE_PROCESS_PARAMS",
    "PHASE_RENDEZVOUS",
    "PHASE_REPARTITION",
    "PHASE_RETRY",
    "PHASE_SPLIT",
    "WORKER_PHASES",
    "Detail",
    "PhaseEvent",
    "PhaseTimer",
    "Side",
    "decode_events",
    "driver_event",
    "encode_events",
]
