"""Acceptance figure of Spark training II: GradientSharing threshold vs dense on the MNIST test-set split.

LeNet, 2 workers on local[2], batch 32 per worker, the same epochs for both encodings. Prints accuracy,
bytes per step per worker (sent), the ratio threshold/dense, sparsity and tau. Writes the threshold run's
stats as JSON and its timeline as HTML.

Run: ``.venv/bin/python bench/acceptance_sharing.py [--mnist DIR] [--epochs 5]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import frame, lenet_config, mnist_arg, mnist_split

from deepspark.spark import GradientSharing, SparkNetwork, local_spark


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    mnist_arg(parser)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--encodings", default="dense,threshold")
    parser.add_argument("--stats-out", type=Path, default=Path("sharing-stats.json"))
    parser.add_argument("--html-out", type=Path, default=Path("sharing-timeline.html"))
    args = parser.parse_args()
    x_train, y_train, x_test, y_test = mnist_split(args.mnist)
    spark = local_spark("local[2]", app_name="deepspark-acceptance-sharing")
    results = {}
    try:
        train_df = frame(spark, x_train, y_train, 2)
        test_df = frame(spark, x_test, y_test, 2)
        for encoding in args.encodings.split(","):
            master = GradientSharing(
                num_workers=2, batch_size_per_worker=32, encoding=encoding, collect_training_stats=True, seed=0
            )
            spark_net = SparkNetwork(spark, lenet_config(seed=0), master)
            t0 = time.perf_counter()
            spark_net.fit(train_df, epochs=args.epochs)
            wall = time.perf_counter() - t0
            acc = spark_net.evaluate(test_df).accuracy()
            stats = spark_net.training_stats()
            exchange = stats.events(phase="exchange")
            sent = np.array([float(e.detail["bytes_sent"]) for e in exchange])
            line = (
                f"{encoding}: {args.epochs} epochs, accuracy {acc:.4f}, {wall:.1f} s, bytes sent per step per worker: "
            )
            line += f"mean {sent.mean():,.0f}, median {np.median(sent):,.0f}"
            if encoding == "threshold":
                encode = stats.events(phase="encode")
                sparsity = np.array([float(e.detail["sparsity"]) for e in encode])
                tau = np.array([float(e.detail["tau"]) for e in encode])
                line += f"; sparsity mean {sparsity.mean():.5f} (last epoch {sparsity[-len(sparsity) // args.epochs :].mean():.5f})"
                line += f"; tau first {tau[0]:.2e}, last {tau[-1]:.2e}"
                args.stats_out.write_text(stats.to_json())
                stats.export_html(args.html_out)
            print(line, flush=True)
            print(stats.summary(), flush=True)
            results[encoding] = (acc, sent.mean())
    finally:
        spark.stop()
    if {"dense", "threshold"} <= results.keys():
        (dacc, dbytes), (tacc, tbytes) = results["dense"], results["threshold"]
        print(f"bytes per step, threshold / dense: {tbytes / dbytes:.5f} (1/{dbytes / tbytes:,.0f})")
        print(f"accuracy, threshold - dense: {100 * (tacc - dacc):+.2f} percentage points")


if __name__ == "__main__":
    main()
