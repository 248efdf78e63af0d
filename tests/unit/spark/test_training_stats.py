"""Training-phase statistics: events, their wire encoding, totals, merge, summary, JSON and the HTML timeline."""

from __future__ import annotations

import json
import math
import os
import random
import re
from pathlib import Path

import numpy as np
import pytest

from deepspark.errors import DataError
from deepspark.spark._timeline_html import MAX_BARS
from deepspark.spark.events import (
    DRIVER_PHASES,
    WORKER_PHASES,
    PhaseEvent,
    PhaseTimer,
    decode_events,
    driver_event,
    encode_events,
)
from deepspark.spark.stats import RetriedTask, TrainingStats

T0 = 1_700_000_000.0


def _event(phase: str, worker: int, start: float, duration: float, round: int = 0, **kw: object) -> PhaseEvent:
    side = "driver" if worker < 0 else "worker"
    host = "driver" if worker < 0 else f"exec-{worker}"
    return PhaseEvent(phase, side, worker, host, 1000 + worker, T0 + start, duration, round, **kw)  # type: ignore[arg-type]


def _hand_stats() -> TrainingStats:
    """Two broadcasts on the driver and three fits on two workers over a 4 s run."""
    events = [
        _event("broadcast", -1, 0.0, 0.5, 0),
        _event("broadcast", -1, 2.0, 0.3, 1),
        _event("fit", 0, 0.5, 1.0, 0),
        _event("fit", 0, 1.5, 0.5, 0),
        _event("fit", 1, 0.5, 2.0, 0),
    ]
    return TrainingStats(events, settings={"averaging_frequency": 5}, num_workers=2, start=T0, end=T0 + 4.0)


def _run(workers: int, rounds: int, fits: int, *, interleave_fetch: bool = False, seed: int = 0) -> TrainingStats:
    """A synthetic averaging run with ``fits`` minibatches per worker per round."""
    rng = random.Random(seed)
    driver = PhaseTimer("driver", host="driver", pid=1)
    timers: list[PhaseTimer] = []
    t = T0
    for r in range(rounds):
        driver.record("broadcast", t, 0.05, round=r)
        t += 0.05
        ends = []
        for w in range(workers):
            timer = PhaseTimer("worker", w, host=f"exec-{w}", pid=100 + w, attempt=int((r, w) == (1, 0)))
            tw = t + 0.01
            timer.record("broadcast_get", tw, 0.01, round=r)
            tw += 0.01
            for _ in range(fits):
                if interleave_fetch:
                    timer.record("data_fetch", tw, 0.001, round=r, examples=32)
                    tw += 0.001
                duration = rng.uniform(0.004, 0.006)
                timer.record("fit", tw, duration, round=r, examples=32)
                tw += duration
            ends.append(tw)
            timers.append(timer)
        driver.record("map", t, max(ends) - t, round=r)
        t = max(ends)
        driver.record("aggregate", t, 0.05, round=r)
        t += 0.05
    stats = TrainingStats(driver.events, settings={"num_workers": workers}, num_workers=workers)
    for timer in timers:
        stats.add(encode_events(timer.drain()))
    return stats


def test_phase_event_unknown_side_raises_data_error() -> None:
    with pytest.raises(DataError, match="side"):
        PhaseEvent("fit", "executor", 0, "h", 1, T0, 0.1, 0)  # type: ignore[arg-type]


@pytest.mark.parametrize("start, duration", [(math.nan, 0.1), (T0, math.inf)])
def test_phase_event_non_finite_time_raises_data_error(start: float, duration: float) -> None:
    with pytest.raises(DataError, match="finite"):
        PhaseEvent("fit", "worker", 0, "h", 1, start, duration, 0)


def test_phase_event_negative_duration_stored_as_zero() -> None:
    assert PhaseEvent("fit", "worker", 0, "h", 1, T0, -1e-6, 0).duration == 0.0


@pytest.mark.parametrize("detail", [{"bytes": math.nan}, {"x": [1, 2]}])
def test_phase_event_bad_detail_raises_data_error(detail: dict[str, object]) -> None:
    with pytest.raises(DataError, match="detail"):
        PhaseEvent("fit", "worker", 0, "h", 1, T0, 0.1, 0, detail=detail)  # type: ignore[arg-type]


def test_phase_event_numpy_detail_values_become_plain_scalars() -> None:
    detail = {"examples": np.int64(32), "loss": np.float32(0.5), "ok": np.bool_(True)}
    event = PhaseEvent("fit", "worker", 0, "h", 1, T0, 0.1, 0, detail=detail)
    assert event.detail == {"examples": 32, "loss": 0.5, "ok": True}
    assert [type(v) for v in event.detail.values()] == [int, float, bool]


