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
PAGES = {"overview": "Overview", "model": "Model", "system": "System", "spark": "Spark", "search": "Search"}
ASSETS = ("chart.umd.min.js", "app.js", "search.js")

_TEMPLATE = (Path(__file__).parent / "templates" / "page.html").read_text(encoding="utf-8")


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


def embed_json(value: Any) -> str:
    """``value`` as JSON safe inside a ``<script>`` element: no ``<``, ``>`` or ``&`` can end it or open a comment."""
    text = json.dumps(value, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_report(view: dict[str, Any]) -> str:
    """A self-contained page with every section, the assets inlined and the view embedded (works offline)."""
    css = (STATIC_DIR / "app.css").read_text(encoding="utf-8")
    payload = embed_json(view)
    session = (view.get("session") or {}).get("session_id", "")
    return _TEMPLATE.format(
        title=html.escape(f"deepspark report — {session}"),
        head=f"<style>\n{css}\n</style>",
        page="report",
        nav=_nav("", report=True),
        data=f'<script id="deepspark-data" type="application/json">{payload}</script>',
        scripts="\n".join(_inline_script((STATIC_DIR / name).read_text(encoding="utf-8")) for name in ASSETS),
    )
