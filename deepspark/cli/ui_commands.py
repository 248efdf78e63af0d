"""The UI subcommands of ``deepspark``: ``ui`` (the server), ``report``, ``stats export-tensorboard``, and the
``demo --ui`` helper that starts the server in its own process."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from deepspark.cli.parsing import port_number
from deepspark.cli.paths import existing_storage
from deepspark.errors import DeepSparkError

UI_START_TIMEOUT = 30.0


def add_ui_commands(sub: Any) -> None:
    """Register ``ui``, ``report`` and ``stats`` on the ``deepspark`` parser's subcommands."""
    ui = sub.add_parser("ui", help="serve the training UI over a stats database (its own process)")
    ui.add_argument("--storage", required=True, help="SQLite stats file (must exist unless --create)")
    ui.add_argument("--create", action="store_true", help="start an empty stats file when --storage is missing")
    ui.add_argument("--port", type=port_number, default=9000, help="0 picks a free port (printed)")
    ui.add_argument("--host", default="127.0.0.1", help="loopback by default; other addresses need --token")
    ui.add_argument(
        "--token",
        default=None,
        help="required on every route but /api/health: 'Authorization: Bearer' header, or log in once in the browser",
    )
    ui.add_argument(
        "--allowed-host",
        action="append",
        metavar="NAME",
        help="a name clients reach the server by, beyond localhost and --host (repeatable); other Host headers get 403",
    )
    ui.set_defaults(func=_ui)
    rep = sub.add_parser("report", help="write one self-contained HTML report of a stats database")
    rep.add_argument("storage", help="SQLite stats file")
    rep.add_argument("-o", "--output", default="report.html", help="HTML file to write")
    rep.add_argument("--session", default=None, help="session id (default: the newest)")
    rep.set_defaults(func=_report)
    stats = sub.add_parser("stats", help="stats database tools")
    stats_sub = stats.add_subparsers(dest="stats_command", required=True)
    tb = stats_sub.add_parser("export-tensorboard", help="write TensorBoard event files (scalars, histograms)")
    tb.add_argument("storage", help="SQLite stats file")
    tb.add_argument("logdir", help="folder for the event files")
    tb.add_argument("--session", default=None, help="one session id (default: all)")
    tb.set_defaults(func=_export_tensorboard)


def _ui(args: argparse.Namespace) -> int:
    from deepspark.ui.server import is_loopback, serve

    if not 0 <= args.port < 65536:
        raise DeepSparkError(f"--port: expected 0..65535, got {args.port}")
    if is_loopback(args.host) or args.token:  # else serve() names the missing --token first
        existing_storage(args.storage, create=args.create)
    serve(args.storage, host=args.host, port=args.port, token=args.token, allowed_host=args.allowed_host or ())
    return 0


def _existing(path: str) -> str:
    existing_storage(path, option="", create_flag=None)
    return path


def _report(args: argparse.Namespace) -> int:
    from deepspark.ui.report import write_report

    out = write_report(_existing(args.storage), args.output, args.session)
    print(f"report: {out}")
    return 0


def _export_tensorboard(args: argparse.Namespace) -> int:
    from deepspark.ui.report import export_tensorboard

    for run in export_tensorboard(_existing(args.storage), args.logdir, args.session):
        print(f"tensorboard run: {run}")
    return 0


def start_ui_process(
    storage: str | Path, port: int = 0, token: str | None = None, allowed_host: Sequence[str] = ()
) -> tuple[subprocess.Popen[str], str]:
    """Start ``deepspark ui`` as a separate process; returns it and its URL once it accepts connections.

    Its stderr (warnings, one line each) goes to ``<storage>.ui.log``.
    """
    cmd = [sys.executable, "-m", "deepspark.ui", "--storage", str(storage), "--port", str(port)]
    if token:
        cmd += ["--token", token]
    for name in allowed_host:
        cmd += ["--allowed-host", name]
    return launch_ui(cmd, Path(f"{storage}.ui.log"))  # the server outlives callers such as the demo: log to a file


def launch_ui(cmd: Sequence[str], log_path: Path) -> tuple[subprocess.Popen[str], str]:
    """Run a UI server command (stderr appended to ``log_path``); returns it and its URL once /api/health answers."""
    import urllib.request

    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(list(cmd), stdout=subprocess.PIPE, stderr=log_file, text=True, start_new_session=True)
    line = proc.stdout.readline() if proc.stdout is not None else ""
    if not line.startswith("deepspark ui: "):
        proc.kill()
        raise DeepSparkError(f"the UI server did not start (exit code {proc.wait()}); see {log_path}")
    url = line.split()[2]
    deadline = time.monotonic() + UI_START_TIMEOUT
    while True:
        try:
            with urllib.request.urlopen(url + "api/health", timeout=2):
                return proc, url
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise DeepSparkError(f"the UI server at {url} did not answer within {UI_START_TIMEOUT:.0f} s") from None
            time.sleep(0.05)
