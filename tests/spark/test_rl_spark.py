"""SparkRollouts on local[2]: exact step counts, 1 worker equal to local rollouts, the CLI with workers."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import gymnasium as gym
import numpy as np
import pytest

from deepspark.cli.main import main
from deepspark.errors import ConfigError
from deepspark.rl import PPO, PPOConfig, SparkRollouts

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def test_spark_rollouts_collect_exactly_the_steps_asked(spark: SparkSession, seed: int) -> None:
    config = PPOConfig(num_envs=4, n_steps=16, update_epochs=1, num_minibatches=2, seed=seed)
    rollouts = SparkRollouts(spark, num_workers=2)
    agent = PPO("CartPole-v1", config=config, rollouts=rollouts)
    traj = agent.collect()
    assert traj.rewards.shape == (16, 4) and traj.obs.shape == (16, 4, 4) and traj.num_steps == 64
    agent.train(128, log_every=64)
    assert agent.steps == 128  # train() counts its own collections; the one above was extra
    stats = rollouts.training_stats()
    assert {"broadcast", "map", "learn"} <= set(stats.phase_totals())
    assert [e.detail["steps"] for e in stats.events("map")] == [64, 64, 64]
    agent.close()


def test_one_spark_worker_learns_exactly_what_local_rollouts_learn(spark: SparkSession, seed: int) -> None:
    config = PPOConfig(num_envs=4, n_steps=32, update_epochs=2, num_minibatches=2, seed=seed)
    local = PPO("CartPole-v1", config=config)
    remote = PPO("CartPole-v1", config=config, rollouts=SparkRollouts(spark, num_workers=1))
    local.train(128 * 3, log_every=128)
    remote.train(128 * 3, log_every=128)
    assert local.history.episode_returns == remote.history.episode_returns
    np.testing.assert_array_equal(local.network.params(), remote.network.params())
    np.testing.assert_array_equal(local.value_network.params(), remote.value_network.params())


def test_spark_rollouts_refuse_an_env_object(spark: SparkSession) -> None:
    agent = PPO(lambda: gym.make("CartPole-v1"), config=PPOConfig(num_envs=2), rollouts=SparkRollouts(spark, 2))
    with pytest.raises(ConfigError, match="Gymnasium id or a 'module:factory' string"):
        agent.train(64)
    with pytest.raises(ConfigError, match="num_workers"):
        SparkRollouts(spark, 0)
    uneven = PPO("CartPole-v1", config=PPOConfig(num_envs=3), rollouts=SparkRollouts(spark, 2))
    with pytest.raises(ConfigError, match="does not split evenly over 2"):
        uneven.train(64)


def test_cli_rl_train_with_spark_workers(
    spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "agent.zip"
    argv = ["rl", "train", "--env", "CartPole-v1", "--algo", "ppo", "--workers", "2", "--steps", "1024",
            "--output", str(out), "--eval-episodes", "2", "--no-progress"]
    assert main(argv) == 0
    assert '"steps": 1024' in capsys.readouterr().out
    assert main(["rl", "evaluate", str(out), "--episodes", "3"]) == 0
    assert "ppo on CartPole-v1: mean return" in capsys.readouterr().out
    assert spark.range(3).count() == 3  # the shared session is still running
