"""RL building blocks against hand computations: TD targets (plain and double DQN), a DQN update, GAE, policies."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from deepspark.config import InputType, NetworkConfig, Output, Sgd
from deepspark.errors import ConfigError, DataError
from deepspark.rl import (
    DQN,
    BoltzmannPolicy,
    DQNConfig,
    EpsilonGreedyPolicy,
    GreedyPolicy,
    LinearSchedule,
    PPOConfig,
    StochasticPolicy,
    gae,
    td_targets,
)
from deepspark.rl._arrays import pack_arrays, unpack_arrays


def test_td_targets_plain_and_double_match_hand_computation() -> None:
    rewards = torch.tensor([1.0, 0.5])
    terminated = torch.tensor([False, True])
    next_target = torch.tensor([[1.0, 5.0], [2.0, 3.0]])
    next_online = torch.tensor([[4.0, 0.0], [0.0, 9.0]])
    # plain: r + 0.9 * max_a Q_target(s', a); the terminal row keeps only its reward
    assert td_targets(rewards, terminated, next_target, None, 0.9).tolist() == pytest.approx([1 + 0.9 * 5, 0.5])
    # double: the online net picks a' = 0 in row 0, the target net values it: 1 + 0.9 * 1
    assert td_targets(rewards, terminated, next_target, next_online, 0.9).tolist() == pytest.approx([1.9, 0.5])


def _linear_dqn(double: bool, seed: int) -> DQN:
    # Q(s) = W s + b: a single Output layer, SGD, so one update can be written out by hand
    conf = NetworkConfig(
        seed=seed, updater=Sgd(learning_rate=0.1), input_type=InputType.feed_forward(4),
        layers=(Output(n_out=2, activation="identity", loss="mse"),),
    )
    config = DQNConfig(double=double, buffer_size=8, batch_size=4, gamma=0.9, learning_starts=0,
                       huber_delta=100.0, max_grad_norm=None, seed=seed)
    return DQN("CartPole-v1", conf, config)


@pytest.mark.parametrize("double", [False, True])
def test_dqn_update_with_target_network_matches_hand_computation(double: bool, seed: int) -> None:
    agent = _linear_dqn(double, seed)
    rng = np.random.default_rng(seed)
    buf = agent.buffer
    buf.obs[:] = rng.normal(size=buf.obs.shape)
    buf.next_obs[:] = rng.normal(size=buf.next_obs.shape)
    buf.actions[:] = rng.integers(0, 2, buf.capacity)
    buf.rewards[:] = rng.normal(size=buf.capacity)
    buf.terminated[:] = rng.random(buf.capacity) < 0.3
    buf.size = buf.capacity
    # a target network that differs from the online one, so using the wrong one would show
    agent.target.set_params(agent.network.params() + rng.normal(size=agent.network.num_params()).astype(np.float32))
    w, b = [p.detach().numpy().copy() for p in agent.network.model.parameters()]
    wt, bt = [p.detach().numpy().copy() for p in agent.target.model.parameters()]
    idx = copy.deepcopy(agent._rng).integers(0, buf.size, 4)  # the rows update() will sample
    s, a, r, d, s2 = buf.obs[idx], buf.actions[idx], buf.rewards[idx], buf.terminated[idx], buf.next_obs[idx]
    q_next_target = s2 @ wt.T + bt
    if double:
        best = (s2 @ w.T + b).argmax(axis=1)
        next_v = q_next_target[np.arange(4), best]
    else:
        next_v = q_next_target.max(axis=1)
    y = r + 0.9 * (1 - d) * next_v
    err = (s @ w.T + b)[np.arange(4), a] - y  # Huber with a large delta: gradient of mean(err^2 / 2)
    grad_w = np.zeros_like(w)
    grad_b = np.zeros_like(b)
    for i in range(4):
        grad_w[a[i]] += err[i] * s[i] / 4
        grad_b[a[i]] += err[i] / 4
    agent.update()
    w_new, b_new = [p.detach().numpy() for p in agent.network.model.parameters()]
    np.testing.assert_allclose(w_new, w - 0.1 * grad_w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b_new, b - 0.1 * grad_b, rtol=1e-5, atol=1e-6)
    assert np.array_equal(next(p.detach().numpy() for p in agent.target.model.parameters()), wt)  # untouched


def test_dqn_target_sync_copies_or_blends(seed: int) -> None:
    agent = _linear_dqn(True, seed)
    online = agent.network.params()
    agent.target.set_params(np.zeros_like(online))
    agent.sync_target()
    np.testing.assert_array_equal(agent.target.params(), online)
    agent.config = DQNConfig(tau=0.25, learning_starts=0)
    agent.target.set_params(np.zeros_like(online))
    agent.sync_target()
    np.testing.assert_allclose(agent.target.params(), 0.25 * online, rtol=1e-6)


def test_gae_matches_hand_computed_example() -> None:
    # one environment, 3 steps; the episode terminates at t=1 (next value 0), the rollout ends at t=2
    rewards = np.array([[1.0], [2.0], [0.5]])
    values = np.array([[0.5], [0.4], [0.3]])
    next_values = np.array([[0.4], [0.0], [0.2]])
    dones = np.array([[False], [True], [False]])
    gamma, lam = 0.9, 0.8
    d2 = 0.5 + 0.9 * 0.2 - 0.3  # 0.38
    d1 = 2.0 - 0.4  # 1.6, and the recursion is cut after it
    d0 = 1.0 + 0.9 * 0.4 - 0.5  # 0.86
    expected = [[d0 + gamma * lam * d1], [d1], [d2]]
    np.testing.assert_allclose(gae(rewards, values, next_values, dones, gamma, lam), expected, rtol=1e-12)


def test_gae_with_lambda_one_gives_discounted_returns_minus_values() -> None:
    rewards = np.ones((4, 2))
    values = np.zeros((4, 2))
    adv = gae(rewards, values, np.zeros((4, 2)), np.zeros((4, 2), bool), 0.5, 1.0)
    np.testing.assert_allclose(adv[:, 0], [1 + 0.5 + 0.25 + 0.125, 1 + 0.5 + 0.25, 1.5, 1.0])


def test_linear_schedule_and_config_validation() -> None:
    sched = LinearSchedule(1.0, 0.05, 20_000)
    assert sched.value(0) == 1.0 and sched.value(10_000) == pytest.approx(0.525) and sched.value(10**6) == 0.05
    assert DQNConfig.from_json(DQNConfig(epsilon=sched).to_json()) == DQNConfig(epsilon=sched)
    assert PPOConfig.from_json(PPOConfig(n_steps=7).to_json()).n_steps == 7
    with pytest.raises(ConfigError, match="batch_size"):
        DQNConfig(batch_size=128, buffer_size=64)
    with pytest.raises(ConfigError, match=r"epsilon.*\[0, 1\]"):
        DQNConfig(epsilon=LinearSchedule(1.5, 0.1, 10))
    with pytest.raises(ConfigError, match="gamma"):
        PPOConfig(gamma=1.5)


def test_policies_select_as_documented(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    q = torch.tensor([[0.0, 3.0, 1.0]] * 4000)
    assert GreedyPolicy().select(q, None, gen)[0].eq(1).all()
    assert EpsilonGreedyPolicy(epsilon=0.0).select(q, None, gen)[0].eq(1).all()
    uniform = EpsilonGreedyPolicy(epsilon=1.0).select(q, None, gen)[0]
    assert np.allclose(np.bincount(uniform.numpy(), minlength=3) / 4000, 1 / 3, atol=0.04)
    assert BoltzmannPolicy(temperature=0.01).select(q, None, gen)[0].eq(1).all()
    actions, logp = StochasticPolicy().select(q, None, gen)
    probs = torch.softmax(q[0], 0)
    assert np.allclose(np.bincount(actions.numpy(), minlength=3) / 4000, probs.numpy(), atol=0.04)
    assert torch.allclose(logp, probs.log()[actions])
    mean, log_std = torch.zeros(4000, 2), torch.tensor([0.0, np.log(2.0)], dtype=torch.float32)
    g_actions, g_logp = StochasticPolicy().select(mean, log_std, gen)
    assert g_actions.std(0).numpy() == pytest.approx([1.0, 2.0], rel=0.1)
    expected = torch.distributions.Normal(mean, log_std.exp()).log_prob(g_actions).sum(1)
    assert torch.allclose(g_logp, expected, atol=1e-5)
    with pytest.raises(ConfigError, match="epsilon"):
        EpsilonGreedyPolicy(epsilon=2.0)


def test_rollout_messages_round_trip_and_reject_damage() -> None:
    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([True, False]), "c": np.zeros(0)}
    back, meta = unpack_arrays(pack_arrays(arrays, {"count": 3}))
    assert meta == {"count": 3}
    for key, value in arrays.items():
        assert back[key].dtype == value.dtype and np.array_equal(back[key], value)
        assert back[key].flags.writeable
    with pytest.raises(DataError, match="Arrow"):
        unpack_arrays(b"not arrow at all")
    with pytest.raises(DataError, match="dtype"):
        pack_arrays({"o": np.array([object()])})
