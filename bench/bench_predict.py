"""Inference throughput on Spark: deepspark's ``predict`` and Spark ML ``transform`` vs ``predict_batch_udf``.

60,000 rows (the MNIST test images tiled 6 times, an ``array<float>`` column, cached and counted) on local[2];
the same LeNet-style network for everyone (deepspark's, with the same parameters): every contender computes
it with ``Network.output``. ``predict`` and ``transform`` leave the batch to the network
(``Network.inference_batch_size``: 64 rows for LeNet, 1,024 for the MLP); ``predict_batch_udf`` runs batches of
1,024 rows, and ``predict_batch_udf-sized`` batches of the network's size, so the table shows what the batch
choice is worth and what the data path is. Output: the class
index (a double) per row, written to Spark's ``noop`` sink. Each contender runs in a fresh process, after
one untimed warm-up action over 2,000 rows in 2 partitions (both Python workers start
and load the model); contenders alternate; rows/s is the median of ``--rounds``.

``--model mlp`` uses the 784-256-128-10 MLP instead: far less compute per row, so the data path (what
differs between the contenders) is most of the time.

Run: ``.venv/bin/python bench/bench_predict.py [--mnist DIR] [--rounds 3] [--model lenet|mlp]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import lenet_config, mnist_arg, mnist_split
from sim_sharing import network_config, updater

CONTENDERS = ("predict", "transform", "predict_batch_udf", "predict_batch_udf-sized")


def load() -> str:
    return "load avg " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def make_predict_fn(archive: str, batch: int) -> Any:
    """predict_batch_udf's factory: the same deepspark network, loaded once per Python worker."""
    from deepspark.nn import Network

    net = Network.load(archive)

    def predict(x: np.ndarray) -> np.ndarray:
        out = net.output(x.astype(np.float32, copy=False), batch_size=batch)
        return np.argmax(out, axis=1).astype(np.float64)  # type: ignore[arg-type]

    return predict


def contender(name: str, archive: str, mnist: Path) -> float:
    import pandas as pd
    from pyspark.sql import functions as F

    from deepspark.nn import Network
    from deepspark.spark import SparkNetwork, local_spark

    x, _, _, _ = mnist_split(mnist, n_train=10_000)
    x60 = np.tile(x, (6, 1)).astype(np.float32)
    spark = local_spark("local[2]", app_name=f"deepspark-bench-{name}")
    try:
        df = spark.createDataFrame(pd.DataFrame({"features": list(x60)})).repartition(2).persist()
        df.count()
        net = Network.load(archive)

        def run(frame: Any) -> None:
            if name == "predict":
                out = SparkNetwork(spark, net).predict(frame, "features")
            elif name == "transform":
                from deepspark.ml import DeepSparkModel

                out = DeepSparkModel(net).setProbabilityCol("").setRawPredictionCol("").transform(frame)
            else:
                from functools import partial

                from pyspark.ml.functions import predict_batch_udf
                from pyspark.sql.types import DoubleType

                batch = net.inference_batch_size() if name.endswith("-sized") else 1024
                udf = predict_batch_udf(
                    partial(make_predict_fn, archive, batch), return_type=DoubleType(), batch_size=batch,
                    input_tensor_shapes=[[784]],
                )
                out = frame.withColumn("prediction", udf(F.col("features")))
            out.write.format("noop").mode("overwrite").save()

        run(spark.createDataFrame(pd.DataFrame({"features": list(x60[:2000])})).repartition(2))  # warms both workers
        t0 = time.perf_counter()
        run(df)
        return len(x60) / (time.perf_counter() - t0)
    finally:
        spark.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    mnist_arg(parser)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--contender")
    parser.add_argument("--archive")
    parser.add_argument("--model", choices=["lenet", "mlp"], default="lenet")
    args = parser.parse_args()
    if args.contender:
        print(json.dumps({"rows_per_s": contender(args.contender, args.archive, args.mnist)}), flush=True)
        return
    from deepspark.nn import Network

    with tempfile.TemporaryDirectory() as tmp:
        archive = str(Path(tmp) / "lenet.zip")
        x, y, _, _ = mnist_split(args.mnist)
        mlp = network_config("mlp", 0, updater("adam", 1e-3))
        net = Network(lenet_config(seed=0) if args.model == "lenet" else mlp)
        net.fit(x[:2000], y[:2000], epochs=1, batch_size=64)
        net.save(archive)
        rates: dict[str, list[float]] = {c: [] for c in CONTENDERS}
        for r in range(args.rounds):
            for name in CONTENDERS:
                print(f"round {r + 1}, {name}: {load()}", flush=True)
                cmd = [sys.executable, __file__, "--contender", name, "--archive", archive, "--mnist", str(args.mnist)]
                done = subprocess.run(cmd, capture_output=True, text=True)
                if done.returncode != 0:
                    print(f"  failed: {done.stderr[-2000:]}", flush=True)
                    continue
                rate = json.loads(done.stdout.strip().splitlines()[-1])["rows_per_s"]
                rates[name].append(rate)
                print(f"  {rate:,.0f} rows/s", flush=True)
    med = {k: statistics.median(v) for k, v in rates.items() if v}
    print(f"\n60,000 rows, {args.model}, local[2], median of {args.rounds} fresh-process runs; {load()}")
    print("| contender | rows/s | vs predict_batch_udf |")
    print("| --- | --- | --- |")
    base = med.get("predict_batch_udf")
    for name, rate in med.items():
        print(f"| {name} | {rate:,.0f} | {rate / base:.2f}x |" if base else f"| {name} | {rate:,.0f} | |")


if __name__ == "__main__":
    main()
