"""Issue 17's CPU acceptance: LeNet on the MNIST test-set split (8k train / 2k test), bf16 autocast vs fp32.

Each precision trains in a fresh process (no JIT or allocator state carries over), on the same seed, data order
and updater; the script prints one JSON line per run and a verdict: bf16 test accuracy within 0.5 points of fp32,
and both samples/s. The load average is printed because other work on the machine changes samples/s.

    nice -n 19 .venv/bin/python bench/acceptance_gpu.py                 # both precisions, verdict
    nice -n 19 .venv/bin/python bench/acceptance_gpu.py --one bf16      # one run (what the parent calls)

``--device cuda`` runs the same comparison on a GPU (``--precision`` list may then include fp16).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import lenet_config, mnist_arg, mnist_split

TOLERANCE = 0.005  # half a point of test accuracy


def one_run(args: argparse.Namespace, precision: str) -> dict[str, object]:
    """Train and evaluate one precision in this process; returns its JSON row."""
    import dataclasses

    import torch

    from deepspark.nn import Network

    x_train, y_train, x_test, y_test = mnist_split(args.mnist)
    conf = dataclasses.replace(lenet_config(args.seed), precision=precision)
    net = Network(conf, device=args.device)
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    net.fit(x_train, y_train, epochs=args.epochs, batch_size=args.batch_size, verbose=0)
    if net.device.type == "cuda":
        torch.cuda.synchronize(net.device)
    seconds = time.perf_counter() - t0
    accuracy = net.evaluate(x_test, y_test).accuracy()
    return {
        "precision": precision,
        "device": str(net.device),
        "accuracy": round(float(accuracy), 4),
        "samples_per_s": round(len(x_train) * args.epochs / seconds, 1),
        "fit_seconds": round(seconds, 2),
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "torch_threads": torch.get_num_threads(),
        "load_avg_before": [round(v, 2) for v in load_before],
        "load_avg_after": [round(v, 2) for v in os.getloadavg()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mnist_arg(parser)
    parser.add_argument("--one", choices=["fp32", "bf16", "fp16"], help="run one precision in this process")
    parser.add_argument("--precisions", default="fp32,bf16", help="comma-separated precisions to compare")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_run(args, args.one)), flush=True)
        return
    rows = {}
    for precision in args.precisions.split(","):
        cmd = [sys.executable, __file__, "--one", precision, "--mnist", str(args.mnist), "--device", args.device,
               "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--seed", str(args.seed)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        rows[precision] = json.loads(out.strip().splitlines()[-1])
        print(json.dumps(rows[precision]), flush=True)
    base = rows.get("fp32")
    for precision, row in rows.items():
        if base is None or precision == "fp32":
            continue
        gap = float(base["accuracy"]) - float(row["accuracy"])  # type: ignore[arg-type]
        verdict = "PASS" if gap <= TOLERANCE else "FAIL"
        print(f"{verdict}: {precision} accuracy {row['accuracy']} vs fp32 {base['accuracy']} (gap {gap * 100:+.2f} "
              f"points, limit {TOLERANCE * 100:.1f}); samples/s {precision} {row['samples_per_s']} vs fp32 "
              f"{base['samples_per_s']}; load average {os.getloadavg()[0]:.2f}", flush=True)


if __name__ == "__main__":
    main()
