"""The UI under load: N sender processes x M reports posted to a real ``deepspark ui`` server process (one report
per POST, through RemoteStatsRouter) while a real headless Chromium reloads the Overview page the whole time.

    nice -n 19 .venv/bin/python bench/ui_load.py --senders 16 --reports 1000

Prints what was sent, stored (SQLite file, API, what the browser shows), dropped and retried, the POST latency
percentiles, the page-load percentiles and the load average. Exits 1 when a report was lost or stored twice.
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "support"))

import ui_load

CHROMIUM = os.environ.get("DEEPSPARK_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def _ms(values: list[float], q: float) -> str:
    return f"{ui_load.percentile(values, q) * 1000:.0f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--senders", type=int, default=16)
    parser.add_argument("--reports", type=int, default=1000, help="reports per sender, one POST each")
    default_timeout = inspect.signature(ui_load.RemoteStatsRouter).parameters["timeout"].default
    parser.add_argument(
        "--timeout", type=float, default=default_timeout, help="RemoteStatsRouter timeout per POST (its default)"
    )
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="deepspark-ui-load-") as tmp, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            r = ui_load.run_load(browser, Path(tmp), args.senders, args.reports, timeout=args.timeout)
        finally:
            browser.close()

    expected = args.senders * args.reports
    print(f"UI under load: {r.senders} sender processes x {r.reports} reports = {expected} POSTs, {r.seconds:.0f} s "
          f"(router timeout {args.timeout:g} s)")
    print(f"  sent {r.sent}, dropped {r.dropped}, failed requests (retried or dropped) {r.failed_requests}")
    if r.last_errors:
        print(f"  last errors: {sorted(set(r.last_errors))[:3]}")
    print(f"  stored in SQLite: {r.stored_rows} rows, {r.distinct_reports} distinct reports; API: {r.api_records};")
    print(f"  shown by the browser's last load: {r.shown_by_browser}")
    lat = r.post_latencies
    print(f"  POST latency ({len(lat)} POSTs): p50 {_ms(lat, 0.5)}, p95 {_ms(lat, 0.95)}, p99 {_ms(lat, 0.99)}, "
          f"max {max(lat) * 1000:.0f} ms")
    loads = r.page_loads
    if loads:
        print(f"  page loads while sending ({len(loads)}): p50 {_ms(loads, 0.5)}, p95 {_ms(loads, 0.95)}, "
              f"max {max(loads) * 1000:.0f} ms; browser errors: {len(r.page_errors)}")
    print(f"  load average before: {' '.join(f'{x:.2f}' for x in r.load_before)}, "
          f"after: {' '.join(f'{x:.2f}' for x in r.load_after)} ({os.cpu_count()} CPUs)")
    ok = r.stored_rows == r.distinct_reports == r.api_records == r.shown_by_browser == expected
    print("server: nothing lost, nothing stored twice" if ok else "server: REPORTS LOST OR STORED TWICE")
    if r.dropped:  # every attempt timed out at the client; the server may have stored the batch all the same
        print(f"routers: {r.dropped} reports counted as dropped after {r.failed_requests} failed requests")
    return 0 if ok and r.dropped == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
