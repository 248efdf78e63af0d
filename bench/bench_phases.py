"""Where a Spark fit's time goes, from its own training stats: per-step compute and exchange, GC, fixed costs.

The job of ``bench_runtime.py`` (LeNet-style CNN, 8,000 MNIST rows, Adam 1e-3, 2 workers x batch 32, local[2]),
trained with ``collect_training_stats=True`` by GradientSharing dense and by ParameterAveraging (collective,
averaging_frequency 10), each in a fresh process. Printed per master:

- per step (gradient sharing): median ``compute`` (forward + backward, the bucketed all-reduce running
  alongside) and median ``exchange`` (the wait for the all-reduce after backward, plus the updater step): the
  part of the exchange that backward did not hide;
- per round (averaging): median ``average`` (all-reduce of parameters and updater state);
- garbage collection: seconds per worker per epoch (the ``gc`` events), next to the epoch's length;
- the driver's one-off phases: ``repartition`` (conversion into blocks), ``rendezvous``.

Run: ``.venv/bin/python bench/bench_phases.py [--mnist DIR] [--epochs 3]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import frame, lenet_config, mnist_arg, mnist_split


def run(name: str, args: argparse.Namespace) -> dict[str, Any]:
    from deepspark.spark import GradientSharing, ParameterAveraging, SparkNetwork, local_spark

    x, y, _, _ = mnist_split(args.mnist)
    spark = local_spark("local[2]", app_name=f"deepspark-bench-phases-{name}")
    try:
        df = frame(spark, x, y, 2)
        if name == "dense":
            master: Any = GradientSharing(
                num_workers=2, batch_size_per_worker=32, encoding="dense", collect_training_stats=True
            )
        else:
            master = ParameterAveraging(
                num_workers=2, batch_size_per_worker=32, averaging_frequency=10, collect_training_stats=True
            )
        spark_net = SparkNetwork(spark, lenet_config(seed=0), master)
        spark_net.fit(df, epochs=args.epochs)
        stats = spark_net.training_stats()

        def median_ms(phase: str) -> float | None:
            durations = [e.duration for e in stats.events(phase=phase) if e.side == "worker"]
            return 1000 * statistics.median(durations) if durations else None

        gc = [e for e in stats.events(phase="gc") if e.side == "worker"]
        out: dict[str, Any] = {
            "master": name,
            "compute_ms": median_ms("compute"),
            "exchange_ms": median_ms("exchange"),
            "fit_ms": median_ms("fit"),
            "average_ms": median_ms("average"),
            "gc_s_per_worker_epoch": [round(e.duration, 4) for e in gc],
            "epoch_s": [round(float(e.detail.get("epoch_seconds", 0.0)), 2) for e in gc],
        }
        for phase in ("repartition", "rendezvous"):
            events = stats.events(phase=phase)
            out[f"{phase}_s"] = round(max(e.duration for e in events), 3) if events else None
        return out
    finally:
        spark.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mnist_arg(parser)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--contender", choices=("dense", "averaging"))
    args = parser.parse_args()
    if args.contender:
        print(json.dumps(run(args.contender, args)), flush=True)
        return
    for name in ("dense", "averaging"):
        print(f"{name}: load avg {' '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)
        cmd = [sys.executable, __file__, "--contender", name, "--epochs", str(args.epochs), "--mnist", str(args.mnist)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        print(done.stdout.strip().splitlines()[-1] if done.returncode == 0 else done.stderr[-2000:], flush=True)


if __name__ == "__main__":
    main()
