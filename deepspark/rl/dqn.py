"""``DQN``: deep Q-learning with experience replay, a target network, double-DQN targets and a Huber TD loss."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from deepspark.config.network import NetworkConfig
from deepspark.config.updaters import Adam
from deepspark.errors import ConfigError
from deepspark.nn import Network
from deepspark.rl.agent import Agent, clip_grad_norm, preouts, step_network
from deepspark.rl.buffer import ReplayBuffer
from deepspark.rl.config import DQNConfig, schedule_value
from deepspark.rl.env import EnvInfo
from deepspark.rl.networks import mlp
from deepspark.rl.policies import EpsilonGreedyPolicy, Policy
from deepspark.rl.rollouts import Rollouts
from deepspark.rl.runner import Trajectories


def td_targets(
    rewards: Tensor, terminated: Tensor, next_q_target: Tensor, next_q_online: Tensor | None, gamma: float
) -> Tensor:
    """One-step TD targets ``r + gamma * (1 - terminal) * Q_target(s', a')``.

    ``a'`` is the target network's own argmax, or with ``next_q_online`` given (double DQN) the online
    network's argmax, which removes the max operator's overestimation bias.

    Example:
        >>> td_targets(torch.tensor([1.0]), torch.tensor([False]), torch.tensor([[2.0, 3.0]]), None, 0.5)
        tensor([2.5000])
    """
    if next_q_online is not None:
        best = next_q_online.argmax(dim=1, keepdim=True)
        next_v = next_q_target.gather(1, best).squeeze(1)
    else:
        next_v = next_q_target.max(dim=1).values
    return rewards + gamma * (~terminated).to(rewards.dtype) * next_v


class DQN(Agent):
    """Deep Q-network agent for discrete action spaces.

    Args:
        env: A Gymnasium id, a ``"module:factory"`` string, a factory or an ``Env``.
        network: The Q-network config (one output per action; its updater sets the learning rate).
            Default: 120-84 ReLU layers with Adam at 2.5e-4.
        config: A ``DQNConfig``.
        rollouts: Where to collect (``LocalRollouts`` by default; ``SparkRollouts`` collects
            ``train_frequency`` steps per Spark job, so raise ``train_frequency`` with it).
        env_kwargs: Keyword arguments for the environment (JSON values).

    Example:
        >>> agent = DQN("CartPole-v1", config=DQNConfig(seed=0))
        >>> agent.train(total_steps=150_000)   # doctest: +SKIP
        >>> agent.evaluate(episodes=100).mean  # doctest: +SKIP
    """

    algorithm = "dqn"
    config_type = DQNConfig
    config: DQNConfig

    def __init__(
        self,
        env: Any,
        network: NetworkConfig | None = None,
        config: DQNConfig | None = None,
        *,
        rollouts: Rollouts | None = None,
        env_kwargs: dict[str, Any] | None = None,
    ) -> None:
        config = config if config is not None else DQNConfig()
        Agent.__init__(self, env, config=config, rollouts=rollouts, env_kwargs=env_kwargs)
        conf = network or mlp(
            self.info.obs_size, self.info.action_size, hidden=(120, 84), activation="relu",
            updater=Adam(learning_rate=2.5e-4), seed=config.seed,
        )
        self.network = self._build_network(conf, self.info.action_size, "network")
        self.target = Network(conf)  # type: ignore[arg-type]
        self.target.set_params(self.network.flat.params)
        self.buffer = ReplayBuffer(config.buffer_size, self.info.obs_size)
        self._rng = np.random.default_rng(np.random.SeedSequence([config.seed, 3]))
        self._next_target = config.target_update
        self._debt = 0.0

    def _check_actions(self, info: EnvInfo) -> None:
        if info.action != "discrete":
            raise ConfigError(
                f"DQN needs a discrete action space, but {info.name!r} has continuous (Box) actions of "
                f"{info.action_size} dimensions; use PPO or A2C",
                "env.action_space",
            )

    def epsilon(self) -> float:
        """The exploration rate now (1.0 until ``learning_starts``)."""
        if self.steps < self.config.learning_starts:
            return 1.0
        return schedule_value(self.config.epsilon, self.steps - self.config.learning_starts)

    def _acting_policy(self) -> Policy:
        return EpsilonGreedyPolicy(epsilon=self.epsilon())

    def _steps_per_env(self) -> int:
        return max(1, self.config.train_frequency // self.config.num_envs)

    def _learn(self, traj: Trajectories, scale: tuple[np.ndarray, np.ndarray] | None) -> dict[str, float]:
        cfg = self.config
        self.buffer.add(traj)
        metrics = {"epsilon": self.epsilon()}
        if self.steps < cfg.learning_starts or self.buffer.size < cfg.batch_size:
            return metrics
        self._debt += cfg.gradient_steps * traj.num_steps / cfg.train_frequency
        losses, qs = [], []
        self.network.epoch = self.iteration
        while self._debt >= 1.0:
            self._debt -= 1.0
            loss, q = self.update(scale)
            losses.append(loss)
            qs.append(q)
        while self.steps >= self._next_target:
            self.sync_target()
            self._next_target += cfg.target_update
        if losses:
            metrics.update(loss=float(np.mean(losses)), q=float(np.mean(qs)))
        return metrics

    def sync_target(self) -> None:
        """Blend the online weights into the target network (``tau=1``: copy them)."""
        with torch.no_grad():
            self.target.flat.params.lerp_(self.network.flat.params, self.config.tau)

    def update(self, scale: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[float, float]:
        """One gradient step on a sampled minibatch; returns (Huber loss, mean Q of the taken actions)."""
        cfg = self.config
        batch = self.buffer.sample(cfg.batch_size, self._rng)
        obs, nxt = self._observations(batch.obs, scale), self._observations(batch.next_obs, scale)
        rewards, terminated = torch.from_numpy(batch.rewards), torch.from_numpy(batch.terminated)
        net = self.network
        with torch.no_grad():
            self.target.model.eval()
            next_target = preouts(self.target, nxt)
            next_online = None
            if cfg.double:
                net.model.eval()
                next_online = preouts(net, nxt)
            targets = td_targets(rewards, terminated, next_target, next_online, cfg.gamma)
        net.model.train()
        net.flat.grads.zero_()
        q = preouts(net, obs).gather(1, torch.from_numpy(batch.actions).unsqueeze(1)).squeeze(1)
        loss = F.huber_loss(q, targets, delta=cfg.huber_delta)
        loss.backward()  # type: ignore[no-untyped-call]
        clip_grad_norm([net.flat.grads], cfg.max_grad_norm)
        step_network(net, loss.detach(), cfg.batch_size)
        value = float(loss.detach())
        if not math.isfinite(value):
            from deepspark.errors import DataError

            raise DataError(
                f"DQN loss became {value} at step {self.steps}; lower the learning rate or clip rewards"
            )
        return value, float(q.detach().mean())

    @staticmethod
    def load(path: str | Path, *, env: Any = None, rollouts: Rollouts | None = None) -> DQN:
        """Read an agent written by ``save`` (``env`` overrides the stored environment)."""
        from deepspark.rl._archive import load_agent

        agent = load_agent(path, env=env, rollouts=rollouts)
        if not isinstance(agent, DQN):
            raise ConfigError(f"{path} holds a {agent.algorithm} agent; load it with its own class", "path")
        return agent


__all__ = ["DQN", "td_targets"]
