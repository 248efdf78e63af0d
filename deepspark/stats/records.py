"""The one record shape every stats sink stores and the UI server accepts, and its strict validation.

A record is plain JSON: it is written by a listener, shipped over HTTP or stored in SQLite, and read
back by a UI that must never trust it (no pickle anywhere). Validation is the same in every place, so
a record a storage accepts is one the server accepts too, and vice versa.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from deepspark.errors import StorageError

SCHEMA_VERSION = 1
"""Version of the record shape (and of the SQLite schema that stores it)."""

Kind = Literal["static", "update"]
KINDS: tuple[Kind, ...] = ("static", "update")

MAX_ID_CHARS = 128
MAX_PAYLOAD_BYTES = 1 << 20  # one record's payload as JSON
MAX_DEPTH = 8
MAX_ITEMS = 20_000  # entries in any one list or dict of a payload
MAX_STRING_CHARS = 65_536
_ID = re.compile(r"^[A-Za-z0-9_.:@/+=-]{1,128}$")


class RecordError(StorageError):
    """A stats record is malformed; ``field`` names the offending field (``records[3].payload.score``)."""

    def __init__(self, message: str, field: str = "") -> None:
        self.message = message
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)

    def __reduce__(self) -> tuple[type[RecordError], tuple[str, str]]:
        return (type(self), (self.message, self.field))


@dataclass(frozen=True, slots=True)
class StatsRecord:
    """One report: who (session, type, worker), when (timestamp, iteration), what (static or update payload).

    Example:
        >>> r = StatsRecord("run-1", "model", "driver", iteration=10, kind="update", payload={"score": 0.5})
        >>> StatsRecord.from_dict(r.to_dict()) == r
        True
    """

    session_id: str
    type_id: str
    worker_id: str
    timestamp: float = field(default_factory=time.time)
    iteration: int = 0
    kind: Kind = "update"
    payload: dict[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        validate_record(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able form (what travels and what is stored)."""
        return {
            "session_id": self.session_id,
            "type_id": self.type_id,
            "worker_id": self.worker_id,
            "timestamp": self.timestamp,
            "iteration": self.iteration,
            "kind": self.kind,
            "payload": self.payload,
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "record") -> StatsRecord:
        """Validate ``data`` (anything parsed from JSON) and build a record; raises ``RecordError``."""
        validate_record(data, where)
        return cls(
            session_id=data["session_id"],
            type_id=data["type_id"],
            worker_id=data["worker_id"],
            timestamp=float(data["timestamp"]),
            iteration=int(data["iteration"]),
            kind=data["kind"],
            payload=data["payload"],
        )


_FIELDS = ("session_id", "type_id", "worker_id", "timestamp", "iteration", "kind", "payload")