def test_phase_timer_block_records_one_event_with_detail() -> None:
    timer = PhaseTimer("worker", worker=3, attempt=1, host="node-ü", pid=77)
    with timer.phase("fit", round=4, examples=32) as span:
        span.detail["bytes"] = 1024
    (event,) = timer.events
    assert (event.phase, event.side, event.worker, event.host, event.pid) == ("fit", "worker", 3, "node-ü", 77)
    assert (event.round, event.attempt, event.detail) == (4, 1, {"examples": 32, "bytes": 1024})
    assert event.duration >= 0 and abs(event.start - __import__("time").time()) < 60


def test_phase_timer_block_raises_still_records_event() -> None:
    timer = PhaseTimer()
    with pytest.raises(RuntimeError), timer.phase("aggregate", round=0):
        raise RuntimeError("boom")
    assert [e.phase for e in timer.events] == ["aggregate"]


@pytest.mark.parametrize("side, worker", [("worker", -1), ("driver", 0)])
def test_phase_timer_worker_index_mismatch_raises_data_error(side: str, worker: int) -> None:
    with pytest.raises(DataError, match="worker"):
        PhaseTimer(side, worker)  # type: ignore[arg-type]


def test_phase_timer_drain_returns_events_and_empties() -> None:
    timer = PhaseTimer()
    timer.record("count", T0, 0.2, round=0)
    assert len(timer.drain()) == 1 and timer.events == []


def test_driver_event_fills_this_process() -> None:
    event = driver_event("count", T0, 0.25, round=2, rows=10)
    assert (event.side, event.worker, event.pid, event.round, event.detail) == (
        "driver",
        -1,
        os.getpid(),
        2,
        {"rows": 10},
    )


def test_encode_events_round_trip_unicode_hosts_equal() -> None:
    events = [
        _event("fit", 0, 0.1, 0.25, 3, attempt=2, detail={"examples": 32, "ok": True, "note": "naïve ☃"}),
        PhaseEvent("décodé", "worker", 1, "узел-1.例え.jp", 2**31 - 1, T0 + 1e-6, 0.0, 0, detail={"f": 0.5}),
        _event("broadcast", -1, 0.0, 1e-9, 0, detail={"bytes": 40_000_000}),
        _event("fit", 0, 0.5, 0.25, 3, attempt=2, detail={"examples": 32, "ok": True, "note": "naïve ☃"}),
        _event("fit", 0, 0.9, 0.25, 3, detail={"examples": 1.0}),
        _event("fit", 0, 0.9, 0.25, 3, detail={"examples": True}),
    ]
    decoded = decode_events(encode_events(events))
    assert decoded == events
    assert [type(e.detail["examples"]) for e in decoded[-2:]] == [float, bool]


def test_encode_events_empty_round_trip_empty() -> None:
    assert decode_events(encode_events([])) == []
    assert decode_events(b"") == []


def test_decode_events_concatenated_blobs_returns_all_events() -> None:
    a, b = [_event("fit", 0, 0.0, 0.1)], [_event("fit", 1, 0.0, 0.2, 1), _event("data_fetch", 1, 0.3, 0.1, 1)]
    assert decode_events(encode_events(a) + encode_events(b)) == a + b


def test_encode_events_int_out_of_range_raises_data_error() -> None:
    with pytest.raises(DataError, match="int32"):
        encode_events([_event("fit", 2**40, 0.0, 0.1)])


def _corrupt(blob: bytes, offset: int, value: bytes) -> bytes:
    return blob[:offset] + value + blob[offset + len(value) :]


def _garbage_cases() -> dict[str, bytes]:
    blob = encode_events([_event("fit", 0, 0.0, 0.1, detail={"examples": 32}), _event("broadcast", -1, 0.0, 0.2)])
    header_len = int.from_bytes(blob[5:9], "little")
    rows = 13 + header_len  # first record: start f8, duration f8, phase u4, host u4, detail i4, ..., side u1
    header = json.dumps({"strings": ["fit", 5], "details": []}).encode()
    return {
        "text": b"hello world, not events",
        "truncated": blob[:-1],
        "head only": blob[:10],
        "bad magic": _corrupt(blob, 0, b"XSEV"),
        "bad version": _corrupt(blob, 4, b"\x09"),
        "huge count": _corrupt(blob, 9, (2**32 - 1).to_bytes(4, "little")),
        "header not json": _corrupt(blob, 13, b"\xff\xfe"),
        "header a list": b"DSEV\x01" + (2).to_bytes(4, "little") + (0).to_bytes(4, "little") + b"[]",
        "strings not str": b"DSEV\x01" + len(header).to_bytes(4, "little") + (0).to_bytes(4, "little") + header,
        "nan duration": _corrupt(blob, rows + 8, np.float64(np.nan).tobytes()),
        "negative duration": _corrupt(blob, rows + 8, np.float64(-1.0).tobytes()),
        "phase index": _corrupt(blob, rows + 16, (99).to_bytes(4, "little")),
        "detail index": _corrupt(blob, rows + 24, (7).to_bytes(4, "little", signed=True)),
        "side": _corrupt(blob, rows + 44, b"\x07"),
        "trailing bytes": blob + b"DS",
    }


