"""Search events as stats records (type ``search``), so the training UI and ``deepspark report`` can show a search.

One session per study (``search-<study_name>``): a resumed search keeps appending to the same session. A
failing stats sink is logged and never stops the search.
"""

from __future__ import annotations

import logging
import math
import re
import time
from typing import Any

from deepspark.stats.records import Kind

log = logging.getLogger("deepspark")


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _scalar(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


class SearchEvents:
    """Writes a search's events to any ``StatsStorage`` (or nowhere when ``storage`` is None)."""

    def __init__(self, storage: Any, study_name: str) -> None:
        self.storage = storage
        self.session_id = "search-" + re.sub(r"[^A-Za-z0-9_.:@/+=-]", "_", study_name)[:100]

    def _put(self, payload: dict[str, Any], kind: Kind = "update", iteration: int = 0) -> None:
        if self.storage is None:
            return
        from deepspark.stats.records import StatsRecord

        try:
            record = StatsRecord(
                self.session_id,
                "search",
                "driver",
                time.time(),
                iteration,
                kind,
                payload,
            )
            self.storage.put([record])
        except Exception as e:  # stats are a view on the search, never a reason to stop it
            log.warning("search: could not store a %s event: %s", payload.get("event"), e)

    def search_start(self, settings: dict[str, Any], space: dict[str, Any]) -> None:
        self._put({"event": "search_start", **settings, "space": space}, kind="static")

    def trial_start(self, trial: int, params: dict[str, Any]) -> None:
        flat = {k: _scalar(v) for k, v in params.items()}
        self._put({"event": "trial_start", "trial": trial, "params": flat, "time": time.time()}, iteration=trial)

    def epoch(self, trial: int, epoch: int, score: float, loss: float, worker: str) -> None:
        payload = {
            "event": "epoch",
            "trial": trial,
            "epoch": epoch,
            "score": _finite(score),
            "train_loss": _finite(loss),
            "worker": worker,
            "time": time.time(),
        }
        self._put(payload, iteration=trial)

    def trial_end(
        self, trial: int, state: str, score: float | None, epochs: int, start: float, error: str, worker: str
    ) -> None:
        payload = {
            "event": "trial_end",
            "trial": trial,
            "state": state,
            "score": _finite(score),
            "epochs": epochs,
            "start": start,
            "end": time.time(),
            "error": error[:4000],
            "worker": worker,
        }
        self._put(payload, iteration=trial)

    def search_end(self, best_trial: int | None, best_score: float | None, reason: str) -> None:
        self._put(
            {"event": "search_end", "best_trial": best_trial, "best_score": _finite(best_score), "reason": reason}
        )
