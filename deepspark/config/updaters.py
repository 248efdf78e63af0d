"""Updater (optimizer) specs: hyperparameters, state size and learning rate of every supported updater.

An updater spec is pure configuration; ``deepspark.nn.updaters.make_updater`` turns it into the torch
implementation that works on the network's flat gradient buffer. ``state_size(n)`` tells the network,
the parameter-averaging master and the model archive how many floats of optimizer state ``n``
parameters carry, so that state can be broadcast, averaged and saved as one flat buffer.

Defaults are DL4J's. Where DL4J and PyTorch place ``epsilon`` differently in the Adam family, the
formulas follow the published algorithms as PyTorch implements them (see ``deepspark.nn.updaters``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from deepspark.config._spec import Spec, check_non_negative, check_positive, check_probability, register
from deepspark.config.schedules import Schedule
from deepspark.errors import ConfigError

LearningRate = float | Schedule
"""A constant learning rate or a schedule of it."""


def _rate_at(rate: LearningRate, iteration: int, epoch: int) -> float:
    """The constant, or the schedule's value at this point of training."""
    if isinstance(rate, Schedule):
        return rate.value(iteration, epoch)
    return rate


def _check_learning_rate(rate: LearningRate) -> None:
    """A constant learning rate must be > 0 (a schedule validated its own fields)."""
    if not isinstance(rate, Schedule) and not rate > 0:
        raise ConfigError(
            f"expected a positive number or a schedule, got {rate!r}; use NoOp() to freeze parameters",
            "learning_rate",
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class Updater(Spec):
    """Base of every updater spec: how gradients become parameter updates.

    Example:
        >>> Adam(learning_rate=1e-3).state_size(10)
        20
    """

    kind: ClassVar[str] = "updater"

    def state_size(self, n: int) -> int:
        """How many floats of state this updater keeps for ``n`` parameters."""
        raise NotImplementedError(f"{type(self).__name__} does not define state_size()")

    def learning_rate_at(self, iteration: int, epoch: int) -> float:
        """The learning rate used for the step after ``iteration`` completed steps in epoch ``epoch``."""
        raise NotImplementedError(f"{type(self).__name__} does not define learning_rate_at()")


def _check_adam_family(spec: Adam | AdamW | AdaMax | Nadam | AmsGrad) -> None:
    _check_learning_rate(spec.learning_rate)
    check_probability(spec, "beta1", "beta2")
    check_positive(spec, "epsilon")


@register("sgd")
@dataclass(frozen=True, kw_only=True, slots=True)
class Sgd(Updater):
    """Plain stochastic gradient descent: ``update = lr * g``; no state.

    Example:
        >>> Sgd(learning_rate=0.1)
        Sgd(learning_rate=0.1)
    """

    learning_rate: float | Schedule = 1e-3

    def _validate(self) -> None:
        _check_learning_rate(self.learning_rate)

    def state_size(self, n: int) -> int:
        """No state."""
        return 0

    def learning_rate_at(self, iteration: int, epoch: int) -> float:
        """The constant or scheduled learning rate."""
        return _rate_at(self.learning_rate, iteration, epoch)


@register("nesterovs")
@dataclass(frozen=True, kw_only=True, slots=True)
class Nesterovs(Updater):
    """SGD with Nesterov momentum (DL4J's formulation): one velocity buffer, ``n`` floats of state.

    ``v = momentum*v - lr*g``; ``update = momentum*v_prev - (1 + momentum)*v``. With a constant
    learning rate this equals ``torch.optim.SGD(momentum=..., nesterov=True)``; with a schedule the
    rate is folded into the velocity, as in DL4J.

    Example:
        >>> Nesterovs(learning_rate=0.05, momentum=0.95).state_size(100)
        100
    """

    learning_rate: float | Schedule = 0.1
    momentum: float = 0.9

    def _validate(self) -> None:
        _check_learning_rate(self.learning_rate)
        check_probability(self, "momentum")

    def state_size(self, n: int) -> int:
        """One velocity buffer."""
        return n

    def learning_rate_at(self, iteration: int, epoch: int) -> float:
        """The constant or scheduled learning rate."""
        return _rate_at(self.learning_rate, iteration, epoch)


@register("adam")
@dataclass(frozen=True, kw_only=True, slots=True)
class Adam(Updater):
    """Adam (Kingma & Ba 2015, Algorithm 1): first and second moment estimates, ``2n`` floats of state.

    Example:
        >>> Adam(learning_rate=3e-4, beta2=0.98).to_dict()["beta2"]
        0.98
    """

    learning_rate: float | Schedule = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-8

    def _validate(self) -> None:
        _check_adam_family(self)

    def state_size(self, n: int) -> int:
        """Moments ``m`` and ``v``."""
        return 2 * n

    def learning_rate_at(self, iteration: int, epoch: int) -> float:
        """The constant or scheduled learning rate (before bias correction)."""
        return _rate_at(self.learning_rate, iteration, epoch)


@register("adamw")
@dataclass(frozen=True, kw_only=True, slots=True)
class AdamW(Updater):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019): ``update += lr * weight_decay * params``.

    Unlike an ``l2`` term in the loss, the decay does not pass through Adam's per-parameter scaling,
    which is why it regularizes adaptive optimizers properly. ``2n`` floats of state.

    Example:
        >>> AdamW(weight_decay=0.05).state_size(4)
        8
    """

    learning_rate: float | Schedule = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-8
    weight_decay: float = 0.01

    def _validate(self) -> None:
        _check_adam_family(self)
        check_non_negative(self, "weight_decay")

    def state_size(self, n: int) -> int:
        """Moments ``m`` and ``v``."""
        return 2 * n

    def learning_rate_at(self, iteration: int, epoch: int) -> float:
        """The constant or scheduled learning rate (it also scales the decay)."""
        return _rate_at(self.learning_rate, iteration, epoch)


@register("adamax")
@dataclass(frozen=True, kw_only=True, slots=True)
class AdaMax(Updater):
    """AdaMax (Kingma & Ba 2015, section 7): Adam with an infinity-norm second moment; ``2n`` floats.

    Example:
        >>> AdaMax().learning_rate
        0.002
    """

    learning_rate: float | Schedule = 2e-3
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-8

    def _validate(self) -> None:
        _check_adam_family(self)

    def state_size(self, n: int) -> int:
        """Moment ``m`` and infinity norm ``u``."""
        return 2 * n

    def learning_rate_at(self, iteration: int, epoch: int) -> float:
        """The constant or scheduled learning rate (before bias correction)."""
        return _rate_at(self.learning_rate, iteration, epoch)


@register("nadam")
@dataclass(frozen=True, kw_only=True, slots=True)
class Nadam(Updater):
    """Nadam (Dozat 2016): Adam with a Nesterov look-ahead on the first moment; ``2n`` floats of state.

    Uses a constant momentum ``beta1`` (no momentum-decay schedule).

    Example:
        >>> Nadam(learning_rate=2e-3).state_size(3)
        6
    """

    learning_rate: float | Schedule = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-8

    def _validate(self) -> None:
        _check_adam_family(self)

    def state_size(self, n: int) -> int:
        """Moments ``m`` and ``v``."""
        return 2 * n

    def learning_rate_at(self, iteration: int, epoch: int) -> float:
        """The constant or scheduled learning rate (before bias correction)."""
        return _rate_at(self.learning_rate, iteration, epoch)


@register("amsgrad")
@dataclass(frozen=True, kw_only=True, slots=True)
class AmsGrad(Updater):
    """AMSGrad (Reddi et al. 2018): Adam whose second moment never decreases; ``3n`` floats of state.

    Example:
        >>> AmsGrad().state_size(5)
        15
    """

    learning_rate: float | Schedule = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-8

    def _validate(self) -> None:
        _check_adam_family(self)

    def state_size(self, n: int) -> int:
        """Moments ``m``, ``v`` and the running maximum of ``v``."""
        return 3 * n

    def learning_rate_at(self, iteration: int, epoch: int) -> float:
        """The constant or scheduled learning rate (before bias correction)."""
        return _rate_at(self.learning_rate, iteration, epoch)


@register("rmsprop")
@dataclass(frozen=True, kw_only=True, slots=True)
class RmsProp(Updater):
    """RMSProp (Tieleman & Hinton 2012), DL4J's form: ``update = lr * g / sqrt(v + epsilon)``; ``n`` floats.

    ``epsilon`` sits inside the square root (as in DL4J and TensorFlow 1), not outside as in
    ``torch.optim.RMSprop``; for the default tiny epsilon the two agree to about 1e-7.

    Example:
        >>> RmsProp(learning_rate=1e-3, rms_decay=0.9).state_size(7)
        7
    """

    learning_rate: float | Schedule = 0.1
    rms_decay: float = 0.95
    epsilon: float = 1e-8

    def _validate(self) -> None:
        _check_learning_rate(self.learning_rate)
        check_probability(self, "rms_decay")
        check_positive(self, "epsilon")

    def state_size(self, n: int) -> int:
        """The running mean of squared gradients."""
        return n

    def learning_rate_at(self, iteration: int, epoch: int) -> float:
        """The constant or scheduled learning rate."""
        return _rate_at(self.learning_rate, iteration, epoch)


@register("adagrad")
@dataclass(frozen=True, kw_only=True, slots=True)
class AdaGrad(Updater):
    """AdaGrad (Duchi et al. 2011): ``update = lr * g / (sqrt(sum g^2) + epsilon)``; ``n`` floats of state.

    Example:
        >>> AdaGrad(learning_rate=0.05).state_size(2)
        2
    """

    learning_rate: float | Schedule = 0.1
    epsilon: float = 1e-6

    def _validate(self) -> None:
        _check_learning_rate(self.learning_rate)
        check_positive(self, "epsilon")

    def state_size(self, n: int) -> int:
        """The sum of squared gradients."""
        return n

    def learning_rate_at(self, iteration: int, epoch: int) -> float:
        """The constant or scheduled learning rate."""
        return _rate_at(self.learning_rate, iteration, epoch)


@register("adadelta")
@dataclass(frozen=True, kw_only=True, slots=True)
class AdaDelta(Updater):
    """AdaDelta (Zeiler 2012): no learning rate, the step size comes from past updates; ``2n`` floats.

    ``update = sqrt(E[dx^2] + epsilon) / sqrt(E[g^2] + epsilon) * g``.

    Example:
        >>> AdaDelta(rho=0.9).learning_rate_at(0, 0)
        1.0
    """

    rho: float = 0.95
    epsilon: float = 1e-6

    def _validate(self) -> None:
        check_probability(self, "rho")
        check_positive(self, "epsilon")

    def state_size(self, n: int) -> int:
        """Running means of squared gradients and of squared updates."""
        return 2 * n

    def learning_rate_at(self, iteration: int, epoch: int) -> float:
        """Always 1.0: AdaDelta has no learning rate, its updates are used unscaled."""
        return 1.0


@register("noop")
@dataclass(frozen=True, kw_only=True, slots=True)
class NoOp(Updater):
    """The update is always zero: parameters stay frozen (e.g. a pretrained network being evaluated).

    Example:
        >>> NoOp().learning_rate_at(10, 1)
        0.0
    """

    def state_size(self, n: int) -> int:
        """No state."""
        return 0

    def learning_rate_at(self, iteration: int, epoch: int) -> float:
        """Always 0.0: nothing moves."""
        return 0.0


__all__ = [
    "AdaDelta",
    "AdaGrad",
    "AdaMax",
    "Adam",
    "AdamW",
    "AmsGrad",
    "LearningRate",
    "Nadam",
    "Nesterovs",
    "NoOp",
    "RmsProp",
    "Sgd",
    "Updater",
]
