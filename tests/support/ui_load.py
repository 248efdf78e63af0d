"""The UI under load: sender processes post stats reports to a real ``deepspark ui`` server process while a real
headless Chromium keeps reloading the Overview page.

Each sender is its own process with a ``RemoteStatsRouter`` posting one report per request (``batch_size=1``),
so N senders x M reports are N x M POSTs; each POST's latency is timed around the router's own request. The
browser reloads the page until the senders are done and times each load (navigation until the page marks
itself rendered). Afterwards the SQLite file is read directly and through the API, and the browser loads the
page once more: every report must be stored exactly once and shown.

Used by ``bench/ui_load.py`` (16 x 1,000) and ``tests/ui/test_ui_load.py`` (4 x 100).
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import sqlite3
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepspark.cli.ui_commands import start_ui_process
from deepspark.stats import RemoteStatsRouter
from deepspark.stats.records import StatsRecord

SESSION = "ui-load"
RENDERED = "body[data-rendered], #banner.warn"  # charts drawn, or "No training sessions stored yet."
LAYERS = ("layer0", "layer1", "layer2")


class TimedRouter(RemoteStatsRouter):
    """The real router, with the wall time of each of its POSTs recorded."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.latencies: list[float] = []
        super().__init__(*args, **kwargs)

    def _post(self, body: bytes, key: str | None = None) -> str | None:
        start = time.perf_counter()
        try:
            return super()._post(body, key)
        finally:
            self.latencies.append(time.perf_counter() - start)


def report(sender: int, i: int) -> StatsRecord:
    """The ``i``-th report of ``sender``: a model update shaped like StatsListener's (score, rates, magnitudes)."""
    stats = {"mean_magnitude": 0.1 + 0.001 * i, "std": 0.05, "min": -1.0, "max": 1.0}
    return StatsRecord(
        SESSION,
        "model",
        f"sender-{sender}",
        time.time(),
        i,
        "update",
        {
            "score": 1.0 / (1.0 + i),
            "epoch": i // 100,
            "examples_per_sec": 1000.0 + sender,
            "minibatches_per_sec": 30.0,
            "learning_rates": dict.fromkeys(LAYERS, 1e-3),
            "params": {f"{layer}.W": stats for layer in LAYERS},
            "updates": {f"{layer}.W": stats for layer in LAYERS},
            "ratios": {f"{layer}.W": -3.0 for layer in LAYERS},
            "process": {"rss_bytes": 2**28, "cpu_percent": 50.0},
        },
    )


def sender_main(url: str, sender: int, reports: int, timeout: float, out: str, limit_s: float) -> None:
    """One sender process: queue ``reports`` reports on a router (one per POST), wait until all are sent."""
    router = TimedRouter(url, batch_size=1, queue_size=reports, timeout=timeout)
    for i in range(reports):
        router.put([report(sender, i)])
    drained = router.flush(timeout=limit_s)
    router.close()
    Path(out).write_text(
        json.dumps(
            {
                "sent": router.sent,
                "dropped": router.dropped,
                "failed_requests": router.failed_requests,
                "last_error": router.last_error,
                "drained": drained,
                "latencies": router.latencies,
            }
        )
    )


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) by the nearest-rank method; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


@dataclass(frozen=True)
class LoadResult:
    senders: int
    reports: int
    seconds: float
    sent: int
    dropped: int
    failed_requests: int
    last_errors: list[str]
    post_latencies: list[float]
    page_loads: list[float]
    page_errors: list[str]
    stored_rows: int
    distinct_reports: int
    api_records: int
    shown_by_browser: int
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]


def _browse_until_done(browser: Any, url: str, procs: list[Any], deadline: float) -> tuple[list[float], list[str]]:
    """Reload the Overview page until every sender exits; each load's seconds (navigation to rendered)."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    loads: list[float] = []
    while any(p.is_alive() for p in procs) and time.monotonic() < deadline:
        start = time.perf_counter()
        page.goto(f"{url}overview", timeout=120_000)
        page.wait_for_selector(RENDERED, timeout=120_000)
        loads.append(time.perf_counter() - start)
    page.close()
    return loads, errors


def run_load(
    browser: Any, workdir: Path, senders: int, reports: int, *, timeout: float = 30.0, limit_s: float = 900.0
) -> LoadResult:
    """Start the server, the senders and the browser's reload loop; check what was stored and shown."""
    storage = workdir / "load.db"
    server, url = start_ui_process(storage, port=0)
    load_before = os.getloadavg()
    try:
        ctx = multiprocessing.get_context("spawn")
        outs = [workdir / f"sender-{s}.json" for s in range(senders)]
        procs = [
            ctx.Process(target=sender_main, args=(url, s, reports, timeout, str(outs[s]), limit_s), daemon=True)
            for s in range(senders)
        ]
        start = time.perf_counter()
        for p in procs:
            p.start()
        deadline = time.monotonic() + limit_s
        page_loads, page_errors = _browse_until_done(browser, url, procs, deadline)
        for p in procs:
            p.join(timeout=max(1.0, deadline - time.monotonic()))
            if p.is_alive():  # past the limit: its missing reports show in the counts below
                p.terminate()
                p.join(timeout=30)
        seconds = time.perf_counter() - start
        load_after = os.getloadavg()
        stats = [json.loads(o.read_text()) if o.exists() else {} for o in outs]
        with urllib.request.urlopen(f"{url}api/sessions", timeout=60) as response:
            sessions = json.loads(response.read())
        api_records = sum(s["records"] for s in sessions if s["session_id"] == SESSION)
        page = browser.new_page()
        page.goto(f"{url}overview?session={SESSION}", timeout=120_000)
        page.wait_for_selector("body[data-rendered]", timeout=120_000)
        shown = int(page.evaluate("() => document.body.dataset.rendered"))
        page.close()
    finally:
        server.kill()
        server.wait(timeout=30)
        if server.stdout is not None:
            server.stdout.close()
    with sqlite3.connect(f"file:{storage}?mode=ro", uri=True) as db:
        rows, distinct = db.execute(
            "SELECT COUNT(*), COUNT(DISTINCT worker_id || ':' || iteration) FROM records WHERE session_id = ?",
            (SESSION,),
        ).fetchone()
    return LoadResult(
        senders=senders,
        reports=reports,
        seconds=seconds,
        sent=sum(s.get("sent", 0) for s in stats),
        dropped=sum(s.get("dropped", 0) for s in stats),
        failed_requests=sum(s.get("failed_requests", 0) for s in stats),
        last_errors=[s["last_error"] for s in stats if s.get("last_error")],
        post_latencies=[x for s in stats for x in s.get("latencies", [])],
        page_loads=page_loads,
        page_errors=page_errors,
        stored_rows=int(rows),
        distinct_reports=int(distinct),
        api_records=api_records,
        shown_by_browser=shown,
        load_before=load_before,
        load_after=load_after,
    )


__all__ = ["SESSION", "LoadResult", "TimedRouter", "percentile", "report", "run_load", "sender_main"]
