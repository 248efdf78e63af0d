"""Spark training runtime benchmark: deepspark's masters against TorchDistributor and plain torch, fairly.

The job: LeNet-style CNN on the first 8,000 MNIST test images, Adam 1e-3, 2 workers x batch 32 (single
process: batch 32 on 1 thread, and batch 64 on 2 threads), ``--epochs`` epochs (default 3), on local[2].
deepspark runs CPU convolutions channels-last; the ``-cl`` contenders are plain torch and TorchDistributor
with the model converted to that layout too, so the table shows how much of a lead is the layout.

Every contender runs in a FRESH process (no Spark workers, JVM or torch state left over from another
contender); contenders alternate, and each figure is the median of ``--rounds`` runs (default 3). The load
average is printed before every run.

Figures per contender:
- steady samples/s: examples of epochs 2..N over the time from the end of epoch 1 to the end of epoch N,
  as the driver sees epochs finish (per-epoch costs included);
- fit wall: ``fit`` from a cached DataFrame to a trained model (SparkSession start excluded; TorchDistributor
  ``run`` from the DataFrame, collect included);
- worker memory (deepspark): resident memory of all PySpark worker processes (daemon + workers) after each
  epoch, the largest reading, as the sum of RSS and as the sum of PSS (shared pages counted once); and the
  torch runtime's RSS (a process that imported torch and ran one step of the same model), for the bound
  "torch runtime + 2 x (data + model + updater state) per worker".

Run: ``.venv/bin/python bench/bench_runtime.py [--mnist DIR] [--epochs 3] [--rounds 3] [--only a,b]``.
One contender alone: ``... --contender dense`` (prints one JSON line).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

BENCH_DIR = str(Path(__file__).resolve().parent)
sys.path.insert(0, BENCH_DIR)
from common import lenet_config, lenet_torch, mnist_arg, mnist_split  # noqa: E402

CONTENDERS = (
    "torch-1t-b32",
    "torch-1t-b32-cl",
    "torch-2t-b64",
    "td-local",
    "td-local-cl",
    "td-dataframe",
    "dense",
    "averaging",
    "threshold",
    "averaging-spark",
    "overhead-1m",
)


def load() -> str:
    return "load avg " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def _descendants(root: int) -> list[int]:
    """PIDs of every process below ``root`` (children, their children, ...), read from /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parents[int(entry)] = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, frontier = [], {root}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier}
        found.extend(frontier)
    return found


def worker_memory() -> tuple[int, int]:
    """Resident bytes of every PySpark Python worker process (the daemon and the workers it forked): the sum of
    their RSS (pages shared by the forked workers counted once per process) and of their PSS (shared pages
    split between the processes that share them, so the sum is what they occupy together)."""
    rss = pss = 0
    for pid in _descendants(os.getpid()):  # this contender's JVM and its workers, not other Spark apps
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"pyspark.daemon" not in cmd and b"pyspark.worker" not in cmd:
                continue
            pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
        except (OSError, ValueError, IndexError):
            continue
        rss += pages * os.sysconf("SC_PAGE_SIZE")
        pss += next((int(line.split()[1]) * 1024 for line in rollup if line.startswith("Pss:")), 0)
    return rss, pss


# ------------------------------------------------------------------------------------------ contenders


def run_torch(
    x: np.ndarray, y: np.ndarray, epochs: int, threads: int, batch: int, channels_last: bool = False
) -> dict[str, Any]:
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = lenet_torch()
    if channels_last:  # the layout deepspark's CPU convolutions use: what a torch user gets by asking for it
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    ends = []
    t0 = time.perf_counter()
    for epoch in range(epochs):
        order = torch.randperm(len(xs), generator=torch.Generator().manual_seed(epoch))
        for i in range(0, len(xs), batch):
            idx = order[i : i + batch]
            opt.zero_grad()
            loss_fn(model(xs[idx]), ys[idx]).backward()
            opt.step()
        ends.append(time.perf_counter())
    steady = len(x) * (epochs - 1) / (ends[-1] - ends[0])
    return {"steady": steady, "wall": ends[-1] - t0}


