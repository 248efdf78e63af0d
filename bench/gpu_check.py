"""Issue 17's GPU check: the one prepared script a session with a GPU runs (and, with ``--dry-run``, any CPU).

1. Throughput on one device: LeNet and the ResNet-style module (``deepspark_testmodels.resnet:small_resnet`` as a
   ``ModuleConfig``) trained by ``Network(device=...)`` vs a plain PyTorch loop over the same module, data and
   batches (pinned host batches copied non-blocking, as a ``DataLoader(pin_memory=True)`` loop does), per
   precision. Target: deepspark >= 0.9x the plain loop's samples/s.
2. GradientSharing on Spark with two ranks on the GPU(s) (NCCL when there are two GPUs, two gloo ranks sharing
   one GPU otherwise; the GPUs reach the tasks through Spark's resource scheduling on ``local-cluster`` with a
   discovery script), against the same fit on the CPU: test accuracies within ``--accuracy-gap``.

Every measurement runs in a fresh child process. Output: one JSON line per measurement, then a Markdown table
(``--out`` writes it to a file for docs/gpu.md). Needs: a CUDA build of torch 2.x, pyspark, Java 17+ for part 2
(``--skip-spark`` leaves it out), and the MNIST test set (``--mnist``; the split is 8k train / 2k test).

    python bench/gpu_check.py --out gpu-check.md                 # on the GPU machine, ~3-6 min
    nice -n 19 .venv/bin/python bench/gpu_check.py --dry-run     # CPU, tiny sizes: checks the script runs
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SUPPORT = HERE.parent / "tests" / "support"  # deepspark_testmodels (the ResNet-style module)
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(SUPPORT))
from common import lenet_config, lenet_torch, mnist_arg, mnist_split

RESNET_KWARGS = {"channels": 32, "blocks": 2}
THROUGHPUT_TARGET = 0.9


# ----------------------------------------------------------------------------- part 1: one device, two loops


def _model(name: str, precision: str, seed: int, small: bool) -> tuple[Any, Any]:
    """(deepspark config, the same architecture as a plain torch module)."""
    import dataclasses

    from deepspark_testmodels.resnet import small_resnet

    from deepspark.config import Adam, ModuleConfig

    if name == "lenet":
        return dataclasses.replace(lenet_config(seed), precision=precision), lenet_torch()
    kwargs = {"channels": 8, "blocks": 1} if small else RESNET_KWARGS
    conf = ModuleConfig(factory="deepspark_testmodels.resnet:small_resnet", kwargs=kwargs, input_shape=(1, 28, 28),
                        n_out=10, loss="mcxent", updater=Adam(learning_rate=1e-3), seed=seed, precision=precision)
    return conf, small_resnet(**kwargs)  # type: ignore[arg-type]


def _plain_fit(module: Any, x: Any, y: Any, epochs: int, batch: int, device: Any, precision: str, seed: int,
               shape: tuple[int, ...]) -> None:
    """The plain PyTorch loop: host batches pinned and copied non-blocking, autocast for bf16/fp16, Adam."""
    import torch

    opt = torch.optim.Adam(module.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    module.train()
    for epoch in range(epochs):
        order = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed + epoch))
        for start in range(0, x.shape[0], batch):
            idx = order[start : start + batch]
            xb, yb = x[idx], y[idx]
            if device.type == "cuda":
                xb, yb = xb.pin_memory(), yb.pin_memory()
            xb, yb = xb.to(device, non_blocking=True).view(-1, *shape), yb.to(device, non_blocking=True)
            opt.zero_grad(set_to_none=False)
            with torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext():
                out = module(xb)
            loss = loss_fn(out.float(), yb)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()


def throughput(args: argparse.Namespace, name: str, precision: str) -> dict[str, Any]:
    """Samples/s of deepspark's Network and of the plain loop, same model, data, device and precision."""
    import torch

    from deepspark.nn import Network

    device = torch.device(args.device)
    x_train, y_train, x_test, y_test = mnist_split(args.mnist, args.train)
    conf, module = _model(name, precision, args.seed, args.dry_run)
    shape = (784,) if name == "lenet" else (1, 28, 28)  # LeNet's torch twin unflattens by itself
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda *_: None)
    warm = min(len(x_train), 1024)

    net = Network(conf, device=args.device)
    net.fit(x_train[:warm], y_train[:warm], epochs=1, batch_size=args.batch_size, verbose=0)  # CUDA init, autotune
    sync()
    t0 = time.perf_counter()
    net.fit(x_train, y_train, epochs=args.epochs, batch_size=args.batch_size, verbose=0)
    sync()
    ours = len(x_train) * args.epochs / (time.perf_counter() - t0)
    accuracy = float(net.evaluate(x_test, y_test).accuracy())

    torch.manual_seed(args.seed)
    module = module.to(device)
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train.astype("int64"))
    _plain_fit(module, xt[:warm], yt[:warm], 1, args.batch_size, device, precision, args.seed, shape)
    sync()
    t0 = time.perf_counter()
    _plain_fit(module, xt, yt, args.epochs, args.batch_size, device, precision, args.seed, shape)
    sync()
    plain = len(x_train) * args.epochs / (time.perf_counter() - t0)
    return {
        "part": "throughput", "model": name, "precision": precision, "device": str(net.device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else "",
        "deepspark_samples_per_s": round(ours, 1), "plain_torch_samples_per_s": round(plain, 1),
        "ratio": round(ours / plain, 3), "deepspark_accuracy": round(accuracy, 4),
        "train": len(x_train), "epochs": args.epochs, "batch_size": args.batch_size,
        "load_avg": round(os.getloadavg()[0], 2),
    }


# ----------------------------------------------------------------------------- part 2: GradientSharing on Spark


def _discovery_script(folder: Path, gpus: int) -> Path:
    script = folder / "discover_gpus.sh"
    addresses = ", ".join(f'"{i}"' for i in range(gpus))
    script.write_text(f'#!/bin/sh\necho \'{{"name": "gpu", "addresses": [{addresses}]}}\'\n', encoding="ascii")
    script.chmod(0o755)
    return script


def sharing(args: argparse.Namespace, on: str) -> dict[str, Any]:
    """One GradientSharing fit with two ranks on ``on`` ("gpu": Spark assigns the GPUs; "cpu"); test accuracy."""
    import logging

    import torch
    from common import frame

    from deepspark.spark import GradientSharing, SparkNetwork, local_spark

    logging.basicConfig(level=logging.INFO, format="%(name)s %(levelname)s %(message)s")
    x_train, y_train, x_test, y_test = mnist_split(args.mnist, args.train)
    conf = {"spark.driver.memory": "4g"}
    gpus = torch.cuda.device_count() if on == "gpu" else 0
    with tempfile.TemporaryDirectory() as folder:
        if gpus:
            master_url = "local-cluster[1,2,8192]"  # Spark's resource scheduling needs executors of their own
            conf.update({
                "spark.worker.resource.gpu.amount": str(gpus),
                "spark.worker.resource.gpu.discoveryScript": str(_discovery_script(Path(folder), gpus)),
                "spark.executor.resource.gpu.amount": str(gpus),
                # two GPUs: one per task (NCCL); one GPU: two gloo ranks share it
                "spark.task.resource.gpu.amount": "1" if gpus >= 2 else "0.5",
            })
        else:
            master_url = "local[2]"
            conf["spark.deepspark.device"] = "cpu"
        spark = local_spark(master_url, app_name="deepspark-gpu-check", conf=conf)
        try:
            train_df = frame(spark, x_train, y_train, 2)
            test_df = frame(spark, x_test, y_test, 2)
            master = GradientSharing(num_workers=2, batch_size_per_worker=32, seed=args.seed,
                                     encoding=args.encoding, collect_training_stats=True)
            spark_net = SparkNetwork(spark, lenet_config(args.seed), master)
            t0 = time.perf_counter()
            spark_net.fit(train_df, epochs=args.epochs)
            seconds = time.perf_counter() - t0
            accuracy = float(spark_net.evaluate(test_df).accuracy())
            backends = sorted({str(e.detail.get("backend")) for e in spark_net.training_stats().events(
                phase="rendezvous")})
        finally:
            spark.stop()
    return {
        "part": "sharing", "on": on, "gpus": gpus, "backend": ",".join(backends), "encoding": args.encoding,
        "accuracy": round(accuracy, 4), "samples_per_s": round(len(x_train) * args.epochs / seconds, 1),
        "train": len(x_train), "epochs": args.epochs, "load_avg": round(os.getloadavg()[0], 2),
    }


# ----------------------------------------------------------------------------- driver


def _child(args: argparse.Namespace, extra: list[str]) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--mnist", str(args.mnist), "--device", args.device, "--epochs",
           str(args.epochs), "--train", str(args.train), "--batch-size", str(args.batch_size), "--seed",
           str(args.seed), "--encoding", args.encoding, *(["--dry-run"] if args.dry_run else []), *extra]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SUPPORT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"part": " ".join(extra), "error": (done.stderr or done.stdout)[-2000:]}
    return json.loads(lines[-1])  # type: ignore[no-any-return]


