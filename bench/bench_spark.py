"""Spark training I benchmarks, each side by side in one run on local[2]:

(a) ParameterAveraging samples/s (2 workers, averaging_frequency=10) vs a single-process PyTorch loop,
    same LeNet-style CNN, same 8,000 MNIST images, same minibatch size;
(b) per-round overhead of an (almost) empty fit at 100k, 1M and 10M parameters;
(c) predict(df) rows/s vs single-process torch inference over the same rows.

Run: ``.venv/bin/python bench/bench_spark.py [--mnist DIR] [--only a,b,c]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import lenet_config, lenet_torch, mnist_arg, mnist_split, torch_fit

from deepspark.config import Dense, InputType, NetworkConfig, Output, Sgd
from deepspark.nn import Network
from deepspark.spark import ParameterAveraging, SparkNetwork, local_spark


def frame(spark: Any, x: np.ndarray, y: np.ndarray | None, partitions: int) -> Any:
    """An ``array<float>`` features DataFrame (+ int label), built through Arrow, cached and counted."""
    import pandas as pd

    data = {"features": list(x.astype(np.float32))}
    if y is not None:
        data["label"] = y.astype(np.int64)
    df = spark.createDataFrame(pd.DataFrame(data)).repartition(partitions).persist()
    df.count()
    return df


def bench_training(spark: Any, x: np.ndarray, y: np.ndarray, epochs: int, batch: int) -> None:
    df = frame(spark, x, y, 2)
    master = ParameterAveraging(num_workers=2, batch_size_per_worker=batch, averaging_frequency=10)
    rounds: list[Any] = []
    t0 = time.perf_counter()
    SparkNetwork(spark, lenet_config(), master).fit(df, epochs=epochs, on_round=rounds.append)
    wall = time.perf_counter() - t0
    steady = sum(r.examples for r in rounds[1:]) / sum(r.seconds for r in rounds[1:])
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    torch.manual_seed(0)
    model = lenet_torch()
    t0 = time.perf_counter()
    torch_fit(model, xt, yt, epochs=epochs, batch_size=batch, seed=0)
    single = len(x) * epochs / (time.perf_counter() - t0)
    end_to_end = len(x) * epochs / wall
    print(f"(a) LeNet, {len(x)} images x {epochs} epochs, minibatch {batch}:")
    print(f"    single-process torch loop ({torch.get_num_threads()} threads): {single:,.0f} samples/s")
    print(
        f"    ParameterAveraging 2 workers, freq 10, steady rounds: {steady:,.0f} samples/s "
        f"-> ratio {steady / single:.2f}"
    )
    print(
        f"    ParameterAveraging end to end (incl. conversion, {wall:.1f} s): {end_to_end:,.0f} samples/s "
        f"-> ratio {end_to_end / single:.2f}"
    )


def _drain(rows: Any) -> list[int]:
    return [sum(1 for _ in rows)]


def bench_round_overhead(spark: Any) -> None:
    print("(b) per-round overhead, 2 workers, 1 example per worker per round (Sgd, one dense output layer):")
    rdd = spark.sparkContext.parallelize([b"x", b"y"], 2).persist()
    rdd.count()
    floor = []
    for _ in range(30):
        t0 = time.perf_counter()
        rdd.mapPartitions(_drain).treeAggregate(0, lambda a, b: a + b, lambda a, b: a + b, depth=2)
        floor.append(time.perf_counter() - t0)
    print(
        f"    floor: a no-op Spark job (mapPartitions + treeAggregate) here: "
        f"{1000 * statistics.median(floor[10:]):.1f} ms (median of 20 after 10 warm-up)"
    )
    for n_params in (100_000, 1_000_000, 10_000_000):
        n_out = n_params // 101
        conf = NetworkConfig(
            updater=Sgd(learning_rate=1e-3),
            input_type=InputType.feed_forward(100),
            layers=(Output(n_out=n_out, loss="mse", activation="identity"),),
        )
        net = Network(conf)
        master = ParameterAveraging(
            num_workers=2, batch_size_per_worker=1, averaging_frequency=1, collect_training_stats=True
        )
        spark_net = SparkNetwork(spark, net, master)
        ys = np.zeros((2, n_out), dtype=np.float32)
        reg = frame_regression(spark, ys)
        spark_net.fit(reg, epochs=30)
        stats = spark_net.training_stats()
        fit_by_round: dict[int, float] = {}
        for e in stats.events(phase="fit"):
            fit_by_round[e.round] = max(fit_by_round.get(e.round, 0.0), e.duration)
        per_round = []
        for rnd in stats.rounds()[10:]:  # the first rounds compile the model and warm the JVM up
            driver = sum(e.duration for e in stats.events(side="driver", round=rnd))
            per_round.append(driver - fit_by_round.get(rnd, 0.0))
        print(
            f"    {net.num_params():>11,} params: {1000 * statistics.median(per_round):7.1f} ms per round "
            f"(median of {len(per_round)}, worker fit time excluded)"
        )


def frame_regression(spark: Any, ys: np.ndarray) -> Any:
    import pandas as pd

    x = np.random.default_rng(0).normal(size=(len(ys), 100)).astype(np.float32)
    pdf = pd.DataFrame({"features": list(x), "label": list(ys)})
    df = spark.createDataFrame(pdf).repartition(2).persist()
    df.count()
    return df


def bench_predict(spark: Any, x: np.ndarray, model_name: str, net: Network) -> None:
    df = frame(spark, x, None, 2)
    spark_net = SparkNetwork(spark, net)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        spark_net.predict(df).write.format("noop").mode("overwrite").save()
        times.append(time.perf_counter() - t0)
    spark_rate = len(x) / min(times)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        with torch.no_grad():
            for start in range(0, len(x), 1024):
                net.model.eval()
                out = net.model(torch.from_numpy(x[start : start + 1024]))
                out.argmax(dim=1)
        times.append(time.perf_counter() - t0)
    single = len(x) / min(times)
    print(
        f"    {model_name}: Spark predict {spark_rate:,.0f} rows/s, single-process torch {single:,.0f} rows/s "
        f"-> ratio {spark_rate / single:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    mnist_arg(parser)
    parser.add_argument("--only", default="a,b,c")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    parts = set(args.only.split(","))
    x, y, _, _ = mnist_split(args.mnist)
    spark = local_spark("local[2]", app_name="deepspark-bench")
    try:
        if "a" in parts:
            bench_training(spark, x, y, args.epochs, 32)
        if "b" in parts:
            bench_round_overhead(spark)
        if "c" in parts:
            print(f"(c) predict over {len(x)} MNIST rows (784 features), 2 workers vs one process:")
            bench_predict(spark, x, "LeNet CNN", Network(lenet_config()))
            mlp = NetworkConfig(
                input_type=InputType.feed_forward(784), layers=(Dense(n_out=256, activation="relu"), Output(n_out=10))
            )
            bench_predict(spark, x, "MLP 784-256-10", Network(mlp))
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