def ddp_train(
    x: np.ndarray, y: np.ndarray, epochs: int, batch: int, bench_dir: str, channels_last: bool = False
) -> float:
    """TorchDistributor's train function (local_mode=True): DDP over gloo, each rank on its half (``channels_last``:
    the model converted to the channels-last layout first, as a user tuning for CPU would)."""
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    sys.path.insert(0, bench_dir)
    from common import lenet_torch

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    plain = lenet_torch()
    model = DistributedDataParallel(plain.to(memory_format=torch.channels_last) if channels_last else plain)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    xs, ys = torch.from_numpy(x[rank::world]), torch.from_numpy(y[rank::world])
    ends = []
    for epoch in range(epochs):
        order = torch.randperm(len(xs), generator=torch.Generator().manual_seed(epoch))
        for i in range(0, len(xs), batch):
            idx = order[i : i + batch]
            opt.zero_grad()
            loss_fn(model(xs[idx]), ys[idx]).backward()
            opt.step()
        ends.append(time.perf_counter())
    dist.destroy_process_group()
    return len(xs) * world * (epochs - 1) / (ends[-1] - ends[0])


def ddp_dataframe_train(n_per_rank: int, epochs: int, batch: int, bench_dir: str) -> float:
    """TorchDistributor ``_train_on_dataframe``'s train function: the partition's rows through its data loader."""
    import torch
    import torch.distributed as dist
    from pyspark.ml.torch.distributor import _get_spark_partition_data_loader
    from torch.nn.parallel import DistributedDataParallel

    sys.path.insert(0, bench_dir)
    from common import lenet_torch

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    world = dist.get_world_size()
    torch.manual_seed(0)
    model = DistributedDataParallel(lenet_torch())
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    loader = _get_spark_partition_data_loader(n_per_rank, batch, num_workers=0)
    ends = []
    for _ in range(epochs):
        for features, labels in loader:
            opt.zero_grad()
            loss_fn(model(features.float()), labels.long()).backward()
            opt.step()
        ends.append(time.perf_counter())
    dist.destroy_process_group()
    return n_per_rank * world * (epochs - 1) / (ends[-1] - ends[0])


def frame(spark: Any, x: np.ndarray, y: np.ndarray, partitions: int) -> Any:
    """An ``array<float>`` features DataFrame (+ int label), built through Arrow, cached and counted."""
    import pandas as pd

    df = spark.createDataFrame(pd.DataFrame({"features": list(x.astype(np.float32)), "label": y.astype(np.int64)}))
    df = df.repartition(partitions).persist()
    df.count()
    return df


def run_spark_contender(name: str, x: np.ndarray, y: np.ndarray, epochs: int, batch: int) -> dict[str, Any]:
    from deepspark.spark import GradientSharing, ParameterAveraging, SparkNetwork, local_spark

    spark = local_spark("local[2]", app_name=f"deepspark-bench-{name}")
    try:
        df = frame(spark, x, y, 2)
        if name.startswith("td-"):
            from pyspark.ml.torch.distributor import TorchDistributor

            t0 = time.perf_counter()
            if name in ("td-local", "td-local-cl"):
                table = df.select("features", "label").toArrow()
                xs = np.stack(table.column("features").to_numpy(zero_copy_only=False)).astype(np.float32)
                ys = table.column("label").to_numpy().astype(np.int64)
                steady = TorchDistributor(num_processes=2, local_mode=True, use_gpu=False).run(
                    ddp_train, xs, ys, epochs, batch, BENCH_DIR, name == "td-local-cl"
                )
            else:
                distributor = TorchDistributor(num_processes=2, local_mode=False, use_gpu=False)
                steady = distributor._train_on_dataframe(
                    ddp_dataframe_train, df, len(x) // 2, epochs, batch, BENCH_DIR
                )
            return {"steady": float(steady), "wall": time.perf_counter() - t0}
        masters = {
            "dense": GradientSharing(num_workers=2, batch_size_per_worker=batch, encoding="dense"),
            "threshold": GradientSharing(num_workers=2, batch_size_per_worker=batch),
            "averaging": ParameterAveraging(num_workers=2, batch_size_per_worker=batch, averaging_frequency=10),
            "averaging-spark": ParameterAveraging(
                num_workers=2, batch_size_per_worker=batch, averaging_frequency=10, transport="spark"
            ),
        }
        ends: list[float] = []
        rss: list[int] = []
        pss: list[int] = []
        epoch_ends: dict[int, float] = {}

        def on_round(info: Any) -> None:
            epoch_ends[info.epoch] = time.perf_counter()  # the last round of an epoch wins
            if info.round == info.rounds_in_epoch - 1:
                resident, proportional = worker_memory()
                rss.append(resident)
                pss.append(proportional)

        spark_net = SparkNetwork(spark, lenet_config(seed=0), masters[name])
        t0 = time.perf_counter()
        spark_net.fit(df, epochs=epochs, on_round=on_round)
        wall = time.perf_counter() - t0
        ends = [epoch_ends[e] for e in sorted(epoch_ends)]
        steady = len(x) * (epochs - 1) / (ends[-1] - ends[0])
        return {
            "steady": steady, "wall": wall, "rss": max(rss, default=0), "pss": max(pss, default=0),
            "rss_epochs": rss, "pss_epochs": pss,
        }
    finally:
        spark.stop()


