"""``python -m deepspark.ui --storage runs.db``: the UI server without the rest of the CLI (no torch import)."""

from __future__ import annotations

import argparse
import sys

from deepspark.cli.parsing import port_number  # argparse only: no torch import
from deepspark.errors import DeepSparkError


def main(argv: list[str] | None = None) -> int:
    """Parse ``deepspark ui``'s options and serve; exit code 2 with one line for bad input."""
    parser = argparse.ArgumentParser(prog="deepspark ui", description="Serve the deepspark training UI.")
    parser.add_argument("--storage", required=True)
    parser.add_argument("--port", type=port_number, default=9000)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--token", default=None)
    parser.add_argument("--allowed-host", action="append", metavar="NAME")
    args = parser.parse_args(argv)
    from deepspark.ui.server import serve

    try:
        serve(args.storage, host=args.host, port=args.port, token=args.token, allowed_host=args.allowed_host or ())
    except DeepSparkError as e:
        print(f"deepspark ui: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