@pytest.mark.parametrize("name", sorted(_garbage_cases()))
def test_decode_events_garbage_raises_data_error(name: str) -> None:
    with pytest.raises(DataError):
        decode_events(_garbage_cases()[name])


def test_decode_events_not_bytes_raises_data_error() -> None:
    with pytest.raises(DataError, match="bytes"):
        decode_events("DSEV")  # type: ignore[arg-type]


def test_decode_events_random_corruption_never_crashes(seed: int) -> None:
    rng = random.Random(seed)
    blob = encode_events(_run(2, 2, 3).events())
    for _ in range(300):
        data = bytearray(blob)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        try:
            events = decode_events(bytes(data[: rng.randint(0, len(data))]))
        except DataError:
            continue
        assert all(isinstance(e, PhaseEvent) and e.duration >= 0 for e in events)


def test_training_stats_add_accepts_encoded_bytes() -> None:
    stats = TrainingStats()
    stats.add(encode_events([_event("fit", 0, 0.0, 0.1)]))
    stats.add([_event("fit", 1, 0.0, 0.1)])
    assert len(stats) == 2 and stats.workers() == [0, 1]


def test_training_stats_add_non_event_raises_data_error() -> None:
    with pytest.raises(DataError, match="PhaseEvent"):
        TrainingStats().add([("fit", 0.1)])  # type: ignore[list-item]


def test_training_stats_events_filters_by_phase_side_worker_round() -> None:
    stats = _hand_stats()
    assert len(stats.events("fit")) == 3
    assert len(stats.events(side="driver")) == 2
    assert len(stats.events("fit", "worker", worker=0)) == 2
    assert [e.duration for e in stats.events(round=1)] == [0.3]


def test_phase_totals_hand_computed_numbers_match() -> None:
    totals = _hand_stats().phase_totals()
    assert list(totals) == ["broadcast", "fit"]
    b, f = totals["broadcast"], totals["fit"]
    assert (b.side, b.count, f.side, f.count) == ("driver", 2, "worker", 3)
    assert b.total == pytest.approx(0.8) and b.mean == pytest.approx(0.4)
    assert (b.min, b.max) == (0.3, 0.5)
    assert b.share == pytest.approx(0.8 / 4.0)  # driver: of wall time
    assert f.total == pytest.approx(3.5) and f.mean == pytest.approx(3.5 / 3)
    assert (f.min, f.max) == (0.5, 2.0)
    assert f.share == pytest.approx(3.5 / (4.0 * 2))  # worker: of wall time x workers


def test_phase_totals_known_phases_in_canonical_order() -> None:
    events = [_event(p, -1, 0.0, 0.1) for p in reversed(DRIVER_PHASES)]
    events += [_event(p, 0, 0.0, 0.1) for p in ("zeta", *reversed(WORKER_PHASES))]
    assert list(TrainingStats(events).phase_totals()) == [*DRIVER_PHASES, *WORKER_PHASES, "zeta"]


def test_training_stats_no_metadata_uses_event_extent() -> None:
    stats = TrainingStats([_event("fit", 0, 1.0, 0.5), _event("fit", 1, 2.0, 1.0)])
    assert stats.time_span() == (T0 + 1.0, T0 + 3.0)
    assert stats.wall_time == pytest.approx(2.0) and stats.num_workers == 2


def test_training_stats_merge_combines_events_and_span() -> None:
    a = TrainingStats([_event("fit", 0, 0.0, 0.1)], settings={"x": 1}, start=T0, end=T0 + 1)
    b = TrainingStats([_event("fit", 1, 5.0, 0.1)], num_workers=4, start=T0 - 1, end=T0 + 9)
    assert a.merge(b) is a
    assert len(a) == 2 and a.settings == {"x": 1} and a.num_workers == 4
    assert a.time_span() == (T0 - 1, T0 + 9)


def test_training_stats_merge_other_type_raises_data_error() -> None:
    with pytest.raises(DataError, match="merge"):
        TrainingStats().merge("stats")  # type: ignore[arg-type]


