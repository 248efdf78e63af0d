"""What ``Network.fit`` and ``SparkNetwork.fit`` share at epoch boundaries: validation, callbacks, history, progress.

A training loop opens a ``FitSession``, reports each step (a minibatch, or an averaging round on Spark) and
each finished epoch; the session computes the epoch's metrics, runs the callbacks, records the ``History``
and draws the progress bar. Everything a user can get wrong (callbacks, monitors, validation data) is
checked when the session is created, before the first step.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from torch import Tensor

from deepspark.errors import ConfigError, DataError, TrainingDivergedError
from deepspark.nn.callbacks import Callback, FitLoop
from deepspark.nn.functional import CLASSIFICATION_LOSSES
from deepspark.nn.history import History
from deepspark.progress import EpochProgress, resolve_verbose

if TYPE_CHECKING:
    from deepspark.nn.network import Network

Validator = Callable[[], dict[str, float]]
"""Computes the validation metrics of the network as it is now (``val_loss``, ``val_accuracy``...)."""

OnDivergence = Literal["raise", "warn"]
DIVERGENCE_MODES: tuple[str, ...] = ("raise", "warn")


class StopFit(Exception):
    """Raised at an epoch boundary to leave a training loop that has no stop flag of its own (Spark)."""


def is_classifier(net: Network) -> bool:
    """Whether ``evaluate`` applies, i.e. the validation metrics include ``val_accuracy``."""
    head = net.heads[0]
    return head.loss in CLASSIFICATION_LOSSES or head.activation in ("softmax", "sigmoid")


def validation_names(net: Network) -> tuple[str, ...]:
    """The metrics a validator reports for ``net``."""
    return ("val_loss", "val_accuracy") if is_classifier(net) else ("val_loss",)


def local_validator(net: Network, validation_data: Any) -> Validator:
    """Validation on this machine: ``(x, y)`` arrays (checked and converted now), or an iterator of ``DataSet``."""
    if isinstance(validation_data, (tuple, list)) and not any(hasattr(v, "features") for v in validation_data):
        if len(validation_data) != 2:
            raise DataError(
                f"validation_data: expected (features, labels), got a {type(validation_data).__name__} of "
                f"{len(validation_data)} items"
            )
        x, y = validation_data
        if y is None:
            raise DataError("validation_data: the labels are None; pass (features, labels)")
        try:
            data = net._prepare(x, y)
        except DataError as e:
            raise DataError(f"validation_data: {e}") from None
        x, y = data[0], data[1]
    elif hasattr(validation_data, "__iter__") and not isinstance(validation_data, (str, bytes, np.ndarray, Tensor)):
        x, y = validation_data, None
    else:
        raise DataError(
            f"validation_data: expected (features, labels) arrays or an iterator of DataSets, got "
            f"{type(validation_data).__name__}"
        )
    classifier = is_classifier(net)

    def validate() -> dict[str, float]:
        if y is None and hasattr(x, "reset"):
            x.reset()
        metrics = {"val_loss": net.score(x, y)}
        if classifier:
            if y is None and hasattr(x, "reset"):
                x.reset()
            metrics["val_accuracy"] = float(net.evaluate(x, y).accuracy())
        return metrics

    return validate


class DivergenceGuard:
    """Notices a NaN or infinite score (every step) or parameters (every epoch, or every Spark round).

    ``"raise"`` stops the fit with ``TrainingDivergedError``; ``"warn"`` warns once and lets it go on.
    """

    def __init__(self, net: Network, mode: str) -> None:
        if mode not in DIVERGENCE_MODES:
            raise ConfigError(f"expected 'raise' or 'warn', got {mode!r}", "on_divergence")
        self.net = net
        self.mode = mode
        self.last_finite: float | None = None
        self.last_finite_at = -1
        self.warned = False

    def score(self, score: Tensor | float) -> None:
        """Check one step's (or round's) mean score; a finite one becomes the last finite score."""
        value = float(score)
        if math.isfinite(value):
            self.last_finite, self.last_finite_at = value, self.net.iteration - 1
        else:
            self.diverged(f"the score is {value}")

    def params(self) -> None:
        """Check the network's parameters: one reduction over the flat buffer."""
        if not bool(torch.isfinite(self.net.flat.params).all()):
            self.diverged("the parameters hold NaN or infinite values")

    def diverged(self, what: str) -> None:
        """Raise ``TrainingDivergedError`` about ``what`` (mode ``"warn"``: warn once and return)."""
        if self.warned:
            return
        net = self.net
        last = (
            "no finite score was seen in this fit"
            if self.last_finite is None
            else f"the last finite score was {self.last_finite:.6g} (iteration {self.last_finite_at})"
        )
        message = (
            f"training diverged at iteration {net.iteration - 1} (epoch {net.epoch}): {what}; {last}. Lower the "
            "updater's learning_rate, set gradient_normalization (e.g. 'clip_l2_per_layer'), or normalize the "
            "features; pass on_divergence='warn' to keep training anyway"
        )
        if self.mode == "raise":
            raise TrainingDivergedError(message, net.iteration - 1, self.last_finite)
        self.warned = True
        warnings.warn(message, RuntimeWarning, stacklevel=4)


