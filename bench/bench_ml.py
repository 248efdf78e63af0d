"""Spark ML ``transform`` throughput vs a single-process torch loop over the same rows, side by side in one run.

The same 8,000 MNIST rows (784 features) are cached in Spark as an ``array<float>`` column and a Spark ML
``Vector`` column. ``DeepSparkModel.transform`` (prediction + probability + rawPrediction, written to
Spark's ``noop`` sink so every row is computed) runs on local[2]; the baseline is one Python process
running the same network with torch's default 2 threads over the in-memory float32 array, computing
the same outputs (softmax probabilities, argmax, log-probabilities). ``SparkNetwork.predict`` (the
``mapInArrow`` path of issue 3) is timed in the same run for reference. Best of ``--rounds`` each,
sides alternating.

Run: ``.venv/bin/python bench/bench_ml.py [--mnist DIR] [--rounds 3] [--batch-rows 10000]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import lenet_config, mnist_arg, mnist_split

from deepspark.config import Dense, InputType, NetworkConfig, Output
from deepspark.ml import DeepSparkModel
from deepspark.nn import Network
from deepspark.spark import SparkNetwork, local_spark


def frames(spark: Any, x: np.ndarray) -> tuple[Any, Any]:
    """The rows as ``array<float>`` and as a Spark ML Vector, in 2 partitions, cached and counted."""
    import pandas as pd
    from pyspark.ml.functions import array_to_vector

    df = spark.createDataFrame(pd.DataFrame({"features": list(x.astype(np.float32))})).repartition(2).persist()
    vec = df.select(array_to_vector("features").alias("features")).persist()
    df.count(), vec.count()
    return df, vec


def best_rate(rows: int, action: Callable[[], Any], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        action()
        times.append(time.perf_counter() - t0)
    return rows / min(times)


def torch_loop(net: Network, x: np.ndarray) -> None:
    """Same outputs as transform: probabilities, class index, log-probabilities, batch 1024."""
    net.model.eval()
    with torch.inference_mode():
        for start in range(0, len(x), 1024):
            probs = torch.softmax(net.model(torch.from_numpy(x[start : start + 1024])), dim=1)
            probs.argmax(dim=1).double().numpy()
            probs.clamp_min(1e-45).log().double().numpy()


def noop(df: Any) -> None:
    df.write.format("noop").mode("overwrite").save()


def bench(spark: Any, name: str, net: Network, x: np.ndarray, arr_df: Any, vec_df: Any, rounds: int) -> None:
    model = DeepSparkModel(net)
    spark_net = SparkNetwork(spark, net)
    n = len(x)
    rates: dict[str, list[float]] = {"transform (array)": [], "transform (Vector)": [], "predict": [], "torch": []}
    for _ in range(rounds):  # alternate sides so machine noise hits all of them
        rates["torch"].append(best_rate(n, lambda: torch_loop(net, x), 1))
        rates["transform (array)"].append(best_rate(n, lambda: noop(model.transform(arr_df)), 1))
        rates["transform (Vector)"].append(best_rate(n, lambda: noop(model.transform(vec_df)), 1))
        rates["predict"].append(best_rate(n, lambda: noop(spark_net.predict(arr_df, probabilities_col="p")), 1))
    single = max(rates["torch"])
    print(f"  {name}: single-process torch {single:,.0f} rows/s")
    for key in ("transform (array)", "transform (Vector)", "predict"):
        print(f"    {key:<19} {max(rates[key]):>9,.0f} rows/s -> ratio {max(rates[key]) / single:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    mnist_arg(parser)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-rows", type=int, default=10000, help="spark.sql.execution.arrow.maxRecordsPerBatch")
    parser.add_argument("--repeat", type=int, default=1, help="tile the rows this many times")
    parser.add_argument("--models", default="lenet,mlp")
    args = parser.parse_args()
    x, _, _, _ = mnist_split(args.mnist)
    x = np.ascontiguousarray(np.tile(x, (args.repeat, 1)))
    conf = {"spark.sql.execution.arrow.maxRecordsPerBatch": str(args.batch_rows)}
    spark = local_spark("local[2]", app_name="deepspark-bench-ml", conf=conf)
    try:
        arr_df, vec_df = frames(spark, x)
        print(f"transform over {len(x)} MNIST rows (784 features), local[2] vs one process (maxRecordsPerBatch "
              f"{args.batch_rows}):")  # fmt: skip
        if "lenet" in args.models:
            bench(spark, "LeNet CNN", Network(lenet_config()), x, arr_df, vec_df, args.rounds)
        mlp = NetworkConfig(
            input_type=InputType.feed_forward(784),
            layers=(Dense(n_out=256, activation="relu"), Output(n_out=10, activation="softmax", loss="mcxent")),
        )
        if "mlp" in args.models:
            bench(spark, "MLP 784-256-10", Network(mlp), x, arr_df, vec_df, args.rounds)
        load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
        print(f"load average (1, 5, 15 min) at the end: {load} on {os.cpu_count()} cores")
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
