"""``deepspark export``: write a model archive as ONNX (checked in onnxruntime) or as a torch state dict."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def _export(args: argparse.Namespace) -> int:
    from deepspark.nn import Network

    archive = Path(args.archive)
    if not archive.exists():
        raise FileNotFoundError(f"no such archive: {args.archive}")
    net = Network.load(archive)
    suffix = ".onnx" if args.format == "onnx" else ".safetensors"
    output = Path(args.output) if args.output else archive.with_suffix(suffix)
    if args.format == "onnx":
        result = net.export_onnx(output, verify=not args.no_verify, opset=args.opset)
        print(f"ONNX model: {result.path} (inputs {list(result.inputs)}, outputs {list(result.outputs)})")
        if result.max_abs_diff is not None:
            print(f"checked in onnxruntime: max abs difference to torch {result.max_abs_diff:.3g}")
    else:
        path = net.export_torch(output)
        print(f"torch state dict: {path} (rebuild with deepspark.nn.export.load_torch)")
    return 0


def add_export_commands(sub: Any) -> None:
    """Register ``export`` on the ``deepspark`` command's subparsers."""
    ex = sub.add_parser("export", help="export an archive for serving: ONNX or a torch state dict (safetensors)")
    ex.add_argument("archive", help="a model archive written by Network.save")
    ex.add_argument(
        "--format", choices=["onnx", "torch"], default="onnx", help="onnx (run in onnxruntime) or torch (safetensors)"
    )
    ex.add_argument("--output", default=None, help="output file (default: the archive's name with .onnx/.safetensors)")
    ex.add_argument("--opset", type=int, default=None, help="ONNX opset (default: torch's choice)")
    ex.add_argument("--no-verify", action="store_true", help="skip the onnxruntime check of the ONNX file")
    ex.set_defaults(func=_export)
