"""The ``deepspark`` command: ``demo``, ``train``, ``summary``, ``evaluate``, and the commands of other packages
(``ui``/``report``, ``tune``, ``rl``, ``import-keras``).

``main(argv)`` returns an exit code and never lets a traceback reach the user for bad input: deepspark's
own errors (and missing files) print one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deepspark.cli.demo import ProgressBar, RoundProgress, add_demo_command
from deepspark.cli.demo import demo_config as _demo_config  # kept importable from here (tests, bench scripts)
from deepspark.cli.demo import frame as _frame
from deepspark.cli.export_commands import add_export_commands
from deepspark.cli.keras_commands import add_keras_commands
from deepspark.cli.parsing import CommandParser, add_version_option, non_negative_int, positive_int
from deepspark.cli.paths import check_new_output, regular_input
from deepspark.cli.rl_commands import add_rl_commands
from deepspark.cli.tune_commands import add_tune_command
from deepspark.cli.ui_commands import add_ui_commands
from deepspark.errors import DeepSparkError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _train(args: argparse.Namespace) -> int:
    from deepspark.cli.spark_run import cli_spark
    from deepspark.config.root import config_from_json
    from deepspark.spark import ParameterAveraging, SparkNetwork

    out = check_new_output(args.output, args.overwrite)
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
    with cli_spark(args.master, "deepspark-train") as spark:
        if data.suffix.lower() == ".csv":
            df = spark.read.csv(str(data), header=True, inferSchema=True)
        else:
            df = spark.read.parquet(str(data))
        features: str | list[str] = args.features_col.split(",") if "," in args.features_col else args.features_col
        spark_net = SparkNetwork(spark, config, master)  # type: ignore[arg-type]
        net = spark_net.fit(df, features_col=features, label_col=args.label_col, epochs=args.epochs)
        out.parent.mkdir(parents=True, exist_ok=True)
        net.save(out)
        print(f"trained {args.epochs} epoch(s); model archive: {out}")
    return 0


def _load_config_or_archive(path: str) -> Any:
    from deepspark.config._spec import Spec
    from deepspark.nn import Network

    p = regular_input(path, "model archive or config")
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
    from deepspark.cli.tables import is_parquet, read_parquet_examples
    from deepspark.data import load_digits, load_mnist, read_csv

    if args.data == "digits":
        return load_digits()
    p = Path(args.data)
    if is_parquet(p):
        return read_parquet_examples(p, args.features_col.split(","), args.label_col or "label")
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
    raise DeepSparkError(
        f"--data: expected 'digits', a Parquet file or folder, an MNIST IDX folder or a .csv file, got {args.data}"
    )


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
    parser = CommandParser(prog="deepspark", description="Deep learning on Apache Spark with PyTorch.")
    add_version_option(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    add_demo_command(sub)
    train = sub.add_parser("train", help="train a network config on Parquet or CSV data with Spark")
    train.add_argument("--config", required=True, help="network config JSON (NetworkConfig.to_json)")
    train.add_argument("--data", required=True, help="Parquet file or folder, or a CSV file with a header")
    train.add_argument("--features-col", default="features", help="array/vector column, or comma-separated columns")
    train.add_argument("--label-col", default="label", help="label column (class indices)")
    train.add_argument("--master", default="local[*]", help="Spark master URL")
    train.add_argument("--epochs", type=positive_int, default=1, help="passes over the data")
    train.add_argument("--batch-size", type=positive_int, default=32, help="minibatch size per worker")
    train.add_argument(
        "--averaging-frequency", type=positive_int, default=5, help="minibatches each worker fits between averages"
    )
    train.add_argument(
        "--master-config", default=None, help="ParameterAveraging JSON (overrides --batch-size/--averaging-frequency)"
    )
    train.add_argument("--output", default="model.zip", help="model archive to write")
    train.add_argument("--overwrite", action="store_true", help="replace --output if it exists (else: an error)")
    train.set_defaults(func=_train)
    summ = sub.add_parser("summary", help="print the layer table of an archive or a config JSON")
    summ.add_argument("path", help="model archive (.zip) or network config (.json)")
    summ.add_argument(
        "--batch-size", type=non_negative_int, default=0, help="also print the memory estimate at this batch size"
    )
    summ.set_defaults(func=_summary)
    ev = sub.add_parser("evaluate", help="evaluate an archive on labelled data")
    ev.add_argument("archive", help="model archive (.zip) written by train, demo or Network.save")
    ev.add_argument(
        "--data", required=True, help="'digits', a Parquet file or folder, an MNIST IDX folder, or a CSV file"
    )
    ev.add_argument("--features-col", default="features", help="Parquet: array/vector column, or comma-separated ones")
    ev.add_argument("--label-col", default=None, help="label column; CSV: required (name or index); Parquet: 'label'")
    ev.add_argument("--kind", default="t10k", choices=["t10k", "train"], help="which MNIST files in a folder")
    ev.add_argument("--limit", type=int, default=0, help="evaluate only the last N examples (0: all)")
    ev.set_defaults(func=_evaluate)
    add_ui_commands(sub)
    add_tune_command(sub)
    add_rl_commands(sub)
    add_keras_commands(sub)
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
        return EXIT_INTERRUPTED


def entry() -> None:
    """Console-script entry point. After Ctrl-C it ends at once: the JVM and its workers follow."""
    code = main()
    if code == EXIT_INTERRUPTED:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)  # a normal exit waits for threads still blocked in calls into the JVM
    sys.exit(code)


__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_USAGE",
    "ProgressBar",
    "RoundProgress",
    "_demo_config",
    "_frame",
    "build_parser",
    "entry",
    "main",
]
