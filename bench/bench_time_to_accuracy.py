"""Time to accuracy: dense gradient sharing, threshold gradient sharing, parameter averaging and one machine on
the same job (issue 11): MNIST test-set split (8k train / 2k test), LeNet, Adam 1e-3, 2 workers x batch 32 on
``local[2]`` (one machine: ``Network.fit`` at batch 64, the same examples per step, one torch thread as each
Spark worker has; ``--threads`` to change), 5 epochs.

Each contender runs in a fresh process (``--contender NAME --out FILE``); without ``--contender`` the script
runs all four that way, one after the other, prints the table and writes the two-panel PNG (test accuracy vs
wall seconds and vs epochs):

    nice -n 19 .venv/bin/python bench/bench_time_to_accuracy.py --png docs/gradient-sharing-time-to-accuracy.png

The clock starts when ``fit`` is called (the data frames are built and cached before) and stops at every
epoch's end; the test-set evaluation after each epoch (in a callback, on the driver) is not counted.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import frame, lenet_config, mnist_arg, mnist_split

from deepspark.nn import Network
from deepspark.nn.callbacks import Callback, FitLoop
from deepspark.spark.thresholds import AdaptiveThreshold

CONTENDERS = ("dense", "threshold", "averaging", "one-machine")
LABELS = {
    "dense": "gradient sharing, dense",
    "threshold": "gradient sharing, threshold",
    "averaging": "parameter averaging (every 10)",
    "one-machine": "one machine (Network.fit, batch 64)",
}


class Clock(Callback):
    """Stops the clock at each epoch's end, evaluates the driver's network on the test set, restarts it."""

    def __init__(self, x_test: np.ndarray, y_test: np.ndarray) -> None:
        self.x, self.y = x_test, y_test
        self.start = time.perf_counter()
        self.paused = 0.0
        self.rows: list[dict[str, float]] = []

    def on_epoch_end(self, loop: FitLoop, epoch: int, logs: dict[str, float]) -> None:
        now = time.perf_counter()
        out = loop.network.output(self.x)
        acc = float((np.asarray(out).argmax(1) == self.y).mean())
        self.rows.append({"epoch": epoch + 1, "seconds": now - self.start - self.paused, "accuracy": acc})
        self.paused += time.perf_counter() - now


def run_one(name: str, args: argparse.Namespace) -> dict[str, Any]:
    x_train, y_train, x_test, y_test = mnist_split(args.mnist)
    conf = lenet_config(seed=args.seed)
    if name == "one-machine":
        import torch

        # one thread, as each Spark worker runs: on a busy 2-core machine two intra-op threads made this
        # contender 8x slower (158 s instead of ~20 s for 5 epochs), a measurement of contention, not of fit
        torch.set_num_threads(args.threads)
        net = Network(conf)
        clock = Clock(x_test, y_test)
        net.fit(x_train, y_train, epochs=args.epochs, batch_size=32 * args.workers, callbacks=[clock], verbose=0)
        return {"contender": name, "rows": clock.rows}

    from deepspark.spark import GradientSharing, ParameterAveraging, SparkNetwork, local_spark

    spark = local_spark(f"local[{args.workers}]", app_name="deepspark-time-to-accuracy")
    try:
        train_df = frame(spark, x_train, y_train, args.workers)
        master: Any
        if name == "averaging":
            master = ParameterAveraging(
                num_workers=args.workers, batch_size_per_worker=32, averaging_frequency=10, seed=args.seed
            )
        else:
            encoding: Literal["dense", "threshold"] = "dense" if name == "dense" else "threshold"
            master = GradientSharing(
                num_workers=args.workers,
                batch_size_per_worker=32,
                encoding=encoding,
                seed=args.seed,
                threshold_algorithm=AdaptiveThreshold(max_sparsity=args.max_sparsity),
            )
        spark_net = SparkNetwork(spark, conf, master)
        clock = Clock(x_test, y_test)
        spark_net.fit(train_df, epochs=args.epochs, callbacks=[clock], verbose=0)
    finally:
        spark.stop()
    return {"contender": name, "rows": clock.rows}


def plot(results: list[dict[str, Any]], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for res in results:
        rows = res["rows"]
        sec = [r["seconds"] for r in rows]
        ep = [r["epoch"] for r in rows]
        acc = [r["accuracy"] for r in rows]
        label = LABELS[res["contender"]]
        left.plot(sec, acc, marker="o", label=label)
        right.plot(ep, acc, marker="o", label=label)
    for ax, xlabel in ((left, "wall seconds (training only)"), (right, "epochs")):
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test accuracy")
        ax.set_ylim(0.94, 1.0)
        ax.grid(alpha=0.3)
    left.set_xlim(left=0)
    left.set_title("test accuracy vs wall time")
    right.set_title("test accuracy vs epochs")
    right.legend(loc="lower right", fontsize=8)
    fig.suptitle("MNIST 8k/2k, LeNet, Adam 1e-3, 2 workers x 32 on local[2] (shared 2-core machine)", fontsize=10)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)


def table(results: list[dict[str, Any]]) -> str:
    epochs = max(len(r["rows"]) for r in results)
    head = "| contender | " + " | ".join(f"epoch {e + 1}: acc (s)" for e in range(epochs)) + " |"
    lines = [head, "| --- " * (epochs + 1) + "|"]
    for res in results:
        cells = [f"{r['accuracy']:.4f} ({r['seconds']:.0f} s)" for r in res["rows"]]
        lines.append(f"| {LABELS[res['contender']]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mnist_arg(parser)
    parser.add_argument("--contender", choices=CONTENDERS, help="run only this one (in this process)")
    parser.add_argument("--only", nargs="*", choices=CONTENDERS, default=list(CONTENDERS))
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="one machine: torch intra-op threads")
    parser.add_argument(
        "--max-sparsity", type=float, default=AdaptiveThreshold().max_sparsity, help="AdaptiveThreshold's upper end"
    )
    parser.add_argument("--out", type=Path, help="with --contender: write the result JSON here")
    parser.add_argument("--json", type=Path, help="write all results as JSON")
    parser.add_argument("--replot", type=Path, help="only redraw the PNG and table from a --json file")
    parser.add_argument("--png", type=Path, default=Path("docs/gradient-sharing-time-to-accuracy.png"))
    args = parser.parse_args()
    if args.contender:
        result = run_one(args.contender, args)
        text = json.dumps(result)
        if args.out:
            args.out.write_text(text)
        print(text, flush=True)
        return
    if args.replot:
        results = json.loads(args.replot.read_text())
        plot(results, args.png)
        print(table(results))
        return
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only:
            out = Path(tmp) / f"{name}.json"
            cmd = [sys.executable, __file__, "--contender", name, "--out", str(out), "--mnist", str(args.mnist)]
            cmd += ["--epochs", str(args.epochs), "--workers", str(args.workers), "--seed", str(args.seed)]
            cmd += ["--threads", str(args.threads), "--max-sparsity", str(args.max_sparsity)]
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            results.append(json.loads(out.read_text()))
            last = results[-1]["rows"][-1]
            print(f"{name}: {last['accuracy']:.4f} after {last['seconds']:.0f} s", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    plot(results, args.png)
    print(table(results))
    print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
