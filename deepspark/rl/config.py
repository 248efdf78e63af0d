"""Frozen, JSON-round-trippable settings of the RL algorithms: ``DQNConfig``, ``PPOConfig``, ``A2CConfig``.

The networks are ordinary deepspark network configs (their updater sets the learning rate); these specs
hold only what the algorithm itself needs. Step counts are environment steps summed over all
environments, so a setting means the same with 1 environment or 16.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from deepspark.config._spec import Spec, check, check_non_negative, check_positive, check_probability, register

FORMAT_VERSION = 1
"""Version of the agent JSON layout (archives carry it)."""


@register("linear_decay")
@dataclass(frozen=True, slots=True)
class LinearSchedule(Spec):
    """A value that moves linearly from ``start`` to ``end`` over ``steps`` environment steps, then stays.

    DQN's exploration rate is the usual use: ``LinearSchedule(1.0, 0.05, 20_000)``.

    Example:
        >>> LinearSchedule(1.0, 0.0, 100).value(25)
        0.75
    """

    kind: ClassVar[str] = "rl schedule"
    start: float
    end: float
    steps: int

    def _validate(self) -> None:
        check_positive(self, "steps")

    def value(self, step: int) -> float:
        """The value after ``step`` environment steps."""
        if step >= self.steps:
            return float(self.end)
        return float(self.start + (self.end - self.start) * max(step, 0) / self.steps)


def schedule_value(value: float | LinearSchedule, step: int) -> float:
    """A constant, or a schedule's value after ``step`` environment steps."""
    return value.value(step) if isinstance(value, LinearSchedule) else float(value)


@register("dqn")
@dataclass(frozen=True, kw_only=True, slots=True)
class DQNConfig(Spec):
    """Deep Q-learning settings (Mnih et al. 2015; double DQN of van Hasselt et al. 2016).

    Attributes:
        double: Double-DQN targets: the online network picks the next action, the target network values it.
        buffer_size: Transitions the replay buffer holds (the oldest are overwritten).
        batch_size: Transitions per gradient step.
        gamma: Discount factor.
        target_update: Environment steps between target-network updates.
        tau: Fraction of the online weights blended into the target at each update (1.0: a hard copy).
        epsilon: Exploration rate of the epsilon-greedy behaviour policy: a constant or a ``LinearSchedule``.
        learning_starts: Environment steps of random play before the first gradient step.
        train_frequency: Environment steps between training rounds.
        gradient_steps: Gradient steps per training round.
        num_envs: Environments stepped side by side.
        huber_delta: Where the Huber (smooth L1) TD loss turns from quadratic to linear.
        max_grad_norm: Clip the global gradient L2 norm to this (``None``: no clipping).
        normalize_observations: Normalize observations with running mean and variance (saved with the agent).
        seed: Seeds the environments, exploration and replay sampling.

    Example:
        >>> DQNConfig(double=True, buffer_size=50_000, target_update=500,
        ...           epsilon=LinearSchedule(1.0, 0.05, 20_000), gamma=0.99, batch_size=64, seed=0).gamma
        0.99
    """

    kind: ClassVar[str] = "rl config"
    double: bool = True
    buffer_size: int = 50_000
    batch_size: int = 64
    gamma: float = 0.99
    target_update: int = 500
    tau: float = 1.0
    epsilon: float | LinearSchedule = LinearSchedule(1.0, 0.05, 20_000)
    learning_starts: int = 1_000
    train_frequency: int = 4
    gradient_steps: int = 1
    num_envs: int = 1
    huber_delta: float = 1.0
    max_grad_norm: float | None = 10.0
    normalize_observations: bool = False
    seed: int = 0

    def _validate(self) -> None:
        check_positive(
            self, "buffer_size", "batch_size", "target_update", "train_frequency", "gradient_steps", "num_envs",
            "huber_delta", "max_grad_norm",
        )
        check_non_negative(self, "learning_starts", "seed")
        check_probability(self, "gamma", closed=True)
        check(0.0 < self.tau <= 1.0, "tau", f"expected a number in (0, 1], got {self.tau!r}")
        check(
            self.batch_size <= self.buffer_size,
            "batch_size",
            f"expected at most buffer_size ({self.buffer_size}), got {self.batch_size}",
        )
        eps = self.epsilon
        values = (eps.start, eps.end) if isinstance(eps, LinearSchedule) else (eps,)
        for v in values:
            check(0.0 <= v <= 1.0, "epsilon", f"expected exploration rates in [0, 1], got {v!r}")


