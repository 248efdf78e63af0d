"""Screenshots of the four UI pages for a real Spark run, for docs/ (``docs/ui-*.png``).

Trains the demo CNN on the built-in digits with ``SparkNetwork`` on local[2] (parameter averaging,
training stats on) and a ``StatsListener`` into SQLite, starts ``deepspark ui`` in its own process, and
photographs each page with Debian's headless Chromium.

Run: ``.venv/bin/python bench/ui_screenshots.py [--out docs] [--epochs 4]``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from deepspark.cli.main import _demo_config, _frame
from deepspark.cli.ui_commands import start_ui_process
from deepspark.data import load_digits
from deepspark.spark import ParameterAveraging, SparkNetwork, local_spark
from deepspark.stats import SQLiteStatsStorage, StatsListener

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "docs")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--db", type=Path, default=None, help="keep the stats file here (default: a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or Path(tmp) / "runs.db"
        x, y = load_digits()
        spark = local_spark("local[2]", app_name="deepspark-ui-screenshots", ui=False)
        try:
            master = ParameterAveraging(
                batch_size_per_worker=32, averaging_frequency=5, num_workers=2, collect_training_stats=True
            )
            storage = SQLiteStatsStorage(db)
            listener = StatsListener(storage, session_id="digits-cnn-spark-2workers")
            SparkNetwork(spark, _demo_config(0), master, listeners=[listener]).fit(
                _frame(spark, x, y, 2), epochs=args.epochs
            )
            storage.close()
        finally:
            spark.stop()
        from playwright.sync_api import sync_playwright

        proc, url = start_ui_process(db)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                args.out.mkdir(parents=True, exist_ok=True)
                for name in ("overview", "model", "system", "spark"):
                    page.goto(url + name)
                    page.wait_for_selector("body[data-rendered]", timeout=30_000)
                    path = args.out / f"ui-{name}.png"
                    page.screenshot(path=str(path), full_page=True)
                    print(f"screenshot: {path}")
                browser.close()
        finally:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    main()
