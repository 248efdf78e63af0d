"""``EnvRunner``: a task's environments stepped in lockstep, and ``Trajectories``, what one collection returns.

Episodes continue across collections (an environment is never rebuilt per step or per iteration). Each
episode starts from ``reset(seed)`` with a seed derived from (run seed, task, environment, episode
number), and the runner logs the actions of the running episode. That log is the runner's resume
state: a process that lacks the live environments (a Spark task that moved to another Python worker,
or a retry after a lost executor) rebuilds them exactly by resetting with the same seed and replaying
the logged actions, so a collection's result depends only on (seed, iteration, task), never on where
it ran. Gymnasium environments are deterministic given their seed and actions; that is all it needs.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from deepspark.errors import DataError, DeepSparkError
from deepspark.rl.env import EnvInfo, ObservationFlattener, step_error

ActFn = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
"""Maps raw flat observations [E, obs_size] to (actions, log-probabilities) for E environments."""


def episode_seed(seed: int, task: int, env: int, episode: int) -> int:
    """The ``reset`` seed of an environment's ``episode``-th episode (stable across machines and versions)."""
    return int(np.random.SeedSequence([seed, task, env, episode]).generate_state(1)[0])


@dataclass(frozen=True, kw_only=True, slots=True)
class Trajectories:
    """Steps collected from E environments over T steps (arrays shaped [T, E, ...]); observations raw.

    Attributes:
        obs: Observation each action was taken in, flattened, [T, E, obs_size] float32.
        actions: [T, E] int64 (discrete) or [T, E, A] float32 (as sent to the environment).
        log_probs: Log-probability of each action under the acting policy, [T, E] float32.
        rewards: [T, E] float32.
        terminated: The episode ended in a terminal state at this step, [T, E] bool.
        truncated: The episode was cut (time limit) at this step, [T, E] bool.
        final_index: Flat indices ``t * E + e`` of the steps that ended an episode, [K] int64.
        final_obs: The observation those steps led to (before the reset), [K, obs_size] float32.
        last_obs: The observation after the last step, [E, obs_size] float32 (for bootstrapping).
        episode_returns: Returns of the episodes that ended, in order of ending, [M] float64.
        episode_lengths: Their lengths, [M] int64.
        step_seconds: Seconds spent in ``env.step`` and the policy, summed over the collecting tasks.
    """

    obs: np.ndarray
    actions: np.ndarray
    log_probs: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    final_index: np.ndarray
    final_obs: np.ndarray
    last_obs: np.ndarray
    episode_returns: np.ndarray
    episode_lengths: np.ndarray
    step_seconds: float = 0.0

    @property
    def num_steps(self) -> int:
        """Environment steps held (T * E)."""
        return int(self.rewards.size)

    def next_obs(self) -> np.ndarray:
        """The observation each step led to, [T, E, obs_size]: the next row, or the final one where it ended."""
        nxt = np.concatenate([self.obs[1:], self.last_obs[None]], axis=0)
        flat = nxt.reshape(-1, nxt.shape[-1])
        flat[self.final_index] = self.final_obs
        return nxt

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The fields as named arrays (for the wire)."""
        return {
            "obs": self.obs,
            "actions": self.actions,
            "log_probs": self.log_probs,
            "rewards": self.rewards,
            "terminated": self.terminated,
            "truncated": self.truncated,
            "final_index": self.final_index,
            "final_obs": self.final_obs,
            "last_obs": self.last_obs,
            "episode_returns": self.episode_returns,
            "episode_lengths": self.episode_lengths,
            "step_seconds": np.array([self.step_seconds], np.float64),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Trajectories:
        """Rebuild from ``to_arrays``; missing fields or inconsistent shapes raise ``DataError``."""
        names = [n for n in cls.__dataclass_fields__ if n != "step_seconds"]  # type: ignore[attr-defined]
        missing = [n for n in [*names, "step_seconds"] if n not in arrays]
        if missing:
            raise DataError(f"trajectories lack {missing}")
        t, e = arrays["rewards"].shape
        for name in ("obs", "actions", "log_probs", "terminated", "truncated"):
            if arrays[name].shape[:2] != (t, e):
                raise DataError(f"trajectories: {name} has shape {arrays[name].shape}, expected ({t}, {e}, ...)")
        fields: dict[str, Any] = {n: arrays[n] for n in names}
        return cls(**fields, step_seconds=float(arrays["step_seconds"][0]))

    @staticmethod
    def concat(parts: list[Trajectories]) -> Trajectories:
        """Side by side along the environment axis (the tasks of one iteration, in task order)."""
        if len(parts) == 1:
            return parts[0]
        widths = [p.rewards.shape[1] for p in parts]
        t = parts[0].rewards.shape[0]
        total = sum(widths)
        index, offset = [], 0
        for p, w in zip(parts, widths, strict=True):
            rows, cols = np.divmod(p.final_index, w)
            index.append(rows * total + cols + offset)
            offset += w
        if any(p.rewards.shape[0] != t for p in parts):
            raise DataError("trajectories of one iteration must have the same number of steps per environment")
        return Trajectories(
            obs=np.concatenate([p.obs for p in parts], axis=1),
            actions=np.concatenate([p.actions for p in parts], axis=1),
            log_probs=np.concatenate([p.log_probs for p in parts], axis=1),
            rewards=np.concatenate([p.rewards for p in parts], axis=1),
            terminated=np.concatenate([p.terminated for p in parts], axis=1),
            truncated=np.concatenate([p.truncated for p in parts], axis=1),
            final_index=np.concatenate(index),
            final_obs=np.concatenate([p.final_obs for p in parts]),
            last_obs=np.concatenate([p.last_obs for p in parts]),
            episode_returns=np.concatenate([p.episode_returns for p in parts]),
            episode_lengths=np.concatenate([p.episode_lengths for p in parts]),
            step_seconds=sum(p.step_seconds for p in parts),
        )


class EnvRunner:
    """``num_envs`` environments of one task; see the module docstring for how episodes survive moves.

    Args:
        make: Builds one environment (called ``num_envs`` times, once per runner).
        info: The environment's spaces (``env_info``).
        num_envs: Environments stepped side by side.
        seed: The run's seed.
        task: The task (Spark partition) index; ``-1`` in a local run shows no worker in messages.
    """

    def __init__(self, make: Callable[[], Any], info: EnvInfo, num_envs: int, seed: int, task: int = 0) -> None:
        self.info, self.num_envs, self.seed, self.task = info, num_envs, seed, max(task, 0)
        self.worker = task  # shown in error messages; -1 locally
        self.envs = [make() for _ in range(num_envs)]
        self._flatten = ObservationFlattener(self.envs[0], info)
        self._discrete = info.action == "discrete"
        self._low = np.asarray(info.low, np.float32)
        self._high = np.asarray(info.high, np.float32)
        self.episode = np.zeros(num_envs, np.int64)  # episodes finished so far, per environment
        self.ep_return = np.zeros(num_envs, np.float64)
        self.log: list[list[Any]] = [[] for _ in range(num_envs)]  # actions of the running episode
        self.obs = np.zeros((num_envs, info.obs_size), np.float32)
        self.position: int | None = None  # collections completed and consistent; None until started
        self.total_steps = 0

    # ----------------------------------------------------------------- resume state

    def start(self) -> None:
        """Reset every environment into its first episode."""
        self.episode[:] = 0
        for e in range(self.num_envs):
            self._begin_episode(e)
        self.position = 0

    def resume_arrays(self) -> dict[str, np.ndarray]:
        """The state another process needs to rebuild these environments: episode numbers and action logs."""
        lengths = np.array([len(log) for log in self.log], np.int64)
        if self._discrete:
            actions = np.array([a for log in self.log for a in log], np.int64)
        else:
            flat = [a for log in self.log for a in log]
            actions = np.stack(flat) if flat else np.zeros((0, self.info.action_size), np.float32)
        position = np.array([-1 if self.position is None else self.position], np.int64)
        return {"episode": self.episode.copy(), "log_lengths": lengths, "log_actions": actions, "position": position}

    def restore(self, arrays: dict[str, np.ndarray]) -> None:
        """Rebuild the environments' state from ``resume_arrays`` output by resetting and replaying."""
        episode, lengths, actions = arrays["episode"], arrays["log_lengths"], arrays["log_actions"]
        if episode.shape != (self.num_envs,) or lengths.shape != (self.num_envs,) or len(actions) != lengths.sum():
            raise DataError(
                f"rollout resume state is for {episode.shape[0]} environments with {len(actions)} logged actions, "
                f"this task runs {self.num_envs}"
            )
        self.episode[:] = episode
        start = 0
        for e in range(self.num_envs):
            self._begin_episode(e)
            for a in actions[start : start + int(lengths[e])]:
                self._step_one(e, a.copy() if not self._discrete else int(a))
            start += int(lengths[e])
        self.position = int(arrays["position"][0])

    # ----------------------------------------------------------------- stepping

    def _begin_episode(self, e: int) -> None:
        seed = episode_seed(self.seed, self.task, e, int(self.episode[e]))
        try:
            obs, _ = self.envs[e].reset(seed=seed)
        except DeepSparkError:
            raise
        except Exception as exc:
            raise step_error(self.info.name, 0, self.worker, e, exc) from exc
        self.obs[e] = self._flatten(obs, 0)
        self.ep_return[e] = 0.0
        self.log[e] = []

    def _step_one(self, e: int, action: Any) -> tuple[float, bool, bool, np.ndarray]:
        step = len(self.log[e]) + 1
        try:
            obs, reward, terminated, truncated, _ = self.envs[e].step(action)
        except Exception as exc:
            raise step_error(self.info.name, step, self.worker, e, exc) from exc
        r = float(reward)
        if not math.isfinite(r):
            where = f"worker {self.worker}, env {e}" if self.worker >= 0 else f"env {e}"
            raise DataError(
                f"environment {self.info.name!r} ({where}) returned reward {r} at step {step} of episode "
                f"{int(self.episode[e])}; rewards must be finite numbers"
            )
        flat = self._flatten(obs, step)
        if not np.isfinite(flat).all():
            raise DataError(
                f"environment {self.info.name!r} returned a NaN or infinite observation at step {step}; "
                "fix the environment or clip its observations"
            )
        self.log[e].append(action)
        self.ep_return[e] += r
        self.obs[e] = flat
        return r, bool(terminated), bool(truncated), flat

    def collect(self, n_steps: int, act: ActFn) -> Trajectories:
        """Step every environment ``n_steps`` times with ``act``; finished episodes restart at once."""
        if self.position is None:
            self.start()
        e_count, size = self.num_envs, self.info.obs_size
        obs = np.empty((n_steps, e_count, size), np.float32)
        if self._discrete:
            actions = np.empty((n_steps, e_count), np.int64)
        else:
            actions = np.empty((n_steps, e_count, self.info.action_size), np.float32)
        log_probs = np.empty((n_steps, e_count), np.float32)
        rewards = np.empty((n_steps, e_count), np.float32)
        terminated = np.zeros((n_steps, e_count), bool)
        truncated = np.zeros((n_steps, e_count), bool)
        final_index: list[int] = []
        final_obs: list[np.ndarray] = []
        returns: list[float] = []
        lengths: list[int] = []
        position, self.position = self.position, None  # dirty until the collection completes
        t0 = time.perf_counter()
        for t in range(n_steps):
            obs[t] = self.obs
            a, logp = act(self.obs)
            if not self._discrete:
                a = np.clip(a.astype(np.float32, copy=False), self._low, self._high)
            actions[t] = a
            log_probs[t] = logp
            for e in range(e_count):
                action = int(a[e]) if self._discrete else a[e].copy()
                r, term, trunc, flat = self._step_one(e, action)
                rewards[t, e] = r
                if term or trunc:
                    terminated[t, e], truncated[t, e] = term, trunc
                    final_index.append(t * e_count + e)
                    final_obs.append(flat)
                    returns.append(float(self.ep_return[e]))
                    lengths.append(len(self.log[e]))
                    self.episode[e] += 1
                    self._begin_episode(e)
        seconds = time.perf_counter() - t0
        self.total_steps += n_steps * e_count
        self.position = (position or 0) + 1
        return Trajectories(
            obs=obs,
            actions=actions,
            log_probs=log_probs,
            rewards=rewards,
            terminated=terminated,
            truncated=truncated,
            final_index=np.asarray(final_index, np.int64),
            final_obs=np.stack(final_obs) if final_obs else np.zeros((0, size), np.float32),
            last_obs=self.obs.copy(),
            episode_returns=np.asarray(returns, np.float64),
            episode_lengths=np.asarray(lengths, np.int64),
            step_seconds=seconds,
        )

    def close(self) -> None:
        """Close every environment (errors while closing are ignored)."""
        for env in self.envs:
            with contextlib.suppress(Exception):
                env.close()


__all__ = ["ActFn", "EnvRunner", "Trajectories", "episode_seed"]