@dataclass(frozen=True, kw_only=True, slots=True)
class ActorCriticConfig(Spec):
    """Settings PPO and A2C share; see ``PPOConfig`` for each field."""

    kind: ClassVar[str] = "rl config"
    num_envs: int = 4
    n_steps: int = 128
    gamma: float = 0.99
    gae_lambda: float = 0.95
    value_coef: float = 0.5
    entropy_coef: float = 0.0
    normalize_advantages: bool = True
    max_grad_norm: float | None = 0.5
    log_std_init: float = 0.0
    normalize_observations: bool = False
    seed: int = 0

    def _validate(self) -> None:
        check_positive(self, "num_envs", "n_steps", "max_grad_norm")
        check_non_negative(self, "value_coef", "entropy_coef", "seed")
        check_probability(self, "gamma", "gae_lambda", closed=True)

    @property
    def steps_per_iteration(self) -> int:
        """Environment steps collected per iteration (``num_envs * n_steps``)."""
        return self.num_envs * self.n_steps


@register("ppo")
@dataclass(frozen=True, kw_only=True, slots=True)
class PPOConfig(ActorCriticConfig):
    """Proximal policy optimization settings (Schulman et al. 2017), with GAE (Schulman et al. 2016).

    Each iteration collects ``n_steps`` from each of ``num_envs`` environments, then runs
    ``update_epochs`` passes over that batch in ``num_minibatches`` shuffled minibatches.

    Attributes:
        num_envs: Environments in total (split evenly over the workers of ``SparkRollouts``).
        n_steps: Steps per environment per iteration.
        gamma: Discount factor.
        gae_lambda: GAE's bias/variance trade-off (1.0: Monte-Carlo returns, 0.0: one-step TD).
        update_epochs: Passes over each iteration's batch.
        num_minibatches: Minibatches per pass.
        clip_coef: The probability-ratio clip range of the surrogate objective.
        clip_value_loss: Clip the value update to ``clip_coef`` around the old value, as PPO2 does.
        value_coef: Weight of the value loss.
        entropy_coef: Weight of the entropy bonus.
        normalize_advantages: Standardize advantages per minibatch.
        max_grad_norm: Clip the global gradient L2 norm (policy and value together); ``None``: no clipping.
        target_kl: Stop an iteration's epochs early once the approximate KL passes this (``None``: never).
        log_std_init: Initial log standard deviation of Gaussian (continuous-action) policies.
        normalize_observations: Normalize observations with running statistics (saved with the agent).
        seed: Seeds the environments, action sampling and minibatch order.

    Example:
        >>> PPOConfig(num_envs=8, n_steps=32, update_epochs=20).steps_per_iteration
        256
    """

    update_epochs: int = 4
    num_minibatches: int = 4
    clip_coef: float = 0.2
    clip_value_loss: bool = True
    target_kl: float | None = None
    entropy_coef: float = 0.01

    def _validate(self) -> None:
        ActorCriticConfig._validate(self)
        check_positive(self, "update_epochs", "num_minibatches", "clip_coef", "target_kl")
        check(
            self.num_minibatches <= self.steps_per_iteration,
            "num_minibatches",
            f"expected at most num_envs * n_steps ({self.steps_per_iteration}), got {self.num_minibatches}",
        )


@register("a2c")
@dataclass(frozen=True, kw_only=True, slots=True)
class A2CConfig(ActorCriticConfig):
    """Advantage actor-critic settings (Mnih et al. 2016, synchronous): one gradient step per short rollout.

    PPO's sibling: the same rollouts, advantages and losses, without ratio clipping or repeated epochs.
    Fields as in ``PPOConfig``.

    Example:
        >>> A2CConfig(num_envs=8).steps_per_iteration
        40
    """

    n_steps: int = 5
    gae_lambda: float = 1.0
    normalize_advantages: bool = False


__all__ = ["A2CConfig", "ActorCriticConfig", "DQNConfig", "LinearSchedule", "PPOConfig", "schedule_value"]
