"""Learning-rate schedules: frozen specs whose ``value(iteration, epoch)`` an updater reads every step.

A schedule is a pure function of the 0-based iteration (completed minibatch steps) or epoch count,
chosen by ``schedule_type``; it holds no state, so a worker that restarts from a checkpoint only needs
the iteration and epoch counters to land on the same learning rate. The formulas are DL4J's
(``ExponentialSchedule``, ``StepSchedule``, ...), with the differences noted per class.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

from deepspark.config._spec import Spec, check, check_positive, register

ScheduleType = Literal["iteration", "epoch"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Schedule(Spec):
    """Base of every learning-rate schedule; a spec field typed ``float | Schedule`` accepts any of them.

    ``schedule_type`` says which counter ``t`` the formula reads: ``"iteration"`` (minibatch steps
    completed so far, the default) or ``"epoch"`` (passes over the data completed so far).

    Example:
        >>> ExponentialSchedule(initial=0.1, gamma=0.5, schedule_type="epoch").value(iteration=500, epoch=2)
        0.025
    """

    kind: ClassVar[str] = "schedule"
    schedule_type: ScheduleType = "iteration"

    def value(self, iteration: int, epoch: int) -> float:
        """The learning rate after ``iteration`` steps and ``epoch`` epochs (both 0-based counts)."""
        raise NotImplementedError(f"{type(self).__name__} does not define value()")

    def _t(self, iteration: int, epoch: int) -> int:
        """The counter this schedule follows."""
        return iteration if self.schedule_type == "iteration" else epoch


@register("exponential")
@dataclass(frozen=True, kw_only=True, slots=True)
class ExponentialSchedule(Schedule):
    """``initial * gamma**t``: a smooth decay (``gamma < 1``) by a constant factor per step.

    Example:
        >>> ExponentialSchedule(initial=0.1, gamma=0.99).value(iteration=100, epoch=0)  # doctest: +ELLIPSIS
        0.0366...
    """

    initial: float
    gamma: float

    def _validate(self) -> None:
        check_positive(self, "initial", "gamma")

    def value(self, iteration: int, epoch: int) -> float:
        """``initial * gamma**t``."""
        return float(self.initial * self.gamma ** self._t(iteration, epoch))


@register("inverse")
@dataclass(frozen=True, kw_only=True, slots=True)
class InverseSchedule(Schedule):
    """``initial / (1 + gamma*t)**power``: decays like ``1/t**power``, the rate SGD theory asks for.

    Example:
        >>> InverseSchedule(initial=0.1, gamma=1.0, power=1.0).value(iteration=9, epoch=0)
        0.01
    """

    initial: float
    gamma: float
    power: float

    def _validate(self) -> None:
        check_positive(self, "initial", "gamma", "power")

    def value(self, iteration: int, epoch: int) -> float:
        """``initial / (1 + gamma*t)**power``."""
        return float(self.initial / (1.0 + self.gamma * self._t(iteration, epoch)) ** self.power)


@register("poly")
@dataclass(frozen=True, kw_only=True, slots=True)
class PolySchedule(Schedule):
    """``initial * (1 - t/max_iter)**power``, reaching 0 at ``max_iter`` and staying there.

    Example:
        >>> PolySchedule(initial=0.1, power=2.0, max_iter=10).value(iteration=5, epoch=0)
        0.025
    """

    initial: float
    power: float
    max_iter: int

    def _validate(self) -> None:
        check_positive(self, "initial", "power", "max_iter")

    def value(self, iteration: int, epoch: int) -> float:
        """``initial * (1 - t/max_iter)**power``, clamped at 0 past ``max_iter``."""
        t = self._t(iteration, epoch)
        if t >= self.max_iter:
            return 0.0
        return float(self.initial * (1.0 - t / self.max_iter) ** self.power)


@register("sigmoid")
@dataclass(frozen=True, kw_only=True, slots=True)
class SigmoidSchedule(Schedule):
    """``initial / (1 + exp(-gamma*(t - step_size)))``: a smooth switch centred on ``t = step_size``.

    With ``gamma > 0`` the rate rises from near 0 to ``initial`` (a soft warm-up); DL4J also accepts a
    negative ``gamma`` for a soft drop, and so does this class (``gamma`` must only be non-zero).

    Example:
        >>> SigmoidSchedule(initial=0.1, gamma=1.0, step_size=10).value(iteration=10, epoch=0)
        0.05
    """

    initial: float
    gamma: float
    step_size: int

    def _validate(self) -> None:
        check_positive(self, "initial")
        check(self.gamma != 0.0, "gamma", f"expected a non-zero number, got {self.gamma!r}")
        check(self.step_size >= 0, "step_size", f"expected an int >= 0, got {self.step_size!r}")

    def value(self, iteration: int, epoch: int) -> float:
        """``initial / (1 + exp(-gamma*(t - step_size)))``, computed without overflow for any ``t``."""
        z = self.gamma * (self._t(iteration, epoch) - self.step_size)
        if z >= 0:
            return float(self.initial / (1.0 + math.exp(-z)))
        e = math.exp(z)  # z < 0: exp(-z) could overflow, so use the equivalent e / (1 + e) form
        return float(self.initial * e / (1.0 + e))


@register("step")
@dataclass(frozen=True, kw_only=True, slots=True)
class StepSchedule(Schedule):
    """``initial * decay_rate**floor(t/step)``: the rate drops by ``decay_rate`` every ``step`` steps.

    Example:
        >>> StepSchedule(initial=0.1, decay_rate=0.5, step=10, schedule_type="epoch").value(iteration=0, epoch=25)
        0.025
    """

    initial: float
    decay_rate: float
    step: int

    def _validate(self) -> None:
        check_positive(self, "initial", "decay_rate", "step")

    def value(self, iteration: int, epoch: int) -> float:
        """``initial * decay_rate**floor(t/step)``."""
        return float(self.initial * self.decay_rate ** (self._t(iteration, epoch) // self.step))


@register("map")
@dataclass(frozen=True, kw_only=True, slots=True)
class MapSchedule(Schedule):
    """Piecewise constant: the value paired with the largest key ``<= t``.

    ``values`` is a tuple of ``(t, value)`` pairs with strictly ascending keys starting at 0 (so every
    ``t`` has a value); in JSON it is a list of ``[t, value]`` lists.

    Example:
        >>> MapSchedule(values=((0, 0.1), (100, 0.01))).value(iteration=150, epoch=0)
        0.01
    """

    values: tuple[tuple[int, float], ...]

    def _validate(self) -> None:
        check(len(self.values) > 0, "values", "expected at least one (t, value) pair, got none")
        first = self.values[0][0]
        check(first == 0, "values[0]", f"expected the first key to be 0 so every t has a value, got {first}")
        for i, (key, value) in enumerate(self.values):
            if i > 0:
                prev = self.values[i - 1][0]
                check(key > prev, f"values[{i}]", f"expected keys in ascending order, got {key} after {prev}")
            check(value >= 0.0, f"values[{i}]", f"expected a value >= 0, got {value!r}")

    def value(self, iteration: int, epoch: int) -> float:
        """The value of the last pair whose key is ``<= t``."""
        t = self._t(iteration, epoch)
        out = self.values[0][1]
        for key, value in self.values:
            if key > t:
                break
            out = value
        return out


@register("cycle")
@dataclass(frozen=True, kw_only=True, slots=True)
class CycleSchedule(Schedule):
    """The one-cycle policy (Smith 2018): ramp up, ramp down, then anneal below the start; repeats.

    With ``p = t mod cycle_length``, ``r = cycle_length - annealing_length`` (the ramp phase) and
    ``h = r / 2``:

    - ``p < h``: ``initial + (max - initial) * p / h`` (linear up),
    - ``h <= p < r``: ``max - (max - initial) * (p - h) / h`` (linear down),
    - ``p >= r``: ``initial * annealing_decay**(p - r)`` (the annealing tail).

    This is DL4J's ``CycleSchedule`` for an even ramp length; for an odd one DL4J rounds the half
    ramp down to an int (and its first annealing step then exceeds ``initial``), where this class
    keeps ``h`` fractional so the curve is continuous.

    Example:
        >>> s = CycleSchedule(initial=0.01, max=0.1, cycle_length=12, annealing_length=2)
        >>> [round(s.value(iteration=t, epoch=0), 4) for t in (0, 5, 10, 11)]
        [0.01, 0.1, 0.01, 0.001]
    """

    initial: float
    max: float
    cycle_length: int
    annealing_length: int
    annealing_decay: float = 0.1

    def _validate(self) -> None:
        check_positive(self, "initial", "max", "cycle_length", "annealing_decay")
        check(self.max >= self.initial, "max", f"expected a value >= initial ({self.initial!r}), got {self.max!r}")
        check(
            self.annealing_decay <= 1.0,
            "annealing_decay",
            f"expected a factor in (0, 1], got {self.annealing_decay!r}",
        )
        check(
            0 <= self.annealing_length <= self.cycle_length - 2,
            "annealing_length",
            f"expected an int in [0, cycle_length - 2] = [0, {self.cycle_length - 2}] so the cycle has room to "
            f"ramp up and down, got {self.annealing_length}",
        )

    def value(self, iteration: int, epoch: int) -> float:
        """The one-cycle value; see the class docstring for the formula."""
        p = self._t(iteration, epoch) % self.cycle_length
        ramp = self.cycle_length - self.annealing_length
        half = ramp / 2.0
        span = self.max - self.initial
        if p < half:
            return float(self.initial + span * p / half)
        if p < ramp:
            return float(self.max - span * (p - half) / half)
        return float(self.initial * self.annealing_decay ** (p - ramp))


@register("warmup")
@dataclass(frozen=True, kw_only=True, slots=True)
class WarmupSchedule(Schedule):
    """A linear warm-up in front of another schedule or a constant ``base`` rate (DL4J's RampSchedule).

    For ``t < warmup_steps`` the value is ``target(t) * (t + 1) / warmup_steps``, where ``target`` is
    the wrapped schedule (or the constant ``base``); afterwards it is ``target(t)``. The ramp is the line
    from 0 (at ``t = -1``) to the full rate (at ``t = warmup_steps - 1``): the first step already moves
    the weights, which a ramp starting at exactly 0 would waste. ``t`` follows this spec's
    ``schedule_type``; the wrapped schedule reads its own counter from the same ``iteration``/``epoch``.

    Example:
        >>> WarmupSchedule(warmup_steps=4, base=0.1).value(iteration=1, epoch=0)
        0.05
    """

    warmup_steps: int
    schedule: Schedule | None = None
    base: float | None = None

    def _validate(self) -> None:
        check_positive(self, "warmup_steps", "base")
        check(
            self.schedule is not None or self.base is not None,
            "schedule",
            "expected a schedule to warm up into, or a constant 'base' rate; set one of them",
        )
        check(
            self.schedule is None or self.base is None,
            "base",
            "expected either 'schedule' or 'base', got both; drop 'base' to warm up into the schedule",
        )

    def value(self, iteration: int, epoch: int) -> float:
        """The wrapped value scaled by ``min(1, (t + 1) / warmup_steps)``."""
        target = self.schedule.value(iteration, epoch) if self.schedule is not None else float(self.base or 0.0)
        t = self._t(iteration, epoch)
        if t >= self.warmup_steps:
            return target
        return target * (t + 1) / self.warmup_steps


__all__ = [
    "CycleSchedule",
    "ExponentialSchedule",
    "InverseSchedule",
    "MapSchedule",
    "PolySchedule",
    "Schedule",
    "ScheduleType",
    "SigmoidSchedule",
    "StepSchedule",
    "WarmupSchedule",
]