def run_overhead(params: int, rounds: int = 60) -> dict[str, Any]:
    """Round overhead of collective averaging at ~``params`` parameters: the ``average`` phase (all-reduce of the
    parameters and Adam's two moments, then the division), per round, from the workers' stats."""
    from deepspark.config import Adam, Dense, InputType, NetworkConfig, Output
    from deepspark.spark import ParameterAveraging, SparkNetwork, local_spark

    width = int((params / 1.0) ** 0.5)  # Dense(width) on width inputs: ~width^2 parameters
    conf = NetworkConfig(
        seed=0, updater=Adam(learning_rate=1e-3), input_type=InputType.feed_forward(width),
        layers=(Dense(n_out=width, activation="relu"), Output(n_out=10)),
    )
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rounds * 2 * 4, width)).astype(np.float32)
    y = rng.integers(0, 10, len(x)).astype(np.int64)
    spark = local_spark("local[2]", app_name="deepspark-bench-overhead")
    try:
        df = frame(spark, x, y, 2)
        master = ParameterAveraging(
            num_workers=2, batch_size_per_worker=4, averaging_frequency=1, collect_training_stats=True
        )
        spark_net = SparkNetwork(spark, conf, master)
        spark_net.fit(df, epochs=2)
        stats = spark_net.training_stats()
        average = sorted(e.duration for e in stats.events(phase="average") if e.round > rounds)  # 2nd epoch
        fit = sorted(e.duration for e in stats.events(phase="fit") if e.round > rounds)
        return {
            "params": spark_net.network.num_params(),
            "average_ms": 1000 * statistics.median(average),
            "fit_ms": 1000 * statistics.median(fit),
            "gc_s": sum(e.duration for e in stats.events(phase="gc")),
        }
    finally:
        spark.stop()


def torch_runtime_rss() -> int:
    """RSS of a process that imported torch (and numpy, pyarrow, pyspark's worker modules) and ran one step."""
    code = (
        f"import os,sys,numpy,pyarrow,torch; sys.path.insert(0, {BENCH_DIR!r}); import pyspark.worker;"
        "from common import lenet_torch; torch.set_num_threads(1); m=lenet_torch();"
        "o=torch.optim.Adam(m.parameters()); l=torch.nn.functional.cross_entropy(m(torch.zeros(32,784)),"
        "torch.zeros(32,dtype=torch.long)); l.backward(); o.step();"
        "print(int(open('/proc/self/statm').read().split()[1])*os.sysconf('SC_PAGE_SIZE'))"
    )
    return int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def contender(name: str, args: argparse.Namespace) -> dict[str, Any]:
    x, y, _, _ = mnist_split(args.mnist)
    if name in ("torch-1t-b32", "torch-1t-b32-cl"):
        return run_torch(x, y, args.epochs, 1, args.batch, channels_last=name.endswith("-cl"))
    if name == "torch-2t-b64":
        return run_torch(x, y, args.epochs, 2, 2 * args.batch)
    if name.startswith("overhead-"):
        return run_overhead(int(float(name.split("-")[1].rstrip("m")) * 1_000_000))
    return run_spark_contender(name, x, y, args.epochs, args.batch)


