"""Stored XSS: hostile strings posted into every text field of every record type stay text on every page and in
the report (a real server process and a real headless Chromium); hostile numeric fields are refused at ingest."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from deepspark.cli.main import main
from deepspark.stats import SQLiteStatsStorage
from deepspark.ui.page import render_report
from deepspark.ui.view import session_view

from .conftest import UiServer

IMG = '<img src=x onerror="window.__xss=1">'
BREAK = "</script><script>window.__xss=1</script>"
P = IMG + BREAK  # every text field gets both: markup that runs on parse, and a way out of an inline script
SESSION = "xss"
PAGES = {  # page -> (what marks it rendered, an element that must show P as text)
    "overview": ("body[data-rendered]", "#cards"),
    "model": ("body[data-rendered]", "#layer-table"),
    "system": ("body[data-rendered]", "#hardware-table"),
    "spark": ("body[data-rendered]", "#advice"),
    "search": ("body[data-search-rendered]", "#search-table"),
}
_PROBE = """() => ({
  xss: window.__xss === undefined ? null : window.__xss,
  imgs: document.querySelectorAll("img").length,
  scripts: Array.from(document.scripts)
    .filter(s => !s.src && s.id !== "deepspark-data" && s.text.includes("__xss")).length,
})"""


def _record(type_id: str, payload: dict[str, Any], iteration: int = 0, kind: str = "update", worker: str = "driver"):
    return {
        "session_id": SESSION,
        "type_id": type_id,
        "worker_id": worker,
        "timestamp": time.time(),  # recent: the overview shows the session as live, the pages keep polling
        "iteration": iteration,
        "kind": kind,
        "payload": payload,
    }


def _stats(i: int) -> dict[str, Any]:
    return {"mean_magnitude": 0.1 * (i + 1), "std": 0.1, "histogram": {"min": -1.0, "max": 1.0, "counts": [1, 2, 3]}}


def hostile_records() -> list[dict[str, Any]]:
    """One record of every type the UI draws, with P in every string field and in free keys."""
    process = {"rss_bytes": 1 << 20, "torch_bytes": 0, "gc": {"seconds": 0.1, "collections": [1, 2, 3]}}
    static = {
        "layers": [
            {"index": 0, "name": P, "type": P, "params": 10, "activation": P, "n_out": 2},
            {"index": 1, "name": "layer1", "type": P, "params": 0, "activation": None, "n_out": None},
        ],
        "param_keys": [P + ".weight"],
        "num_params": 10,
        "num_workers": 1,
        "worker_ids": ["worker-0"],
        "config": P,
        "summary": P,
        "training": P,
        "spark_master": P,
        "spark_version": P,
        "app_id": P,
        "hardware": {"host": P, "cpus": 2, "memory_bytes": 1 << 30, "machine": P, "cuda_devices": 0},
        "software": {P: P, "python": P},
        "master": {P: P, "nested": {P: [P]}},
        P: P,
    }
    records = [_record("model", static, kind="static")]
    for i in range(3):
        update = {
            "score": 1.0 - 0.1 * i,
            "examples_per_sec": 100.0,
            "learning_rates": {P: 0.1},
            "ratios": {P + ".weight": -3.0},
            "params": {P + ".weight": _stats(i)},
            "updates": {P + ".weight": _stats(i)},
            "gradients": {P + ".weight": _stats(i)},
            "activations": {P: {"mean_magnitude": 0.5, "std": 0.1}},
            "process": process,
            "host": P,
            P: P,
        }
        records.append(_record("model", update, iteration=i + 1))
        records.append(_record("worker", {"host": P, "score": 0.5, "process": process, P: P}, i + 1, worker="worker-0"))
    now = time.time()
    spark = {
        "events": [[0, P, P, now, 1.0, 0, 0], [-1, "broadcast", "driver", now, 0.5, 0, 0]],
        "phase_totals": [{"phase": P, "side": P, "count": 1, "total": 1.0, "mean": 1.0, "share": 1.0}],
        "advice": [{"severity": P, "title": P, "detail": P, "setting": P}],
        P: P,
    }
    records.append(_record("spark", spark, iteration=3))
    records.append(_record("session", {"event": P, "epoch": 1}, iteration=3))
    search = [
        {
            "event": "search_start",
            "metric": P,
            "mode": "max",
            "sampler": P,
            "pruner": P,
            "study_name": P,
            "max_trials": 2,
            "space": {P: {"type": P, "options": [P]}},
        },
        {"event": "trial_start", "trial": 0, "params": {P: P, "lr": 0.1}},
        {"event": "epoch", "trial": 0, "epoch": 1, "score": 0.9, "train_loss": 0.3, "worker": P},
        {"event": "trial_end", "trial": 0, "state": "complete", "score": 0.9, "epochs": 1, "error": P, "worker": P},
        {"event": "trial_start", "trial": 1, "params": {P: "x", "lr": 0.2}},
        {"event": "trial_end", "trial": 1, "state": "failed", "epochs": 0, "error": P, "worker": P},
        {"event": "search_end", "best_trial": 0, "best_score": 0.9, "reason": P},
    ]
    records.extend(_record("search", p, iteration=i) for i, p in enumerate(search))
    return records


def _post(url: str, records: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        url + "api/records",
        data=json.dumps({"records": records}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _assert_inert(page: Any, where: str) -> None:
    page.wait_for_load_state("networkidle")  # an injected <img src=x> would have failed to load by now
    probe = page.evaluate(_PROBE)
    assert probe == {"xss": None, "imgs": 0, "scripts": 0}, f"{where}: stored markup was parsed as HTML ({probe})"


def test_xss_hostile_strings_render_as_text_on_every_page(browser: Any, ui_server: UiServer) -> None:
    _, url = ui_server()
    records = hostile_records()
    assert _post(url, records) == (200, {"stored": len(records)})
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    for name, (ready, shown) in PAGES.items():
        page.goto(f"{url}{name}?session={SESSION}")
        page.wait_for_selector(ready, timeout=30_000)
        _assert_inert(page, name)
        assert P in page.text_content(shown), f"{name}: {shown} does not show the stored text literally"
    page.goto(f"{url}model?session={SESSION}")
    page.wait_for_selector("body[data-rendered]")
    assert page.text_content("#model-summary") == P
    assert page.text_content("#layer-title") == "Mean magnitude: " + P
    assert page.text_content("#layer-table tbody tr:first-child td:first-child") == "0"  # index
    page.goto(f"{url}spark?session={SESSION}")
    page.wait_for_selector("body[data-rendered]")
    assert P in page.text_content("#master-table")
    assert errors == []
    page.close()


def test_xss_report_of_hostile_records_renders_them_as_text(browser: Any, ui_server: UiServer, tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    _, url = ui_server(db)
    assert _post(url, hostile_records())[0] == 200
    out = tmp_path / "report.html"
    assert main(["report", str(db), "--session", SESSION, "-o", str(out)]) == 0
    assert BREAK not in out.read_text(), "the embedded view lets a stored string close its <script>"
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(out.as_uri())
    page.wait_for_selector("body[data-rendered][data-search-rendered]", timeout=30_000)
    _assert_inert(page, "report")
    for _, shown in PAGES.values():
        assert P in page.text_content(shown), f"report: {shown} does not show the stored text literally"
    page.close()


def test_xss_report_renders_markup_in_numeric_layer_fields_as_text(browser: Any, tmp_path: Path) -> None:
    """The view of an unchecked stats source (numbers swapped for markup after ingest) still stays text."""
    db = tmp_path / "runs.db"
    with SQLiteStatsStorage(db) as storage:
        from deepspark.stats import StatsRecord

        storage.put([StatsRecord.from_dict(r) for r in hostile_records()])
        view = session_view(storage, SESSION)
    for layer in view["model"]["layers"]:
        layer.update(index=IMG, n_out=BREAK, params=P)
    view["static"]["num_params"] = P
    view["static"]["num_workers"] = IMG
    out = tmp_path / "report.html"
    out.write_text(render_report(view), encoding="utf-8")
    page = browser.new_page()
    page.goto(out.as_uri())
    page.wait_for_selector("body[data-rendered]", timeout=30_000)
    _assert_inert(page, "report")
    cells = page.eval_on_selector_all("#layer-table tbody tr:first-child td", "tds => tds.map(td => td.textContent)")
    assert (cells[0], cells[4], cells[5]) == (IMG, BREAK, P)
    page.close()


@pytest.mark.parametrize(
    ("type_id", "kind", "payload", "field"),
    [
        ("model", "static", {"layers": [{"index": IMG}]}, "records[0].payload.layers[0].index"),
        ("model", "static", {"layers": [{"index": 0, "n_out": BREAK}]}, "records[0].payload.layers[0].n_out"),
        ("model", "static", {"layers": [{"index": 0, "params": "10"}]}, "records[0].payload.layers[0].params"),
        ("model", "static", {"num_params": P}, "records[0].payload.num_params"),
        ("model", "update", {"score": P}, "records[0].payload.score"),
        ("model", "update", {"ratios": {"layer0.weight": P}}, "records[0].payload.ratios.layer0.weight"),
        ("worker", "update", {"process": {"rss_bytes": P}}, "records[0].payload.process.rss_bytes"),
        ("spark", "update", {"events": [[0, "fit", "worker", P, 1.0]]}, "records[0].payload.events[0][3]"),
        ("spark", "update", {"phase_totals": [{"total": P}]}, "records[0].payload.phase_totals[0].total"),
        ("search", "update", {"event": "epoch", "trial": 0, "epoch": 1, "score": P}, "records[0].payload.score"),
    ],
)
def test_xss_markup_in_a_numeric_field_is_refused_naming_the_field(
    ui_server: UiServer, type_id: str, kind: str, payload: dict[str, Any], field: str
) -> None:
    _, url = ui_server()
    code, answer = _post(url, [_record(type_id, payload, kind=kind)])
    assert code == 422, answer
    assert answer["error"].startswith(f"{field}: expected "), answer
