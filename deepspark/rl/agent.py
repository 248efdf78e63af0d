"""``Agent``: what DQN, PPO and A2C share: the environment, networks, training loop, evaluation and archives.

A subclass supplies its networks (``_networks``), the acting policy per collection (``_acting_policy``)
and the learning step (``_learn``); the base runs collect -> learn -> report until ``total_steps``.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from deepspark.config._spec import Spec
from deepspark.config.graph import GraphConfig
from deepspark.config.network import NetworkConfig
from deepspark.errors import ConfigError, DataError
from deepspark.nn import Network
from deepspark.rl._rollout_worker import IterationState, RolloutSpec
from deepspark.rl.env import EnvInfo, check_is_env, env_info, env_name, make_env
from deepspark.rl.listeners import History, IterationReport, ProgressBar, RLListener
from deepspark.rl.normalize import RunningStats, normalize
from deepspark.rl.policies import GreedyPolicy, Policy
from deepspark.rl.rollouts import LocalRollouts, Rollouts
from deepspark.rl.runner import Trajectories

NetConfig = NetworkConfig | GraphConfig


@dataclass(frozen=True, slots=True)
class EvaluationResult:
    """Returns of evaluation episodes: ``mean``, ``std`` and every episode's return and length."""

    mean: float
    std: float
    returns: tuple[float, ...]
    lengths: tuple[int, ...]

    def __str__(self) -> str:
        return f"mean return {self.mean:.2f} ± {self.std:.2f} over {len(self.returns)} episodes"


def preouts(net: Network, x: torch.Tensor) -> torch.Tensor:
    """The network's first output before its activation: Q-values, logits or the Gaussian mean."""
    return net.model.forward_preouts([x], [None])[0][0]


def clip_grad_norm(grads: Sequence[torch.Tensor], max_norm: float | None) -> float:
    """Scale the gradient buffers together so that their joint L2 norm is at most ``max_norm``; return the norm."""
    norm = math.sqrt(sum(float(torch.linalg.vector_norm(g)) ** 2 for g in grads))
    if max_norm is not None and norm > max_norm:
        scale = max_norm / (norm + 1e-6)
        for g in grads:
            g.mul_(scale)
    return norm


def step_network(net: Network, score: torch.Tensor, batch: int) -> None:
    """Turn the network's gradient buffer into an update with its own updater (and post-processing), apply it."""
    net.postprocess_gradient()
    net.gradient_to_update()
    net.apply_update(net.flat.grads, score, batch)


