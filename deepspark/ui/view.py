"""Turns a session's stored records into the chart-ready JSON the UI pages and the HTML report draw.

One function, used by the server (``/api/view``) and by ``deepspark report``, so a live page and a report
show exactly the same series.
"""

from __future__ import annotations

from typing import Any

from deepspark.errors import StorageError
from deepspark.stats.storage import StatsStorage
from deepspark.ui.search_view import search_view

MB = 1024 * 1024


def sessions_json(storage: StatsStorage) -> list[dict[str, Any]]:
    """Every session, newest first, as plain dicts for the session selector."""
    return [
        {
            "session_id": s.session_id,
            "start": s.start,
            "end": s.end,
            "records": s.records,
            "types": list(s.types),
            "workers": list(s.workers),
        }
        for s in reversed(storage.sessions())
    ]


def _series_append(series: dict[str, dict[str, list[Any]]], key: str, field: str, n: int, value: Any) -> None:
    """Append to ``series[key][field]``, padding with None so every list is ``n`` long before the append."""
    column = series.setdefault(key, {}).setdefault(field, [])
    column.extend([None] * (n - len(column)))
    column.append(value)


def session_view(storage: StatsStorage, session_id: str | None = None, worker: str | None = None) -> dict[str, Any]:
    """Everything the four pages show for one session (the newest when ``session_id`` is None).

    ``worker`` narrows the System and Spark pages to one worker id (``driver``, ``worker-0``...).
    """
    sessions = sessions_json(storage)
    if not sessions:
        return {"session": None, "sessions": [], "record_count": 0}
    if session_id is None:
        session_id = sessions[0]["session_id"]
    info = next((s for s in sessions if s["session_id"] == session_id), None)
    if info is None:
        raise StorageError(
            f"no session {session_id!r} in the stats storage; known: {[s['session_id'] for s in sessions][:10]}"
        )
    records = storage.query(session_id)
    static: dict[str, Any] = {}
    overview: dict[str, Any] = {
        "iteration": [],
        "time": [],
        "score": [],
        "examples_per_sec": [],
        "minibatches_per_sec": [],
        "episode_return": [],  # RL sessions (deepspark.rl.RLStatsListener); iteration = environment steps
    }
    lrs: dict[str, dict[str, list[Any]]] = {}
    ratios: dict[str, dict[str, list[Any]]] = {}
    magnitudes: dict[str, dict[str, list[Any]]] = {}
    activations: dict[str, dict[str, list[Any]]] = {}
    histograms: dict[str, dict[str, Any]] = {}
    system: dict[str, dict[str, Any]] = {}
    events: list[Any] = []
    totals: list[Any] = []
    advice: list[Any] = []
    finished = False
    for r in records:
        finished = r.type_id == "session" and r.payload.get("event") == "fit_end"  # the last record decides
        p = r.payload
        if r.kind == "static":
            if r.type_id == "model" and not static:
                static = p
            continue
        if r.type_id == "model":
            n = len(overview["iteration"])
            overview["iteration"].append(r.iteration)
            overview["time"].append(r.timestamp)
            for key in ("score", "examples_per_sec", "minibatches_per_sec", "episode_return"):
                overview[key].append(p.get(key))
            for layer, lr in (p.get("learning_rates") or {}).items():
                _series_append(lrs, layer, "value", n, lr)
            for key, ratio in (p.get("ratios") or {}).items():
                _series_append(ratios, key, "value", n, ratio)
            for what in ("params", "updates", "gradients"):
                for key, st in (p.get(what) or {}).items():
                    _series_append(magnitudes, key, what, n, st.get("mean_magnitude"))
                    _series_append(magnitudes, key, f"{what}_std", n, st.get("std"))
                    if "histogram" in st:
                        histograms.setdefault(key, {})[what] = {**st["histogram"], "iteration": r.iteration}
            for layer, st in (p.get("activations") or {}).items():
                _series_append(activations, layer, "mean_magnitude", n, st.get("mean_magnitude"))
            _system_point(system, "driver", r.timestamp, r.iteration, p)
        elif r.type_id == "worker":
            _system_point(system, r.worker_id, r.timestamp, r.iteration, p)
        elif r.type_id == "spark":
            events.extend(p.get("events") or [])
            totals = p.get("phase_totals") or totals
            advice = p.get("advice") or advice
    workers = sorted(system, key=lambda w: (w != "driver", len(w), w))
    if worker is not None:
        system = {w: v for w, v in system.items() if w == worker}
        lane = -1 if worker == "driver" else _worker_index(worker)
        events = [e for e in events if e[0] == lane]
    n = len(overview["iteration"])
    for series in (lrs, ratios, magnitudes, activations):
        for fields in series.values():
            for column in fields.values():
                column.extend([None] * (n - len(column)))
    return {
        "session": info,
        "sessions": sessions,
        "workers": workers,
        "worker": worker,
        "record_count": info["records"],
        "finished": finished,
        "static": {k: v for k, v in static.items() if k != "config"},
        "config": static.get("config", ""),
        "overview": {**overview, "learning_rates": lrs, "ratios": ratios},
        "model": {
            "layers": static.get("layers", []),
            "magnitudes": magnitudes,
            "histograms": histograms,
            "activations": activations,
        },
        "system": system,
        "spark": {"events": events, "phase_totals": totals, "advice": advice, "master": static.get("master", {})},
        "search": search_view(records),
    }


def _worker_index(worker: str) -> int:
    try:
        return int(worker.rsplit("-", 1)[-1])
    except ValueError:
        return -2  # matches no event


def _system_point(system: dict[str, dict[str, Any]], worker: str, ts: float, iteration: int, p: dict[str, Any]) -> None:
    proc = p.get("process") or {}
    gc = proc.get("gc") or {}
    entry = system.setdefault(
        worker,
        {
            "time": [],
            "iteration": [],
            "rss_mb": [],
            "torch_mb": [],
            "gc_seconds": [],
            "gc_collections": [],
            "examples_per_sec": [],
            "score": [],
            "host": p.get("host", ""),
        },
    )
    entry["time"].append(ts)
    entry["iteration"].append(iteration)
    entry["rss_mb"].append(round(float(proc.get("rss_bytes", 0)) / MB, 2))
    entry["torch_mb"].append(round(float(proc.get("torch_bytes", 0)) / MB, 2))
    entry["gc_seconds"].append(gc.get("seconds"))
    collections = gc.get("collections") or []
    entry["gc_collections"].append(sum(c for c in collections if isinstance(c, (int, float))))
    entry["examples_per_sec"].append(p.get("examples_per_sec"))
    entry["score"].append(p.get("score"))
