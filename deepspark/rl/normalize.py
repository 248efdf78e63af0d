"""Running observation statistics (mean and variance by Chan et al.'s parallel update) and their JSON form.

The learner owns the statistics; rollout workers receive a frozen copy each iteration and normalize
with it, and the learner normalizes that iteration's batch with the same copy before folding the
batch in, so the policy that acted and the policy that learns see identical inputs.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from deepspark.errors import ModelFormatError


class RunningStats:
    """Mean and variance of observations seen so far, per observation value.

    Example:
        >>> stats = RunningStats(2)
        >>> stats.update(np.array([[0.0, 1.0], [2.0, 3.0]], np.float32))
        >>> stats.mean.tolist(), stats.var.tolist()
        ([1.0, 2.0], [1.0, 1.0])
    """

    def __init__(self, size: int, *, clip: float = 10.0, epsilon: float = 1e-8) -> None:
        self.mean = np.zeros(size, np.float64)
        self.var = np.ones(size, np.float64)
        self.count = 0
        self.clip = clip
        self.epsilon = epsilon

    def update(self, batch: np.ndarray) -> None:
        """Fold a batch of flat observations (rows) into the statistics."""
        rows = batch.reshape(-1, self.mean.shape[0]).astype(np.float64, copy=False)
        n = rows.shape[0]
        if n == 0:
            return
        b_mean, b_var = rows.mean(axis=0), rows.var(axis=0)
        total = self.count + n
        delta = b_mean - self.mean
        m2 = self.var * self.count + b_var * n + delta**2 * self.count * n / total
        self.mean = self.mean + delta * n / total
        self.var = m2 / total
        self.count = total

    def scale(self) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, 1/std)`` as float32, for ``normalize``."""
        return self.mean.astype(np.float32), (1.0 / np.sqrt(self.var + self.epsilon)).astype(np.float32)

    def to_json(self) -> str:
        """Exact JSON (float64 values written with ``repr`` precision)."""
        return json.dumps(
            {
                "type": "running_observation_stats",
                "mean": self.mean.tolist(),
                "var": self.var.tolist(),
                "count": self.count,
                "clip": self.clip,
                "epsilon": self.epsilon,
            }
        )

    @classmethod
    def from_json(cls, text: str, size: int) -> RunningStats:
        """Rebuild from ``to_json``; anything malformed or of another size raises ``ModelFormatError``."""
        try:
            data: Any = json.loads(text)
        except ValueError as e:
            raise ModelFormatError(f"observation statistics are not valid JSON: {e}") from None
        if not isinstance(data, dict) or data.get("type") != "running_observation_stats":
            raise ModelFormatError("observation statistics: expected an object of type 'running_observation_stats'")
        mean, var, count = data.get("mean"), data.get("var"), data.get("count")
        clip, eps = data.get("clip"), data.get("epsilon")
        ok = (
            isinstance(mean, list)
            and isinstance(var, list)
            and len(mean) == len(var) == size
            and all(isinstance(v, (int, float)) and math.isfinite(v) for v in mean + var)
            and all(v >= 0 for v in var)
            and type(count) is int
            and count >= 0
            and isinstance(clip, (int, float))
            and clip > 0
            and isinstance(eps, (int, float))
            and eps > 0
        )
        if not ok:
            raise ModelFormatError(
                f"observation statistics: expected mean/var lists of {size} finite numbers, a count >= 0 and "
                "positive clip/epsilon"
            )
        stats = cls(size, clip=float(clip), epsilon=float(eps))  # type: ignore[arg-type]
        stats.mean = np.asarray(mean, np.float64)
        stats.var = np.asarray(var, np.float64)
        stats.count = count  # type: ignore[assignment]
        return stats


def normalize(obs: np.ndarray, mean: np.ndarray, inv_std: np.ndarray, clip: float) -> np.ndarray:
    """``clip((obs - mean) * inv_std, -clip, clip)`` as a new float32 array."""
    out: np.ndarray = ((obs - mean) * inv_std).astype(np.float32, copy=False)
    np.clip(out, -clip, clip, out=out)
    return out


__all__ = ["RunningStats", "normalize"]
