"""deepspark ``Network.fit`` samples/s vs a hand-written PyTorch loop: same model, data, batch size, one run.

Run: ``.venv/bin/python bench/bench_fit.py`` (uses the MNIST test set's first 8,000 images).
Rounds alternate between the contenders so drift on the machine hits all equally; the median of each is compared.
deepspark trains CPU convolutions channels-last; the third contender is the hand-written loop with the model
converted to that layout (``.to(memory_format=torch.channels_last)``), so the table shows what the layout is worth.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import lenet_config, lenet_torch, mnist_arg, mnist_split, torch_fit

from deepspark.nn import Network


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    mnist_arg(parser)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--examples", type=int, default=4000)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    x, y, _, _ = mnist_split(args.mnist)
    x, y = x[: args.examples], y[: args.examples]
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    ours, theirs, theirs_cl = [], [], []
    for r in range(args.rounds + 1):  # round 0 warms both up and is not counted
        net = Network(lenet_config(seed=r))
        t0 = time.perf_counter()
        net.fit(x, y, epochs=1, batch_size=args.batch_size)
        t_ours = time.perf_counter() - t0
        torch.manual_seed(r)
        model = lenet_torch()
        t0 = time.perf_counter()
        torch_fit(model, xt, yt, epochs=1, batch_size=args.batch_size, seed=r)
        t_theirs = time.perf_counter() - t0
        torch.manual_seed(r)
        model = lenet_torch().to(memory_format=torch.channels_last)
        t0 = time.perf_counter()
        torch_fit(model, xt, yt, epochs=1, batch_size=args.batch_size, seed=r)
        t_cl = time.perf_counter() - t0
        if r:
            ours.append(len(x) / t_ours)
            theirs.append(len(x) / t_theirs)
            theirs_cl.append(len(x) / t_cl)
            print(f"round {r}: deepspark {ours[-1]:,.0f} samples/s, torch loop {theirs[-1]:,.0f} samples/s, "
                  f"torch loop channels_last {theirs_cl[-1]:,.0f} samples/s")
    a, b, c = statistics.median(ours), statistics.median(theirs), statistics.median(theirs_cl)
    print(f"torch threads: {torch.get_num_threads()}, batch {args.batch_size}, {len(x)} examples per round")
    print(f"median: deepspark {a:,.0f} samples/s, hand-written torch {b:,.0f} samples/s, ratio {a / b:.3f}; "
          f"hand-written torch in channels_last {c:,.0f} samples/s, ratio {a / c:.3f}")


if __name__ == "__main__":
    main()
