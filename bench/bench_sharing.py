"""Spark training II benchmark, in one run on local[2], the same job for everyone: LeNet on 8,000 MNIST
images, 2 workers, batch 32 per worker, Adam 1e-3, ``--epochs`` epochs (default 3).

Contenders:
- deepspark ``GradientSharing`` (dense all-reduce, and threshold encoding), ``SparkNetwork.fit(df)``;
- ``pyspark.ml.torch.distributor.TorchDistributor`` running DDP (gloo), ``local_mode=False`` (ranks in Spark
  tasks, like ours) and ``local_mode=True`` (ranks on the driver machine). Its train function gets the data
  the way its docs suggest for data that fits in memory: collected from the DataFrame on the driver
  (through Arrow) and handed over as arguments.

- sparktorch (``mode="synchronous"``, ``useBarrier=True``: per-parameter all-reduce in a barrier stage), when
  it is installed (it is not a deepspark dependency: ``pip install -c constraints.txt sparktorch``). Its fit
  cannot be timed from inside, so only its end-to-end time is reported, and samples/s from that time.

Reported: steady-state samples/s (epochs after the first, timed inside training) and end-to-end wall time
of "fit from a DataFrame" (data conversion and process start-up included). All ranks run 1 torch thread,
as Spark sets for a 1-CPU task.

Run: ``.venv/bin/python bench/bench_sharing.py [--mnist DIR] [--epochs 3]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

BENCH_DIR = str(Path(__file__).resolve().parent)
sys.path.insert(0, BENCH_DIR)
from bench_spark import frame
from common import lenet_config, mnist_arg, mnist_split

from deepspark.spark import GradientSharing, SparkNetwork, local_spark


def ddp_train(x: np.ndarray, y: np.ndarray, epochs: int, batch: int, bench_dir: str) -> tuple[float, float]:
    """TorchDistributor's train function: DDP over gloo, each rank on its half; returns (steady samples/s, s)."""
    import os

    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    sys.path.insert(0, bench_dir)
    from common import lenet_torch

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    model = DistributedDataParallel(lenet_torch())
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    xs = torch.from_numpy(x[rank::world])
    ys = torch.from_numpy(y[rank::world])
    steady_examples, steady_s, start = 0, 0.0, time.perf_counter()
    for epoch in range(epochs):
        t0 = time.perf_counter()
        order = torch.randperm(len(xs), generator=torch.Generator().manual_seed(epoch))
        for i in range(0, len(xs), batch):
            idx = order[i : i + batch]
            opt.zero_grad()
            loss_fn(model(xs[idx]), ys[idx]).backward()
            opt.step()
        if epoch > 0:
            steady_examples += len(xs) * world
            steady_s += time.perf_counter() - t0
    total = time.perf_counter() - start
    dist.destroy_process_group()
    os.environ.get("RANK")
    return steady_examples / max(steady_s, 1e-9), total


def run_torch_distributor(spark: Any, df: Any, epochs: int, batch: int, local_mode: bool) -> tuple[float, float]:
    from pyspark.ml.torch.distributor import TorchDistributor

    t0 = time.perf_counter()
    table = df.select("features", "label").toArrow()
    x = np.stack(table.column("features").to_numpy(zero_copy_only=False)).astype(np.float32)
    y = table.column("label").to_numpy().astype(np.int64)
    distributor = TorchDistributor(num_processes=2, local_mode=local_mode, use_gpu=False)
    steady, _ = distributor.run(ddp_train, x, y, epochs, batch, BENCH_DIR)
    return steady, time.perf_counter() - t0


