"""``ReplayBuffer``: a fixed-size ring of transitions in preallocated numpy arrays (DQN's experience replay)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deepspark.rl.runner import Trajectories


@dataclass(frozen=True, slots=True)
class TransitionBatch:
    """A sampled minibatch: observations, actions, rewards, terminal flags and next observations (raw)."""

    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    next_obs: np.ndarray


class ReplayBuffer:
    """Holds the latest ``capacity`` transitions; adding past it overwrites the oldest, sampling is uniform.

    A truncated episode's last transition keeps ``terminated=False`` and its real next observation, so
    its target still bootstraps; only true terminal states cut the return.

    Example:
        >>> buf = ReplayBuffer(1000, obs_size=4)
        >>> buf.add(trajectories)                         # doctest: +SKIP
        >>> batch = buf.sample(64, np.random.default_rng(0))  # doctest: +SKIP
    """

    def __init__(self, capacity: int, obs_size: int, action_shape: tuple[int, ...] = ()) -> None:
        self.capacity = capacity
        self.obs = np.zeros((capacity, obs_size), np.float32)
        self.next_obs = np.zeros((capacity, obs_size), np.float32)
        self.actions = np.zeros((capacity, *action_shape), np.int64 if not action_shape else np.float32)
        self.rewards = np.zeros(capacity, np.float32)
        self.terminated = np.zeros(capacity, bool)
        self.position = 0
        self.size = 0

    def add(self, traj: Trajectories) -> None:
        """Append every step of ``traj`` (row-major over steps, then environments)."""
        d = self.obs.shape[1]
        obs = traj.obs.reshape(-1, d)
        nxt = traj.next_obs().reshape(-1, d)
        n = obs.shape[0]
        idx = (self.position + np.arange(n)) % self.capacity
        self.obs[idx] = obs
        self.next_obs[idx] = nxt
        self.actions[idx] = traj.actions.reshape(n, *self.actions.shape[1:])
        self.rewards[idx] = traj.rewards.reshape(-1)
        self.terminated[idx] = traj.terminated.reshape(-1)
        self.position = int((self.position + n) % self.capacity)
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int, rng: np.random.Generator) -> TransitionBatch:
        """``batch_size`` transitions drawn uniformly (with replacement) from what the buffer holds."""
        idx = rng.integers(0, self.size, batch_size)
        return TransitionBatch(
            self.obs[idx], self.actions[idx], self.rewards[idx], self.terminated[idx], self.next_obs[idx]
        )


__all__ = ["ReplayBuffer", "TransitionBatch"]
