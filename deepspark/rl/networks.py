"""Default network configs for RL agents: small fully connected stacks (what CleanRL and SB3 use on classic control)."""

from __future__ import annotations

import dataclasses

from deepspark.config.input_types import InputType
from deepspark.config.layers import Dense, Output
from deepspark.config.names import Activation
from deepspark.config.network import NetworkConfig
from deepspark.config.updaters import Adam, Updater


def mlp(
    obs_size: int,
    n_out: int,
    *,
    hidden: tuple[int, ...] = (64, 64),
    activation: Activation = "tanh",
    updater: Updater | None = None,
    seed: int = 0,
) -> NetworkConfig:
    """A fully connected network: ``obs_size`` inputs, ``hidden`` layers, ``n_out`` linear outputs.

    The agent reads the output layer's pre-activations (Q-values, logits or the action mean), so the
    output's activation and loss do not matter; they are set to identity and mse.

    Example:
        >>> mlp(4, 2, hidden=(120, 84), activation="relu").layers[-1].n_out
        2
    """
    return NetworkConfig(
        seed=seed,
        updater=updater or Adam(learning_rate=3e-4),
        input_type=InputType.feed_forward(obs_size),
        layers=(
            *(Dense(n_out=h, activation=activation) for h in hidden),
            Output(n_out=n_out, activation="identity", loss="mse"),
        ),
    )


def value_network_like(policy: NetworkConfig, seed_offset: int = 1) -> NetworkConfig:
    """The policy network's stack with a single linear output: the default critic of PPO and A2C."""
    last = policy.layers[-1]
    if not isinstance(last, Output):
        return dataclasses.replace(policy, seed=policy.seed + seed_offset)
    head = Output(n_out=1, activation="identity", loss="mse")
    return dataclasses.replace(policy, seed=policy.seed + seed_offset, layers=(*policy.layers[:-1], head))


__all__ = ["mlp", "value_network_like"]