# ------------------------------------------------------------------------------------------ orchestration


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mnist_arg(parser)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default=",".join(CONTENDERS))
    parser.add_argument("--contender", help="run one contender in this process and print its JSON")
    args = parser.parse_args()
    if args.contender:
        print(json.dumps(contender(args.contender, args)), flush=True)
        return
    names = [n for n in args.only.split(",") if n]
    results: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    for r in range(args.rounds):
        for name in names:
            cmd = [sys.executable, __file__, "--contender", name, "--epochs", str(args.epochs)]
            cmd += ["--batch", str(args.batch), "--mnist", str(args.mnist)]
            print(f"round {r + 1}, {name}: {load()}", flush=True)
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                print(f"  failed: {done.stderr[-2000:]}", flush=True)
                continue
            result = json.loads(done.stdout.strip().splitlines()[-1])
            results[name].append(result)
            print(f"  {json.dumps(result)}", flush=True)
    runtime = torch_runtime_rss()
    data = 8000 // 2 * 784 * 4
    model = sum(p.numel() for p in lenet_torch().parameters()) * 4
    bound = 2 * (runtime + 2 * (data + model + 2 * model))
    print(f"\n{load()}; epochs {args.epochs}, batch {args.batch} per worker, "
          f"median of {args.rounds} fresh-process runs")
    print("| contender | steady samples/s | fit wall | workers' RSS / PSS (max over epochs) |")
    print("| --- | --- | --- | --- |")
    medians: dict[str, dict[str, float]] = {}
    for name, runs in results.items():
        if not runs:
            continue
        if name.startswith("overhead-"):
            ms = statistics.median(run["average_ms"] for run in runs)
            fit = statistics.median(run["fit_ms"] for run in runs)
            print(f"| {name}: {runs[0]['params']:,} params, averaging round overhead {ms:.1f} ms "
                  f"(target <= 20 ms; one minibatch fit {fit:.1f} ms) | | | |")
            continue
        med = {k: statistics.median(run[k] for run in runs) for k in ("steady", "wall") if k in runs[0]}
        for key in ("rss", "pss"):
            if key in runs[0]:
                med[key] = statistics.median(run[key] for run in runs)
        medians[name] = med
        rss = f"{med['rss'] / 2**20:,.0f} / {med['pss'] / 2**20:,.0f} MiB" if "pss" in med else ""
        print(f"| {name} | {med['steady']:,.0f} | {med['wall']:.1f} s | {rss} |")
    print(f"\ntorch runtime RSS {runtime / 2**20:,.0f} MiB; bound for 2 workers: {bound / 2**20:,.0f} MiB")
    ratios = [
        ("dense vs TorchDistributor local_mode=True", "dense", "td-local", "steady", 1.2),
        ("averaging vs dense", "averaging", "dense", "steady", 0.9),
        ("dense vs TorchDistributor local_mode=True, model in channels_last (no target)", "dense", "td-local-cl",
         "steady", None),
    ]
    for label, a, b, key, target in ratios:
        if a in medians and b in medians:
            goal = f"target >= {target}x" if target is not None else "for comparison"
            print(f"{label}: {medians[a][key] / medians[b][key]:.2f}x ({goal})")
    if "dense" in medians and "torch-1t-b32" in medians:
        limit = 2 * medians["torch-1t-b32"]["steady"]
        print(f"dense vs the 2-worker limit ({limit:,.0f}): {medians['dense']['steady'] / limit:.2f}x (target >= 0.8x)")
    if "dense" in medians and "torch-1t-b32-cl" in medians:
        limit = 2 * medians["torch-1t-b32-cl"]["steady"]
        print(f"dense vs the 2-worker limit with channels_last torch ({limit:,.0f}): "
              f"{medians['dense']['steady'] / limit:.2f}x (for comparison)")
    if "dense" in medians and "td-dataframe" in medians:
        ratio = medians["dense"]["wall"] / medians["td-dataframe"]["wall"]
        print(f"dense fit wall vs TorchDistributor _train_on_dataframe: {ratio:.2f}x (target <= 0.6x)")


if __name__ == "__main__":
    main()
