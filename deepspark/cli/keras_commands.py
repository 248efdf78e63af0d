"""The ``deepspark import-keras`` subcommand: a Keras ``.keras``/``.h5`` file to a deepspark model archive."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_keras_commands(sub: Any) -> None:
    """Register ``import-keras`` on the ``deepspark`` parser's subcommands."""
    cmd = sub.add_parser(
        "import-keras",
        help="convert a Keras .keras or .h5 model (architecture and weights) to a deepspark archive",
        description="Reads the file with zipfile, json and h5py only (no TensorFlow or Keras needed); layers that "
        "hold code (Lambda) or custom classes are refused, never run.",
    )
    cmd.add_argument("model", help="Keras model file (.keras archive or legacy .h5)")
    cmd.add_argument("-o", "--output", default=None, help="archive to write (default: MODEL with a .zip suffix)")
    cmd.set_defaults(func=_import_keras)


def _import_keras(args: argparse.Namespace) -> int:
    from deepspark.modelimport import inspect_keras

    source = Path(args.model)
    output = Path(args.output) if args.output else source.with_suffix(".zip")
    result = inspect_keras(source)
    print(f"{source} (Keras {result.keras_version}, {result.format} format)")
    print(result.table())
    for message in result.warnings:
        print(f"warning: {message}")
    result.network.save(output)
    print(f"wrote {output}")
    return 0