def table(rows: list[dict[str, Any]], gap: float) -> str:
    """The Markdown summary for docs/gpu.md."""
    out = ["| check | setting | deepspark | plain PyTorch / CPU | ratio / gap | verdict |",
           "| --- | --- | --- | --- | --- | --- |"]
    cpu = next((r for r in rows if r.get("part") == "sharing" and r.get("on") == "cpu"), None)
    for r in rows:
        if "error" in r:
            out.append(f"| {r['part']} | | | | | ERROR: {r['error'].splitlines()[-1] if r['error'] else ''} |")
        elif r["part"] == "throughput":
            ok = r["ratio"] >= THROUGHPUT_TARGET
            where = f"{r['device']} ({r['gpu']})" if r["gpu"] else r["device"]
            out.append(f"| {r['model']} on {where} | {r['precision']}, batch {r['batch_size']} | "
                       f"{r['deepspark_samples_per_s']} samples/s (acc {r['deepspark_accuracy']}) | "
                       f"{r['plain_torch_samples_per_s']} samples/s | {r['ratio']}x | "
                       f"{'PASS' if ok else 'FAIL'} (>= {THROUGHPUT_TARGET}x) |")
        elif r["on"] == "gpu" and cpu is not None and "accuracy" in cpu:
            diff = r["accuracy"] - cpu["accuracy"]
            out.append(f"| GradientSharing, 2 ranks on {r['gpus']} GPU(s) | {r['backend']}, {r['encoding']} | "
                       f"acc {r['accuracy']}, {r['samples_per_s']} samples/s | acc {cpu['accuracy']} (CPU, "
                       f"{cpu['samples_per_s']} samples/s) | {diff * 100:+.2f} points | "
                       f"{'PASS' if abs(diff) <= gap else 'FAIL'} (<= {gap * 100:.1f}) |")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mnist_arg(parser)
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes: check that the script runs")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--models", default="lenet,resnet")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train", type=int, default=8000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--encoding", choices=["threshold", "dense"], default="threshold")
    parser.add_argument("--accuracy-gap", type=float, default=0.01)
    parser.add_argument("--skip-spark", action="store_true")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--only", nargs="+", help=argparse.SUPPRESS)  # a child: one measurement
    args = parser.parse_args()
    if args.dry_run and "--device" not in sys.argv:
        args.device = "cpu"
    if args.dry_run and args.only is None:
        args.epochs, args.train = 1, 1500
    if args.only:
        kind, *rest = args.only
        row = throughput(args, rest[0], rest[1]) if kind == "throughput" else sharing(args, rest[0])
        print(json.dumps(row), flush=True)
        return
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("gpu_check: torch sees no CUDA device here; run with --dry-run on a CPU-only machine")
    rows = []
    for model in args.models.split(","):
        for precision in args.precisions.split(","):
            rows.append(_child(args, ["--only", "throughput", model, precision]))
            print(json.dumps(rows[-1]), flush=True)
    if not args.skip_spark:
        for on in ("cpu", "gpu"):  # without CUDA (--dry-run) the "gpu" fit runs on the CPU too
            rows.append(_child(args, ["--only", "sharing", on]))
            print(json.dumps(rows[-1]), flush=True)
    text = table(rows, args.accuracy_gap)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
