"""LeNet inference on one CPU thread: ``Network.output`` against the same network written in plain PyTorch.

8,192 random MNIST-shaped rows, batches of 1,024 (and, for ``Network.output`` with ``batch_size`` left out, the
batch the network picks: ``Network.inference_batch_size``, 64 rows for LeNet), ``torch.set_num_threads(1)``
(what each Spark task gets).
Each contender runs in a fresh process (3 timed passes after one warm-up, the best kept), contenders
alternate, and the table shows the median over ``--rounds`` such processes.

Contenders: deepspark's ``Network.output`` (convolutions run
channels-last on CPU), the hand-written ``nn.Sequential`` in the default NCHW layout, and the same
module converted with ``.to(memory_format=torch.channels_last)``. All three hold the same parameters.

Run: ``.venv/bin/python bench/bench_inference.py [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import lenet_config, lenet_torch

from deepspark.nn import Network

CONTENDERS = (
    "Network.output, batch 1,024",
    "plain torch, NCHW, batch 1,024",
    "plain torch, channels_last, batch 1,024",
    "Network.output, batch left to the network",
)


def rate(fn: Callable[[], object], rows: int) -> float:
    fn()
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return rows / min(times)


def contender(name: str) -> float:
    """Rows/s of one contender, in this (fresh) process."""
    torch.set_num_threads(1)
    net = Network(lenet_config(seed=0))
    plain = lenet_torch().eval()
    with torch.no_grad():  # the same parameters, in the same order and shapes
        for mine, theirs in zip(net.model.parameters(), plain.parameters(), strict=True):
            theirs.copy_(mine)
    x = np.random.default_rng(0).random((8192, 784), dtype=np.float32)
    if name == CONTENDERS[0]:
        return rate(lambda: net.output(x, batch_size=1024), len(x))
    if name == CONTENDERS[3]:
        return rate(lambda: net.output(x), len(x))
    module = plain if name == CONTENDERS[1] else plain.to(memory_format=torch.channels_last)
    xt = torch.from_numpy(x)

    def run() -> object:
        with torch.inference_mode():
            return [torch.softmax(module(xt[i : i + 1024]), dim=1) for i in range(0, len(xt), 1024)]

    check = np.abs(net.output(x[:1024]) - run()[0].numpy()).max()  # type: ignore[index]
    if check > 1e-5:
        raise SystemExit(f"{name}: outputs differ from Network.output by {check:.1e}")
    return rate(run, len(x))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--contender", type=int)
    args = parser.parse_args()
    if args.contender is not None:
        print(json.dumps({"rows_per_s": contender(CONTENDERS[args.contender])}), flush=True)
        return
    rates: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    for r in range(args.rounds):
        for i, name in enumerate(CONTENDERS):
            done = subprocess.run([sys.executable, __file__, "--contender", str(i)], capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"{name} failed: {done.stderr[-2000:]}")
            rates[name].append(json.loads(done.stdout.strip().splitlines()[-1])["rows_per_s"])
            load = os.getloadavg()[0]
            print(f"round {r + 1}, {name}: {rates[name][-1]:,.0f} rows/s; load avg {load:.2f}", flush=True)
    med = {name: statistics.median(v) for name, v in rates.items()}
    base = med[CONTENDERS[1]]
    print(f"\nmedian of {args.rounds} fresh-process runs each, alternating")
    print("| contender | rows/s | vs plain torch NCHW |\n| --- | --- | --- |")
    for name, r in med.items():
        print(f"| {name} | {r:,.0f} | {r / base:.2f}x |")
    print(f"load avg {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
