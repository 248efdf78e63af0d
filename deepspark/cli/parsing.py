"""How every ``deepspark`` command documents itself: help text with defaults shown, and ``--version``."""

from __future__ import annotations

import argparse
import platform
from typing import Any


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` to an option's help when it has a default worth showing.

    Unlike ``argparse.ArgumentDefaultsHelpFormatter`` it leaves out empty defaults (None, False, ""),
    which say nothing ("default: None" on ``--token``), and help that already names its default.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "%(default)" in text
            or "default:" in text
            or default is None
            or default is False
            or default == ""
            or default is argparse.SUPPRESS
            or not action.option_strings
        ):
            return text
        return f"{text} (default: %(default)s)"


class CommandParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` that formats help with :class:`DefaultsHelpFormatter` unless told otherwise.

    Subcommand parsers inherit it (``add_subparsers`` uses the parent's class), so subcommands that
    other modules register show their defaults too.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", DefaultsHelpFormatter)
        super().__init__(*args, **kwargs)


def _bounded_int(text: str, low: int, high: int | None, expected: str) -> int:
    """``int(text)`` within ``[low, high]``, else an ``ArgumentTypeError`` saying what was expected."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if value < low or (high is not None and value > high):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {value}")
    return value


def positive_int(text: str) -> int:
    """An argparse ``type`` for counts that must be at least 1 (epochs, batch sizes)."""
    return _bounded_int(text, 1, None, "a positive integer")


def non_negative_int(text: str) -> int:
    """An argparse ``type`` for sizes where 0 means "off" (``summary --batch-size``)."""
    return _bounded_int(text, 0, None, "an integer >= 0")


def port_number(text: str) -> int:
    """An argparse ``type`` for a TCP port: 0..65535 (0 lets the system pick a free one)."""
    return _bounded_int(text, 0, 65535, "a port number 0..65535 (0 picks a free port)")


def version_text() -> str:
    """What ``deepspark --version`` prints: deepspark's version and the versions it runs with."""
    from importlib import metadata

    import deepspark

    parts = [f"deepspark {deepspark.__version__}", f"Python {platform.python_version()}"]
    for dist in ("torch", "pyspark"):
        try:
            parts.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{dist} (not installed)")
    return ", ".join(parts)


def add_version_option(parser: argparse.ArgumentParser) -> None:
    """Register ``--version`` (prints :func:`version_text` and exits 0)."""
    parser.add_argument("--version", action="version", version=version_text(), help="print versions and exit")


__all__ = ["CommandParser", "DefaultsHelpFormatter", "add_version_option", "positive_int", "version_text"]
