"""Conversion of a DataFrame into training blocks, against Spark's own floor, in one run on local[2].

(a) 60,000 x 784 rows (the MNIST test images tiled 6 times, an ``array<float>`` column, cached and counted):
    the time ``prepare`` takes to turn them into cached per-worker blocks (describe, convert, shuffle when
    rows must move, cache), against a pass-through ``mapInArrow`` over the same cached rows (every batch to
    Python and back: the least any Python-side conversion can cost). Alternating, median of ``--rounds``.
    Twice: the rows in 2 partitions of 30,000 (``repartition(2)``: each already holds one worker's rows, so
    they are converted in place), and in 3 partitions (every row goes through Spark's shuffle).
(b) The demo's data (1,438 digits of 64 pixels, as ``deepspark demo`` builds it): the ``repartition`` phase of
    its fit, from the training stats.

Run: ``.venv/bin/python bench/bench_conversion.py [--mnist DIR] [--rounds 3] [--only a,b]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import lenet_config, mnist_arg, mnist_split

from deepspark.spark import GradientSharing, SparkNetwork, local_spark
from deepspark.spark.events import PhaseTimer


def load() -> str:
    return "load avg " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def passthrough(batches: Iterator[Any]) -> Iterator[Any]:
    yield from batches


def bench_conversion(spark: Any, x: np.ndarray, y: np.ndarray, rounds: int, partitions: int) -> None:
    import pandas as pd

    from deepspark.nn import Network
    from deepspark.spark._prepare import prepare

    df = spark.createDataFrame(pd.DataFrame({"features": list(x), "label": y})).repartition(partitions).persist()
    df.count()
    net = Network(lenet_config())
    master = GradientSharing(num_workers=2, batch_size_per_worker=32)
    floor, convert = [], []
    prepare(df, net, master, "features", "label", 2, PhaseTimer()).unpersist()  # warm-up: Python workers, imports
    for r in range(rounds):
        print(f"round {r + 1}: {load()}", flush=True)
        t0 = time.perf_counter()
        df.mapInArrow(passthrough, df.schema).write.format("noop").mode("overwrite").save()
        floor.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        prepared = prepare(df, net, master, "features", "label", 2, PhaseTimer())
        convert.append(time.perf_counter() - t0)
        prepared.unpersist()
        print(f"  pass-through {floor[-1]:.2f} s, prepare {convert[-1]:.2f} s", flush=True)
    f, c = statistics.median(floor), statistics.median(convert)
    layout = "in place" if partitions == 2 else "shuffled"
    print(f"(a) {len(x):,} x {x.shape[1]} rows in {partitions} partitions ({layout}): pass-through mapInArrow "
          f"{f:.2f} s ({len(x) / f:,.0f} rows/s), prepare {c:.2f} s ({len(x) / c:,.0f} rows/s): {c / f:.2f}x the "
          f"floor (target <= 2x); {load()}")
    df.unpersist()


def bench_demo(spark: Any) -> None:
    import pandas as pd
    from sklearn.datasets import load_digits

    from deepspark.cli.main import _demo_config

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    n = int(len(x) * 0.8)
    df = spark.createDataFrame(pd.DataFrame({"features": list(x[:n]), "label": y[:n]}))
    times = []
    for _ in range(3):
        master = GradientSharing(num_workers=2, batch_size_per_worker=32, encoding="dense", collect_training_stats=True)
        spark_net = SparkNetwork(spark, _demo_config(0), master)
        spark_net.fit(df, epochs=1)
        times.append(spark_net.training_stats().phase_totals()["repartition"].total)
    print(f"(b) demo data ({n} rows x 64): repartition phase {statistics.median(times):.2f} s "
          f"(runs: {', '.join(f'{t:.2f}' for t in times)}; target < 1 s); {load()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    mnist_arg(parser)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default="a,b")
    args = parser.parse_args()
    spark = local_spark("local[2]", app_name="deepspark-bench-conversion")
    try:
        if "a" in args.only:
            x, y, _x_test, _y_test = mnist_split(args.mnist, n_train=10_000)
            x60 = np.tile(x, (6, 1)).astype(np.float32)
            y60 = np.tile(y, 6).astype(np.int64)
            for partitions in (2, 3):
                bench_conversion(spark, x60, y60, args.rounds, partitions)
        if "b" in args.only:
            bench_demo(spark)
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
