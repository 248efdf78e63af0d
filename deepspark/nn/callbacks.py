"""Epoch callbacks for ``Network.fit`` and ``SparkNetwork.fit``: early stopping, checkpoints, learning-rate log.

Callbacks run on the driver at epoch boundaries, after the epoch's metrics (training loss, validation
metrics) are known; the same callback works on one machine and on Spark because both hand it the driver's
``Network``. They differ from ``TrainingListener`` (per-iteration hooks on one machine) on purpose: on
Spark the driver only sees the model between rounds, so epoch-level decisions are the portable ones.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch

from deepspark.errors import ConfigError
from deepspark.nn.history import History

if TYPE_CHECKING:
    from deepspark.nn.network import Network

log = logging.getLogger("deepspark")

Mode = Literal["auto", "min", "max"]


@dataclass
class FitLoop:
    """What a callback sees and steers: the driver's network, the history so far, and the stop flag."""

    network: Network
    history: History
    stop_training: bool = False


class Callback:
    """Base class: override the hooks you need (all run on the driver, between epochs)."""

    def metrics(self) -> tuple[str, ...]:
        """Metric names this callback adds to each epoch's logs (so other callbacks may monitor them)."""
        return ()

    def check(self, available: Collection[str], path: str) -> None:
        """Raise ``ConfigError`` (under ``path``) before training when a needed metric will not exist."""

    def on_fit_start(self, loop: FitLoop) -> None:
        """Called once before the first epoch."""

    def collect(self, loop: FitLoop, epoch: int, logs: dict[str, float]) -> None:
        """Add this callback's metrics to ``logs`` before the epoch is recorded."""

    def on_epoch_end(self, loop: FitLoop, epoch: int, logs: dict[str, float]) -> None:
        """Called after epoch ``epoch`` (0-based) with its recorded metrics; set ``loop.stop_training`` to stop."""

    def on_fit_end(self, loop: FitLoop) -> None:
        """Called once when training ends (also after an early stop)."""


def _mode(mode: Mode, monitor: str) -> Literal["min", "max"]:
    if mode not in ("auto", "min", "max"):
        raise ConfigError(f"expected 'auto', 'min' or 'max', got {mode!r}", "mode")
    if mode == "auto":
        return "max" if "acc" in monitor else "min"
    return mode


def _check_monitor(monitor: str, available: Collection[str], path: str) -> None:
    if monitor not in available:
        hint = "; pass validation_data to get val_ metrics" if monitor.startswith("val_") else ""
        raise ConfigError(
            f"monitor {monitor!r} is not a metric of this fit; available: {sorted(available)}{hint}", f"{path}.monitor"
        )


