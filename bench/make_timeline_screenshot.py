"""Render a training-stats timeline to HTML and screenshot it with headless Chromium.

    .venv/bin/python bench/make_timeline_screenshot.py --out docs/timeline-synthetic.png
    .venv/bin/python bench/make_timeline_screenshot.py --stats run-stats.json --out docs/timeline-example.png

Without ``--stats`` it draws a synthetic run: 2 workers, 10 averaging rounds, worker 1 a straggler,
and one task of round 6 retried by Spark. Needs ``chromium`` on PATH (Debian: ``apt-get install chromium``).
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from deepspark.spark.events import PhaseTimer
from deepspark.spark.stats import TrainingStats

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def synthetic_stats(seed: int = 7) -> TrainingStats:
    """A plausible ParameterAveraging run: 2 workers, 10 rounds, a straggler and one retried task."""
    rng = random.Random(seed)
    settings = {
        "master": "parameter_averaging",
        "num_workers": 2,
        "batch_size_per_worker": 32,
        "averaging_frequency": 5,
        "worker_prefetch": 2,
        "repartition": "never",
    }
    driver = PhaseTimer("driver", host="driver-node", pid=4100)
    t = 1_700_000_000.0
    start = t
    driver.record("count", t, 0.21, round=0)
    t += 0.23
    driver.record("repartition", t, 0.34, round=0)
    t += 0.36
    workers: list[PhaseTimer] = []
    for r in range(10):
        driver.record("broadcast", t, rng.uniform(0.04, 0.06), round=r)
        t += 0.06
        map_start, ends = t, []
        for w, (host, speed) in enumerate((("exec-a", 1.0), ("exec-b", 1.9))):
            attempt = 1 if (r, w) == (6, 0) else 0
            timer = PhaseTimer("worker", w, attempt=attempt, host=host, pid=5200 + 10 * w + attempt)
            tw = t + rng.uniform(0.05, 0.09) + (0.9 if attempt else 0.0)  # scheduling; a lost first attempt
            for name, seconds in (("broadcast_get", 0.03), ("model_init", 0.12 if r == 0 or attempt else 0.01)):
                timer.record(name, tw, seconds * rng.uniform(0.9, 1.1), round=r)
                tw += seconds
            for _ in range(5):
                fetch = rng.uniform(0.004, 0.008)
                timer.record("data_fetch", tw, fetch, round=r, examples=32)
                tw += fetch
                fit = rng.uniform(0.07, 0.09) * speed
                timer.record("fit", tw, fit, round=r, examples=32)
                tw += fit
            ends.append(tw)
            workers.append(timer)
        t = max(ends) + rng.uniform(0.02, 0.04)
        aggregate = rng.uniform(0.07, 0.1)
        driver.record("map", map_start, t - map_start + aggregate, round=r)
        driver.record("aggregate", t, aggregate, round=r)
        t += aggregate
        driver.record("process_params", t, rng.uniform(0.01, 0.02), round=r)
        t += 0.03
    stats = TrainingStats(driver.events, settings=settings, num_workers=2, start=start, end=t)
    for timer in workers:
        stats.add(timer.events)
    return stats


def screenshot(html: Path, out: Path, window: str) -> None:
    """Screenshot ``html`` into ``out`` with headless Chromium, nothing fetched from the network."""
    browser = next((b for b in map(shutil.which, BROWSERS) if b), None)
    if browser is None:
        sys.exit("no chromium on PATH: install it (Debian: apt-get install -y chromium)")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        command = [
            browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
            f"--user-data-dir={profile}", f"--screenshot={out.resolve()}", f"--window-size={window}",
            html.resolve().as_uri(),
        ]  # fmt: skip
        subprocess.run(command, check=True, capture_output=True, timeout=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stats", type=Path, help="TrainingStats.to_json() file; a synthetic run when absent")
    parser.add_argument("--out", type=Path, default=Path("docs/timeline-synthetic.png"), help="PNG to write")
    parser.add_argument("--html", type=Path, help="also keep the HTML report here")
    parser.add_argument("--window-size", default="1400,1000", help="browser window WIDTH,HEIGHT")
    args = parser.parse_args(argv)
    stats = TrainingStats.from_json(args.stats.read_text()) if args.stats else synthetic_stats()
    with tempfile.TemporaryDirectory() as tmp:
        html = stats.export_html(args.html or Path(tmp) / "timeline.html")
        screenshot(html, args.out, args.window_size)
        print(f"{args.out}: {len(stats)} events, {html.stat().st_size:,} bytes of HTML")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