def validate_record(data: Any, where: str = "record") -> None:
    """Check every field of a record dict: types, id characters, finite numbers, bounded sizes.

    Raises:
        RecordError: naming the first bad field and what would be accepted.
    """
    if not isinstance(data, dict):
        raise RecordError(f"expected a JSON object, got {_type_name(data)}", where)
    missing = [k for k in _FIELDS if k not in data]
    if missing:
        raise RecordError(f"missing field(s) {missing}; a record has {list(_FIELDS)}", where)
    extra = sorted(set(data) - set(_FIELDS))
    if extra:
        raise RecordError(f"unknown field(s) {extra}; a record has {list(_FIELDS)}", where)
    for key in ("session_id", "type_id", "worker_id"):
        value = data[key]
        if not isinstance(value, str) or not _ID.match(value):
            raise RecordError(
                f"expected 1-{MAX_ID_CHARS} characters of letters, digits and _.:@/+=-, got {_short(value)}",
                f"{where}.{key}",
            )
    ts = data["timestamp"]
    if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not math.isfinite(ts) or ts < 0:
        raise RecordError(
            f"expected seconds since the epoch (a finite number >= 0), got {_short(ts)}", f"{where}.timestamp"
        )
    it = data["iteration"]
    if isinstance(it, bool) or not isinstance(it, int) or not 0 <= it < 2**62:
        raise RecordError(f"expected a non-negative int, got {_short(it)}", f"{where}.iteration")
    if data["kind"] not in KINDS:
        raise RecordError(f"expected one of {list(KINDS)}, got {_short(data['kind'])}", f"{where}.kind")
    payload = data["payload"]
    if not isinstance(payload, dict):
        raise RecordError(f"expected a JSON object, got {_type_name(payload)}", f"{where}.payload")
    size = _check_value(payload, f"{where}.payload", 0)
    if size > MAX_PAYLOAD_BYTES:
        raise RecordError(
            f"about {size} bytes, over the limit of {MAX_PAYLOAD_BYTES}; report fewer histogram bins or events",
            f"{where}.payload",
        )
    if data["type_id"] == "search":  # a hyperparameter search's events: numbers checked field by field
        from deepspark.stats.search_records import validate_search_payload

        validate_search_payload(payload, f"{where}.payload")
    else:  # training stats: the fields the UI draws as numbers must be numbers
        from deepspark.stats.training_records import validate_training_payload

        validate_training_payload(data["type_id"], data["kind"], payload, f"{where}.payload")


def _check_value(value: Any, path: str, depth: int) -> int:
    """Validate one JSON value recursively; returns an estimate of its JSON size in bytes."""
    if value is None or isinstance(value, bool):
        return 5
    if isinstance(value, int):
        if abs(value) >= 2**63:
            raise RecordError(f"integer {value} does not fit 64 bits", path)
        return 12
    if isinstance(value, float):
        if not math.isfinite(value):
            raise RecordError(f"expected a finite number, got {value}; report null for a missing value", path)
        return 12
    if isinstance(value, str):
        if len(value) > MAX_STRING_CHARS:
            raise RecordError(f"string of {len(value)} characters, over the limit of {MAX_STRING_CHARS}", path)
        return len(value) + 2
    if depth >= MAX_DEPTH:
        raise RecordError(f"nested deeper than {MAX_DEPTH} levels", path)
    if isinstance(value, (list, tuple)):
        if len(value) > MAX_ITEMS:
            raise RecordError(f"list of {len(value)} items, over the limit of {MAX_ITEMS}", path)
        total = 2
        for i, item in enumerate(value):
            total += _check_value(item, f"{path}[{i}]", depth + 1) + 1
            if total > MAX_PAYLOAD_BYTES:
                return total
        return total
    if isinstance(value, dict):
        if len(value) > MAX_ITEMS:
            raise RecordError(f"object of {len(value)} keys, over the limit of {MAX_ITEMS}", path)
        total = 2
        for k, v in value.items():
            if not isinstance(k, str) or len(k) > MAX_ID_CHARS * 2:
                raise RecordError(
                    f"keys must be strings of at most {MAX_ID_CHARS * 2} characters, got {_short(k)}", path
                )
            total += len(k) + 4 + _check_value(v, f"{path}.{k}", depth + 1)
            if total > MAX_PAYLOAD_BYTES:
                return total
        return total
    raise RecordError(f"expected a JSON value, got {_type_name(value)}", path)


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def records_from_json(data: Any, limit: int) -> list[StatsRecord]:
    """The records of a posted batch ``{"records": [...]}``; all are validated before any is returned."""
    if not isinstance(data, dict) or set(data) != {"records"}:
        raise RecordError('expected a JSON object {"records": [...]}', "body")
    items = data["records"]
    if not isinstance(items, list):
        raise RecordError(f"expected an array of records, got {_type_name(items)}", "records")
    if not 1 <= len(items) <= limit:
        raise RecordError(f"expected 1 to {limit} records per request, got {len(items)}", "records")
    return [StatsRecord.from_dict(item, f"records[{i}]") for i, item in enumerate(items)]
