"""``TrainingStats``: the driver-side record of one distributed training run (totals, summary, JSON, HTML).

The events it holds, and their wire format, live in ``deepspark.spark.events`` (what executors import).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepspark.errors import DataError
from deepspark.spark.events import (
    _DTYPE,
    DRIVER_PHASES,
    FORMAT_VERSION,
    PHASE_COMPUTE,
    PHASE_ENCODE,
    PHASE_EXCHANGE,
    PHASE_FIT,
    PHASE_RETRY,
    WORKER_PHASES,
    PhaseEvent,
    Side,
    _check_tables,
    _columns,
    _events_from_rows,
    _rows_from_columns,
    decode_events,
)

if TYPE_CHECKING:
    from deepspark.spark.advice import Finding


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


__all__ = ["PhaseTotal", "RetriedTask", "TrainingStats"]