def run_sparktorch(spark: Any, df: Any, epochs: int, batch: int) -> tuple[float, float]:
    """sparktorch's synchronous mode; ``iters`` minibatches of ``batch`` per worker = the same examples."""
    import dill
    import torch
    from pyspark.ml.functions import array_to_vector
    from sparktorch import SparkTorch, serialize_torch_obj

    from common import lenet_torch

    dill.settings["byref"] = True  # SPARK-NOTES.md: needed before serialize_torch_obj with torch 2.13
    torch.manual_seed(0)
    torch_obj = serialize_torch_obj(
        model=lenet_torch(), criterion=torch.nn.CrossEntropyLoss(), optimizer=torch.optim.Adam, lr=1e-3
    )
    iters = epochs * -(-4000 // batch)
    t0 = time.perf_counter()
    vectors = df.select(array_to_vector("features").alias("features"), "label")
    SparkTorch(
        inputCol="features",
        labelCol="label",
        torchObj=torch_obj,
        iters=iters,
        partitions=2,
        miniBatch=batch,
        useBarrier=True,
        verbose=0,
    ).fit(vectors)
    wall = time.perf_counter() - t0
    return iters * batch * 2 / wall, wall


def run_sharing(
    spark: Any, df: Any, epochs: int, batch: int, encoding: str, staleness: int = 0, per_stage: int = 1
) -> tuple[float, float, float]:
    master = GradientSharing(
        num_workers=2,
        batch_size_per_worker=batch,
        encoding=encoding,  # type: ignore[arg-type]
        staleness=staleness,
        epochs_per_stage=per_stage,
        seed=0,
    )
    rounds: list[Any] = []
    spark_net = SparkNetwork(spark, lenet_config(seed=0), master)
    t0 = time.perf_counter()
    spark_net.fit(df, epochs=epochs, on_round=rounds.append)
    wall = time.perf_counter() - t0
    # steady state: the stages after the first (with one stage for everything: that stage, less nothing)
    later = rounds[1:] or rounds
    steady = sum(r.examples for r in later) / sum(r.seconds for r in later)
    return steady, wall, 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    mnist_arg(parser)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument(
        "--only",
        default="dense,threshold,dense-stale,threshold-stale,dense-stages3,td-cluster,td-local,sparktorch",
    )
    args = parser.parse_args()
    x_train, y_train, _, _ = mnist_split(args.mnist)
    spark = local_spark("local[2]", app_name="deepspark-bench-sharing")
    rows: list[tuple[str, float, float]] = []
    try:
        df = frame(spark, x_train, y_train, 2)
        # warm-up, untimed: starts the Python workers (torch import) so that no contender pays for it alone
        run_sharing(spark, frame(spark, x_train[:512], y_train[:512], 2), 1, args.batch, "dense")
        for name in args.only.split(","):
            if name.split("-")[0] in ("dense", "threshold"):
                encoding, stale = name.split("-")[0], int(name.endswith("-stale"))
                per_stage = args.epochs if name.endswith("-stages3") else 1
                steady, wall, _ = run_sharing(spark, df, args.epochs, args.batch, encoding, stale, per_stage)
                label = f"deepspark GradientSharing {encoding}" + (", staleness=1" if stale else "")
                label += f", epochs_per_stage={per_stage}" if per_stage > 1 else ""
            elif name == "sparktorch":
                try:
                    import sparktorch  # noqa: F401
                except ImportError:
                    print("sparktorch is not installed: skipped", flush=True)
                    continue
                steady, wall = run_sparktorch(spark, df, args.epochs, args.batch)
                label = "sparktorch synchronous (samples/s end to end)"
            else:
                steady, wall = run_torch_distributor(spark, df, args.epochs, args.batch, name == "td-local")
                label = f"TorchDistributor DDP, local_mode={name == 'td-local'}"
            rows.append((label, steady, wall))
            print(f"{label}: steady {steady:,.0f} samples/s, fit(df) {args.epochs} epochs {wall:.1f} s", flush=True)
    finally:
        spark.stop()
    reference = next((r for r in rows if "local_mode=False" in r[0]), None)
    print(
        f"\n| contender | steady samples/s | fit(df), {args.epochs} epochs | vs TorchDistributor (local_mode=False) |"
    )
    print("| --- | --- | --- | --- |")
    for label, steady, wall in rows:
        rel = f"{steady / reference[1]:.2f}x samples/s, {wall / reference[2]:.2f}x time" if reference else ""
        print(f"| {label} | {steady:,.0f} | {wall:.1f} s | {rel} |")


if __name__ == "__main__":
    main()
