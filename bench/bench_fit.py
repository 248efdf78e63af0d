"""deepspark ``Network.fit`` samples/s vs a hand-written PyTorch loop: same model, data, batch size and seed.

Run: ``.venv/bin/python bench/bench_fit.py [--mnist DIR] [--rounds 3] [--examples 4000]`` (the MNIST test set's
first ``--examples`` images). Each contender runs in a fresh process (one untimed warm-up epoch, then one timed
epoch); contenders alternate, and the table compares the medians over ``--rounds`` such processes.
deepspark trains CPU convolutions channels-last; the third contender is the hand-written loop with the model
converted to that layout (``.to(memory_format=torch.channels_last)``), so the table shows what the layout is worth.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import lenet_config, lenet_torch, mnist_arg, mnist_split, torch_fit

CONTENDERS = ("deepspark Network.fit", "hand-written torch", "hand-written torch, channels_last")


def contender(name: str, args: argparse.Namespace) -> float:
    """Samples/s of one timed epoch of ``name``, in this (fresh) process, after one warm-up epoch."""
    import torch

    from deepspark.nn import Network

    x, y, _, _ = mnist_split(args.mnist)
    x, y = x[: args.examples], y[: args.examples]
    if name == CONTENDERS[0]:
        net = Network(lenet_config(seed=0))

        def epoch(seed: int) -> None:
            net.fit(x, y, epochs=1, batch_size=args.batch_size)
    else:
        torch.manual_seed(0)
        model = lenet_torch()
        if name == CONTENDERS[2]:
            model = model.to(memory_format=torch.channels_last)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)

        def epoch(seed: int) -> None:
            torch_fit(model, xt, yt, epochs=1, batch_size=args.batch_size, seed=seed)

    epoch(0)
    t0 = time.perf_counter()
    epoch(1)
    return len(x) / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    mnist_arg(parser)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--examples", type=int, default=4000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--contender", type=int, help="run one contender in this process and print its JSON")
    args = parser.parse_args()
    if args.contender is not None:
        print(json.dumps({"samples_per_s": contender(CONTENDERS[args.contender], args)}), flush=True)
        return
    rates: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    for r in range(args.rounds):
        for i, name in enumerate(CONTENDERS):
            cmd = [sys.executable, __file__, "--contender", str(i), "--mnist", str(args.mnist),
                   "--examples", str(args.examples), "--batch-size", str(args.batch_size)]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"{name} failed: {done.stderr[-2000:]}")
            rates[name].append(json.loads(done.stdout.strip().splitlines()[-1])["samples_per_s"])
            print(f"round {r + 1}, {name}: {rates[name][-1]:,.0f} samples/s; load avg {os.getloadavg()[0]:.2f}",
                  flush=True)
    med = {name: statistics.median(v) for name, v in rates.items()}
    ours = med[CONTENDERS[0]]
    print(f"\nbatch {args.batch_size}, {args.examples} examples, torch's default threads, median of {args.rounds} "
          "fresh-process runs each, alternating")
    print("| contender | samples/s | deepspark vs it |\n| --- | --- | --- |")
    for name, rate in med.items():
        print(f"| {name} | {rate:,.0f} | {ours / rate:.3f} |")
    print(f"load avg {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
