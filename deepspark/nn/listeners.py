"""Training listeners: hooks called by ``Network.fit`` (score logging, throughput, evaluation, checkpoints)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import Tensor

from deepspark.errors import ConfigError

if TYPE_CHECKING:
    from deepspark.nn.network import Network

log = logging.getLogger("deepspark")


def _check_every(value: int | None, name: str, optional: bool = False) -> None:
    """Listener frequencies are positive ints (or None where the schedule is optional)."""
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"expected a positive int{' or None' if optional else ''}, got {value!r}", name)


@dataclass
class IterationInfo:
    """What one training step reports. ``score`` is read lazily: nothing waits on the loss unless asked."""

    iteration: int
    epoch: int
    batch_size: int
    score_tensor: Tensor

    @property
    def score(self) -> float:
        """The minibatch loss (plus regularization) as a float."""
        return float(self.score_tensor)


class TrainingListener:
    """Base class: override the hooks you need. All hooks run on the training thread."""

    def on_fit_start(self, net: Network) -> None:
        """Called once when ``fit`` begins."""

    def on_epoch_start(self, net: Network, epoch: int) -> None:
        """Called at the start of every epoch."""

    def on_gradient_calculation(self, net: Network) -> None:
        """Called after backpropagation, before the updater turns ``net.flat.grads`` into the update in place
        (the only moment raw gradients can be read); ``net.iteration`` is the step being computed."""

    def iteration_done(self, net: Network, info: IterationInfo) -> None:
        """Called after every parameter update."""

    def on_epoch_end(self, net: Network, epoch: int) -> None:
        """Called at the end of every epoch (``net.epoch`` is already advanced)."""

    def on_fit_end(self, net: Network) -> None:
        """Called once when ``fit`` returns."""


class ScoreIterationListener(TrainingListener):
    """Logs the score every ``print_every`` iterations and keeps the history.

    Example:
        >>> listener = ScoreIterationListener(print_every=50)
    """

    def __init__(self, print_every: int = 10, sink: Callable[[str], None] | None = None) -> None:
        _check_every(print_every, "print_every")
        self.print_every = print_every
        self.sink = sink or log.info
        self.history: list[tuple[int, float]] = []

    def iteration_done(self, net: Network, info: IterationInfo) -> None:
        if info.iteration % self.print_every == 0:
            score = info.score
            self.history.append((info.iteration, score))
            self.sink(f"iteration {info.iteration} epoch {info.epoch}: score {score:.6f}")


class PerformanceListener(TrainingListener):
    """Measures examples/s and minibatches/s over windows of ``frequency`` iterations."""

    def __init__(self, frequency: int = 10, sink: Callable[[str], None] | None = None) -> None:
        _check_every(frequency, "frequency")
        self.frequency = frequency
        self.sink = sink or log.info
        self.samples: list[dict[str, float]] = []
        self._start = 0.0
        self._examples = 0
        self._batches = 0

    def on_fit_start(self, net: Network) -> None:
        self._start, self._examples, self._batches = time.perf_counter(), 0, 0

    def iteration_done(self, net: Network, info: IterationInfo) -> None:
        self._examples += info.batch_size
        self._batches += 1
        if self._batches >= self.frequency:
            elapsed = max(time.perf_counter() - self._start, 1e-9)
            sample = {
                "iteration": float(info.iteration),
                "examples_per_sec": self._examples / elapsed,
                "batches_per_sec": self._batches / elapsed,
            }
            self.samples.append(sample)
            self.sink(
                f"iteration {info.iteration}: {sample['examples_per_sec']:.1f} examples/s, "
                f"{sample['batches_per_sec']:.2f} minibatches/s"
            )
            self._start, self._examples, self._batches = time.perf_counter(), 0, 0


@dataclass
class EvaluativeListener(TrainingListener):
    """Evaluates on held-out data every ``frequency`` epochs (or iterations) and keeps the results."""

    features: Any
    labels: Any = None
    frequency: int = 1
    unit: str = "epoch"
    sink: Callable[[str], None] | None = None
    results: list[tuple[int, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        _check_every(self.frequency, "frequency")
        if self.unit not in ("epoch", "iteration"):
            raise ConfigError(f"expected 'epoch' or 'iteration', got {self.unit!r}", "unit")

    def _run(self, net: Network, at: int) -> None:
        evaluation = net.evaluate(self.features, self.labels)
        self.results.append((at, evaluation))
        (self.sink or log.info)(f"{self.unit} {at}: accuracy {evaluation.accuracy():.4f}")

    def iteration_done(self, net: Network, info: IterationInfo) -> None:
        if self.unit == "iteration" and info.iteration % self.frequency == 0:
            self._run(net, info.iteration)

    def on_epoch_end(self, net: Network, epoch: int) -> None:
        if self.unit == "epoch" and net.epoch % self.frequency == 0:
            self._run(net, net.epoch)


class CheckpointListener(TrainingListener):
    """Saves an archive every ``every_epochs`` epochs and/or ``every_iterations`` iterations, keeping the
    newest ``keep_last``. Files are ``checkpoint_e{epoch}_i{iteration}.zip`` under ``directory``."""

    def __init__(
        self,
        directory: str | Path,
        every_epochs: int | None = 1,
        every_iterations: int | None = None,
        keep_last: int = 3,
        save_updater: bool = True,
    ) -> None:
        _check_every(every_epochs, "every_epochs", optional=True)
        _check_every(every_iterations, "every_iterations", optional=True)
        _check_every(keep_last, "keep_last")
        self.directory = Path(directory)
        self.every_epochs = every_epochs
        self.every_iterations = every_iterations
        self.keep_last = keep_last
        self.save_updater = save_updater
        self.saved: list[Path] = []

    def _save(self, net: Network) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"checkpoint_e{net.epoch}_i{net.iteration}.zip"
        net.save(path, save_updater=self.save_updater)
        self.saved.append(path)
        while len(self.saved) > self.keep_last:
            self.saved.pop(0).unlink(missing_ok=True)

    def iteration_done(self, net: Network, info: IterationInfo) -> None:
        if self.every_iterations and net.iteration % self.every_iterations == 0:
            self._save(net)

    def on_epoch_end(self, net: Network, epoch: int) -> None:
        if self.every_epochs and net.epoch % self.every_epochs == 0:
            self._save(net)

    def latest(self) -> Path | None:
        """The newest checkpoint written, if any."""
        return self.saved[-1] if self.saved else None
