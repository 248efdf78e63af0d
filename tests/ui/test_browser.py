"""One real browser (Debian's headless Chromium via Playwright) over a finished Spark run: every page's charts
render with data, the selectors work, the self-contained report renders offline. Screenshots are saved.

Set ``DEEPSPARK_SCREENSHOT_DIR`` to keep the PNGs (``bench/ui_screenshots.py`` does, for docs/).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from deepspark.cli.main import main

from .conftest import CHROMIUM, UiServer

CHARTS = {
    "overview": ["chart-score", "chart-throughput", "chart-ratios", "chart-lr"],
    "model": ["chart-magnitude", "chart-hist-params", "chart-hist-updates"],
    "system": ["chart-memory", "chart-gc", "chart-worker-throughput"],
    "spark": ["chart-timeline", "chart-phases"],
}
_SERIES = """ids => ids.map(id => {
  const chart = Chart.getChart(document.getElementById(id));
  if (!chart) return [id, 0, 0];
  const sets = chart.data.datasets;
  return [id, sets.length, sets.reduce((n, d) => n + d.data.filter(v => v !== null).length, 0)];
})"""


def _series(page: Any, ids: list[str]) -> dict[str, tuple[int, int]]:
    return {i: (s, n) for i, s, n in page.evaluate(_SERIES, ids)}


def test_browser_every_page_renders_charts_with_data(
    browser: Any, ui_server: UiServer, spark_run_db: Path, tmp_path: Path
) -> None:
    shots = Path(os.environ.get("DEEPSPARK_SCREENSHOT_DIR", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    _, url = ui_server(storage=spark_run_db)
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    for name, ids in CHARTS.items():
        page.goto(f"{url}{name}")
        page.wait_for_selector("body[data-rendered]", timeout=30_000)
        series = _series(page, ids)
        for chart_id, (datasets, points) in series.items():
            assert datasets > 0 and points > 0, f"{name}: chart {chart_id} has no data ({series})"
        page.screenshot(path=str(shots / f"ui-{name}.png"), full_page=True)
        assert (shots / f"ui-{name}.png").stat().st_size > 10_000
    assert errors == []
    page.goto(f"{url}model")  # clicking a layer shows its own magnitudes
    page.wait_for_selector("body[data-rendered]")
    page.click("#layer-table tbody tr[data-layer='layer1']")
    assert page.inner_text("#layer-title").endswith("layer1")
    labels = page.evaluate(
        "() => Chart.getChart(document.getElementById('chart-magnitude')).data.datasets.map(d => d.label)"
    )
    assert labels and all(label.startswith("layer1.") for label in labels)
    page.goto(f"{url}system?worker=worker-0")  # the worker selector narrows the System page
    page.wait_for_selector("body[data-rendered]")
    assert _series(page, ["chart-memory"])["chart-memory"][0] == 1
    assert page.eval_on_selector("#worker-select", "s => s.value") == "worker-0"
    page.close()


def test_browser_report_is_self_contained_and_renders_offline(browser: Any, spark_run_db: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    assert main(["report", str(spark_run_db), "-o", str(out)]) == 0
    html = out.read_text()
    assert "<script src=" not in html and "stylesheet" not in html and "https://" not in html.split("Chart.js v4")[0]
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(out.as_uri())
    page.wait_for_selector("body[data-rendered]", timeout=30_000)
    series = _series(page, [i for ids in CHARTS.values() for i in ids])
    assert all(s > 0 and n > 0 for s, n in series.values()), series
    assert [r for r in requests if not r.startswith("file://")] == []
    page.close()


def test_chromium_is_installed_for_ci() -> None:
    assert Path(CHROMIUM).exists() or shutil.which("chromium"), (
        "install Debian's chromium (apt-get install -y chromium)"
    )
