"""The ``deepspark`` command: ``demo``, ``summary``, ``evaluate``.

``main(argv)`` returns an exit code and never lets a traceback reach the user for bad input: deepspark's
own errors (and missing files) print one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deepspark.cli.export_commands import add_export_commands
from deepspark.cli.ui_commands import add_ui_commands, start_ui_process
from deepspark.errors import DeepSparkError

EXIT_USAGE = 2


def _demo_config(seed: int) -> Any:
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


def _demo(args: argparse.Namespace) -> int:
    from deepspark.data import load_digits, train_test_split

    x, y = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_fraction=0.2, seed=args.seed, stratify=True)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    archive = out / "digits-cnn.zip"
    listeners: list[Any] = []
    if getattr(args, "ui", False):
        from deepspark.stats import RemoteStatsRouter, StatsListener

        server, url = start_ui_process(out / "runs.db")
        print(f"training UI: {url} (server pid {server.pid}; it keeps running: stop it with 'kill {server.pid}')")
        router = RemoteStatsRouter(url)
        listeners.append(StatsListener(router, report_every=5))
    try:
        return _demo_run(args, x_train, y_train, x_test, y_test, out, archive, listeners)
    finally:
        for listener in listeners:
            listener.storage.close()
            sent, dropped = listener.storage.sent, listener.storage.dropped
            print(f"training UI: {url} ({sent} stats records sent, {dropped} dropped)")


def _demo_run(
    args: argparse.Namespace,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    out: Path,
    archive: Path,
    listeners: list[Any],
) -> int:
    from deepspark.nn import Network

    if args.no_spark:
        net = Network(_demo_config(args.seed))
        print(net.summary())
        net.add_listeners(*listeners)
        net.fit(x_train, y_train, epochs=args.epochs, batch_size=32, verbose=1)  # the shared tqdm progress
        print(net.evaluate(x_test, y_test).stats())
        net.save(archive)
        print(f"model archive: {archive}")
        return 0
    return _demo_spark(args, x_train, y_train, x_test, y_test, out, archive, listeners)


def _frame(spark: Any, x: np.ndarray, y: np.ndarray, partitions: int) -> Any:
    """A DataFrame with an ``array<float>`` features column and an int label, built through Arrow."""
    import pyarrow as pa

    flat = pa.array(x.astype(np.float32).reshape(-1))
    features = pa.FixedSizeListArray.from_arrays(flat, x.shape[1]).cast(pa.list_(pa.float32()))
    table = pa.table({"features": features, "label": pa.array(y.astype(np.int64))})
    return spark.createDataFrame(table.to_pandas()).repartition(partitions)


def _demo_spark(
    args: argparse.Namespace,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    out: Path,
    archive: Path,
    listeners: list[Any] = (),  # type: ignore[assignment]
) -> int:
    from deepspark.spark import ParameterAveraging, SparkNetwork, local_spark

    spark = local_spark(args.master, app_name="deepspark-demo")
    try:
        workers = int(spark.sparkContext.defaultParallelism)
        master = ParameterAveraging(
            batch_size_per_worker=32,
            averaging_frequency=5,
            num_workers=workers,
            collect_training_stats=True,
            seed=args.seed,
        )
        spark_net = SparkNetwork(spark, _demo_config(args.seed), master, listeners=listeners)
        print(spark_net.network.summary())
        print(f"training on Spark ({args.master}, {workers} workers, parameter averaging every 5 minibatches)")
        train_df = _frame(spark, x_train, y_train, workers)
        net = spark_net.fit(train_df, epochs=args.epochs, verbose=1)  # the shared tqdm progress, per round
        evaluation = spark_net.evaluate(_frame(spark, x_test, y_test, workers))
        print(evaluation.stats())
        stats = spark_net.training_stats()
        print(stats.summary())
        print("advice:")
        for finding in stats.advice():
            print(f"  [{finding.severity}] {finding.title}: {finding.detail}")
        net.save(archive)
        timeline = stats.export_html(out / "timeline.html")
        print(f"model archive: {archive}")
        print(f"training timeline: {timeline}")
    finally:
        spark.stop()
    return 0


def _train(args: argparse.Namespace) -> int:
    from deepspark.config import config_from_json
    from deepspark.spark import ParameterAveraging, SparkNetwork, local_spark

    config_path = Path(args.config)
    if not config_path.exists():
        raise FileNotFoundError(f"no such config file: {args.config}")
    config = config_from_json(config_path.read_bytes())
    master = (
        ParameterAveraging.from_json(Path(args.master_config).read_bytes())
        if args.master_config
        else ParameterAveraging(batch_size_per_worker=args.batch_size, averaging_frequency=args.averaging_frequency)
    )
    data = Path(args.data)
    if not data.exists():
        raise FileNotFoundError(f"no such data path: {args.data}")
    spark = local_spark(args.master, app_name="deepspark-train")
    try:
        if data.suffix.lower() == ".csv":
            df = spark.read.csv(str(data), header=True, inferSchema=True)
        else:
            df = spark.read.parquet(str(data))
        features: str | list[str] = args.features_col.split(",") if "," in args.features_col else args.features_col
        spark_net = SparkNetwork(spark, config, master)  # type: ignore[arg-type]
        net = spark_net.fit(df, features_col=features, label_col=args.label_col, epochs=args.epochs)
        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        net.save(out)
        print(f"trained {args.epochs} epoch(s); model archive: {out}")
    finally:
        spark.stop()
    return 0


def _load_config_or_archive(path: str) -> Any:
    from deepspark.config._spec import Spec
    from deepspark.nn import Network

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if p.suffix == ".json":
        return Network(Spec.from_json(p.read_bytes()))  # type: ignore[arg-type]
    return Network.load(p)


def _summary(args: argparse.Namespace) -> int:
    net = _load_config_or_archive(args.path)
    print(net.summary())
    if args.batch_size:
        print(net.memory_report(args.batch_size))
    return 0


def _read_eval_data(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    from deepspark.data import load_digits, load_mnist, read_csv

    if args.data == "digits":
        return load_digits()
    p = Path(args.data)
    if p.is_dir():
        return load_mnist(p, kind=args.kind)
    if p.suffix.lower() == ".csv":
        if args.label_col is None:
            raise DeepSparkError("--label-col is required for CSV data")
        label: str | int = int(args.label_col) if args.label_col.isdigit() else args.label_col
        data = read_csv(p, label)
        return data.x, data.y
    if not p.exists():
        raise FileNotFoundError(f"no such file or directory: {args.data}")
    raise DeepSparkError(f"--data: expected 'digits', an MNIST IDX directory or a .csv file, got {args.data}")


def _evaluate(args: argparse.Namespace) -> int:
    from deepspark.nn import Network

    net = Network.load(args.archive)
    x, y = _read_eval_data(args)
    if args.limit:
        x, y = x[-args.limit :], y[-args.limit :]
    if net.normalizer is not None:
        x = net.normalizer.transform(x)
    print(net.evaluate(x, y).stats())
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    parser = argparse.ArgumentParser(prog="deepspark", description="Deep learning on Apache Spark with PyTorch.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="train a small CNN on the built-in digits and save an archive")
    demo.add_argument("--epochs", type=int, default=10)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--output", default="demo-output", help="folder for the archive and the timeline")
    demo.add_argument("--master", default="local[*]", help="Spark master URL (default: local[*])")
    demo.add_argument("--no-spark", action="store_true", help="train on this machine only, without Spark")
    demo.add_argument("--ui", action="store_true", help="start the training UI (own process), stream stats to it")
    demo.set_defaults(func=_demo)
    train = sub.add_parser("train", help="train a network config on Parquet or CSV data with Spark")
    train.add_argument("--config", required=True, help="network config JSON (NetworkConfig.to_json)")
    train.add_argument("--data", required=True, help="Parquet directory/file or CSV file")
    train.add_argument("--features-col", default="features", help="array/vector column, or comma-separated columns")
    train.add_argument("--label-col", default="label")
    train.add_argument("--master", default="local[*]")
    train.add_argument("--epochs", type=int, default=1)
    train.add_argument("--batch-size", type=int, default=32, help="minibatch size per worker")
    train.add_argument("--averaging-frequency", type=int, default=5)
    train.add_argument("--master-config", default=None, help="ParameterAveraging JSON (overrides the two above)")
    train.add_argument("--output", default="model.zip")
    train.set_defaults(func=_train)
    summ = sub.add_parser("summary", help="print the layer table of an archive or a config JSON")
    summ.add_argument("path")
    summ.add_argument("--batch-size", type=int, default=0, help="also print the memory estimate at this batch size")
    summ.set_defaults(func=_summary)
    ev = sub.add_parser("evaluate", help="evaluate an archive on labelled data")
    ev.add_argument("archive")
    ev.add_argument("--data", required=True, help="'digits', an MNIST IDX directory, or a CSV file")
    ev.add_argument("--kind", default="t10k", choices=["t10k", "train"], help="which MNIST files in a directory")
    ev.add_argument("--label-col", default=None, help="label column of a CSV file (name or index)")
    ev.add_argument("--limit", type=int, default=0, help="evaluate only the last N examples")
    ev.set_defaults(func=_evaluate)
    add_ui_commands(sub)
    add_export_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (DeepSparkError, FileNotFoundError, IsADirectoryError, PermissionError) as e:
        print(f"deepspark {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"deepspark {args.command}: interrupted", file=sys.stderr)
        return 130


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())
