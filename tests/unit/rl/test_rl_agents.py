"""RL agents end to end on real Gymnasium environments: learning, archives, stats records and the UI view."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from deepspark.errors import ConfigError, ModelFormatError
from deepspark.rl import (
    A2C,
    DQN,
    PPO,
    A2CConfig,
    DQNConfig,
    EpsilonGreedyPolicy,
    PPOConfig,
    RLStatsListener,
    load_agent,
)
from deepspark.stats import InMemoryStatsStorage
from deepspark.ui.view import session_view


@pytest.mark.slow
def test_ppo_cartpole_short_run_beats_random_policy_by_wide_margin(seed: int) -> None:
    config = PPOConfig(num_envs=8, n_steps=32, update_epochs=10, num_minibatches=4, entropy_coef=0.0, seed=seed)
    agent = PPO("CartPole-v1", config=config)
    random = agent.evaluate(10, policy=EpsilonGreedyPolicy(epsilon=1.0))
    agent.train(16_384, log_every=4_096)
    trained = agent.evaluate(10)
    assert random.mean < 40
    assert trained.mean > max(100.0, 4 * random.mean), (trained, random)
    returns = agent.history.episode_returns
    assert len(returns) == len(agent.history.episode_steps) > 50
    assert np.mean(returns[-20:]) > np.mean(returns[:20])


def test_ppo_gaussian_archive_round_trip_restores_everything(tmp_path: Path, seed: int) -> None:
    config = PPOConfig(num_envs=2, n_steps=16, update_epochs=2, num_minibatches=2, normalize_observations=True,
                       seed=seed)
    agent = PPO("Pendulum-v1", config=config)
    agent.train(64, log_every=32)
    path = tmp_path / "ppo.zip"
    agent.save(path)
    back = PPO.load(path)
    assert back.config == agent.config and back.steps == agent.steps == 64
    np.testing.assert_array_equal(back.network.params(), agent.network.params())
    np.testing.assert_array_equal(back.value_network.params(), agent.value_network.params())
    np.testing.assert_array_equal(back.network.updater_state(), agent.network.updater_state())
    np.testing.assert_array_equal(back.log_std.detach().numpy(), agent.log_std.detach().numpy())
    np.testing.assert_array_equal(back.obs_stats.mean, agent.obs_stats.mean)  # type: ignore[union-attr]
    np.testing.assert_array_equal(back.obs_stats.var, agent.obs_stats.var)  # type: ignore[union-attr]
    obs = np.array([[0.5, -0.5, 1.0]], np.float32)
    np.testing.assert_array_equal(back.act(obs), agent.act(obs))
    back.train(32, log_every=32)  # resumes training
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == sorted(
            ["config.json", "params.safetensors", "updater.safetensors", "normalizer.json", "metadata.json"]
        )


def test_dqn_archive_round_trip_and_refusals(tmp_path: Path, seed: int) -> None:
    agent = DQN("CartPole-v1", config=DQNConfig(learning_starts=32, batch_size=16, buffer_size=256, seed=seed))
    agent.train(96, log_every=96)
    path = tmp_path / "dqn.zip"
    agent.save(path)
    back = load_agent(str(path))
    assert isinstance(back, DQN) and back.steps == agent.steps
    np.testing.assert_array_equal(back.network.params(), agent.network.params())
    np.testing.assert_array_equal(back.target.params(), agent.target.params())
    with pytest.raises(ConfigError, match="load it with its own class"):
        PPO.load(path)
    agent.env_name = "my_package.envs:make_env"  # a factory reference is never imported from a file
    agent.save(tmp_path / "factory.zip")
    with pytest.raises(ConfigError, match="pass env="):
        DQN.load(tmp_path / "factory.zip")
    assert DQN.load(tmp_path / "factory.zip", env="CartPole-v1").steps == agent.steps
    agent.network.save(tmp_path / "net.zip")
    with pytest.raises(ModelFormatError, match="not an RL agent archive"):
        DQN.load(tmp_path / "net.zip")


def test_a2c_trains_and_reports_to_stats_storage_shown_by_ui_overview(seed: int) -> None:
    storage = InMemoryStatsStorage()
    listener = RLStatsListener(storage, session_id="rl-test")
    agent = A2C("CartPole-v1", config=A2CConfig(num_envs=4, seed=seed))
    history = agent.train(1_200, listeners=[listener], log_every=400)
    assert [r.step for r in history.reports] == [400, 800, 1200]
    assert all(np.isfinite(history.metric("loss"))) and all(np.isfinite(history.metric("entropy")))
    view = session_view(storage, "rl-test")
    overview = view["overview"]
    assert overview["iteration"] == [400, 800, 1200]  # environment steps
    returns = [r for r in overview["episode_return"] if r is not None]
    assert returns and all(r > 0 for r in returns)
    assert view["finished"] and view["static"]["training"] == "rl a2c"
    assert all(s is not None and s > 0 for s in overview["examples_per_sec"])
    records = storage.query("rl-test")
    update = next(r for r in records if r.type_id == "model" and r.kind == "update")
    assert {"episode_return", "episode_length", "entropy", "env_steps"} <= set(update.payload)
    json.dumps(update.payload)


def test_train_rejects_bad_arguments() -> None:
    agent = A2C("CartPole-v1")
    with pytest.raises(ConfigError, match="total_steps"):
        agent.train(0)
    with pytest.raises(ConfigError, match="episodes"):
        agent.evaluate(0)
