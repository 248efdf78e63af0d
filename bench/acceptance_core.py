"""Acceptance figures of the core issue: digits MLP accuracy, MNIST LeNet accuracy, memory_report vs peak.

Run: ``.venv/bin/python bench/acceptance_core.py [--mnist DIR] [--skip-mnist]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import lenet_config, mnist_arg, mnist_split

from deepspark.config import Adam, Dense, InputType, NetworkConfig, Output
from deepspark.data import load_digits, train_test_split
from deepspark.nn import EvaluativeListener, Network


def digits_mlp() -> float:
    x, y = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_fraction=0.2, seed=0)
    conf = NetworkConfig(
        seed=0,
        updater=Adam(learning_rate=1e-3),
        input_type=InputType.feed_forward(64),
        layers=(Dense(n_out=256, activation="relu"), Output(n_out=10)),
    )
    net = Network(conf)
    net.fit(x_train, y_train, epochs=40, batch_size=32)
    return net.evaluate(x_test, y_test).accuracy()


def mnist_lenet(directory: Path, epochs: int) -> list[tuple[int, float]]:
    x_train, y_train, x_test, y_test = mnist_split(directory)
    listener = EvaluativeListener(x_test, y_test, sink=lambda s: print("  " + s, flush=True))
    net = Network(lenet_config(seed=0)).add_listeners(listener)
    t0 = time.perf_counter()
    net.fit(x_train, y_train, epochs=epochs, batch_size=64)
    print(f"  LeNet: {epochs} epochs on {len(x_train)} images in {time.perf_counter() - t0:.0f} s")
    return [(epoch, ev.accuracy()) for epoch, ev in listener.results]


def measured_peak_bytes(net: Network, batch_size: int) -> tuple[int, int]:
    """(peak bytes of a training step, bytes allocated before it) from torch's profiler memory events."""
    x = torch.rand(batch_size, 784)
    y = torch.randint(0, 10, (batch_size,))
    net.fit_batch((x, y, None, None))  # warm-up: lazily created buffers exist before measuring
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        net.fit_batch((x, y, None, None))
    with tempfile.TemporaryDirectory() as d:
        trace = Path(d) / "trace.json"
        prof.export_chrome_trace(str(trace))
        events = json.loads(trace.read_text())["traceEvents"]
    transient = max((int(e["args"]["Total Allocated"]) for e in events if e.get("name") == "[memory]"), default=0)
    static = (net.flat.params.numel() + net.flat.grads.numel() + net.updater.state.numel()) * 4
    static += x.numel() * 4 + y.numel() * 8
    return static + transient, static


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    mnist_arg(parser)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--skip-mnist", action="store_true")
    args = parser.parse_args()

    print(f"digits MLP (80/20 split, seed 0): test accuracy {digits_mlp():.4f}", flush=True)

    net = Network(lenet_config())
    report = net.memory_report(64)
    peak, static = measured_peak_bytes(net, 64)
    print(report)
    print(
        f"LeNet batch 64: memory_report total {report.total:,} B, measured peak {peak:,} B "
        f"(static {static:,} B + transient {peak - static:,} B), estimate/measured = {report.total / peak:.3f}"
    )

    if not args.skip_mnist:
        print(f"MNIST LeNet (first 8,000 train / last 2,000 test), {args.epochs} epochs:", flush=True)
        results = mnist_lenet(args.mnist, args.epochs)
        best_epoch, best = max(results, key=lambda r: r[1])
        print(f"  final accuracy {results[-1][1]:.4f}; best {best:.4f} after epoch {best_epoch}")


if __name__ == "__main__":
    main()
