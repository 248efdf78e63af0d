"""Training UI benchmarks, each side by side in one run:

(a) StatsListener overhead at the default report frequency (every 10 iterations, histograms on, SQLite
    storage): ``Network.fit`` time with the listener / without, same LeNet-style CNN and MNIST data,
    alternating rounds, median ratio;
(b) ingest: 8 concurrent senders x 1,000 reports each (one update record per POST) into one
    ``deepspark ui`` server process; every record counted in its SQLite file; request latency p50/p95/p99.

Run: ``.venv/bin/python bench/bench_stats.py [--mnist DIR] [--only a,b] [--rounds 5]``.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import lenet_config, mnist_arg, mnist_split

from deepspark.cli.ui_commands import start_ui_process
from deepspark.nn import Network
from deepspark.nn.listeners import IterationInfo
from deepspark.stats import SQLiteStatsStorage, StatsListener, StatsRecord


def bench_overhead(mnist: Path, rounds: int, examples: int, epochs: int) -> None:
    x, y, _, _ = mnist_split(mnist)
    x, y = x[:examples], y[:examples]
    with tempfile.TemporaryDirectory() as tmp:
        times: dict[str, list[float]] = {"plain": [], "stats": []}
        reports = 0
        shares: list[float] = []
        for r in range(rounds):
            for side in ("plain", "stats") if r % 2 == 0 else ("stats", "plain"):
                net = Network(lenet_config(seed=r))
                storage = None
                listener = None
                if side == "stats":
                    storage = SQLiteStatsStorage(Path(tmp) / "runs.db")
                    listener = _TimedStatsListener(storage, session_id=f"bench-{r}")  # report_every=10 default
                    net.add_listeners(listener)
                t0 = time.perf_counter()
                net.fit(x, y, epochs=epochs, batch_size=64)
                times[side].append(time.perf_counter() - t0)
                if listener is not None:
                    shares.append(listener.seconds / times[side][-1])
                if storage is not None:
                    reports = storage.count(f"bench-{r}")
                    storage.close()
        plain, stats = statistics.median(times["plain"]), statistics.median(times["stats"])
        ratios = [s / p for s, p in zip(times["stats"], times["plain"], strict=True)]
        print(
            f"(a) listener overhead: LeNet {net.num_params():,} params, {examples} examples x {epochs} epochs, "
            f"batch 64, "
            f"{reports} records per run\n"
            f"    fit without listener {plain:.2f} s, with StatsListener(SQLite, report_every=10) {stats:.2f} s "
            f"(medians of {rounds}); overhead {100 * (stats / plain - 1):+.1f} % "
            f"(per-round ratios {', '.join(f'{q:.3f}' for q in ratios)})\n"
            f"    in-run share: time inside the listener's hooks / fit time = "
            f"{', '.join(f'{100 * q:.2f} %' for q in shares)} (median {100 * statistics.median(shares):.2f} %)"
        )


class _TimedStatsListener(StatsListener):
    """A StatsListener that adds up the wall time spent in its own hooks (the in-run overhead measure)."""

    seconds = 0.0

    def on_gradient_calculation(self, net: Network) -> None:
        t0 = time.perf_counter()
        super().on_gradient_calculation(net)
        self.seconds += time.perf_counter() - t0

    def iteration_done(self, net: Network, info: IterationInfo) -> None:
        t0 = time.perf_counter()
        super().iteration_done(net, info)
        self.seconds += time.perf_counter() - t0


def _record(session: str, i: int) -> bytes:
    rng = np.random.default_rng(i)
    stats = {
        f"layer{k}.{p}": {
            "mean_magnitude": float(rng.random()),
            "std": float(rng.random()),
            "histogram": {"min": -1.0, "max": 1.0, "counts": [int(c) for c in rng.integers(0, 1000, 20)]},
        }
        for k in range(4)
        for p in ("weight", "bias")
    }
    payload = {
        "score": float(rng.random()),
        "examples_per_sec": 1000.0,
        "params": stats,
        "updates": stats,
        "ratios": {k: -3.0 for k in stats},
        "process": {"rss_bytes": 1 << 28, "gc": {"collections": [1, 2, 3]}},
    }
    record = StatsRecord(session, "model", "driver", iteration=i, payload=payload)
    return json.dumps({"records": [record.to_dict()]}).encode()


def bench_ingest(senders: int, reports: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "runs.db"
        proc, url = start_ui_process(db)
        latencies: list[list[float]] = [[] for _ in range(senders)]
        failures: list[str] = []
        bodies = [[_record(f"sender-{s}", i) for i in range(reports)] for s in range(senders)]

        def send(s: int) -> None:
            for body in bodies[s]:
                request = urllib.request.Request(
                    url + "api/records", data=body, headers={"Content-Type": "application/json"}, method="POST"
                )
                t0 = time.perf_counter()
                try:
                    with urllib.request.urlopen(request, timeout=30) as r:
                        r.read()
                except OSError as e:
                    failures.append(str(e))
                latencies[s].append(time.perf_counter() - t0)

        threads = [threading.Thread(target=send, args=(s,)) for s in range(senders)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        proc.kill()
        proc.wait()
        stored = int(sqlite3.connect(db).execute("SELECT COUNT(*) FROM records").fetchone()[0])
        lat = sorted(x for per in latencies for x in per)
        q = statistics.quantiles(lat, n=100)
        print(
            f"(b) ingest: {senders} concurrent senders x {reports} reports ({len(bodies[0][0]):,} bytes each), "
            f"one server process\n"
            f"    sent {senders * reports}, stored {stored} in SQLite, failed requests {len(failures)}; "
            f"{senders * reports / wall:,.0f} reports/s over {wall:.1f} s; latency p50 {1000 * q[49]:.1f} ms, "
            f"p95 {1000 * q[94]:.1f} ms, p99 {1000 * q[98]:.1f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    mnist_arg(parser)
    parser.add_argument("--only", default="a,b")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--examples", type=int, default=4000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--senders", type=int, default=8)
    parser.add_argument("--reports", type=int, default=1000)
    args = parser.parse_args()
    only = set(args.only.split(","))
    if "a" in only:
        bench_overhead(Path(args.mnist), args.rounds, args.examples, args.epochs)
    if "b" in only:
        bench_ingest(args.senders, args.reports)


if __name__ == "__main__":
    main()
