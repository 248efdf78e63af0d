"""Reinforcement learning (DL4J's RL4J): DQN, PPO and A2C over Gymnasium, with Spark-parallel rollouts.

Example:
    >>> from deepspark.rl import PPO, PPOConfig
    >>> ppo = PPO("CartPole-v1", config=PPOConfig(num_envs=8, n_steps=32))
    >>> ppo.train(total_steps=100_000, progress=True)   # doctest: +SKIP
    >>> ppo.evaluate(episodes=100)                      # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from deepspark.rl.actor_critic import A2C, PPO, gae
from deepspark.rl.agent import Agent, EvaluationResult
from deepspark.rl.config import A2CConfig, DQNConfig, LinearSchedule, PPOConfig
from deepspark.rl.dqn import DQN, td_targets
from deepspark.rl.listeners import History, IterationReport, ProgressBar, RLListener, RLStatsListener
from deepspark.rl.networks import mlp
from deepspark.rl.policies import BoltzmannPolicy, EpsilonGreedyPolicy, GreedyPolicy, Policy, StochasticPolicy
from deepspark.rl.rollouts import LocalRollouts, Rollouts

if TYPE_CHECKING:
    from deepspark.rl.spark_rollouts import SparkRollouts


def __getattr__(name: str) -> Any:
    # SparkRollouts imports pyspark only when used; keep ``import deepspark.rl`` free of it.
    if name == "SparkRollouts":
        from deepspark.rl.spark_rollouts import SparkRollouts

        return SparkRollouts
    raise AttributeError(f"module 'deepspark.rl' has no attribute {name!r}")


def load_agent(path: str, *, env: Any = None, rollouts: Rollouts | None = None) -> Agent:
    """Read any agent archive (DQN, PPO or A2C) written by ``agent.save``."""
    from deepspark.rl._archive import load_agent as _load

    return _load(path, env=env, rollouts=rollouts)


__all__ = [
    "A2C",
    "A2CConfig",
    "Agent",
    "BoltzmannPolicy",
    "DQN",
    "DQNConfig",
    "EpsilonGreedyPolicy",
    "EvaluationResult",
    "GreedyPolicy",
    "History",
    "IterationReport",
    "LinearSchedule",
    "LocalRollouts",
    "PPO",
    "PPOConfig",
    "Policy",
    "ProgressBar",
    "RLListener",
    "RLStatsListener",
    "Rollouts",
    "SparkRollouts",
    "StochasticPolicy",
    "gae",
    "load_agent",
    "mlp",
    "td_targets",
]
