"""Screenshot of the UI's Search page for docs/ (``docs/ui-search.png``), from a search's stats file.

Run the acceptance search first (it writes ``search-stats.db`` into its output folder), then:
``.venv/bin/python bench/search_screenshot.py --db /tmp/deepspark-acceptance-tune/search-stats.db``.
Starts ``deepspark ui`` in its own process and photographs the Search page with Debian's headless Chromium.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ui_screenshots import ARGS

from deepspark.cli.ui_commands import start_ui_process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", type=Path, required=True, help="stats SQLite file a Search wrote (stats_storage=...)")
    parser.add_argument("--session", default="search-deepspark-search")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "docs" / "ui-search.png")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    proc, url = start_ui_process(args.db)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{url}search?session={args.session}")
            page.wait_for_selector("body[data-search-rendered]", timeout=30_000)
            page.wait_for_timeout(500)  # let Chart.js finish its first layout pass
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.out), full_page=True)
            print(f"screenshot: {args.out}")
            browser.close()
    finally:
        proc.kill()
        proc.wait()


if __name__ == "__main__":
    main()
