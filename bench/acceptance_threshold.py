"""Issue 11's acceptance job, one fit per process: GradientSharing on the MNIST test-set split (8k / 2k) with
Spark barrier stages, printing one JSON line (test accuracy, bytes sent per step per worker, sparsity, tau).

Run one fresh process per (encoding, seed) so that no cached Python worker or JIT state carries over:

    for s in 0 1 2 3 4; do for e in dense threshold; do
        nice -n 19 .venv/bin/python bench/acceptance_threshold.py --encoding $e --seed $s; done; done

``--model mlp`` trains the 784-256-128-10 MLP instead of LeNet; ``--updater nesterovs --lr 0.05`` SGD with
Nesterov momentum; ``--workers 4`` runs on ``local[4]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import frame, mnist_arg, mnist_split
from sim_sharing import network_config, updater

from deepspark.spark import GradientSharing, SparkNetwork, local_spark


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    mnist_arg(parser)
    parser.add_argument("--encoding", choices=["dense", "threshold"], default="threshold")
    parser.add_argument("--model", choices=["lenet", "mlp"], default="lenet")
    parser.add_argument("--updater", choices=["adam", "adamw", "nesterovs", "sgd"], default="adam")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stats-out", type=Path)
    args = parser.parse_args()
    x_train, y_train, x_test, y_test = mnist_split(args.mnist)
    spark = local_spark(f"local[{args.workers}]", app_name="deepspark-acceptance-threshold")
    try:
        train_df = frame(spark, x_train, y_train, args.workers)
        test_df = frame(spark, x_test, y_test, args.workers)
        master = GradientSharing(
            num_workers=args.workers,
            batch_size_per_worker=32,
            encoding=args.encoding,
            collect_training_stats=True,
            seed=args.seed,
        )
        conf = network_config(args.model, args.seed, updater(args.updater, args.lr))
        spark_net = SparkNetwork(spark, conf, master)
        t0 = time.perf_counter()
        spark_net.fit(train_df, epochs=args.epochs)
        wall = time.perf_counter() - t0
        acc = spark_net.evaluate(test_df).accuracy()
        stats = spark_net.training_stats()
        sent = np.array([float(e.detail["bytes_sent"]) for e in stats.events(phase="exchange")])
        encode = stats.events(phase="encode")
        sparsity = [float(e.detail["sparsity"]) for e in encode]
        tau = [float(e.detail["tau"]) for e in encode]
        if args.stats_out:
            args.stats_out.write_text(stats.to_json())
    finally:
        spark.stop()
    dense_bytes = 2 * (args.workers - 1) * spark_net.network.num_params() * 4 / args.workers
    row = {
        "encoding": args.encoding,
        "model": args.model,
        "updater": args.updater,
        "lr": args.lr,
        "workers": args.workers,
        "epochs": args.epochs,
        "seed": args.seed,
        "accuracy": round(acc, 4),
        "bytes_per_step": round(float(sent.mean()), 1),
        "dense_bytes_per_step": dense_bytes,
        "ratio": round(float(sent.mean()) / dense_bytes, 5),
        "sparsity_mean": round(float(np.mean(sparsity)), 5) if sparsity else None,
        "tau_first_last": [tau[0], tau[-1]] if tau else None,
        "seconds": round(wall, 1),
    }
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