def _improved(value: float, best: float, mode: str, min_delta: float) -> bool:
    if math.isnan(value):
        return False
    return value < best - min_delta if mode == "min" else value > best + min_delta


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved for ``patience`` epochs; optionally restore the best epoch.

    With ``restore_best`` the parameters (batch-norm statistics included) and the updater state of the best
    epoch are put back when training ends, so ``net`` (and ``spark_net.network``) is the best model seen;
    ``net.epoch`` keeps counting the epochs actually trained.

    Example:
        >>> history = net.fit(x, y, epochs=50, validation_data=(xv, yv),
        ...                   callbacks=[EarlyStopping(monitor="val_loss", patience=3)])   # doctest: +SKIP
        >>> history.best_epoch, history.stopped_epoch                                        # doctest: +SKIP
    """

    def __init__(
        self, monitor: str = "val_loss", patience: int = 0, min_delta: float = 0.0, mode: Mode = "auto",
        restore_best: bool = True,
    ) -> None:
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ConfigError(f"expected an int >= 0, got {patience!r}", "patience")
        if not isinstance(min_delta, (int, float)) or not math.isfinite(min_delta) or min_delta < 0:
            raise ConfigError(f"expected a number >= 0, got {min_delta!r}", "min_delta")
        self.monitor, self.patience, self.min_delta = monitor, patience, float(min_delta)
        self.mode = _mode(mode, monitor)
        self.restore_best = restore_best
        self.best = math.inf
        self.best_epoch: int | None = None
        self.stopped_epoch: int | None = None
        self.wait = 0
        self._params: torch.Tensor | None = None
        self._updater: torch.Tensor | None = None

    def check(self, available: Collection[str], path: str) -> None:
        _check_monitor(self.monitor, available, path)

    def on_fit_start(self, loop: FitLoop) -> None:
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch, self.stopped_epoch, self.wait = None, None, 0
        if self.restore_best:  # one snapshot buffer each per fit, refilled in place on every improvement
            self._params = torch.empty_like(loop.network.flat.params)
            self._updater = torch.empty_like(loop.network.updater.state)

    def on_epoch_end(self, loop: FitLoop, epoch: int, logs: dict[str, float]) -> None:
        value = logs[self.monitor]
        if _improved(value, self.best, self.mode, self.min_delta):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self._params is not None and self._updater is not None:
                self._params.copy_(loop.network.flat.params.detach())
                self._updater.copy_(loop.network.updater.state)
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            loop.stop_training = True
            log.info("early stopping after epoch %d: %s did not improve for %d epoch(s)", epoch, self.monitor,
                     self.wait)

    def on_fit_end(self, loop: FitLoop) -> None:
        loop.history.stopped_epoch = self.stopped_epoch
        last = loop.history.epoch[-1] if loop.history.epoch else None
        if self._params is None or self._updater is None or self.best_epoch is None:
            return
        loop.history.best_epoch = self.best_epoch
        if self.best_epoch != last:
            loop.network.set_params(self._params)
            loop.network.set_updater_state(self._updater)
            log.info("restored the parameters of epoch %d (%s %.6g)", self.best_epoch, self.monitor, self.best)


class ModelCheckpoint(Callback):
    """Save an archive after every epoch, or only when ``monitor`` improved (``save_best_only``).

    ``filepath`` may hold ``{epoch}`` (epochs completed, 1 after the first) and metric placeholders, e.g.
    ``"ckpt/model-{epoch:03d}-{val_loss:.4f}.zip"``; a placeholder no metric fills is a ``ConfigError``
    before training starts.
    """

    def __init__(
        self, filepath: str | Path, monitor: str = "val_loss", save_best_only: bool = False, mode: Mode = "auto",
        save_updater: bool = True,
    ) -> None:
        self.filepath = str(filepath)
        if not self.filepath:
            raise ConfigError("expected a file path, got ''", "filepath")
        self.monitor, self.save_best_only, self.save_updater = monitor, save_best_only, save_updater
        self.mode = _mode(mode, monitor)
        self.best = math.inf
        self.saved: list[Path] = []

    def check(self, available: Collection[str], path: str) -> None:
        if self.save_best_only:
            _check_monitor(self.monitor, available, path)
        try:
            self.filepath.format(epoch=1, **dict.fromkeys(available, 0.0))
        except (KeyError, IndexError, ValueError) as e:
            raise ConfigError(
                f"{self.filepath!r} has a placeholder no metric fills ({type(e).__name__}: {e}); use {{epoch}} or "
                f"one of {sorted(available)}",
                f"{path}.filepath",
            ) from None

    def on_fit_start(self, loop: FitLoop) -> None:
        self.best = math.inf if self.mode == "min" else -math.inf

    def on_epoch_end(self, loop: FitLoop, epoch: int, logs: dict[str, float]) -> None:
        if self.save_best_only:
            value = logs[self.monitor]
            if not _improved(value, self.best, self.mode, 0.0):
                return
            self.best = value
        path = Path(self.filepath.format(epoch=loop.network.epoch, **logs))
        path.parent.mkdir(parents=True, exist_ok=True)
        loop.network.save(path, save_updater=self.save_updater)
        self.saved.append(path)


class LearningRateLogger(Callback):
    """Records the updater's learning rate after every epoch as metric ``lr`` (and logs it via ``sink``)."""

    def __init__(self, sink: Callable[[str], None] | None = None) -> None:
        self.sink = sink

    def metrics(self) -> tuple[str, ...]:
        return ("lr",)

    def collect(self, loop: FitLoop, epoch: int, logs: dict[str, float]) -> None:
        net = loop.network
        logs["lr"] = float(net.updater.learning_rate(net.iteration, net.epoch))
        if self.sink is not None:
            self.sink(f"epoch {epoch}: learning rate {logs['lr']:.6g}")


__all__ = ["Callback", "EarlyStopping", "FitLoop", "LearningRateLogger", "ModelCheckpoint"]