class Agent:
    """Base of the RL agents; see ``DQN`` and ``PPO`` for the public constructors."""

    algorithm: ClassVar[str] = ""
    config_type: ClassVar[type[Spec]]

    def __init__(
        self,
        env: Any,
        *,
        config: Any,
        rollouts: Rollouts | None = None,
        env_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if not isinstance(config, self.config_type):
            raise ConfigError(
                f"expected a {self.config_type.__name__}, got {type(config).__name__}", "config"
            )
        self.config: Any = config
        self.env_name = env_name(env)
        self._by_name = isinstance(env, str)
        self.env_kwargs_json = _kwargs_json(env_kwargs)
        self._make = self._factory(env)
        probe = self._make()
        if self.env_name.startswith("<"):  # a lambda: name the environment it builds
            self.env_name = env_name(probe)
        self.info: EnvInfo = env_info(probe, self.env_name)
        self._probe: Any = probe
        self._check_actions(self.info)
        self.rollouts: Rollouts = rollouts if rollouts is not None else LocalRollouts()
        self.obs_stats: RunningStats | None = (
            RunningStats(self.info.obs_size) if getattr(config, "normalize_observations", False) else None
        )
        self.steps = 0
        self.iteration = 0
        self.episodes = 0
        self.history = History()
        self.run_id = uuid.uuid4().hex
        self._collections = 0
        self._opened = False
        self._events: list[Any] = []
        self._stats: Any = None
        self.network: Network  # the network the policy acts with (Q or actor); set by subclasses

    # ----------------------------------------------------------------- environments and networks

    def _factory(self, env: Any) -> Callable[[], Any]:
        if isinstance(env, str):
            kwargs = self.env_kwargs_json
            make_env(env, kwargs).close()  # fail now on an unknown id, with close matches
            return lambda: make_env(env, kwargs)
        if hasattr(env, "step") and hasattr(env, "reset"):
            instances = [env]

            def once() -> Any:
                if not instances:
                    raise ConfigError(
                        "an Env instance is one environment; pass its id or a factory to run several", "env"
                    )
                return instances.pop()

            return once
        if callable(env):
            name = self.env_name
            return lambda: check_is_env(env(), name)
        raise ConfigError(
            f"expected a Gymnasium id, a 'module:factory' string, a factory or an Env, got {type(env).__name__}", "env"
        )

    def _check_actions(self, info: EnvInfo) -> None:
        """Subclasses refuse action spaces they cannot handle."""

    def _build_network(self, conf: Any, n_out: int, role: str) -> Network:
        """The compiled config, checked against the environment: input size, one output of ``n_out`` values."""
        if not isinstance(conf, (NetworkConfig, GraphConfig)):
            raise ConfigError(f"expected a NetworkConfig or GraphConfig, got {type(conf).__name__}", role)
        input_types = conf.input_types if isinstance(conf, GraphConfig) else (conf.input_type,)
        if len(input_types) != 1:
            raise ConfigError(f"the network has {len(input_types)} inputs; an agent feeds one observation", role)
        size = input_types[0].flat_size()
        if size != self.info.obs_size:
            raise ConfigError(
                f"the network takes {size} input values but {self.info.name!r} observations have shape "
                f"{self.info.obs_shape} ({self.info.obs_size} values); set input_type="
                f"InputType.feed_forward({self.info.obs_size})",
                f"{role}.input_type",
            )
        net = Network(conf)
        if len(net.heads) != 1 or net.heads[0].n_out != n_out:
            outs = [h.n_out for h in net.heads]
            raise ConfigError(
                f"the {role} network must have one output of {n_out} values for {self.info.name!r} "
                f"({self.info.action} actions), got outputs of {outs}",
                f"{role}.layers[-1].n_out",
            )
        return net

    def _observations(self, raw: np.ndarray, scale: tuple[np.ndarray, np.ndarray] | None) -> torch.Tensor:
        """Raw flat observations as the network's input tensor (normalized with ``scale`` when given)."""
        x = raw if scale is None or self.obs_stats is None else normalize(raw, *scale, self.obs_stats.clip)
        return torch.from_numpy(np.ascontiguousarray(x.reshape(-1, self.info.obs_size), dtype=np.float32))

    def _scale(self) -> tuple[np.ndarray, np.ndarray] | None:
        return None if self.obs_stats is None else self.obs_stats.scale()

    # ----------------------------------------------------------------- hooks for subclasses

    def _acting_policy(self) -> Policy:
        raise NotImplementedError

    def _acting_params(self) -> tuple[np.ndarray, np.ndarray]:
        """The acting network's flat parameters (a view, not a copy) and the Gaussian log-std (empty if discrete)."""
        return self.network.flat.params.detach().numpy(), np.zeros(0, np.float32)

    def _steps_per_env(self) -> int:
        raise NotImplementedError

    def _num_envs(self) -> int:
        return int(self.config.num_envs)

    def _learn(self, traj: Trajectories, scale: tuple[np.ndarray, np.ndarray] | None) -> dict[str, float]:
        raise NotImplementedError

    # ----------------------------------------------------------------- training

    def _open(self) -> None:
        if self._opened:
            return
        workers = self.rollouts.num_workers
        n = self._num_envs()
        if n % workers:
            raise ConfigError(
                f"num_envs={n} does not split evenly over {workers} rollout workers; use a multiple of {workers}",
                "config.num_envs",
            )
        spec = RolloutSpec(
            run_id=self.run_id,
            env=self.env_name,
            env_kwargs_json=self.env_kwargs_json,
            network_json=self.network.config.to_json(indent=None),  # type: ignore[union-attr]
            envs_per_task=n // workers,
            n_steps=self._steps_per_env(),
            seed=int(self.config.seed),
        )
        probe, self._probe = self._probe, None
        build = self._make
        pending = [] if probe is None else [probe]

        def first_then_new() -> Any:
            return pending.pop() if pending else build()

        if self._by_name and probe is not None:
            probe.close()  # rollouts build environments by name (on executors too)
        self.rollouts.open(spec, None if self._by_name else first_then_new)
        self._stats = getattr(self.rollouts, "stats", None)
        self._opened = True

    def collect(self) -> Trajectories:
        """One collection with the current acting policy (normally called by ``train``)."""
        self._open()
        params, log_std = self._acting_params()
        scale = self._scale()
        state = IterationState(
            count=self._collections,
            policy_json=self._acting_policy().to_json(indent=None),
            params=params.astype(np.float32, copy=False),
            log_std=log_std.astype(np.float32, copy=False),
            obs_mean=np.zeros(0, np.float32) if scale is None else scale[0],
            obs_inv_std=np.zeros(0, np.float32) if scale is None else scale[1],
            obs_clip=10.0 if self.obs_stats is None else self.obs_stats.clip,
        )
        traj = self.rollouts.collect(state)
        self._collections += 1
        return traj

    def train(
        self,
        total_steps: int,
        *,
        listeners: Sequence[RLListener] = (),
        progress: bool = False,
        log_every: int = 1_000,
        torch_threads: int | None = 1,
    ) -> History:
        """Collect and learn until ``total_steps`` more environment steps; returns the (cumulative) history.

        Args:
            total_steps: Environment steps to add (summed over all environments).
            listeners: ``RLListener`` objects (``RLStatsListener`` for the UI) called at every report.
            progress: Draw a progress bar on stderr.
            log_every: Environment steps between reports (at least one collection each).
            torch_threads: Torch threads while training (restored after). RL's small networks run
                fastest on one; more threads only add contention. ``None`` keeps torch's setting.
        """
        if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
            raise ConfigError(f"expected a positive int, got {total_steps!r}", "total_steps")
        hooks = list(listeners) + ([ProgressBar()] if progress else [])
        for hook in hooks:
            hook.on_train_start(self, self.steps + total_steps)
        end = self.steps + total_steps
        t_start = time.perf_counter()
        window_start, window_steps = time.perf_counter(), 0
        window_returns: list[float] = []
        window_lengths: list[int] = []
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        threads = torch.get_num_threads()
        if torch_threads is not None:
            torch.set_num_threads(torch_threads)
        try:
            while self.steps < end:
                scale = self._scale()
                traj = self.collect()
                self.steps += traj.num_steps
                window_steps += traj.num_steps
                self._record_episodes(traj, window_returns, window_lengths)
                t0 = time.time()
                metrics = self._learn(traj, scale)
                self._learn_event(t0)
                if self.obs_stats is not None:
                    self.obs_stats.update(traj.obs)
                self.iteration += 1
                for key, value in metrics.items():
                    if math.isfinite(value):
                        sums[key] = sums.get(key, 0.0) + value
                        counts[key] = counts.get(key, 0) + 1
                if window_steps >= log_every or self.steps >= end:
                    now = time.perf_counter()
                    report = IterationReport(
                        step=self.steps,
                        iteration=self.iteration,
                        seconds=now - t_start,
                        steps_per_sec=window_steps / max(now - window_start, 1e-9),
                        episode_returns=tuple(window_returns),
                        episode_lengths=tuple(window_lengths),
                        metrics={k: sums[k] / counts[k] for k in sums},
                    )
                    self.history.reports.append(report)
                    for hook in hooks:
                        hook.on_report(self, report)
                    window_start, window_steps = now, 0
                    window_returns, window_lengths, sums, counts = [], [], {}, {}
        finally:
            torch.set_num_threads(threads)
            for hook in hooks:
                hook.on_train_end(self)
        return self.history

    def _record_episodes(self, traj: Trajectories, returns: list[float], lengths: list[int]) -> None:
        n = len(traj.episode_returns)
        if not n:
            return
        # final_index[i] (t * E + e) is where episode i ended: count the steps up to the end of row t
        width = traj.rewards.shape[1]
        before = self.steps - traj.num_steps
        self.history.episode_steps.extend(int(before + (i // width + 1) * width) for i in traj.final_index)
        self.history.episode_returns.extend(float(r) for r in traj.episode_returns)
        self.history.episode_lengths.extend(int(v) for v in traj.episode_lengths)
        returns.extend(float(r) for r in traj.episode_returns)
        lengths.extend(int(v) for v in traj.episode_lengths)
        self.episodes += n

    def _learn_event(self, t0: float) -> None:
        if self._stats is not None:
            from deepspark.spark.events import driver_event

            self._stats.add([driver_event("learn", t0, time.time() - t0, self.iteration)])

    def rollouts_events(self) -> list[Any]:
        """Timeline events recorded since the last call (Spark rollouts only; empty otherwise)."""
        stats = getattr(self.rollouts, "training_stats", None)
        if stats is None:
            return []
        events: list[Any] = stats().events()
        new, self._events = events[len(self._events) :], events
        return new

    # ----------------------------------------------------------------- acting and evaluation

    @torch.no_grad()
    def act(self, obs: Any, policy: Policy | None = None, *, seed: int = 0) -> np.ndarray:
        """Actions for a batch of observations (one row per observation) with ``policy`` (greedy by default)."""
        arr = np.asarray(obs, dtype=np.float32).reshape(-1, self.info.obs_size)
        if not np.isfinite(arr).all():
            raise DataError("observations contain NaN or infinite values")
        self.network.model.eval()
        out = preouts(self.network, self._observations(arr, self._scale()))
        actions, _ = (policy or GreedyPolicy()).select(out, self._log_std(), torch.Generator().manual_seed(seed))
        return actions.numpy()

    def _log_std(self) -> torch.Tensor | None:
        return None

    def evaluate(self, episodes: int = 10, *, policy: Policy | None = None, seed: int = 1_000_000) -> EvaluationResult:
        """Play ``episodes`` whole episodes with ``policy`` (greedy by default) in a fresh environment.

        Episode ``i`` starts from ``reset(seed=...)`` derived from ``seed`` and ``i``, so an evaluation is
        reproducible. Its steps do not count as training steps.
        """
        if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
            raise ConfigError(f"expected a positive int, got {episodes!r}", "episodes")
        from deepspark.rl.runner import EnvRunner

        runner = EnvRunner(self._make if self._probe is None else self._take_probe, self.info, 1, seed, -1)
        pol = policy or GreedyPolicy()
        gen = torch.Generator().manual_seed(seed)
        scale = self._scale()
        log_std = self._log_std()
        self.network.model.eval()

        @torch.no_grad()
        def act(obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            out = preouts(self.network, self._observations(obs, scale))
            actions, logp = pol.select(out, log_std, gen)
            return actions.numpy(), logp.numpy()

        returns: list[float] = []
        lengths: list[int] = []
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # one observation at a time: more threads only add contention
        try:
            runner.start()
            while len(returns) < episodes:
                traj = runner.collect(64, act)
                returns.extend(float(r) for r in traj.episode_returns)
                lengths.extend(int(v) for v in traj.episode_lengths)
        finally:
            torch.set_num_threads(threads)
            runner.close()
        returns, lengths = returns[:episodes], lengths[:episodes]
        return EvaluationResult(float(np.mean(returns)), float(np.std(returns)), tuple(returns), tuple(lengths))

    def _take_probe(self) -> Any:
        probe, self._probe = self._probe, None
        return probe if probe is not None else self._make()

    def close(self) -> None:
        """Close the rollout environments."""
        self.rollouts.close()
        self._opened = False

    # ----------------------------------------------------------------- archives

    def save(self, path: str | Path) -> None:
        """Write the agent (configs, networks, optimizer state, observation statistics) as a zip archive."""
        from deepspark.rl._archive import save_agent

        save_agent(self, path)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(env={self.env_name!r}, steps={self.steps}, episodes={self.episodes})"


def _kwargs_json(kwargs: dict[str, Any] | None) -> str:
    import json

    try:
        return json.dumps(kwargs or {}, sort_keys=True)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"env_kwargs must be JSON values (numbers, strings, lists, dicts): {e}", "env_kwargs") from e


__all__ = ["Agent", "EvaluationResult", "clip_grad_norm", "preouts", "step_network"]
