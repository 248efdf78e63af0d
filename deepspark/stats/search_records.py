"""The payloads a hyperparameter search stores (records of type ``search``), checked field by field at ingest.

A search's records reach the UI through the same stats storages and HTTP endpoint as training stats, so a
payload that claims to be a search event is held to its shape: known events, trial numbers and epochs as
bounded ints, scores and times as finite numbers (or null), states from a fixed set, short strings.
"""

from __future__ import annotations

import math
from typing import Any

from deepspark.stats.records import RecordError

SEARCH_TYPE = "search"
EVENTS = ("search_start", "trial_start", "epoch", "trial_end", "search_end")
STATES = ("complete", "pruned", "failed", "interrupted")
MAX_TRIAL = 2**31 - 1
MAX_TEXT = 4096

_INTS = {
    "trial": (0, MAX_TRIAL),
    "epoch": (1, 1_000_000),
    "epochs": (0, 1_000_000),
    "max_trials": (1, MAX_TRIAL),
    "max_epochs": (1, 1_000_000),
    "parallelism": (1, 100_000),
    "best_trial": (0, MAX_TRIAL),
}
_NUMBERS = ("score", "train_loss", "start", "end", "time", "best_score", "seconds", "target_score", "max_time")
_TEXTS = ("error", "worker", "metric", "mode", "sampler", "pruner", "study_name", "state", "event", "reason")
_REQUIRED = {
    "search_start": ("metric", "mode"),
    "trial_start": ("trial",),
    "epoch": ("trial", "epoch"),
    "trial_end": ("trial", "state"),
    "search_end": (),
}


def validate_search_payload(payload: dict[str, Any], where: str) -> None:
    """Check a ``search`` record's payload beyond the generic JSON rules; raises ``RecordError``."""
    event = payload.get("event")
    if event not in EVENTS:
        raise RecordError(f"expected one of {list(EVENTS)}, got {event!r}", f"{where}.event")
    for key in _REQUIRED[event]:
        if key not in payload:
            raise RecordError(f"a {event!r} event needs {key!r}", where)
    for key, (low, high) in _INTS.items():
        value = payload.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise RecordError(f"expected an int in [{low}, {high}], got {value!r}", f"{where}.{key}")
    for key in _NUMBERS:
        value = payload.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise RecordError(f"expected a finite number or null, got {value!r}", f"{where}.{key}")
        if key in ("start", "end", "time", "seconds", "max_time") and value < 0:
            raise RecordError(f"expected a number >= 0, got {value!r}", f"{where}.{key}")
    for key in _TEXTS:
        value = payload.get(key)
        if value is not None and (not isinstance(value, str) or len(value) > MAX_TEXT):
            raise RecordError(f"expected a string of at most {MAX_TEXT} characters", f"{where}.{key}")
    state = payload.get("state")
    if state is not None and state not in STATES:
        raise RecordError(f"expected one of {list(STATES)}, got {state!r}", f"{where}.state")
    params = payload.get("params")
    if params is not None:
        if not isinstance(params, dict):
            raise RecordError("expected an object of parameter names to values", f"{where}.params")
        for name, value in params.items():
            if not isinstance(value, (str, int, float, bool, type(None))):
                raise RecordError(
                    f"expected a scalar parameter value, got {type(value).__name__}", f"{where}.params.{name}"
                )
