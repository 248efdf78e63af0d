"""The MDP interface: bad environments and networks get typed errors naming env and step; episodes resume exactly."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from deepspark.config import Dense, InputType, NetworkConfig, Output
from deepspark.errors import ConfigError, DataError, EnvironmentStepError
from deepspark.rl import DQN, PPO, LocalRollouts, PPOConfig


class _Faulty(gym.Env[np.ndarray, int]):
    """A tiny env whose step misbehaves at step ``at``: raises, or returns a NaN reward or a wrong-shaped obs."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, fault: str, at: int = 5) -> None:
        self.fault, self.at, self.t = fault, at, 0

    def reset(self, *, seed: int | None = None, options: Any = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(3, np.float32), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self.t += 1
        obs, reward = np.zeros(3, np.float32), 1.0
        if self.t == self.at:
            if self.fault == "raise":
                raise RuntimeError("simulator crashed")
            if self.fault == "nan":
                reward = float("nan")
            if self.fault == "shape":
                obs = np.zeros(5, np.float32)
        return obs, reward, False, self.t >= 50, {}


def test_unknown_env_id_lists_close_matches() -> None:
    with pytest.raises(ConfigError, match=r"unknown Gymnasium environment 'CartPol-v1'.*CartPole-v1") as info:
        PPO("CartPol-v1")
    assert info.value.path == "env"


def test_dqn_refuses_continuous_actions() -> None:
    with pytest.raises(ConfigError, match=r"DQN needs a discrete action space.*Pendulum-v1.*PPO or A2C"):
        DQN("Pendulum-v1")


def test_network_input_must_match_observation_shape() -> None:
    conf = NetworkConfig(input_type=InputType.feed_forward(8), layers=(Dense(n_out=4), Output(n_out=2)))
    message = r"takes 8 input values but 'CartPole-v1' observations have shape \(4,\)"
    with pytest.raises(ConfigError, match=message) as e:
        PPO("CartPole-v1", conf)
    assert e.value.path == "network.input_type"
    wrong_out = NetworkConfig(input_type=InputType.feed_forward(4), layers=(Output(n_out=3),))
    with pytest.raises(ConfigError, match="one output of 2 values"):
        DQN("CartPole-v1", wrong_out)


@pytest.mark.parametrize(
    ("fault", "error", "message"),
    [
        ("raise", EnvironmentStepError, r"environment '_Faulty' \(env 0\) raised at step 5: RuntimeError: simulator"),
        ("nan", DataError, r"environment '_Faulty' \(env 0\) returned reward nan at step 5"),
        ("shape", DataError, r"observation of shape \(5,\) at step 5"),
    ],
)
def test_misbehaving_env_raises_typed_error_naming_env_and_step(fault: str, error: type, message: str) -> None:
    agent = PPO(lambda: _Faulty(fault), config=PPOConfig(num_envs=1, n_steps=8))
    with pytest.raises(error, match=message):
        agent.train(8)


def test_env_instance_is_one_environment() -> None:
    agent = PPO(gym.make("CartPole-v1"), config=PPOConfig(num_envs=2, n_steps=4))
    with pytest.raises(ConfigError, match="Env instance is one environment"):
        agent.train(8)


def test_lost_environments_are_rebuilt_exactly_from_the_episode_log(seed: int) -> None:
    """A run whose live environments are dropped twice (as on a lost executor) equals an undisturbed run."""
    config = PPOConfig(num_envs=2, n_steps=32, update_epochs=1, num_minibatches=2, seed=seed)
    steady = PPO("CartPole-v1", config=config)
    rollouts = LocalRollouts()
    moved = PPO("CartPole-v1", config=config, rollouts=rollouts)
    ended = 0
    for i in range(4):
        if i in (1, 3):
            rollouts.forget()
        a, b = steady.collect(), moved.collect()
        ended += len(a.episode_returns)
        for name, value in a.to_arrays().items():
            if name != "step_seconds":
                np.testing.assert_array_equal(value, b.to_arrays()[name], err_msg=f"collection {i}: {name}")
    assert ended > 0  # episodes ended and restarted along the way, so the replay crossed resets
