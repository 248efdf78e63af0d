"""Flat-buffer updaters: turn the network's one gradient buffer into its update, in place, with no allocation.

A compiled network keeps every trainable parameter in ONE contiguous 1-D tensor and every gradient in
another of the same length ``n``. ``FlatUpdater.step_`` overwrites the gradient buffer with the update
(the network then does ``params -= update``), using whole-buffer torch ops on views of one flat state
tensor and, where a formula needs a temporary, one scratch buffer allocated at construction. Nothing
parameter-sized is allocated per step, and the state tensor plus the iteration/epoch counters is all
that is needed to resume training bit-identically, or to average optimizer state across workers.

Formulas follow DL4J, except the Adam family, which follows the published algorithms as
``torch.optim`` implements them (epsilon added to the bias-corrected ``sqrt(v_hat)``; DL4J adds it to
the uncorrected ``sqrt(v)``, and its Nadam skips the second-moment correction). Differences from
``torch.optim``:

- ``RmsProp``: ``epsilon`` inside the square root (``sqrt(v + eps)``, DL4J/TF1), torch adds it outside.
- ``Nadam``: constant momentum ``beta1``; torch's ``NAdam`` decays it (equal when its
  ``momentum_decay`` is so large that ``0.96**(t * momentum_decay)`` underflows to 0).
- ``Nesterovs``: DL4J's form; equal to ``SGD(momentum, nesterov=True)`` for a constant learning rate.
- ``AdaDelta``: no learning rate (torch's ``Adadelta`` with ``lr=1.0``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from deepspark.config.updaters import (
    AdaDelta,
    AdaGrad,
    Adam,
    AdaMax,
    AdamW,
    AmsGrad,
    Nadam,
    Nesterovs,
    NoOp,
    RmsProp,
    Sgd,
    Updater,
)
from deepspark.errors import ConfigError, DataError


class FlatUpdater:
    """An updater working on one flat gradient buffer; ``state`` is one flat tensor holding all its state.

    Subclasses implement ``_update``; build instances with ``make_updater``.

    Example:
        >>> params, grad = torch.zeros(3), torch.tensor([1.0, -2.0, 0.5])
        >>> upd = make_updater(Sgd(learning_rate=0.1), 3, torch.float32)
        >>> upd.step_(grad, params, iteration=0, epoch=0)
        >>> params -= grad
        >>> params
        tensor([-0.1000,  0.2000, -0.0500])
    """

    spec: Updater
    state: torch.Tensor

    def __init__(self, spec: Updater, n: int, dtype: torch.dtype, device: torch.device | str, scratch: bool) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ConfigError(f"expected an int >= 0, got {n!r}", "n")
        if not dtype.is_floating_point:
            raise ConfigError(f"expected a floating-point dtype, got {dtype}", "dtype")
        self.spec = spec
        self.n = n
        self.dtype = dtype
        self.state = torch.zeros(spec.state_size(n), dtype=dtype, device=device)
        # One reusable temporary for formulas that need a buffer besides the gradient; never carries
        # information from one step to the next, so it is not part of the state.
        self._scratch = torch.empty(n if scratch else 0, dtype=dtype, device=device)

    def _view(self, k: int) -> torch.Tensor:
        """The ``k``-th length-``n`` slice of the state (a view: writes go to ``state``)."""
        return self.state[k * self.n : (k + 1) * self.n]

    def learning_rate(self, iteration: int, epoch: int) -> float:
        """The learning rate of the step after ``iteration`` completed steps (schedule or constant)."""
        return self.spec.learning_rate_at(iteration, epoch)

    def step_(self, grad: torch.Tensor, params: torch.Tensor, iteration: int, epoch: int) -> None:
        """Overwrite ``grad`` with the update to subtract from ``params``.

        Args:
            grad: the flat gradient buffer (length ``n``); on return it holds the update.
            params: the flat parameter buffer; read only (AdamW's decay), never written.
            iteration: steps completed before this one (0 for the first step); drives bias correction
                and iteration schedules.
            epoch: epochs completed; drives epoch schedules.
        """
        if grad.shape != (self.n,) or grad.dtype != self.dtype:
            raise DataError(
                f"{self.spec.tag} updater: expected a 1-D {self.dtype} gradient of length {self.n}, "
                f"got shape {tuple(grad.shape)} {grad.dtype}"
            )
        with torch.no_grad():
            self._update(grad, params, iteration, epoch)

    def _update(self, g: torch.Tensor, params: torch.Tensor, iteration: int, epoch: int) -> None:
        """Write the update into ``g`` in place."""
        raise NotImplementedError

    def set_state(self, flat: torch.Tensor | np.ndarray[Any, Any]) -> None:
        """Copy saved or averaged state into ``state`` (in place, so its views stay valid).

        Raises:
            DataError: ``flat`` is not 1-D, has the wrong length, or holds NaN/inf.
        """
        if isinstance(flat, np.ndarray):
            if flat.dtype.kind != "f":
                raise DataError(
                    f"{self.spec.tag} updater state: expected a floating-point array, got dtype {flat.dtype}"
                )
            src = torch.tensor(flat)  # a copy: read-only arrays (e.g. from safetensors) are fine
        else:
            src = flat
        expected = self.state.numel()
        if src.dim() != 1 or src.numel() != expected:
            raise DataError(
                f"{self.spec.tag} updater state for {self.n} parameters: expected a 1-D buffer of {expected} "
                f"values, got shape {tuple(src.shape)}; was it saved for another network or updater?"
            )
        if not src.dtype.is_floating_point:
            raise DataError(f"{self.spec.tag} updater state: expected floating-point values, got {src.dtype}")
        if expected and not bool(torch.isfinite(src).all()):
            raise DataError(f"{self.spec.tag} updater state contains NaN or inf; refusing to resume from it")
        self.state.copy_(src)


def _bias_corrections(beta1: float, beta2: float, iteration: int) -> tuple[float, float]:
    """``1 - beta1**t`` and ``sqrt(1 - beta2**t)`` for step ``t = iteration + 1``."""
    t = iteration + 1
    return 1.0 - beta1**t, math.sqrt(1.0 - beta2**t)


class _Sgd(FlatUpdater):
    """``update = lr * g``."""

    def __init__(self, spec: Sgd, n: int, dtype: torch.dtype, device: torch.device | str) -> None:
        FlatUpdater.__init__(self, spec, n, dtype, device, scratch=False)

    def _update(self, g: torch.Tensor, params: torch.Tensor, iteration: int, epoch: int) -> None:
        g.mul_(self.learning_rate(iteration, epoch))


class _Nesterovs(FlatUpdater):
    """DL4J: ``v' = mu*v - lr*g``, ``update = mu*v - (1+mu)*v'``, computed as ``lr*g - mu*v'``."""

    def __init__(self, spec: Nesterovs, n: int, dtype: torch.dtype, device: torch.device | str) -> None:
        FlatUpdater.__init__(self, spec, n, dtype, device, scratch=False)
        self._mu = spec.momentum
        self._v = self._view(0)

    def _update(self, g: torch.Tensor, params: torch.Tensor, iteration: int, epoch: int) -> None:
        # mu*v_prev = v' + lr*g, so mu*v_prev - (1+mu)*v' = lr*g - mu*v': no copy of v_prev needed.
        g.mul_(self.learning_rate(iteration, epoch))
        self._v.mul_(self._mu).sub_(g)
        g.sub_(self._v, alpha=self._mu)


class _Adam(FlatUpdater):
    """``update = lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)``; AmsGrad uses ``max(v)`` instead of ``v``."""

    def __init__(self, spec: Adam | AdamW | AmsGrad, n: int, dtype: torch.dtype, device: torch.device | str) -> None:
        FlatUpdater.__init__(self, spec, n, dtype, device, scratch=False)
        self._b1, self._b2, self._eps = spec.beta1, spec.beta2, spec.epsilon
        self._m, self._v = self._view(0), self._view(1)
        self._vmax = self._view(2) if isinstance(spec, AmsGrad) else None
        self._decay = spec.weight_decay if isinstance(spec, AdamW) else 0.0

    def _update(self, g: torch.Tensor, params: torch.Tensor, iteration: int, epoch: int) -> None:
        lr = self.learning_rate(iteration, epoch)
        bc1, bc2_sqrt = _bias_corrections(self._b1, self._b2, iteration)
        self._m.lerp_(g, 1.0 - self._b1)
        self._v.mul_(self._b2).addcmul_(g, g, value=1.0 - self._b2)
        second = self._v
        if self._vmax is not None:
            torch.maximum(self._vmax, self._v, out=self._vmax)
            second = self._vmax
        # g is consumed: reuse it for the denominator, then for the update.
        torch.sqrt(second, out=g)
        g.div_(bc2_sqrt).add_(self._eps)
        torch.div(self._m, g, out=g)
        g.mul_(lr / bc1)
        if self._decay:
            g.add_(params, alpha=lr * self._decay)


class _AdaMax(FlatUpdater):
    """``u = max(b2*u, |g| + eps)``, ``update = lr/(1-b1^t) * m / u`` (torch's epsilon placement)."""

    def __init__(self, spec: AdaMax, n: int, dtype: torch.dtype, device: torch.device | str) -> None:
        FlatUpdater.__init__(self, spec, n, dtype, device, scratch=False)
        self._b1, self._b2, self._eps = spec.beta1, spec.beta2, spec.epsilon
        self._m, self._u = self._view(0), self._view(1)

    def _update(self, g: torch.Tensor, params: torch.Tensor, iteration: int, epoch: int) -> None:
        lr = self.learning_rate(iteration, epoch)
        self._m.lerp_(g, 1.0 - self._b1)
        g.abs_().add_(self._eps)
        torch.maximum(self._u.mul_(self._b2), g, out=self._u)
        torch.div(self._m, self._u, out=g)
        g.mul_(lr / (1.0 - self._b1 ** (iteration + 1)))


class _Nadam(FlatUpdater):
    """``update = lr * ((1-b1)/(1-b1^t) * g + b1/(1-b1^(t+1)) * m) / (sqrt(v)/sqrt(1-b2^t) + eps)``."""

    def __init__(self, spec: Nadam, n: int, dtype: torch.dtype, device: torch.device | str) -> None:
        FlatUpdater.__init__(self, spec, n, dtype, device, scratch=True)
        self._b1, self._b2, self._eps = spec.beta1, spec.beta2, spec.epsilon
        self._m, self._v = self._view(0), self._view(1)

    def _update(self, g: torch.Tensor, params: torch.Tensor, iteration: int, epoch: int) -> None:
        lr = self.learning_rate(iteration, epoch)
        b1 = self._b1
        bc1, bc2_sqrt = _bias_corrections(b1, self._b2, iteration)
        bc1_next = 1.0 - b1 ** (iteration + 2)
        self._m.lerp_(g, 1.0 - b1)
        self._v.mul_(self._b2).addcmul_(g, g, value=1.0 - self._b2)
        denom = self._scratch
        torch.sqrt(self._v, out=denom)
        denom.div_(bc2_sqrt).add_(self._eps)
        g.mul_(lr * (1.0 - b1) / bc1).add_(self._m, alpha=lr * b1 / bc1_next)
        g.div_(denom)


class _RmsProp(FlatUpdater):
    """DL4J: ``v = d*v + (1-d)*g^2``, ``update = lr * g / sqrt(v + eps)``."""

    def __init__(self, spec: RmsProp, n: int, dtype: torch.dtype, device: torch.device | str) -> None:
        FlatUpdater.__init__(self, spec, n, dtype, device, scratch=True)
        self._decay, self._eps = spec.rms_decay, spec.epsilon
        self._v = self._view(0)

    def _update(self, g: torch.Tensor, params: torch.Tensor, iteration: int, epoch: int) -> None:
        self._v.mul_(self._decay).addcmul_(g, g, value=1.0 - self._decay)
        torch.add(self._v, self._eps, out=self._scratch).sqrt_()
        g.div_(self._scratch).mul_(self.learning_rate(iteration, epoch))


class _AdaGrad(FlatUpdater):
    """``h += g^2``, ``update = lr * g / (sqrt(h) + eps)``."""

    def __init__(self, spec: AdaGrad, n: int, dtype: torch.dtype, device: torch.device | str) -> None:
        FlatUpdater.__init__(self, spec, n, dtype, device, scratch=True)
        self._eps = spec.epsilon
        self._h = self._view(0)

    def _update(self, g: torch.Tensor, params: torch.Tensor, iteration: int, epoch: int) -> None:
        self._h.addcmul_(g, g)
        torch.sqrt(self._h, out=self._scratch).add_(self._eps)
        g.div_(self._scratch).mul_(self.learning_rate(iteration, epoch))


class _AdaDelta(FlatUpdater):
    """``E[g^2] = r*E[g^2] + (1-r)*g^2``; ``dx = sqrt(E[dx^2]+eps)/sqrt(E[g^2]+eps) * g``; ``E[dx^2]`` likewise."""

    def __init__(self, spec: AdaDelta, n: int, dtype: torch.dtype, device: torch.device | str) -> None:
        FlatUpdater.__init__(self, spec, n, dtype, device, scratch=True)
        self._rho, self._eps = spec.rho, spec.epsilon
        self._msg, self._msdx = self._view(0), self._view(1)

    def _update(self, g: torch.Tensor, params: torch.Tensor, iteration: int, epoch: int) -> None:
        rho, s = self._rho, self._scratch
        self._msg.mul_(rho).addcmul_(g, g, value=1.0 - rho)
        torch.add(self._msdx, self._eps, out=s).sqrt_()
        g.mul_(s)
        torch.add(self._msg, self._eps, out=s).sqrt_()
        g.div_(s)
        self._msdx.mul_(rho).addcmul_(g, g, value=1.0 - rho)


class _NoOp(FlatUpdater):
    """The update is zero."""

    def __init__(self, spec: NoOp, n: int, dtype: torch.dtype, device: torch.device | str) -> None:
        FlatUpdater.__init__(self, spec, n, dtype, device, scratch=False)

    def _update(self, g: torch.Tensor, params: torch.Tensor, iteration: int, epoch: int) -> None:
        g.zero_()


_IMPLS: dict[type[Updater], Callable[[Any, int, torch.dtype, torch.device | str], FlatUpdater]] = {
    Sgd: _Sgd,
    Nesterovs: _Nesterovs,
    Adam: _Adam,
    AdamW: _Adam,
    AmsGrad: _Adam,
    AdaMax: _AdaMax,
    Nadam: _Nadam,
    RmsProp: _RmsProp,
    AdaGrad: _AdaGrad,
    AdaDelta: _AdaDelta,
    NoOp: _NoOp,
}


def make_updater(spec: Updater, n: int, dtype: torch.dtype, device: torch.device | str = "cpu") -> FlatUpdater:
    """Build the flat implementation of ``spec`` for ``n`` parameters of ``dtype`` on ``device``.

    The state starts at zero (a fresh optimizer); restore saved state with ``set_state``.

    Example:
        >>> upd = make_updater(Adam(learning_rate=1e-3), 10, torch.float32)
        >>> upd.state.shape
        torch.Size([20])

    Raises:
        ConfigError: no flat implementation exists for the spec's type, or ``n``/``dtype`` is invalid.
    """
    impl = _IMPLS.get(type(spec))
    if impl is None:
        known = ", ".join(sorted(repr(cls.tag) for cls in _IMPLS))
        raise ConfigError(f"no flat implementation for updater {type(spec).__name__}; implemented: {known}", "updater")
    return impl(spec, n, dtype, device)


__all__ = ["FlatUpdater", "make_updater"]
