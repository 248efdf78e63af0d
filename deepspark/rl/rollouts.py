"""Where experience is collected: ``LocalRollouts`` (in this process) and the protocol ``SparkRollouts`` follows.

An agent hands its rollouts a ``RolloutSpec`` once (``open``) and an ``IterationState`` per collection
(``collect``); both implementations run the same task code (``deepspark.rl._rollout_worker``), so they
differ only in where the environments live.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from deepspark.errors import ConfigError
from deepspark.rl._rollout_worker import IterationState, Live, RolloutSpec, collect_with, pack_resume
from deepspark.rl.runner import Trajectories


class Rollouts(Protocol):
    """What an agent needs from a rollout collector."""

    @property
    def num_workers(self) -> int:
        """Tasks the environments are split over."""
        ...

    def open(self, spec: RolloutSpec, make: Callable[[], Any] | None) -> None:
        """Bind to a run (``make`` builds an environment where ``spec.env`` cannot be used by name)."""
        ...

    def collect(self, state: IterationState) -> Trajectories:
        """One collection: ``spec.n_steps`` steps of each of the run's environments, task by task."""
        ...

    def close(self) -> None:
        """Release the environments."""
        ...


class LocalRollouts:
    """All environments in this process, stepped in lockstep (the default).

    Example:
        >>> ppo = PPO("CartPole-v1", rollouts=LocalRollouts())  # doctest: +SKIP
    """

    num_workers = 1

    def __init__(self) -> None:
        self._live: Live | None = None
        self._spec: RolloutSpec | None = None
        self._resume: dict[str, Any] | None = None
        self._lost = False

    def open(self, spec: RolloutSpec, make: Callable[[], Any] | None) -> None:
        """Build the run's environments here."""
        self.close()
        self._spec = spec
        self._live = Live(spec, 0, -1, make)

    def collect(self, state: IterationState) -> Trajectories:
        """One collection in this process."""
        if self._live is None or self._spec is None:
            raise ConfigError("LocalRollouts.collect before open(): the agent opens its rollouts in train()")
        resume = pack_resume(self._resume) if self._lost and self._resume is not None else None
        traj, self._resume = collect_with(self._live, self._spec, state, 0, resume)
        self._lost = False
        return traj

    def forget(self, make: Callable[[], Any] | None = None) -> None:
        """Drop the live environments as a lost executor would; the next collection rebuilds them from the log."""
        if self._spec is not None:
            if self._live is not None:
                self._live.runner.close()
            self._live = Live(self._spec, 0, -1, make)
            self._lost = True

    def close(self) -> None:
        """Close the environments."""
        if self._live is not None:
            self._live.runner.close()
        self._live = None


__all__ = ["LocalRollouts", "Rollouts"]
