"""Training-phase statistics of distributed training: events, their wire encoding, totals, summary, JSON and HTML."""

from __future__ import annotations

import json
import math
import os
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt

from deepspark.errors import DataError

if TYPE_CHECKING:
    from deepspark.spark.advice import Finding

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

    Args:
        side: ``"driver"`` or ``"worker"``.
        worker: The worker (partition) index on a worker; ``-1`` on the driver.
        attempt: Spark task attempt number (``TaskContext.attemptNumber()``) on a worker.
        host: Host name; defaults to ``socket.gethostname()``.
        pid: Process id; defaults to ``os.getpid()``.

    Example:
        >>> timer = PhaseTimer("worker", worker=0)
        >>> with timer.phase("fit", round=0) as span:
        ...     span.detail["examples"] = 32
        >>> [e.phase for e in timer.events]
        ['fit']
    """

    __slots__ = ("attempt", "events", "host", "pid", "side", "worker")

    def __init__(
        self,
        side: Side = "driver",
        worker: int = -1,
        *,
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
        self.attempt = attempt
        self.host = _HOST if host is None else host
        self.pid = os.getpid() if pid is None else pid
        self.events: list[PhaseEvent] = []

    def phase(self, name: str, *, round: int, **detail: float | int | str | bool) -> _Span:
        """A context manager that times its block as phase ``name`` of ``round`` (two ``time.time()`` calls)."""
        return _Span(self, name, round, dict(detail))

    def record(
        self, name: str, start: float, duration: float, *, round: int, **detail: float | int | str | bool
    ) -> PhaseEvent:
        """Append a phase measured elsewhere (``start`` in epoch seconds, ``duration`` in seconds) and return it."""
        event = PhaseEvent(
            name, self.side, self.worker, self.host, self.pid, start, duration, round, self.attempt, detail
        )
        self.events.append(event)
        return event

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


@dataclass(frozen=True, slots=True)
class PhaseTotal:
    """Aggregate numbers of one phase: ``share`` is of wall time (driver) or of wall time x workers (worker)."""

    phase: str
    side: Side
    count: int
    total: float
    mean: float
    min: float
    max: float
    share: float


@dataclass(frozen=True, slots=True)
class RetriedTask:
    """A task Spark re-ran: its round, worker and (positive) attempt number, and where it ran."""

    round: int
    worker: int
    attempt: int
    host: str


def _phase_order(phase: str) -> tuple[int, str]:
    known = DRIVER_PHASES + WORKER_PHASES
    return (known.index(phase), "") if phase in known else (len(known), phase)


class TrainingStats:
    """Phase events of one distributed training run plus its metadata: DL4J's ``SparkTrainingStats``.

    Args:
        events: Initial events.
        settings: The training master's settings as JSON-ready values (quoted by ``advise``).
        num_workers: Workers the master asked for; ``None`` counts the workers seen in events.
        start: Run start (epoch seconds); ``None`` uses the first event.
        end: Run end (epoch seconds); ``None`` uses the last event's end.

    Example:
        >>> stats = TrainingStats(num_workers=2)
        >>> stats.add(decode_events(encoded_bytes_from_a_round))  # doctest: +SKIP
        >>> print(stats.summary())  # doctest: +SKIP
        >>> stats.export_html("timeline.html")  # doctest: +SKIP
    """

    def __init__(
        self,
        events: Iterable[PhaseEvent] = (),
        *,
        settings: dict[str, Any] | None = None,
        num_workers: int | None = None,
        start: float | None = None,
        end: float | None = None,
    ) -> None:
        self._events: list[PhaseEvent] = []
        self.settings: dict[str, Any] = dict(settings or {})
        self.num_workers_requested = num_workers
        self.start = start
        self.end = end
        self.add(events)

    def add(self, events: Iterable[PhaseEvent] | bytes) -> None:
        """Append events, given as ``PhaseEvent`` objects or as ``encode_events`` bytes."""
        if isinstance(events, (bytes, bytearray, memoryview)):
            self._events += decode_events(events)
            return
        for event in events:
            if not isinstance(event, PhaseEvent):
                raise DataError(f"TrainingStats.add: expected PhaseEvent objects, got {type(event).__name__}")
            self._events.append(event)

    def merge(self, other: TrainingStats) -> TrainingStats:
        """Add ``other``'s events into these stats (earliest start, latest end) and return ``self``."""
        if not isinstance(other, TrainingStats):
            raise DataError(f"cannot merge TrainingStats with {type(other).__name__}")
        self._events += other._events
        self.settings = self.settings or dict(other.settings)
        if self.num_workers_requested is None:
            self.num_workers_requested = other.num_workers_requested
        self.start = min((t for t in (self.start, other.start) if t is not None), default=None)
        self.end = max((t for t in (self.end, other.end) if t is not None), default=None)
        return self

    def events(
        self, phase: str | None = None, side: Side | None = None, *, worker: int | None = None, round: int | None = None
    ) -> list[PhaseEvent]:
        """The events matching every filter given (all events when none is)."""
        return [
            e
            for e in self._events
            if (phase is None or e.phase == phase)
            and (side is None or e.side == side)
            and (worker is None or e.worker == worker)
            and (round is None or e.round == round)
        ]

    def __len__(self) -> int:
        return len(self._events)

    @property
    def num_workers(self) -> int:
        """Workers asked for, or else the number of distinct workers seen in events."""
        return self.num_workers_requested if self.num_workers_requested is not None else len(self.workers())

    def workers(self) -> list[int]:
        """Worker indices seen in worker events, sorted."""
        return sorted({e.worker for e in self._events if e.side == "worker"})

    def rounds(self) -> list[int]:
        """Round numbers seen in events, sorted."""
        return sorted({e.round for e in self._events})

    def time_span(self) -> tuple[float, float]:
        """``(start, end)`` of the run in epoch seconds: the metadata where set, else the events' extent."""
        start = self.start if self.start is not None else min((e.start for e in self._events), default=0.0)
        end = self.end if self.end is not None else max((e.end for e in self._events), default=start)
        return start, max(start, end)

    @property
    def wall_time(self) -> float:
        """Seconds from the run's start to its end."""
        start, end = self.time_span()
        return end - start

    @property
    def work_phase(self) -> str:
        """The phase in which workers do the training itself: ``fit`` (averaging) or ``compute`` (sharing)."""
        return PHASE_COMPUTE if any(e.phase == PHASE_COMPUTE for e in self._events) else PHASE_FIT

    def worker_totals(self, phase: str | None = None) -> dict[int, float]:
        """Seconds per worker spent in ``phase`` (every worker phase when ``None``)."""
        totals = dict.fromkeys(self.workers(), 0.0)
        for e in self._events:
            if e.side == "worker" and (phase is None or e.phase == phase):
                totals[e.worker] += e.duration
        return totals

    def worker_detail_totals(self, key: str, phase: str | None = None) -> dict[int, float]:
        """Sum per worker of the numeric ``detail[key]`` (e.g. ``"examples"``) over its events of ``phase``."""
        totals = dict.fromkeys(self.workers(), 0.0)
        for e in self._events:
            value = e.detail.get(key)
            if e.side == "worker" and (phase is None or e.phase == phase) and isinstance(value, (int, float)):
                totals[e.worker] += float(value)
        return totals

    def phase_totals(self) -> dict[str, PhaseTotal]:
        """Count, total, mean, min, max and share of time per phase, in the canonical phase order.

        ``share`` is total / wall time for driver phases and total / (wall time x workers) for worker
        phases, so 0.8 for ``fit`` means workers spent 80% of the run fitting.
        """
        durations: dict[str, list[float]] = {}
        sides: dict[str, Side] = {}
        for e in self._events:
            durations.setdefault(e.phase, []).append(e.duration)
            sides.setdefault(e.phase, e.side)
        wall = self.wall_time
        out: dict[str, PhaseTotal] = {}
        for phase in sorted(durations, key=lambda p: (sides[p] == "worker", _phase_order(p))):
            values = durations[phase]
            total = math.fsum(values)
            lanes = 1 if sides[phase] == "driver" else max(1, self.num_workers)
            share = total / (wall * lanes) if wall > 0 else 0.0
            out[phase] = PhaseTotal(
                phase, sides[phase], len(values), total, total / len(values), min(values), max(values), share
            )
        return out

    def retried_tasks(self) -> list[RetriedTask]:
        """Each (round, worker, attempt) with ``attempt > 0``, i.e. a task Spark ran again, sorted.

        Worker events carry the task's attempt number. A task re-run in a new attempt of its stage (a lost
        executor takes its shuffle output along) restarts at attempt 0, so the driver also records a
        ``retry`` event (worker -1: the driver cannot tell which partition) when a round's stages failed tasks.
        """
        seen = {
            (e.round, e.worker, e.attempt): e.host
            for e in self._events
            if e.attempt > 0 and (e.side == "worker" or e.phase == PHASE_RETRY)
        }
        return [RetriedTask(r, w, a, h) for (r, w, a), h in sorted(seen.items())]

    def summary(self) -> str:
        """A text table of the phase totals, with rounds, workers, wall time and retried tasks in a header line."""
        retried = len(self.retried_tasks())
        seen = len(self.workers())
        workers = f"{seen} workers" + (f" (of {self.num_workers})" if seen != self.num_workers else "")
        lines = [
            f"Spark training stats: {len(self.rounds())} rounds, {workers}, wall {self.wall_time:.3f} s, "
            f"{len(self._events)} events, {retried} retried task{'s' if retried != 1 else ''}",
            f"{'phase':<16} {'side':<6} {'count':>8} {'total s':>10} {'mean ms':>10} "
            f"{'min ms':>10} {'max ms':>10} {'share':>7}",
        ]
        for t in self.phase_totals().values():
            lines.append(
                f"{t.phase:<16} {t.side:<6} {t.count:>8} {t.total:>10.3f} {t.mean * 1e3:>10.2f} "
                f"{t.min * 1e3:>10.2f} {t.max * 1e3:>10.2f} {t.share:>7.1%}"
            )
        lines.append("share: driver phases of wall time; worker phases of wall time x workers")
        exchange = self.events(phase=PHASE_EXCHANGE)
        if exchange:
            sent = [float(e.detail.get("bytes_sent", 0)) for e in exchange]
            line = f"exchange: {sum(sent) / len(sent):,.0f} bytes sent per step per worker (mean of {len(sent)})"
            encode = self.events(phase=PHASE_ENCODE)
            if encode:
                sparsity = [float(e.detail.get("sparsity", 0.0)) for e in encode]
                last = max(encode, key=lambda e: e.start)
                line += f"; sparsity mean {sum(sparsity) / len(sparsity):.2e}; last tau {last.detail.get('tau')}"
            lines.append(line)
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"TrainingStats(events={len(self._events)}, rounds={len(self.rounds())}, workers={self.num_workers})"

    def to_dict(self) -> dict[str, Any]:
        """Metadata and events as JSON-ready values (events stored by column)."""
        strings, details, rows = _columns(self._events)
        return {
            "type": "training_stats",
            "format_version": FORMAT_VERSION,
            "settings": self.settings,
            "num_workers": self.num_workers_requested,
            "start": self.start,
            "end": self.end,
            "strings": strings,
            "details": details,
            "events": {name: rows[name].tolist() for name in _DTYPE.names or ()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingStats:
        """Rebuild from ``to_dict`` output; raises ``DataError`` when malformed."""
        if not isinstance(data, dict) or data.get("type") != "training_stats":
            raise DataError("not training stats: expected an object with type 'training_stats'")
        if data.get("format_version") != FORMAT_VERSION:
            raise DataError(f"training stats: unsupported format_version {data.get('format_version')!r}")
        settings, num_workers, columns = data.get("settings"), data.get("num_workers"), data.get("events")
        if not isinstance(settings, dict) or not (num_workers is None or type(num_workers) is int):
            raise DataError("training stats: 'settings' must be an object and 'num_workers' an int or null")
        times = [data.get("start"), data.get("end")]
        if not all(t is None or (type(t) in (int, float) and math.isfinite(t)) for t in times):
            raise DataError("training stats: 'start' and 'end' must be numbers or null")
        strings, details = _check_tables(data.get("strings"), data.get("details"))
        if not isinstance(columns, dict) or set(columns) != set(_DTYPE.names or ()):
            raise DataError(f"training stats: 'events' must be an object with columns {list(_DTYPE.names or ())}")
        try:
            rows = _rows_from_columns(columns)
        except (TypeError, ValueError, OverflowError) as e:
            raise DataError(f"training stats: malformed events: {e}") from e
        events = _events_from_rows(rows, strings, details)
        return cls(events, settings=settings, num_workers=num_workers, start=times[0], end=times[1])

    def to_json(self) -> str:
        """``to_dict`` as compact standard JSON, e.g. to save next to a model."""
        return json.dumps(self.to_dict(), allow_nan=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> TrainingStats:
        """Rebuild from ``to_json`` output (JSON only, never pickle); raises ``DataError`` when malformed."""
        try:
            data = json.loads(text)
        except (TypeError, ValueError, RecursionError) as e:
            raise DataError(f"not valid training stats JSON: {e}") from e
        return cls.from_dict(data)

    def advice(self, settings: dict[str, Any] | None = None) -> list[Finding]:
        """``deepspark.spark.advice.advise`` on these stats (``settings`` default to the stored ones)."""
        from deepspark.spark.advice import advise

        return advise(self, settings)

    def export_html(self, path: str | os.PathLike[str], *, title: str = "deepspark training timeline") -> Path:
        """Write ONE self-contained offline HTML report (timeline, histograms, totals, advice) and return its path.

        Example:
            >>> stats.export_html("timeline.html")  # doctest: +SKIP
        """
        from deepspark.spark._timeline_html import render_html

        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(render_html(self, self.advice(), title=title), encoding="utf-8")
        return out


__all__ = [
    "DRIVER_PHASES",
    "PHASE_AGGREGATE",
    "PHASE_BROADCAST",
    "PHASE_BROADCAST_GET",
    "PHASE_COMPUTE",
    "PHASE_COUNT",
    "PHASE_DATA_FETCH",
    "PHASE_DECODE",
    "PHASE_ENCODE",
    "PHASE_EXCHANGE",
    "PHASE_FIT",
    "PHASE_MAP",
    "PHASE_MODEL_INIT",
    "PHASE_PROCESS_PARAMS",
    "PHASE_REPARTITION",
    "PHASE_SPLIT",
    "WORKER_PHASES",
    "PhaseEvent",
    "PhaseTimer",
    "PhaseTotal",
    "RetriedTask",
    "TrainingStats",
    "decode_events",
    "driver_event",
    "encode_events",
]
