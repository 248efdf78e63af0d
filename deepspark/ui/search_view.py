"""A search session's records (type ``search``) turned into what the Search page and the report draw."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from deepspark.stats.records import StatsRecord


def _trial(number: int) -> dict[str, Any]:
    return {
        "number": number,
        "state": "running",
        "params": {},
        "score": None,
        "start": None,
        "end": None,
        "epochs": [],
        "scores": [],
        "losses": [],
        "epochs_run": 0,
        "error": "",
        "worker": "",
    }


def search_view(records: Iterable[StatsRecord]) -> dict[str, Any] | None:
    """Settings, every trial (params, state, per-epoch curves, times) and the best one; None without search records."""
    settings: dict[str, Any] = {}
    trials: dict[int, dict[str, Any]] = {}
    starts: list[float] = []
    end: dict[str, Any] | None = None
    for r in records:
        if r.type_id != "search":
            continue
        p = r.payload
        event = p.get("event")
        if event == "search_start":
            settings = {k: v for k, v in p.items() if k != "event"}
            starts.append(r.timestamp)
            end = None
        elif event in ("trial_start", "epoch", "trial_end"):
            t = trials.setdefault(int(p["trial"]), _trial(int(p["trial"])))
            if event == "trial_start":
                t["params"] = p.get("params") or {}
                t["start"] = p.get("time", r.timestamp)
            elif event == "epoch":
                t["epochs"].append(p.get("epoch"))
                t["scores"].append(p.get("score"))
                t["losses"].append(p.get("train_loss"))
            else:
                t.update(
                    state=p.get("state"),
                    score=p.get("score"),
                    end=p.get("end", r.timestamp),
                    epochs_run=p.get("epochs", 0),
                    error=p.get("error") or "",
                    worker=p.get("worker") or "",
                )
                if t["start"] is None:
                    t["start"] = p.get("start")
        elif event == "search_end":
            end = {k: v for k, v in p.items() if k != "event"}
    if not trials and not settings:
        return None
    for t in trials.values():  # a trial a crashed driver left behind: a later search started after it
        if t["state"] == "running" and t["start"] is not None and any(s > t["start"] for s in starts):
            t["state"] = "interrupted"
    mode = settings.get("mode", "max")
    done = [t for t in trials.values() if t["state"] == "complete" and t["score"] is not None]
    best = (max if mode == "max" else min)(done, key=lambda t: t["score"]) if done else None
    return {
        "settings": settings,
        "trials": [trials[n] for n in sorted(trials)],
        "best": None if best is None else best["number"],
        "end": end,
        "first_start": min(starts) if starts else None,
    }
