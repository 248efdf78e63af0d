"""The Search page: a search's records turned into the page's view, served by a real UI process, and validated."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from deepspark.stats import InMemoryStatsStorage, SQLiteStatsStorage
from deepspark.tune._events import SearchEvents
from deepspark.ui.page import render_report
from deepspark.ui.view import session_view

from .conftest import UiServer


def _write_search(storage: Any) -> None:
    events = SearchEvents(storage, "demo")
    events.search_start(
        {"metric": "accuracy", "mode": "max", "sampler": "tpe", "pruner": "asha", "max_trials": 3, "max_epochs": 3},
        {"lr": {"type": "log_uniform", "low": 0.001, "high": 0.1}},
    )
    for trial, scores, state in [
        (0, [0.5, 0.7, 0.8], "complete"),
        (1, [0.3], "pruned"),
        (2, [0.6, 0.9, 0.95], "complete"),
    ]:
        events.trial_start(trial, {"lr": 0.01 * (trial + 1)})
        for e, s in enumerate(scores):
            events.epoch(trial, e + 1, s, 1.0 / (e + 1), "host:1")
        events.trial_end(trial, state, scores[-1] if state == "complete" else None, len(scores), 0.0, "", "host:1")
    events.trial_start(3, {"lr": 0.05})  # left running: a later search start marks it interrupted
    events.search_start({"metric": "accuracy", "mode": "max"}, {})
    events.search_end(2, 0.95, "max_trials")


def test_search_view_lists_trials_curves_and_the_best() -> None:
    storage = InMemoryStatsStorage()
    _write_search(storage)
    view = session_view(storage, "search-demo")["search"]
    assert view["best"] == 2
    states = {t["number"]: t["state"] for t in view["trials"]}
    assert states == {0: "complete", 1: "pruned", 2: "complete", 3: "interrupted"}
    assert view["trials"][2]["scores"] == [0.6, 0.9, 0.95] and view["trials"][2]["epochs"] == [1, 2, 3]
    assert view["end"]["reason"] == "max_trials"
    html = render_report(session_view(storage, "search-demo"))
    assert 'id="page-search"' in html and "searchRendered" in html  # the page's script is inlined


def test_server_serves_the_search_page_and_refuses_bad_search_numbers(ui_server: UiServer, tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    storage = SQLiteStatsStorage(db)
    _write_search(storage)
    storage.close()
    _, url = ui_server(db)
    with urllib.request.urlopen(url + "search", timeout=10) as r:
        assert b"/static/search.js" in r.read()
    with urllib.request.urlopen(url + "api/view?session=search-demo", timeout=10) as r:
        assert json.loads(r.read())["search"]["best"] == 2
    bad = {
        "session_id": "search-demo",
        "type_id": "search",
        "worker_id": "driver",
        "timestamp": 1.0,
        "iteration": 0,
        "kind": "update",
        "payload": {"event": "epoch", "trial": 1, "epoch": 0, "score": 0.5},
    }
    request = urllib.request.Request(
        url + "api/records",
        data=json.dumps({"records": [bad]}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        urllib.request.urlopen(request, timeout=10)
        raise AssertionError("the server stored an epoch 0 event")
    except urllib.error.HTTPError as e:
        assert e.code == 422 and "records[0].payload.epoch" in json.loads(e.read())["error"]
