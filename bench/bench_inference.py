"""LeNet inference on one CPU thread: ``Network.output`` against the same network written in plain PyTorch.

8,192 random MNIST-shaped rows, batches of 1,024, ``torch.set_num_threads(1)`` (what each Spark task gets);
median of ``--rounds`` passes after one warm-up. Contenders: deepspark's ``Network.output`` (convolutions run
channels-last during inference), the hand-written ``nn.Sequential`` in the default NCHW layout, and the same
module converted with ``.to(memory_format=torch.channels_last)``. All three hold the same parameters.

Run: ``.venv/bin/python bench/bench_inference.py [--rounds 5]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import lenet_config, lenet_torch

from deepspark.nn import Network


def rate(fn: Callable[[], object], rows: int, rounds: int) -> float:
    fn()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return rows / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    net = Network(lenet_config(seed=0))
    plain = lenet_torch().eval()
    with torch.no_grad():  # the same parameters, in the same order and shapes
        for mine, theirs in zip(net.model.parameters(), plain.parameters(), strict=True):
            theirs.copy_(mine)
    nhwc = lenet_torch().eval()
    nhwc.load_state_dict(plain.state_dict())
    nhwc = nhwc.to(memory_format=torch.channels_last)
    x = np.random.default_rng(0).random((8192, 784), dtype=np.float32)
    xt = torch.from_numpy(x)

    def torch_pass(module: torch.nn.Module) -> Callable[[], object]:
        def run() -> object:
            with torch.inference_mode():
                return [torch.softmax(module(xt[i : i + 1024]), dim=1) for i in range(0, len(xt), 1024)]

        return run

    check = np.abs(net.output(x[:256]) - torch_pass(plain)()[0][:256].numpy()).max()  # type: ignore[index]
    print(f"same network: max |difference| of the outputs {check:.1e}; load avg {os.getloadavg()[0]:.2f}")
    rates = {
        "Network.output (channels-last inference)": rate(lambda: net.output(x, batch_size=1024), len(x), args.rounds),
        "plain torch, NCHW": rate(torch_pass(plain), len(x), args.rounds),
        "plain torch, channels_last": rate(torch_pass(nhwc), len(x), args.rounds),
    }
    base = rates["plain torch, NCHW"]
    print("| contender | rows/s | vs plain torch NCHW |\n| --- | --- | --- |")
    for name, r in rates.items():
        print(f"| {name} | {r:,.0f} | {r / base:.2f}x |")
    print(f"load avg {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