class FitSession:
    """Epoch bookkeeping of one ``fit`` call (see the module docstring).

    Example:
        >>> session = FitSession(net, epochs=3, callbacks=[EarlyStopping()], validate=v, val_names=("val_loss",))
        >>> session.start(); session.begin_epoch(total=100); session.step(score); session.end_epoch()  # doctest: +SKIP
    """

    def __init__(
        self,
        net: Network,
        epochs: int,
        *,
        callbacks: Sequence[Callback] = (),
        validate: Validator | None = None,
        val_names: Sequence[str] = (),
        verbose: int | bool | None = None,
        unit: str = "batch",
        on_divergence: str = "raise",
    ) -> None:
        self.guard = DivergenceGuard(net, on_divergence)
        if isinstance(callbacks, Callback):
            callbacks = [callbacks]
        self.callbacks = list(callbacks)
        for i, cb in enumerate(self.callbacks):
            if not isinstance(cb, Callback):
                raise ConfigError(
                    f"expected a deepspark Callback (EarlyStopping, ModelCheckpoint, LearningRateLogger or a "
                    f"Callback subclass), got {type(cb).__name__}; per-iteration hooks go in add_listeners()",
                    f"callbacks[{i}]",
                )
        available = {"loss", *val_names, *(m for cb in self.callbacks for m in cb.metrics())}
        for i, cb in enumerate(self.callbacks):
            cb.check(available, f"callbacks[{i}]")
        self.loop = FitLoop(net, History())
        self.validate = validate
        self.progress = EpochProgress(epochs, resolve_verbose(verbose), unit=unit)
        self._loss_sum = torch.zeros((), dtype=torch.float64, device=net.device)  # where the scores are
        self._steps = 0
        self._open = False

    @property
    def history(self) -> History:
        """The metrics recorded so far."""
        return self.loop.history

    def start(self) -> None:
        """Call the callbacks' ``on_fit_start``."""
        for cb in self.callbacks:
            cb.on_fit_start(self.loop)

    def begin_epoch(self, total: int | None = None) -> None:
        """Open the epoch ``network.epoch`` with ``total`` steps (None when unknown)."""
        self._loss_sum.zero_()
        self._steps = 0
        self._open = True
        self.progress.start_epoch(len(self.loop.history), total)  # counted within this fit (resumes start at 1)

    def step(self, score: Tensor | float, n: int = 1, total: int | None = None) -> None:
        """``n`` steps done with mean score ``score``; a NaN/inf score diverges (Spark checks each round's
        parameters as it applies them, ``FitContext.apply_state``)."""
        self.guard.score(score)
        if not self._open:
            self.begin_epoch(total)
        elif total is not None:
            self.progress.set_total(total)
        self._loss_sum += score.detach() * n if isinstance(score, Tensor) else float(score) * n
        self._steps += n
        if self.progress.level == 1:
            self.progress.advance(n, float(self._loss_sum) / self._steps)

    def end_epoch(self) -> bool:
        """Metrics, callbacks and history for the epoch just finished; False when a callback stops training."""
        net = self.loop.network
        self.guard.params()  # before the callbacks, so that no checkpoint of NaN parameters is written
        epoch = net.epoch - 1
        logs: dict[str, float] = {}
        if self._steps:
            logs["loss"] = float(self._loss_sum) / self._steps
        elif net.last_score is not None:
            logs["loss"] = float(net.last_score)
        if self.validate is not None:
            logs.update(self.validate())
        for cb in self.callbacks:
            cb.collect(self.loop, epoch, logs)
        self.loop.history.record(epoch, logs)
        for cb in self.callbacks:
            cb.on_epoch_end(self.loop, epoch, logs)
        self.progress.end_epoch(logs)
        self._open = False
        return not self.loop.stop_training

    def finish(self) -> History:
        """Close the progress bar, call the callbacks' ``on_fit_end`` (restores, ...), return the history."""
        self.progress.close()
        for cb in self.callbacks:
            cb.on_fit_end(self.loop)
        return self.loop.history
