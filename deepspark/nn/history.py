"""``History``: the per-epoch metrics ``fit`` returns (training loss, validation metrics, learning rate)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from deepspark.errors import DataError


@dataclass
class History:
    """Per-epoch metrics of one ``fit`` call, named as Keras names them.

    Attributes:
        epoch: the epochs trained (0-based, continuing across fits and resumes).
        history: metric name -> one value per entry of ``epoch`` (NaN where an epoch did not report it):
            ``loss`` (mean training score), ``val_loss``/``val_accuracy`` with validation data, ``lr``
            with ``LearningRateLogger``.
        stopped_epoch: the epoch after which ``EarlyStopping`` stopped training, or None.
        best_epoch: the epoch ``EarlyStopping(restore_best=True)`` restored, or None.

    Example:
        >>> history = net.fit(x, y, epochs=5, validation_data=(xv, yv))     # doctest: +SKIP
        >>> history["val_loss"], history.best("val_loss")                  # doctest: +SKIP
    """

    epoch: list[int] = field(default_factory=list)
    history: dict[str, list[float]] = field(default_factory=dict)
    stopped_epoch: int | None = None
    best_epoch: int | None = None

    def record(self, epoch: int, logs: dict[str, float]) -> None:
        """Append one epoch's metrics (metrics new in this epoch are NaN-filled for the earlier ones)."""
        n = len(self.epoch)
        self.epoch.append(epoch)
        for name, value in logs.items():
            self.history.setdefault(name, [math.nan] * n).append(float(value))
        for values in self.history.values():
            if len(values) == n:
                values.append(math.nan)

    def __getitem__(self, name: str) -> list[float]:
        if name not in self.history:
            raise DataError(f"no metric {name!r} in this history; recorded: {sorted(self.history)}")
        return self.history[name]

    def __contains__(self, name: object) -> bool:
        return name in self.history

    def __len__(self) -> int:
        return len(self.epoch)

    def best(self, monitor: str = "val_loss", mode: str = "min") -> tuple[int, float]:
        """(epoch, value) where ``monitor`` was lowest (``mode="min"``) or highest (``"max"``)."""
        values = [(v, e) for v, e in zip(self[monitor], self.epoch, strict=True) if not math.isnan(v)]
        if not values:
            raise DataError(f"metric {monitor!r} has no values")
        value, epoch = min(values) if mode == "min" else max(values, key=lambda t: (t[0], -t[1]))
        return epoch, value

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN written as None)."""
        return {
            "epoch": list(self.epoch),
            "history": {k: [None if math.isnan(v) else v for v in vs] for k, vs in self.history.items()},
            "stopped_epoch": self.stopped_epoch,
            "best_epoch": self.best_epoch,
        }

    def to_json(self) -> str:
        """The history as JSON text."""
        return json.dumps(self.to_dict(), allow_nan=False)
