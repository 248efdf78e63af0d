"""Training progress (tqdm): on in a terminal or a notebook, off in logs, CI and Spark executors.

``Network.fit``, ``SparkNetwork.fit`` and the ``deepspark`` command all draw progress through
``EpochProgress``, so ``verbose`` means the same everywhere: ``None`` (auto), ``0`` off, ``1`` one bar per
epoch, ``2`` one plain line per epoch (for log files).
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from deepspark.errors import ConfigError

VERBOSE_LEVELS = (0, 1, 2)
_POSTFIX_EVERY_S = 0.25  # the running loss is formatted at most this often (not per minibatch)


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (an IPython shell that is not a terminal)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = getattr(ipython, "get_ipython", lambda: None)()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def interactive(stream: Any = None) -> bool:
    """Whether a person is watching ``stream`` (default stderr): a terminal, or a notebook cell."""
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    try:
        tty = bool(isatty()) if callable(isatty) else False
    except (ValueError, OSError):  # a closed or detached stream
        tty = False
    return tty or in_notebook()


def resolve_verbose(verbose: int | bool | None, stream: Any = None) -> int:
    """``None`` -> 1 when ``interactive(stream)`` else 0; otherwise 0, 1 or 2 (``ConfigError`` for anything else)."""
    if verbose is None:
        return 1 if interactive(stream) else 0
    if isinstance(verbose, bool):
        return int(verbose)
    if not isinstance(verbose, int) or verbose not in VERBOSE_LEVELS:
        raise ConfigError(f"expected None (auto), 0, 1 or 2, got {verbose!r}", "verbose")
    return verbose


def format_metrics(metrics: dict[str, float]) -> str:
    """``loss 0.1234 - val_loss 0.2345`` (Keras' epoch line)."""
    return " - ".join(f"{k} {v:.4f}" for k, v in metrics.items())


class EpochProgress:
    """One progress bar per epoch over its steps (minibatches, or averaging rounds on Spark).

    The bar shows the running loss while the epoch runs and the epoch's metrics (validation included)
    when it ends. With ``level`` 0 every method returns at once; 2 prints one line per epoch instead.

    Example:
        >>> progress = EpochProgress(epochs=3, level=1)          # doctest: +SKIP
        >>> progress.start_epoch(0, total=250); progress.advance(loss=0.7); progress.end_epoch({"loss": 0.7})
    """

    def __init__(self, epochs: int, level: int, *, unit: str = "batch", stream: TextIO | None = None) -> None:
        self.epochs = epochs
        self.level = level
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self._bar: Any = None
        self._epoch = 0
        self._shown = 0
        self._last_postfix = 0.0
        self._start = 0.0

    def start_epoch(self, epoch: int, total: int | None = None) -> None:
        """A new bar for the ``epoch``-th epoch of this fit (0-based) with ``total`` steps (None when unknown)."""
        self.close()
        self._epoch, self._shown, self._start = epoch, epoch + 1, time.perf_counter()
        if self.level != 1:
            return
        from tqdm import tqdm

        self._bar = tqdm(
            total=total,
            desc=f"epoch {self._shown}/{self.epochs}",
            unit=self.unit,
            file=self.stream,
            leave=True,
            dynamic_ncols=True,
        )

    def set_total(self, total: int) -> None:
        """The epoch's step count once known (Spark learns it from the first round)."""
        if self._bar is not None and self._bar.total != total:
            self._bar.total = total
            self._bar.refresh()

    def advance(self, n: int = 1, loss: float | None = None) -> None:
        """``n`` more steps done; ``loss`` (the running mean) is shown at most every 0.25 s."""
        if self._bar is None:
            return
        self._bar.update(n)
        now = time.perf_counter()
        if loss is not None and now - self._last_postfix >= _POSTFIX_EVERY_S:
            self._last_postfix = now
            self._bar.set_postfix_str(f"loss {loss:.4f}", refresh=False)

    def end_epoch(self, metrics: dict[str, float]) -> None:
        """Show the epoch's metrics on its bar (level 1) or as one line (level 2), and close the bar."""
        text = format_metrics(metrics)
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=True)
            self.close()
        elif self.level == 2:
            seconds = time.perf_counter() - self._start
            self.stream.write(f"epoch {self._shown}/{self.epochs} - {seconds:.1f}s - {text}\n")
            self.stream.flush()

    def close(self) -> None:
        """Close the open bar, if any (idempotent)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
