"""Training stats payloads: every field the UI draws as a number refuses anything else, naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from deepspark.stats import RecordError, StatsRecord
from deepspark.stats.training_records import INT, NUMBER, SPECS, TEXT, List, Map, Row, Spec

HOSTILE = '<img src=x onerror="window.__xss=1">'


def _leaves(spec: Spec, path: str = "") -> list[tuple[str, str, Any]]:
    """(path, kind, payload fragment holding a wrong value at that path) for every leaf of a spec."""
    if isinstance(spec, str):
        return [(path, spec, HOSTILE if spec != TEXT else 7)]
    if isinstance(spec, Map):
        return [(p, k, {"layer0": v}) for p, k, v in _leaves(spec.item, f"{path}.layer0")]
    if isinstance(spec, List):
        return [(p, k, [v]) for p, k, v in _leaves(spec.item, f"{path}[0]")]
    if isinstance(spec, Row):
        row = [0, "fit", "worker", 1.0, 0.5, 0, 0]
        return [
            (p, k, [*row[:i], v, *row[i + 1 :]])
            for i, column in enumerate(spec.columns)
            for p, k, v in _leaves(column, f"{path}[{i}]")
        ]
    return [(p, k, {key: v}) for key, sub in spec.items() for p, k, v in _leaves(sub, f"{path}.{key}")]


CASES = [(t, kind, p, k, v) for (t, kind), spec in SPECS.items() for p, k, v in _leaves(spec)]


CASE_IDS = [f"{c[0]}-{c[1]}{c[2]}" for c in CASES]


@pytest.mark.parametrize(("type_id", "kind", "path", "leaf", "payload"), CASES, ids=CASE_IDS)
def test_training_payload_wrong_type_is_refused_naming_the_field(
    type_id: str, kind: str, path: str, leaf: str, payload: dict[str, Any]
) -> None:
    with pytest.raises(RecordError) as e:
        StatsRecord("s", type_id, "driver", kind=kind, payload=payload)  # type: ignore[arg-type]
    assert e.value.field == f"record.payload{path}"
    expected = {NUMBER: "a finite number", INT: "an int", TEXT: "a string"}[leaf]
    assert expected in str(e.value)


def test_training_payload_nulls_unknown_keys_and_other_types_are_accepted() -> None:
    StatsRecord("s", "model", "driver", kind="static", payload={"layers": [{"index": 0, "n_out": None}], "extra": "x"})
    StatsRecord("s", "model", "driver", payload={"score": None, "loss": 0.5, "ratios": {"layer0.weight": -3.0}})
    StatsRecord("s", "custom", "driver", payload={"score": "free-form: not a type the UI draws"})


def test_training_payload_short_event_row_is_refused() -> None:
    with pytest.raises(RecordError, match=r"record\.payload\.events\[0\]: expected an array \[worker, phase"):
        StatsRecord("s", "spark", "driver", payload={"events": [[0, "fit"]]})
