"""Acceptance figure of Spark training I: LeNet on the MNIST test-set split, 2 workers on local[2] vs one machine.

Run: ``.venv/bin/python bench/acceptance_spark.py [--mnist DIR] [--epochs 10] [--averaging-frequency 10]
[--transport collective|spark] [--stats-out run-stats.json]``.
The timeline of the Spark run is written as HTML (and its stats as JSON for
``bench/make_timeline_screenshot.py --stats``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import frame, lenet_config, mnist_arg, mnist_split

from deepspark.nn import Network
from deepspark.spark import ParameterAveraging, SparkNetwork, local_spark


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    mnist_arg(parser)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--averaging-frequency", type=int, default=10)
    parser.add_argument("--transport", choices=("collective", "spark"), default="collective")
    parser.add_argument("--stats-out", type=Path, default=Path("run-stats.json"))
    parser.add_argument("--html-out", type=Path, default=Path("timeline.html"))
    args = parser.parse_args()
    x_train, y_train, x_test, y_test = mnist_split(args.mnist)

    t0 = time.perf_counter()
    single = Network(lenet_config(seed=0))
    single.fit(x_train, y_train, epochs=args.epochs, batch_size=64)
    single_acc = single.evaluate(x_test, y_test).accuracy()
    print(
        f"single machine: {args.epochs} epochs, batch 64: accuracy {single_acc:.4f} ({time.perf_counter() - t0:.0f} s)",
        flush=True,
    )

    spark = local_spark("local[2]", app_name="deepspark-acceptance")
    try:
        master = ParameterAveraging(
            num_workers=2, batch_size_per_worker=32, averaging_frequency=args.averaging_frequency,
            transport=args.transport, collect_training_stats=True, seed=0,
        )
        spark_net = SparkNetwork(spark, lenet_config(seed=0), master)
        t0 = time.perf_counter()
        net = spark_net.fit(frame(spark, x_train, y_train, 2), epochs=args.epochs)
        wall = time.perf_counter() - t0
        spark_acc = spark_net.evaluate(frame(spark, x_test, y_test, 2)).accuracy()
        print(f"ParameterAveraging ({args.transport}), 2 workers x batch 32, averaging every "
              f"{args.averaging_frequency}: accuracy {spark_acc:.4f} ({wall:.0f} s)")
        print(f"difference (spark - single): {100 * (spark_acc - single_acc):+.2f} percentage points")
        local_acc = net.evaluate(x_test, y_test).accuracy()
        print(f"(the Spark-trained network evaluated on the driver: {local_acc:.4f})")
        stats = spark_net.training_stats()
        print(stats.summary())
        for finding in stats.advice():
            print(f"advice [{finding.severity}] {finding.title}: {finding.detail}")
        args.stats_out.write_text(stats.to_json())
        stats.export_html(args.html_out)
        print(f"stats: {args.stats_out}, timeline: {args.html_out}")
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