def test_retried_tasks_attempts_above_zero_listed_once() -> None:
    stats = TrainingStats([_event("fit", 1, 0.0, 0.1, 2, attempt=1)] * 3 + [_event("fit", 0, 0.0, 0.1, 2)])
    assert stats.retried_tasks() == [RetriedTask(round=2, worker=1, attempt=1, host="exec-1")]


def test_summary_lists_every_phase_rounds_workers_retries() -> None:
    stats = _run(3, 4, 5, interleave_fetch=True)
    text = stats.summary()
    for phase in stats.phase_totals():
        assert re.search(rf"^{phase}\s+(driver|worker)\s+\d+", text, re.MULTILINE), phase
    assert "4 rounds" in text and "3 workers" in text and "1 retried task" in text


def test_training_stats_json_round_trip_equal() -> None:
    stats = _run(2, 3, 4, interleave_fetch=True)
    stats.settings = {"averaging_frequency": 5, "name": "ünï"}
    stats.start, stats.end = T0 - 1.0, T0 + 100.0
    back = TrainingStats.from_json(stats.to_json())
    assert back.events() == stats.events()
    assert (back.settings, back.num_workers_requested, back.start, back.end) == (
        stats.settings,
        2,
        T0 - 1.0,
        T0 + 100.0,
    )
    assert back.summary() == stats.summary()


def _json_garbage() -> dict[str, str]:
    good = json.loads(_hand_stats().to_json())

    def with_(**changes: object) -> str:
        return json.dumps({**good, **changes})

    events = good["events"]
    return {
        "not json": "{nope",
        "a list": "[]",
        "wrong type": with_(type="evaluation"),
        "future version": with_(format_version=99),
        "settings list": with_(settings=[]),
        "start text": with_(start="yesterday"),
        "missing column": with_(events={k: v for k, v in events.items() if k != "round"}),
        "ragged columns": with_(events={**events, "round": [0]}),
        "float worker": with_(events={**events, "worker": [0.5] * len(events["worker"])}),
        "bool pid": with_(events={**events, "pid": [True] * len(events["pid"])}),
        "huge round": with_(events={**events, "round": [2**40] * len(events["round"])}),
        "text start": with_(events={**events, "start": ["0"] * len(events["start"])}),
        "phase index": with_(events={**events, "phase": [50] * len(events["phase"])}),
        "strings": with_(strings=[1, 2]),
    }


@pytest.mark.parametrize("name", sorted(_json_garbage()))
def test_training_stats_from_json_garbage_raises_data_error(name: str) -> None:
    with pytest.raises(DataError):
        TrainingStats.from_json(_json_garbage()[name])


def _lane_labels(html: str) -> list[str]:
    return re.findall(r'font-weight:600">((?:worker \d+)|driver)</text>', html)


def test_export_html_offline_page_one_lane_per_worker(tmp_path: Path) -> None:
    stats = _run(3, 4, 5)
    path = stats.export_html(tmp_path / "sub" / "timeline.html")
    html = path.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and "<svg" in html
    assert not re.search(r"https?://|<script[^>]+src|<link|@import|url\(", html)
    assert _lane_labels(html) == ["driver", "worker 0", "worker 1", "worker 2"]
    for phase in stats.phase_totals():
        assert f"{phase}</b>" in html  # a histogram per phase
    assert "retried attempt" in html and "&#8635; retry 1" in html
    assert html.count('class="b"') == len(stats)  # small run: one bar per event
    assert 'class="finding' in html


@pytest.mark.parametrize("interleave", [False, True], ids=["fit-runs", "interleaved"])
def test_export_html_50k_events_small_page_with_merge_note(tmp_path: Path, interleave: bool) -> None:
    stats = _run(4, 25, 500 if not interleave else 250, interleave_fetch=interleave)
    assert len(stats) > 50_000
    html = stats.export_html(tmp_path / "big.html").read_text(encoding="utf-8")
    assert len(html.encode()) < 2_000_000
    assert html.count('class="b"') <= MAX_BARS
    assert "too many to draw one by one" in html
    assert _lane_labels(html) == ["driver", "worker 0", "worker 1", "worker 2", "worker 3"]


def test_export_html_hostile_names_escaped(tmp_path: Path) -> None:
    event = PhaseEvent("<b>fit</b>", "worker", 0, "<script>alert(1)</script>", 1, T0, 0.1, 0)
    html = TrainingStats([event], settings={"x": "</pre><script>"}).export_html(tmp_path / "t.html").read_text()
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_export_html_empty_stats_writes_page(tmp_path: Path) -> None:
    html = TrainingStats().export_html(tmp_path / "empty.html").read_text(encoding="utf-8")
    assert "No events recorded" in html and "No worker phases recorded" in html
