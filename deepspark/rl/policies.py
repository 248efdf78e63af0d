"""Policies: how a network's output becomes actions. Greedy, epsilon-greedy, Boltzmann and stochastic.

A network's output is read as Q-values (DQN), logits (discrete actor-critic) or the action mean
(Gaussian actor-critic, with a learned log standard deviation). Every policy draws its randomness from
an explicit ``torch.Generator``, so a rollout is reproducible from its seed on any machine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from deepspark.config._spec import Spec, check, check_positive, register

_LOG_2PI = math.log(2.0 * math.pi)


@dataclass(frozen=True, kw_only=True, slots=True)
class Policy(Spec):
    """Base of every action-selection policy.

    ``select`` maps a batch of network outputs to actions and their log-probabilities under the
    agent's own distribution (meaningful for ``StochasticPolicy``; actor-critic learning needs them).
    """

    kind: ClassVar[str] = "policy"

    def select(self, out: Tensor, log_std: Tensor | None, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        """Actions (long for discrete, float for Gaussian) and log-probabilities for a batch of outputs."""
        raise NotImplementedError(f"{type(self).__name__} does not define select()")


@register("greedy")
@dataclass(frozen=True, kw_only=True, slots=True)
class GreedyPolicy(Policy):
    """The best action: argmax of Q-values or logits, the mean of a Gaussian. For evaluation.

    Example:
        >>> GreedyPolicy().select(torch.tensor([[0.1, 2.0]]), None, torch.Generator())[0]
        tensor([1])
    """

    def select(self, out: Tensor, log_std: Tensor | None, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        """Argmax (discrete) or the mean (Gaussian); log-probabilities are zero."""
        if log_std is not None:
            return out, torch.zeros(out.shape[0], dtype=out.dtype)
        return out.argmax(dim=1), torch.zeros(out.shape[0], dtype=out.dtype)


@register("epsilon_greedy")
@dataclass(frozen=True, kw_only=True, slots=True)
class EpsilonGreedyPolicy(Policy):
    """A uniformly random action with probability ``epsilon``, else the greedy one (discrete actions).

    Example:
        >>> EpsilonGreedyPolicy(epsilon=0.0).select(torch.tensor([[3.0, 1.0]]), None, torch.Generator())[0]
        tensor([0])
    """

    epsilon: float = 0.05

    def _validate(self) -> None:
        check(0.0 <= self.epsilon <= 1.0, "epsilon", f"expected a probability in [0, 1], got {self.epsilon!r}")

    def select(self, out: Tensor, log_std: Tensor | None, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        """Greedy actions, each replaced by a random one with probability ``epsilon``."""
        n, k = out.shape
        greedy = out.argmax(dim=1)
        explore = torch.rand(n, generator=gen) < self.epsilon
        random = torch.randint(0, k, (n,), generator=gen)
        return torch.where(explore, random, greedy), torch.zeros(n, dtype=out.dtype)


@register("boltzmann")
@dataclass(frozen=True, kw_only=True, slots=True)
class BoltzmannPolicy(Policy):
    """Samples action ``a`` with probability proportional to ``exp(out[a] / temperature)`` (discrete actions).

    Example:
        >>> BoltzmannPolicy(temperature=0.01).select(torch.tensor([[0.0, 5.0]]), None, torch.Generator())[0]
        tensor([1])
    """

    temperature: float = 1.0

    def _validate(self) -> None:
        check_positive(self, "temperature")

    def select(self, out: Tensor, log_std: Tensor | None, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        """A softmax sample at ``temperature``, with its log-probability under that softmax."""
        return sample_categorical(out / self.temperature, gen)


@register("stochastic")
@dataclass(frozen=True, kw_only=True, slots=True)
class StochasticPolicy(Policy):
    """Samples the agent's own distribution: softmax of the logits, or Gaussian around the mean.

    Example:
        >>> a, logp = StochasticPolicy().select(torch.zeros(1, 2), None, torch.Generator().manual_seed(0))
        >>> round(float(logp[0].exp()), 3)
        0.5
    """

    def select(self, out: Tensor, log_std: Tensor | None, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        """A sample from the policy distribution and its log-probability."""
        if log_std is None:
            return sample_categorical(out, gen)
        noise = torch.randn(out.shape, generator=gen, dtype=out.dtype)
        actions = out + noise * log_std.exp()
        return actions, gaussian_log_prob(out, log_std, actions)


def sample_categorical(logits: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """One action per row from ``softmax(logits)`` and its log-probability."""
    logp_all = torch.log_softmax(logits, dim=1)
    actions = torch.multinomial(logp_all.exp(), 1, generator=gen).squeeze(1)
    return actions, logp_all.gather(1, actions.unsqueeze(1)).squeeze(1)


def categorical_log_prob_entropy(logits: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
    """Log-probabilities of ``actions`` (long) under ``softmax(logits)`` and the entropy per row."""
    logp_all = torch.log_softmax(logits, dim=1)
    entropy = -(logp_all.exp() * logp_all).sum(dim=1)
    return logp_all.gather(1, actions.long().unsqueeze(1)).squeeze(1), entropy


def gaussian_log_prob(mean: Tensor, log_std: Tensor, actions: Tensor) -> Tensor:
    """Log-density of ``actions`` under independent Gaussians, summed over action dimensions."""
    z = (actions - mean) * torch.exp(-log_std)
    return (-0.5 * z.pow(2) - log_std - 0.5 * _LOG_2PI).sum(dim=1)


def gaussian_entropy(log_std: Tensor, rows: int) -> Tensor:
    """Entropy of the diagonal Gaussian (the same for every row: the std does not depend on the state)."""
    return (log_std + 0.5 * (1.0 + _LOG_2PI)).sum().expand(rows)


__all__ = [
    "BoltzmannPolicy",
    "EpsilonGreedyPolicy",
    "GreedyPolicy",
    "Policy",
    "StochasticPolicy",
    "categorical_log_prob_entropy",
    "gaussian_entropy",
    "gaussian_log_prob",
    "sample_categorical",
]
