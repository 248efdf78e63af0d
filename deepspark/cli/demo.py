"""``deepspark demo``: a small CNN on scikit-learn's bundled digits, trained on Spark (or on one machine).

The demo is a new user's first contact: it says which data it uses, keeps Spark's own log in a file
next to its results, explains the training advice that data this small always earns, and stops on
Ctrl-C with one line.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from deepspark.nn.listeners import IterationInfo, TrainingListener

BATCH_SIZE = 32
"""Minibatch size per worker (and on one machine)."""

SMALL_DATA_NOTE = (
    "note: the digits set is tiny ({n_train:,} training images of 8x8 pixels), so each round costs Spark "
    "more time to schedule than the workers spend computing; warnings about the driver's overhead or small "
    "iterations are expected here. On your own data, follow them; on data this small, one machine "
    "(`deepspark demo --no-spark`) is faster."
)


class ProgressBar(TrainingListener):
    """A one-line progress bar for ``Network.fit`` (a training listener), with score and examples/s."""

    def __init__(self, total_iterations: int, stream: TextIO | None = None, width: int = 30) -> None:
        self.total = max(total_iterations, 1)
        self.stream = stream or sys.stderr
        self.width = width
        self.start = time.perf_counter()
        self.examples = 0

    def on_fit_start(self, net: Any) -> None:
        self.start = time.perf_counter()

    def iteration_done(self, net: Any, info: IterationInfo) -> None:
        self.examples += info.batch_size
        done = info.iteration + 1
        if done % 5 and done < self.total:
            return
        frac = min(done / self.total, 1.0)
        filled = int(frac * self.width)
        rate = self.examples / max(time.perf_counter() - self.start, 1e-9)
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(
            f"\r[{bar}] {done}/{self.total} epoch {info.epoch + 1} score {info.score:.4f} {rate:,.0f} examples/s"
        )
        self.stream.flush()

    def on_fit_end(self, net: Any) -> None:
        self.stream.write("\n")
        self.stream.flush()


class RoundProgress:
    """A one-line progress bar over averaging rounds: round, epoch, score and examples/s."""

    def __init__(self, total_rounds: int, stream: TextIO | None = None, width: int = 30) -> None:
        self.total = max(total_rounds, 1)
        self.done = 0
        self.stream = stream or sys.stderr
        self.width = width

    def __call__(self, info: Any) -> None:
        self.done += 1
        filled = int(min(self.done / self.total, 1.0) * self.width)
        rate = info.examples / max(info.seconds, 1e-9)
        self.stream.write(
            f"\r[{'#' * filled}{'-' * (self.width - filled)}] round {self.done}/{self.total} "
            f"epoch {info.epoch + 1} score {info.score:.4f} {rate:,.0f} examples/s"
        )
        if self.done >= self.total:
            self.stream.write("\n")
        self.stream.flush()


def demo_config(seed: int) -> Any:
    """The demo's network: one convolution, one pooling, one dense layer on 8x8 images."""
    from deepspark.config import Adam, Conv2D, Dense, InputType, NetworkConfig, Output, Subsampling

    return NetworkConfig(
        seed=seed,
        updater=Adam(learning_rate=2e-3),
        input_type=InputType.convolutional_flat(8, 8, 1),
        layers=(
            Conv2D(n_out=16, kernel=(3, 3), activation="relu", convolution_mode="same"),
            Subsampling(kernel=(2, 2), stride=(2, 2)),
            Dense(n_out=64, activation="relu"),
            Output(n_out=10, activation="softmax", loss="mcxent"),
        ),
    )


def frame(spark: Any, x: np.ndarray, y: np.ndarray, partitions: int) -> Any:
    """A DataFrame with an ``array<float>`` features column and an int label, built through Arrow."""
    import pyarrow as pa

    flat = pa.array(x.astype(np.float32).reshape(-1))
    features = pa.FixedSizeListArray.from_arrays(flat, x.shape[1]).cast(pa.list_(pa.float32()))
    table = pa.table({"features": features, "label": pa.array(y.astype(np.int64))})
    return spark.createDataFrame(table.to_pandas()).repartition(partitions)


def averaging_frequency(n_train: int, workers: int) -> int:
    """Minibatches between averages: two rounds per epoch (more rounds would only add Spark overhead)."""
    per_worker_batches = math.ceil(math.ceil(n_train / max(workers, 1)) / BATCH_SIZE)
    return max(1, math.ceil(per_worker_batches / 2))


def advice_lines(findings: Sequence[Any], n_train: int) -> list[str]:
    """The advice block: each finding, preceded by why the demo's own data earns warnings when it does."""
    lines = ["advice:"]
    if any(f.severity == "warning" for f in findings):
        lines.append("  " + SMALL_DATA_NOTE.format(n_train=n_train))
    lines += [f"  [{f.severity}] {f.title}: {f.detail}" for f in findings]
    return lines


