"""The payloads of training stats records (types ``model``, ``worker``, ``spark``, ``session``), checked at ingest.

The UI draws these fields as numbers and text, so a field that must be a number is refused when it is not
(``records[0].payload.layers[2].n_out: expected an int or null, got '<b>'``). Keys the UI does not know are
left to the generic JSON rules of ``records.py``, so producers may add fields without a schema change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, TypeAlias

from deepspark.stats.records import RecordError

NUMBER = "number"  # a finite number or null
INT = "int"  # an int or null
TEXT = "string"  # a string or null


@dataclass(frozen=True, slots=True)
class Map:
    """An object whose keys are free (layer or parameter names) and whose values follow ``item``."""

    item: Spec


@dataclass(frozen=True, slots=True)
class List:
    """A JSON array whose items follow ``item``."""

    item: Spec


@dataclass(frozen=True, slots=True)
class Row:
    """A JSON array whose items follow ``columns`` by position (at least ``min_len`` of them)."""

    columns: tuple[Spec, ...]
    min_len: int


Spec: TypeAlias = "str | dict[str, Spec] | Map | List | Row"


_TENSOR_STATS: Spec = {
    "mean_magnitude": NUMBER,
    "std": NUMBER,
    "histogram": {"min": NUMBER, "max": NUMBER, "counts": List(NUMBER), "stride": NUMBER},
}
_PROCESS: Spec = {
    "rss_bytes": NUMBER,
    "torch_bytes": NUMBER,
    "gc": {"seconds": NUMBER, "collections": List(NUMBER)},
}
_MODEL_STATIC: Spec = {
    "layers": List({"index": INT, "name": TEXT, "type": TEXT, "params": INT, "activation": TEXT, "n_out": INT}),
    "param_keys": List(TEXT),
    "num_params": INT,
    "num_workers": INT,
    "worker_ids": List(TEXT),
    "config": TEXT,
    "summary": TEXT,
    "training": TEXT,
    "spark_master": TEXT,
    "spark_version": TEXT,
    "app_id": TEXT,
    "hardware": {"host": TEXT, "cpus": INT, "memory_bytes": NUMBER, "machine": TEXT, "cuda_devices": INT},
    "software": Map(TEXT),
}
_MODEL_UPDATE: Spec = {
    "score": NUMBER,
    "epoch": INT,
    "round": INT,
    "examples_per_sec": NUMBER,
    "minibatches_per_sec": NUMBER,
    "episode_return": NUMBER,
    "episode_length": NUMBER,
    "episodes": INT,
    "env_steps": INT,
    "rl_iteration": INT,
    "learning_rates": Map(NUMBER),
    "ratios": Map(NUMBER),
    "params": Map(_TENSOR_STATS),
    "updates": Map(_TENSOR_STATS),
    "gradients": Map(_TENSOR_STATS),
    "activations": Map({"mean_magnitude": NUMBER, "std": NUMBER}),
    "process": _PROCESS,
    "host": TEXT,
}
_WORKER: Spec = {
    "host": TEXT,
    "pid": INT,
    "examples": INT,
    "minibatches": INT,
    "examples_per_sec": NUMBER,
    "minibatches_per_sec": NUMBER,
    "score": NUMBER,
    "process": _PROCESS,
}
_SPARK: Spec = {
    # worker (-1: driver), phase, side, start, duration, round, attempt
    "events": List(Row((INT, TEXT, TEXT, NUMBER, NUMBER, INT, INT), min_len=5)),
    "phase_totals": List({"phase": TEXT, "side": TEXT, "count": INT, "total": NUMBER, "mean": NUMBER, "share": NUMBER}),
    "advice": List({"severity": TEXT, "title": TEXT, "detail": TEXT, "setting": TEXT}),
}
_SESSION: Spec = {"event": TEXT, "epoch": INT}

SPECS: dict[tuple[str, str], Spec] = {
    ("model", "static"): _MODEL_STATIC,
    ("model", "update"): _MODEL_UPDATE,
    ("worker", "update"): _WORKER,
    ("spark", "update"): _SPARK,
    ("session", "update"): _SESSION,
}


def validate_training_payload(type_id: str, kind: str, payload: dict[str, Any], where: str) -> None:
    """Check the fields the UI draws of a training record's payload; raises ``RecordError`` naming the field."""
    spec = SPECS.get((type_id, kind))
    if spec is not None:
        _check(payload, spec, where)


def _check(value: Any, spec: Spec, path: str) -> None:
    if isinstance(spec, str):
        _check_leaf(value, spec, path)
        return
    if isinstance(spec, Row):
        if not isinstance(value, list) or len(value) < spec.min_len:
            raise RecordError(
                f"expected an array [worker, phase, side, start, duration, round, attempt], got {_show(value)}", path
            )
        for i, (item, column) in enumerate(zip(value, spec.columns, strict=False)):
            _check(item, column, f"{path}[{i}]")
        return
    if value is None:
        return
    if isinstance(spec, List):
        if not isinstance(value, list):
            raise RecordError(f"expected a JSON array or null, got {_show(value)}", path)
        for i, item in enumerate(value):
            _check(item, spec.item, f"{path}[{i}]")
        return
    if not isinstance(value, dict):
        raise RecordError(f"expected a JSON object or null, got {_show(value)}", path)
    if isinstance(spec, Map):
        for key, item in value.items():
            _check(item, spec.item, f"{path}.{key}")
        return
    for key, sub in spec.items():
        if key in value:
            _check(value[key], sub, f"{path}.{key}")


def _check_leaf(value: Any, kind: str, path: str) -> None:
    if value is None:
        return
    if kind == TEXT:
        if not isinstance(value, str):
            raise RecordError(f"expected a string or null, got {_show(value)}", path)
    elif kind == INT:
        if isinstance(value, bool) or not isinstance(value, int):
            raise RecordError(f"expected an int or null, got {_show(value)}", path)
    elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RecordError(f"expected a finite number or null, got {_show(value)}", path)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
