"""The HTML of the UI pages and of the self-contained report (same markup, same script, same charts).

Pages load ``/static`` assets and fetch ``/api/view``; a report inlines the assets and embeds the view
JSON, so it opens offline from a single file.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

STATIC_DIR = Path(__file__).parent / "static"
PAGES = {"overview": "Overview", "model": "Model", "system": "System", "spark": "Spark"}
ASSETS = ("chart.umd.min.js", "app.js")

_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
{head}
</head>
<body data-page="{page}">
<header>
  <div class="brand">deepspark <span>training UI</span></div>
  <nav>{nav}</nav>
  <div class="selectors">
    <label>session <select id="session-select"></select></label>
    <label>worker <select id="worker-select"><option value="">all</option></select></label>
    <span id="live" class="live"></span>
  </div>
</header>
<main>
<div id="banner" class="banner"></div>
<section id="page-overview" class="page">
  <h2>Overview</h2>
  <div id="cards" class="cards"></div>
  <div class="grid">
    <div class="panel"><h3>Score vs iteration</h3><div class="chart"><canvas id="chart-score"></canvas></div></div>
    <div class="panel"><h3>Throughput (examples/s)</h3><div class="chart"><canvas id="chart-throughput"></canvas></div></div>
    <div class="panel"><h3>Update:param ratio (log10) per parameter <small>healthy: about -3</small></h3>
      <div class="chart"><canvas id="chart-ratios"></canvas></div></div>
    <div class="panel"><h3>Learning rate per layer</h3><div class="chart"><canvas id="chart-lr"></canvas></div></div>
  </div>
</section>
<section id="page-model" class="page">
  <h2>Model</h2>
  <div class="grid">
    <div class="panel"><h3>Layers <small>click a row</small></h3><table id="layer-table" class="table"></table>
      <pre id="model-summary" class="summary"></pre></div>
    <div class="panel"><h3 id="layer-title">Layer</h3>
      <div class="chart"><canvas id="chart-magnitude"></canvas></div></div>
    <div class="panel"><h3>Parameter histogram <small id="hist-param-note"></small></h3>
      <div class="chart"><canvas id="chart-hist-params"></canvas></div></div>
    <div class="panel"><h3>Update histogram <small id="hist-update-note"></small></h3>
      <div class="chart"><canvas id="chart-hist-updates"></canvas></div></div>
  </div>
</section>
<section id="page-system" class="page">
  <h2>System</h2>
  <div class="grid">
    <div class="panel"><h3>Process memory (RSS, MiB) per worker</h3><div class="chart"><canvas id="chart-memory"></canvas></div></div>
    <div class="panel"><h3>Python GC time (s, cumulative) per worker</h3><div class="chart"><canvas id="chart-gc"></canvas></div></div>
    <div class="panel"><h3>Throughput per worker (examples/s)</h3><div class="chart"><canvas id="chart-worker-throughput"></canvas></div></div>
    <div class="panel"><h3>Hardware and software</h3><table id="hardware-table" class="table"></table></div>
  </div>
</section>
<section id="page-spark" class="page">
  <h2>Spark</h2>
  <div class="panel wide"><h3>Phase timeline per worker <small>seconds since the first event</small></h3>
    <div class="chart tall"><canvas id="chart-timeline"></canvas></div></div>
  <div class="grid">
    <div class="panel"><h3>Phase totals (s)</h3><div class="chart"><canvas id="chart-phases"></canvas></div></div>
    <div class="panel"><h3>Advice</h3><ul id="advice" class="advice"></ul>
      <h3>Training master</h3><table id="master-table" class="table"></table></div>
  </div>
</section>
</main>
{data}
{scripts}
</body>
</html>
"""


def _nav(current: str, report: bool) -> str:
    links = []
    for name, label in PAGES.items():
        href = f"#page-{name}" if report else f"/{name}"
        cls = ' class="active"' if name == current else ""
        links.append(f'<a href="{href}" data-nav="{name}"{cls}>{label}</a>')
    return "".join(links)


def render_page(page: str) -> str:
    """One live page of the server; assets from ``/static``, data from ``/api/view``."""
    return _TEMPLATE.format(
        title=f"deepspark — {PAGES[page]}",
        head='<link rel="stylesheet" href="/static/app.css">',
        page=page,
        nav=_nav(page, report=False),
        data="",
        scripts="\n".join(f'<script src="/static/{name}"></script>' for name in ASSETS),
    )


def _inline_script(text: str) -> str:
    return "<script>\n" + text.replace("</script", "<\\/script") + "\n</script>"


def render_report(view: dict[str, Any]) -> str:
    """A self-contained page with every section, the assets inlined and the view embedded (works offline)."""
    css = (STATIC_DIR / "app.css").read_text(encoding="utf-8")
    payload = json.dumps(view, separators=(",", ":")).replace("</", "<\\/")
    session = (view.get("session") or {}).get("session_id", "")
    return _TEMPLATE.format(
        title=html.escape(f"deepspark report — {session}"),
        head=f"<style>\n{css}\n</style>",
        page="report",
        nav=_nav("", report=True),
        data=f'<script id="deepspark-data" type="application/json">{payload}</script>',
        scripts="\n".join(_inline_script((STATIC_DIR / name).read_text(encoding="utf-8")) for name in ASSETS),
    )
