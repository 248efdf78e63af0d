"""Specs of threshold encoding's knobs: how the threshold tau moves, and how the residual is kept in check.

Threshold encoding (Strom 2015, DL4J's ``EncodedGradientsAccumulator``) sends only the residual elements
with ``|r| >= tau``, as ``±tau``. The algorithm here picks tau; every worker proposes a next tau from what it
saw and all of them use the mean of the proposals, so every replica encodes with the same tau.
"""

from __future__ import annotations

from dataclasses import dataclass

from deepspark.config._spec import Spec, check, check_positive, register


@dataclass(frozen=True, kw_only=True, slots=True)
class ThresholdAlgorithm(Spec):
    """Base of the threshold algorithms."""

    kind = "threshold algorithm"

    def first_tau(self) -> float | None:
        """The tau of the first step; None means "derive it from the first update" (``TargetSparsity``)."""
        raise NotImplementedError

    def propose(self, tau: float, sparsity: float) -> float | None:
        """The next tau this worker proposes after a step at ``tau`` sent a ``sparsity`` fraction of elements;
        None means "derive it from the residual" (``TargetSparsity``)."""
        raise NotImplementedError


@register("adaptive_threshold")
@dataclass(frozen=True, kw_only=True, slots=True)
class AdaptiveThreshold(ThresholdAlgorithm):
    """Keep the fraction of elements sent per step inside ``[min_sparsity, max_sparsity]``.

    Below the range tau shrinks by ``decay`` per step (more gets sent). Above it tau grows in proportion to
    the overshoot: by ``sparsity / max_sparsity``, at least ``1 / decay`` and at most ``max_growth`` per step,
    so a start far below the update size (every element sent, as 2-bit bitmaps) lasts a few steps, not the
    ~50 that a fixed ``1 / decay`` needs to grow tau from Adam's first step size (about the learning rate) to
    its working value (about 5 learning rates). The default decay halves tau in 20 steps.

    The default range [0.2 %, 2 %] keeps tau low on purpose: a tau that sends less than it could delays every
    update longer (each element waits for its residual to reach tau). With momentum that delay cost 1.5
    points of MNIST accuracy at ``min_sparsity=1e-4``; and with an upper end of 1 % the brief sparsity peaks of
    early training pushed tau to about 15 learning rates, where 4 workers (fewer steps per epoch, each update
    waiting as long) lost 1.5-2.7 points to dense. At 2 % tau settles near 7 learning rates and the mean
    sparsity rises only from about 0.6 % to 0.8 % (docs/gradient-sharing.md).

    Example:
        >>> AdaptiveThreshold(initial=1e-3).propose(1e-3, sparsity=0.08)
        0.004
    """

    initial: float = 1e-3
    min_sparsity: float = 2e-3
    max_sparsity: float = 2e-2
    decay: float = 0.5 ** (1 / 20)
    max_growth: float = 4.0

    def _validate(self) -> None:
        check_positive(self, "initial", "min_sparsity", "max_sparsity")
        check(self.max_sparsity <= 1.0, "max_sparsity", f"expected a fraction <= 1, got {self.max_sparsity}")
        check(
            self.min_sparsity <= self.max_sparsity,
            "min_sparsity",
            f"expected <= max_sparsity ({self.max_sparsity}), got {self.min_sparsity}",
        )
        check(0.0 < self.decay < 1.0, "decay", f"expected a number in (0, 1), got {self.decay}")
        check(self.max_growth >= 1.0, "max_growth", f"expected a factor >= 1, got {self.max_growth}")

    def first_tau(self) -> float | None:
        return self.initial

    def propose(self, tau: float, sparsity: float) -> float | None:
        if sparsity < self.min_sparsity:
            return tau * self.decay
        if sparsity > self.max_sparsity:
            return tau * min(self.max_growth, max(1.0 / self.decay, sparsity / self.max_sparsity))
        return tau


@register("fixed_threshold")
@dataclass(frozen=True, kw_only=True, slots=True)
class FixedThreshold(ThresholdAlgorithm):
    """A constant tau.

    Example:
        >>> FixedThreshold(threshold=1e-3).propose(1e-3, sparsity=0.5)
        0.001
    """

    threshold: float = 1e-3

    def _validate(self) -> None:
        check_positive(self, "threshold")

    def first_tau(self) -> float | None:
        return self.threshold

    def propose(self, tau: float, sparsity: float) -> float | None:
        return self.threshold


@register("target_sparsity")
@dataclass(frozen=True, kw_only=True, slots=True)
class TargetSparsity(ThresholdAlgorithm):
    """Pick tau each step so that about ``target`` of the elements go out: the k-th largest residual magnitude
    (k = target * n), measured on the worker's own residual, averaged over workers.

    Example:
        >>> TargetSparsity(target=1e-3).first_tau() is None
        True
    """

    target: float = 1e-3

    def _validate(self) -> None:
        check(0.0 < self.target <= 1.0, "target", f"expected a fraction in (0, 1], got {self.target}")

    def first_tau(self) -> float | None:
        return None

    def propose(self, tau: float, sparsity: float) -> float | None:
        return None


@register("residual_clipping")
@dataclass(frozen=True, kw_only=True, slots=True)
class ResidualClipping(Spec):
    """Every ``every`` steps, clip the residual to ``±clip * tau``.

    Without it, elements that keep changing sign never reach tau but the residual of a stale direction can
    grow for many steps and then arrive as one burst (DL4J's ``ResidualClippingPostProcessor``).

    Example:
        >>> ResidualClipping(clip=5.0, every=5).every
        5
    """

    kind = "residual post-processor"

    clip: float = 5.0
    every: int = 5

    def _validate(self) -> None:
        check_positive(self, "clip", "every")