def run(args: argparse.Namespace) -> int:
    """The ``demo`` command."""
    from deepspark.cli.ui_commands import start_ui_process
    from deepspark.data import load_digits, train_test_split

    x, y = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_fraction=0.2, seed=args.seed, stratify=True)
    print(
        f"data: scikit-learn's bundled handwritten digits (load_digits: {len(x):,} images of 8x8 pixels, "
        f"10 classes; nothing is downloaded): {len(x_train):,} to train, {len(x_test):,} to test"
    )
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    archive = out / "digits-cnn.zip"
    listeners: list[Any] = []
    url = ""
    if args.ui:
        from deepspark.stats import RemoteStatsRouter, StatsListener

        server, url = start_ui_process(out / "runs.db")
        print(f"training UI: {url} (server pid {server.pid}; it keeps running: stop it with 'kill {server.pid}')")
        listeners.append(StatsListener(RemoteStatsRouter(url), report_every=5))
    try:
        if args.no_spark:
            return _run_local(args, x_train, y_train, x_test, y_test, archive, listeners)
        return _run_spark(args, x_train, y_train, x_test, y_test, out, archive, listeners)
    finally:
        for listener in listeners:
            listener.storage.close()
            sent, dropped = listener.storage.sent, listener.storage.dropped
            print(f"training UI: {url} ({sent} stats records sent, {dropped} dropped)")


def _run_local(
    args: argparse.Namespace,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    archive: Path,
    listeners: list[Any],
) -> int:
    from deepspark.nn import Network

    net = Network(demo_config(args.seed))
    print(net.summary())
    steps = args.epochs * -(-len(x_train) // BATCH_SIZE)
    net.add_listeners(ProgressBar(steps), *listeners)
    net.fit(x_train, y_train, epochs=args.epochs, batch_size=BATCH_SIZE)
    print(net.evaluate(x_test, y_test).stats())
    net.save(archive)
    print(f"model archive: {archive}")
    return 0


def _run_spark(
    args: argparse.Namespace,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    out: Path,
    archive: Path,
    listeners: list[Any],
) -> int:
    from deepspark.cli.spark_run import cli_spark
    from deepspark.spark import ParameterAveraging, SparkNetwork

    log = out / "spark.log"
    print(f"starting Spark ({args.master}); Spark's own log: {log}")
    with cli_spark(args.master, "deepspark-demo", log_path=log) as spark:
        workers = int(spark.sparkContext.defaultParallelism)
        frequency = averaging_frequency(len(x_train), workers)
        master = ParameterAveraging(
            batch_size_per_worker=BATCH_SIZE,
            averaging_frequency=frequency,
            num_workers=workers,
            collect_training_stats=True,
            seed=args.seed,
        )
        spark_net = SparkNetwork(spark, demo_config(args.seed), master, listeners=listeners)
        print(spark_net.network.summary())
        print(
            f"training on Spark ({args.master}, {workers} workers, parameter averaging every {frequency} "
            f"minibatches of {BATCH_SIZE})"
        )
        rounds = args.epochs  # the collective transport reports to the driver once per epoch
        train_df = frame(spark, x_train, y_train, workers)
        net = spark_net.fit(train_df, epochs=args.epochs, on_round=RoundProgress(rounds))
        evaluation = spark_net.evaluate(frame(spark, x_test, y_test, workers))
        print(evaluation.stats())
        stats = spark_net.training_stats()
        print(stats.summary())
        print("\n".join(advice_lines(stats.advice(), len(x_train))))
        net.save(archive)
        timeline = stats.export_html(out / "timeline.html")
        print(f"model archive: {archive}")
        print(f"training timeline: {timeline}")
    return 0


def add_demo_command(sub: Any) -> None:
    """Register ``demo`` on the ``deepspark`` parser's subcommands."""
    from deepspark.cli.parsing import positive_int

    demo = sub.add_parser(
        "demo",
        help="train a small CNN on scikit-learn's bundled digits and save an archive",
        description="Train a small CNN on scikit-learn's bundled 8x8 handwritten digits (1,797 images, no "
        "download) with Spark, print its evaluation and training advice, and save the model archive, the "
        "training timeline and Spark's log in --output.",
    )
    demo.add_argument("--epochs", type=positive_int, default=10, help="passes over the training images")
    demo.add_argument("--seed", type=int, default=0, help="seed of the split, the weights and the shuffling")
    demo.add_argument("--output", default="demo-output", help="folder for the archive, the timeline and Spark's log")
    demo.add_argument("--master", default="local[*]", help="Spark master URL")
    demo.add_argument("--no-spark", action="store_true", help="train on this machine only, without Spark")
    demo.add_argument("--ui", action="store_true", help="start the training UI (own process), stream stats to it")
    demo.set_defaults(func=run)


__all__ = [
    "ProgressBar",
    "RoundProgress",
    "add_demo_command",
    "advice_lines",
    "averaging_frequency",
    "demo_config",
    "frame",
    "run",
]
