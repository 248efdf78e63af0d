"""What an agent reports while it trains: ``History``, the ``RLListener`` hooks, a progress bar and UI stats.

``RLStatsListener`` writes the same record types as ``StatsListener`` (so ``deepspark ui`` and
``deepspark report`` show RL runs): ``model`` records with the loss as score, environment steps/s as
throughput and ``episode_return`` / ``episode_length`` / ``epsilon`` / ``entropy``; the record's
iteration is the environment step count.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from deepspark.stats.listener import StatsListener

if TYPE_CHECKING:
    from deepspark.rl.agent import Agent


@dataclass(frozen=True, kw_only=True, slots=True)
class IterationReport:
    """One report: the window of training since the previous one.

    Attributes:
        step: Environment steps so far.
        iteration: Collections (rollout iterations) so far.
        seconds: Wall-clock seconds since training started.
        steps_per_sec: Environment steps per second over the window (collection and learning).
        episode_returns: Returns of the episodes that ended in the window.
        episode_lengths: Their lengths.
        metrics: Learner metrics averaged over the window (``loss``, ``entropy``, ``epsilon``, ...).
    """

    step: int
    iteration: int
    seconds: float
    steps_per_sec: float
    episode_returns: tuple[float, ...]
    episode_lengths: tuple[int, ...]
    metrics: dict[str, float]

    @property
    def mean_return(self) -> float | None:
        """Mean return of the window's episodes (``None`` when none ended)."""
        return float(np.mean(self.episode_returns)) if self.episode_returns else None


@dataclass
class History:
    """Everything ``train`` saw: every finished episode and every report.

    Example:
        >>> history = agent.train(total_steps=50_000)  # doctest: +SKIP
        >>> history.mean_return(last=20)              # doctest: +SKIP
    """

    episode_steps: list[int] = field(default_factory=list)
    episode_returns: list[float] = field(default_factory=list)
    episode_lengths: list[int] = field(default_factory=list)
    reports: list[IterationReport] = field(default_factory=list)

    def mean_return(self, last: int = 100) -> float:
        """Mean return of the last ``last`` training episodes (NaN before the first one ends)."""
        if not self.episode_returns:
            return math.nan
        return float(np.mean(self.episode_returns[-last:]))

    def metric(self, name: str) -> list[float]:
        """One learner metric per report (NaN where a report lacks it)."""
        return [r.metrics.get(name, math.nan) for r in self.reports]


class RLListener:
    """Hooks an agent calls while it trains; override what you need."""

    def on_train_start(self, agent: Agent, total_steps: int) -> None:
        """Before the first collection."""

    def on_report(self, agent: Agent, report: IterationReport) -> None:
        """After each report window (about every ``log_every`` environment steps)."""

    def on_train_end(self, agent: Agent) -> None:
        """After the last update."""


class ProgressBar(RLListener):
    """A one-line progress bar on stderr: steps, mean return of recent episodes, steps/s."""

    def __init__(self, stream: IO[str] | None = None, width: int = 24) -> None:
        self.stream = stream or sys.stderr
        self.width = width
        self.total = 0
        self._recent: list[float] = []

    def on_train_start(self, agent: Agent, total_steps: int) -> None:
        self.total = max(total_steps, 1)
        self._recent = []

    def on_report(self, agent: Agent, report: IterationReport) -> None:
        self._recent = (self._recent + list(report.episode_returns))[-100:]
        done = min(report.step / self.total, 1.0)
        bar = "#" * int(done * self.width)
        ret = f"{np.mean(self._recent):8.1f}" if self._recent else "       -"
        self.stream.write(
            f"\r[{bar:<{self.width}}] {report.step:>9,}/{self.total:,} steps  return {ret}  "
            f"{report.steps_per_sec:7.0f} steps/s"
        )
        self.stream.flush()

    def on_train_end(self, agent: Agent) -> None:
        self.stream.write("\n")
        self.stream.flush()


class RLStatsListener(RLListener):
    """Reports RL training to a stats storage, for ``deepspark ui`` / ``deepspark report``.

    Args:
        storage: ``SQLiteStatsStorage``, ``InMemoryStatsStorage`` or ``RemoteStatsRouter``.
        session_id: The run's id in the UI (time-stamped and random by default).
        histograms: Also record parameter histograms of the policy (or Q) network.

    Example:
        >>> agent.train(50_000, listeners=[RLStatsListener(SQLiteStatsStorage("runs.db"))])  # doctest: +SKIP
    """

    def __init__(self, storage: Any, *, session_id: str | None = None, histograms: bool = False) -> None:
        self._stats = StatsListener(storage, report_every=1, session_id=session_id, histograms=histograms)
        self.session_id = self._stats.session_id
        self._prev: np.ndarray | None = None
        self._t = time.perf_counter()

    def on_train_start(self, agent: Agent, total_steps: int) -> None:
        info = {
            "training": f"rl {agent.algorithm}",
            "algorithm": agent.algorithm,
            "env": agent.env_name,
            "num_workers": agent.rollouts.num_workers,
            "rl_config": agent.config.to_dict(),
        }
        self._stats._static(agent.network, info)
        self._prev = agent.network.params()
        self._t = time.perf_counter()

    def on_report(self, agent: Agent, report: IterationReport) -> None:
        net = agent.network
        params = net.params()
        update = None if self._prev is None else params - self._prev
        self._stats._window_examples, self._stats._window_batches = 0, 0
        payload = self._stats._model_payload(net, report.metrics.get("loss", math.nan), params, update, 1.0)
        payload["examples_per_sec"] = report.steps_per_sec
        payload["minibatches_per_sec"] = None
        payload["env_steps"] = report.step
        payload["rl_iteration"] = report.iteration
        payload["episode_return"] = report.mean_return
        payload["episode_length"] = float(np.mean(report.episode_lengths)) if report.episode_lengths else None
        payload["episodes"] = len(report.episode_returns)
        for key, value in report.metrics.items():
            payload[key] = value if math.isfinite(value) else None
        self._stats._emit("model", "driver", report.step, "update", payload)
        events = agent.rollouts_events()
        if events:
            rows = [[e.worker, e.phase, e.side, e.start, e.duration, e.round, e.attempt] for e in events]
            self._stats._emit("spark", "driver", report.step, "update", {"events": rows})
        self._prev = params

    def on_train_end(self, agent: Agent) -> None:
        self._stats._emit("session", "driver", agent.steps, "update", {"event": "fit_end", "epoch": agent.iteration})


__all__ = ["History", "IterationReport", "ProgressBar", "RLListener", "RLStatsListener"]
