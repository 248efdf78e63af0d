"""The UI under load, small: 4 sender processes x 100 reports (one POST each) to a real server process while a real
browser reloads the Overview page; every report is stored once and shown (bench/ui_load.py runs 16 x 1,000)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ui_load


def test_ui_load_concurrent_senders_with_browser_reading_lose_nothing(browser: Any, tmp_path: Path) -> None:
    senders, reports = 4, 100
    result = ui_load.run_load(browser, tmp_path, senders, reports, timeout=60.0, limit_s=300.0)
    expected = senders * reports
    assert result.dropped == 0, f"the routers dropped {result.dropped} reports; last errors {result.last_errors}"
    assert result.sent == expected
    assert len(result.post_latencies) >= expected  # one POST per report (more only if one was retried)
    assert result.stored_rows == expected, "SQLite holds a different number of rows than reports sent"
    assert result.distinct_reports == expected, "a report was stored twice (a retried POST?)"
    assert result.api_records == expected
    assert result.shown_by_browser == expected
    assert len(result.page_loads) >= 1, "the browser never loaded the page while the senders ran"
    assert result.page_errors == []
