"""``PPO`` and ``A2C``: actor-critic agents over synchronous rollouts, with GAE advantages.

PPO (Schulman et al. 2017) takes several epochs of minibatch steps on each batch under a clipped
surrogate objective; A2C (Mnih et al. 2016, synchronous) takes one plain policy-gradient step per short
rollout. Both read discrete actions as a softmax over the policy network's outputs, and continuous
(Box) actions as a Gaussian around them with a learned, state-independent log standard deviation.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from deepspark.config.network import NetworkConfig
from deepspark.config.updaters import Adam
from deepspark.errors import ConfigError, DataError
from deepspark.nn.updaters import make_updater
from deepspark.rl.agent import Agent, clip_grad_norm, preouts, step_network
from deepspark.rl.config import A2CConfig, ActorCriticConfig, PPOConfig
from deepspark.rl.networks import mlp, value_network_like
from deepspark.rl.policies import (
    Policy,
    StochasticPolicy,
    categorical_log_prob_entropy,
    gaussian_entropy,
    gaussian_log_prob,
)
from deepspark.rl.rollouts import Rollouts
from deepspark.rl.runner import Trajectories


def gae(
    rewards: np.ndarray, values: np.ndarray, next_values: np.ndarray, dones: np.ndarray, gamma: float, lam: float
) -> np.ndarray:
    """Generalized advantage estimates over [T, E] arrays (Schulman et al. 2016).

    ``delta_t = r_t + gamma * next_values_t - values_t`` and ``A_t = delta_t + gamma * lam * (1 - done_t) * A_{t+1}``.
    ``next_values_t`` is the value of the state step ``t`` led to: 0 for a terminal state, the value of
    the final observation for a truncated episode, else the value of the next row's observation.

    Example:
        >>> gae(np.array([[1.0], [1.0]]), np.zeros((2, 1)), np.zeros((2, 1)), np.array([[False], [True]]), 0.5, 1.0)
        array([[1.5],
               [1. ]])
    """
    deltas = rewards + gamma * next_values - values
    adv = np.zeros_like(deltas)
    running = np.zeros(deltas.shape[1], dtype=deltas.dtype)
    keep = gamma * lam * (1.0 - dones.astype(deltas.dtype))
    for t in range(deltas.shape[0] - 1, -1, -1):
        running = deltas[t] + keep[t] * running
        adv[t] = running
    result: np.ndarray = adv
    return result


class _ActorCritic(Agent):
    """The shared machinery of PPO and A2C: two networks (policy, value), rollouts, GAE and the loss."""

    config: ActorCriticConfig

    def __init__(
        self,
        env: Any,
        network: NetworkConfig | None,
        value_network: NetworkConfig | None,
        config: ActorCriticConfig,
        rollouts: Rollouts | None,
        env_kwargs: dict[str, Any] | None,
    ) -> None:
        Agent.__init__(self, env, config=config, rollouts=rollouts, env_kwargs=env_kwargs)
        n_out = self.info.action_size
        policy_conf = network or mlp(
            self.info.obs_size, n_out, updater=Adam(learning_rate=3e-4), seed=config.seed
        )
        value_conf = value_network or (
            value_network_like(policy_conf) if isinstance(policy_conf, NetworkConfig) else None
        )
        if value_conf is None:
            raise ConfigError("a GraphConfig policy needs value_network= (a critic with one output)", "value_network")
        self.network = self._build_network(policy_conf, n_out, "network")
        self.value_network = self._build_network(value_conf, 1, "value_network")
        self.gaussian = self.info.action == "box"
        a = n_out if self.gaussian else 0
        self.log_std = torch.full((a,), float(config.log_std_init), requires_grad=self.gaussian)
        self.log_std.grad = torch.zeros(a) if self.gaussian else None
        self.log_std_updater = make_updater(self.network.updater.spec, a, torch.float32)
        self._gen = torch.Generator().manual_seed(int(np.random.SeedSequence([config.seed, 5]).generate_state(1)[0]))

    def _log_std(self) -> Tensor | None:
        return self.log_std if self.gaussian else None

    def _acting_policy(self) -> Policy:
        return StochasticPolicy()

    def _acting_params(self) -> tuple[np.ndarray, np.ndarray]:
        return self.network.flat.params.detach().numpy(), self.log_std.detach().numpy().copy()

    def _steps_per_env(self) -> int:
        return self.config.n_steps

    # ----------------------------------------------------------------- learning

    @torch.no_grad()
    def _values(self, x: Tensor) -> Tensor:
        self.value_network.model.eval()
        return preouts(self.value_network, x).squeeze(1)

    def advantages(
        self, traj: Trajectories, scale: tuple[np.ndarray, np.ndarray] | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """GAE advantages and value targets (returns) of a batch, both [T, E]."""
        t, e = traj.rewards.shape
        values = self._values(self._observations(traj.obs, scale)).numpy().reshape(t, e)
        next_values = self._values(self._observations(traj.next_obs(), scale)).numpy().reshape(t, e)
        next_values = np.where(traj.terminated, 0.0, next_values).astype(np.float32)
        adv = gae(traj.rewards, values, next_values, traj.terminated | traj.truncated, self.config.gamma,
                  self.config.gae_lambda)
        return adv, adv + values

    def _dist(self, x: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
        """Log-probabilities of ``actions`` and entropies under the current policy."""
        out = preouts(self.network, x)
        if self.gaussian:
            log_std = self.log_std
            return gaussian_log_prob(out, log_std, actions), gaussian_entropy(log_std, out.shape[0])
        return categorical_log_prob_entropy(out, actions)

    def _epochs(self) -> tuple[int, int]:
        return 1, 1

    def _policy_loss(self, ratio: Tensor, adv: Tensor) -> Tensor:
        raise NotImplementedError

    def _value_loss(self, v: Tensor, old_v: Tensor, ret: Tensor) -> Tensor:
        return 0.5 * (v - ret).pow(2).mean()

    def _learn(self, traj: Trajectories, scale: tuple[np.ndarray, np.ndarray] | None) -> dict[str, float]:
        cfg = self.config
        adv_np, ret_np = self.advantages(traj, scale)
        n = traj.num_steps
        obs = self._observations(traj.obs, scale)
        actions = torch.from_numpy(traj.actions.reshape(n, -1) if self.gaussian else traj.actions.reshape(n))
        old_logp = torch.from_numpy(traj.log_probs.reshape(n))
        adv_all = torch.from_numpy(adv_np.reshape(n).astype(np.float32))
        ret_all = torch.from_numpy(ret_np.reshape(n).astype(np.float32))
        old_v_all = ret_all - adv_all
        epochs, minibatches = self._epochs()
        size = n // minibatches
        sums = {"loss": 0.0, "policy_loss": 0.0, "value_loss": 0.0, "entropy": 0.0, "approx_kl": 0.0, "clip_frac": 0.0}
        steps = 0
        self.network.epoch = self.value_network.epoch = self.iteration
        self.network.model.train()
        self.value_network.model.train()
        for _ in range(epochs):
            order = torch.randperm(n, generator=self._gen) if minibatches > 1 else torch.arange(n)
            kl_sum, kl_count = 0.0, 0
            for m in range(minibatches):
                idx = order[m * size : (m + 1) * size]
                logp, entropy = self._dist(obs[idx], actions[idx])
                log_ratio = logp - old_logp[idx]
                ratio = log_ratio.exp()
                adv = adv_all[idx]
                if cfg.normalize_advantages and len(idx) > 1:
                    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                pg_loss = self._policy_loss(ratio, adv)
                v = preouts(self.value_network, obs[idx]).squeeze(1)
                v_loss = self._value_loss(v, old_v_all[idx], ret_all[idx])
                ent = entropy.mean()
                loss = pg_loss - cfg.entropy_coef * ent + cfg.value_coef * v_loss
                self._step(loss, len(idx))
                with torch.no_grad():
                    approx_kl = float(((ratio - 1) - log_ratio).mean())
                    clip = getattr(cfg, "clip_coef", None)
                    frac = float(((ratio - 1.0).abs() > clip).float().mean()) if clip else 0.0
                for key, value in (("loss", float(loss.detach())), ("policy_loss", float(pg_loss.detach())),
                                   ("value_loss", float(v_loss.detach())), ("entropy", float(ent.detach())),
                                   ("approx_kl", approx_kl), ("clip_frac", frac)):
                    sums[key] += value
                steps += 1
                kl_sum, kl_count = kl_sum + approx_kl, kl_count + 1
            target_kl = getattr(cfg, "target_kl", None)
            if target_kl is not None and kl_sum / kl_count > target_kl:
                break
        metrics = {k: v / max(steps, 1) for k, v in sums.items()}
        if not math.isfinite(metrics["loss"]):
            raise DataError(
                f"{self.algorithm.upper()} loss became {metrics['loss']} at step {self.steps}; lower the learning "
                "rate, normalize observations or clip rewards"
            )
        metrics["learning_rate"] = self.network.updater.learning_rate(self.network.iteration, self.network.epoch)
        if self.gaussian:
            metrics["action_std"] = float(self.log_std.detach().exp().mean())
        return metrics

    def _step(self, loss: Tensor, batch: int) -> None:
        """One update of both networks (and the log-std) from ``loss``, with joint gradient clipping."""
        pol, val = self.network, self.value_network
        pol.flat.grads.zero_()
        val.flat.grads.zero_()
        std_grad = self.log_std.grad
        if std_grad is not None:
            std_grad.zero_()
        loss.backward()  # type: ignore[no-untyped-call]
        std_grad = self.log_std.grad
        grads = [pol.flat.grads, val.flat.grads] + ([std_grad] if std_grad is not None else [])
        clip_grad_norm(grads, self.config.max_grad_norm)
        score = loss.detach()
        step_network(pol, score, batch)
        step_network(val, score, batch)
        if std_grad is not None:
            with torch.no_grad():
                self.log_std_updater.step_(std_grad, self.log_std.detach(), pol.iteration - 1, pol.epoch)
                self.log_std.sub_(std_grad)

    @classmethod
    def load(cls, path: str | Path, *, env: Any = None, rollouts: Rollouts | None = None) -> Any:
        """Read an agent written by ``save`` (``env`` overrides the stored environment)."""
        from deepspark.rl._archive import load_agent

        agent = load_agent(path, env=env, rollouts=rollouts)
        if not isinstance(agent, cls):
            raise ConfigError(f"{path} holds a {agent.algorithm} agent; load it with its own class", "path")
        return agent


class PPO(_ActorCritic):
    """Proximal policy optimization: clipped surrogate objective, GAE, value loss and entropy bonus.

    Args:
        env: A Gymnasium id, a ``"module:factory"`` string, a factory or an ``Env``.
        network: The policy network config: one output per action (logits) or per action dimension
            (Gaussian mean). Its updater drives the policy, and a schedule of type ``"epoch"`` on its
            learning rate counts iterations. Default: 64-64 tanh layers, Adam at 3e-4.
        value_network: The critic (one output). Default: the policy's stack with a one-value output.
        config: A ``PPOConfig``.
        rollouts: ``LocalRollouts()`` (default) or ``SparkRollouts(spark, num_workers)``.
        env_kwargs: Keyword arguments for the environment (JSON values).

    Example:
        >>> ppo = PPO("CartPole-v1", config=PPOConfig(num_envs=8, n_steps=32))
        >>> ppo.train(total_steps=100_000)     # doctest: +SKIP
        >>> ppo.evaluate(episodes=100).mean    # doctest: +SKIP
    """

    algorithm = "ppo"
    config_type = PPOConfig
    config: PPOConfig

    def __init__(
        self,
        env: Any,
        network: NetworkConfig | None = None,
        config: PPOConfig | None = None,
        *,
        value_network: NetworkConfig | None = None,
        rollouts: Rollouts | None = None,
        env_kwargs: dict[str, Any] | None = None,
    ) -> None:
        _ActorCritic.__init__(
            self, env, network, value_network, config if config is not None else PPOConfig(), rollouts, env_kwargs
        )

    def _epochs(self) -> tuple[int, int]:
        return self.config.update_epochs, self.config.num_minibatches

    def _policy_loss(self, ratio: Tensor, adv: Tensor) -> Tensor:
        c = self.config.clip_coef
        return torch.max(-adv * ratio, -adv * ratio.clamp(1.0 - c, 1.0 + c)).mean()

    def _value_loss(self, v: Tensor, old_v: Tensor, ret: Tensor) -> Tensor:
        if not self.config.clip_value_loss:
            return 0.5 * (v - ret).pow(2).mean()
        c = self.config.clip_coef
        clipped = old_v + (v - old_v).clamp(-c, c)
        return 0.5 * torch.max((v - ret).pow(2), (clipped - ret).pow(2)).mean()


class A2C(_ActorCritic):
    """Synchronous advantage actor-critic: PPO's rollouts and losses, one unclipped step per batch.

    Arguments as ``PPO``'s, with an ``A2CConfig``.

    Example:
        >>> a2c = A2C("CartPole-v1", config=A2CConfig(num_envs=8))
        >>> a2c.train(total_steps=100_000)   # doctest: +SKIP
    """

    algorithm = "a2c"
    config_type = A2CConfig
    config: A2CConfig

    def __init__(
        self,
        env: Any,
        network: NetworkConfig | None = None,
        config: A2CConfig | None = None,
        *,
        value_network: NetworkConfig | None = None,
        rollouts: Rollouts | None = None,
        env_kwargs: dict[str, Any] | None = None,
    ) -> None:
        _ActorCritic.__init__(
            self, env, network, value_network, config if config is not None else A2CConfig(), rollouts, env_kwargs
        )

    def _policy_loss(self, ratio: Tensor, adv: Tensor) -> Tensor:
        # ratio is exp(logp - old_logp) = 1 in value with the full gradient of logp: -adv * grad(logp)
        return -(adv * ratio).mean()


__all__ = ["A2C", "PPO", "gae"]
