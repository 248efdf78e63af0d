"""Learning-rate schedule specs: formulas at hand-computed points, JSON round trip, validation messages."""

from __future__ import annotations

import math
from typing import Any

import pytest

from deepspark.config._spec import registered
from deepspark.config.schedules import (
    CycleSchedule,
    ExponentialSchedule,
    InverseSchedule,
    MapSchedule,
    PolySchedule,
    Schedule,
    SigmoidSchedule,
    StepSchedule,
    WarmupSchedule,
)
from deepspark.errors import ConfigError

# One non-default example per registered tag; the contract tests below fail when a tag is missing here.
EXAMPLES: dict[str, Schedule] = {
    "exponential": ExponentialSchedule(initial=0.1, gamma=0.99, schedule_type="epoch"),
    "inverse": InverseSchedule(initial=0.1, gamma=0.5, power=0.75),
    "poly": PolySchedule(initial=0.2, power=2.0, max_iter=1000),
    "sigmoid": SigmoidSchedule(initial=0.1, gamma=-0.5, step_size=100),
    "step": StepSchedule(initial=0.1, decay_rate=0.5, step=3, schedule_type="epoch"),
    "map": MapSchedule(values=((0, 0.1), (10, 0.05), (20, 0.01))),
    "cycle": CycleSchedule(initial=0.01, max=0.1, cycle_length=100, annealing_length=10, annealing_decay=0.5),
    "warmup": WarmupSchedule(warmup_steps=10, schedule=StepSchedule(initial=0.1, decay_rate=0.5, step=100)),
}

# (tag, field, invalid value, expected error path)
INVALID: list[tuple[str, str, Any, str]] = [
    ("exponential", "gamma", 0.0, "gamma"),
    ("inverse", "power", -1.0, "power"),
    ("poly", "max_iter", 0, "max_iter"),
    ("sigmoid", "gamma", 0.0, "gamma"),
    ("step", "step", 0, "step"),
    ("map", "values", [[1, 0.1], [5, 0.01]], "values[0]"),
    ("cycle", "annealing_length", 99, "annealing_length"),
    ("warmup", "warmup_steps", 0, "warmup_steps"),
]


def _at(schedule: Schedule, t: int) -> float:
    """The value at counter ``t`` whatever the schedule type (both counters set to ``t``)."""
    return schedule.value(iteration=t, epoch=t)


def test_schedule_examples_cover_every_registered_tag() -> None:
    assert set(EXAMPLES) == set(registered(Schedule))
    assert {tag for tag, *_ in INVALID} == set(registered(Schedule))


@pytest.mark.parametrize("tag", sorted(registered(Schedule)))
def test_schedule_json_round_trip_gives_equal_spec(tag: str) -> None:
    spec = EXAMPLES[tag]
    text = spec.to_json()
    assert Schedule.from_json(text) == spec
    assert type(spec).from_json(text) == spec
    assert Schedule.from_json(text).to_json() == text


@pytest.mark.parametrize(("tag", "field", "bad", "path"), INVALID, ids=[row[0] for row in INVALID])
def test_schedule_invalid_value_raises_config_error_naming_field(tag: str, field: str, bad: Any, path: str) -> None:
    data = EXAMPLES[tag].to_dict() | {field: bad}
    with pytest.raises(ConfigError) as info:
        Schedule.from_dict(data)
    assert info.value.path == path
    assert str(info.value).startswith(f"{path}: ")


def test_exponential_at_several_iterations_matches_hand_computed() -> None:
    s = ExponentialSchedule(initial=0.1, gamma=0.5)
    assert [_at(s, t) for t in (0, 1, 3)] == pytest.approx([0.1, 0.05, 0.0125])


def test_exponential_epoch_type_reads_epoch_not_iteration() -> None:
    s = ExponentialSchedule(initial=0.1, gamma=0.5, schedule_type="epoch")
    assert s.value(iteration=1000, epoch=2) == pytest.approx(0.025)
    assert s.value(iteration=0, epoch=0) == pytest.approx(0.1)


def test_inverse_at_several_iterations_matches_hand_computed() -> None:
    s = InverseSchedule(initial=0.1, gamma=0.5, power=2.0)
    # 0.1 / (1 + 0.5 t)^2
    assert [_at(s, t) for t in (0, 2, 6)] == pytest.approx([0.1, 0.025, 0.00625])


def test_poly_reaches_zero_at_max_iter_and_stays() -> None:
    s = PolySchedule(initial=0.2, power=2.0, max_iter=10)
    # 0.2 * (1 - t/10)^2
    assert [_at(s, t) for t in (0, 5, 9, 10, 50)] == pytest.approx([0.2, 0.05, 0.002, 0.0, 0.0])


def test_sigmoid_at_several_iterations_matches_hand_computed() -> None:
    s = SigmoidSchedule(initial=0.1, gamma=0.5, step_size=4)
    expected = [0.1 / (1 + math.exp(-0.5 * (t - 4))) for t in (0, 4, 10)]
    assert [_at(s, t) for t in (0, 4, 10)] == pytest.approx(expected)
    assert _at(s, 4) == pytest.approx(0.05)


def test_sigmoid_far_from_step_size_does_not_overflow() -> None:
    rising = SigmoidSchedule(initial=0.1, gamma=1.0, step_size=10_000)
    falling = SigmoidSchedule(initial=0.1, gamma=-1.0, step_size=0)
    assert _at(rising, 0) == 0.0
    assert _at(falling, 10_000) == 0.0
    assert _at(rising, 20_000) == pytest.approx(0.1)


def test_step_epoch_type_drops_every_step_epochs() -> None:
    s = StepSchedule(initial=0.1, decay_rate=0.5, step=3, schedule_type="epoch")
    assert [s.value(iteration=7, epoch=e) for e in (0, 2, 3, 5, 6, 9)] == pytest.approx(
        [0.1, 0.1, 0.05, 0.05, 0.025, 0.0125]
    )


def test_map_uses_value_of_largest_key_not_above_t() -> None:
    s = MapSchedule(values=((0, 0.1), (10, 0.05), (20, 0.01)))
    assert [_at(s, t) for t in (0, 9, 10, 19, 20, 1000)] == [0.1, 0.1, 0.05, 0.05, 0.01, 0.01]


def test_map_epoch_type_reads_epoch() -> None:
    s = MapSchedule(values=((0, 1.0), (2, 0.5)), schedule_type="epoch")
    assert s.value(iteration=100, epoch=1) == 1.0
    assert s.value(iteration=0, epoch=2) == 0.5


def test_map_json_lists_become_tuples() -> None:
    s = Schedule.from_dict({"type": "map", "values": [[0, 1], [5, 0.5]]})
    assert s == MapSchedule(values=((0, 1.0), (5, 0.5)))


def test_map_keys_not_ascending_rejected_at_offending_pair() -> None:
    with pytest.raises(ConfigError) as info:
        MapSchedule(values=((0, 0.1), (10, 0.05), (10, 0.01)))
    assert info.value.path == "values[2]"
    assert "ascending" in info.value.message


def test_map_empty_rejected() -> None:
    with pytest.raises(ConfigError) as info:
        MapSchedule(values=())
    assert info.value.path == "values"


def test_cycle_ramps_up_down_then_anneals() -> None:
    s = CycleSchedule(initial=0.01, max=0.1, cycle_length=12, annealing_length=2, annealing_decay=0.1)
    # ramp r = 10, half h = 5: up over p in [0, 5), down over [5, 10), then 0.01 * 0.1^(p - 10).
    expected = {0: 0.01, 1: 0.028, 5: 0.1, 7: 0.064, 9: 0.028, 10: 0.01, 11: 0.001, 12: 0.01, 17: 0.1}
    assert {t: _at(s, t) for t in expected} == pytest.approx(expected)


def test_cycle_odd_ramp_length_stays_continuous() -> None:
    s = CycleSchedule(initial=0.02, max=0.12, cycle_length=7, annealing_length=2)
    # r = 5, h = 2.5: values rise to the peak between t=2 and t=3 and fall back to initial at t=5.
    values = [_at(s, t) for t in range(7)]
    assert values == pytest.approx([0.02, 0.06, 0.10, 0.10, 0.06, 0.02, 0.002])


def test_cycle_max_below_initial_rejected_naming_max() -> None:
    with pytest.raises(ConfigError) as info:
        CycleSchedule(initial=0.1, max=0.05, cycle_length=10, annealing_length=2)
    assert info.value.path == "max"


def test_warmup_constant_base_ramps_linearly_then_holds() -> None:
    s = WarmupSchedule(warmup_steps=4, base=0.2)
    assert [_at(s, t) for t in (0, 1, 3, 4, 100)] == pytest.approx([0.05, 0.1, 0.2, 0.2, 0.2])


def test_warmup_wrapped_schedule_scales_it_then_hands_over() -> None:
    inner = ExponentialSchedule(initial=0.1, gamma=0.5)
    s = WarmupSchedule(warmup_steps=2, schedule=inner)
    assert _at(s, 0) == pytest.approx(0.1 * 0.5)  # half of the warm-up done
    assert _at(s, 1) == pytest.approx(0.05)  # full inner value at the last warm-up step
    assert _at(s, 3) == pytest.approx(0.0125)


def test_warmup_epoch_type_counts_epochs() -> None:
    s = WarmupSchedule(warmup_steps=2, base=0.1, schedule_type="epoch")
    assert s.value(iteration=999, epoch=0) == pytest.approx(0.05)
    assert s.value(iteration=0, epoch=2) == pytest.approx(0.1)


def test_warmup_without_target_rejected_naming_schedule() -> None:
    with pytest.raises(ConfigError) as info:
        WarmupSchedule(warmup_steps=3)
    assert info.value.path == "schedule"


def test_warmup_with_both_targets_rejected_naming_base() -> None:
    with pytest.raises(ConfigError) as info:
        WarmupSchedule(warmup_steps=3, base=0.1, schedule=ExponentialSchedule(initial=0.1, gamma=0.9))
    assert info.value.path == "base"


def test_warmup_nested_invalid_schedule_error_path_is_nested() -> None:
    data = {"type": "warmup", "warmup_steps": 3, "schedule": {"type": "exponential", "initial": 0.1, "gamma": -1}}
    with pytest.raises(ConfigError) as info:
        Schedule.from_dict(data)
    assert info.value.path == "schedule.gamma"


def test_schedule_type_unknown_rejected_with_options() -> None:
    with pytest.raises(ConfigError) as info:
        Schedule.from_dict({"type": "exponential", "initial": 0.1, "gamma": 0.9, "schedule_type": "epochs"})
    assert info.value.path == "schedule_type"
    assert "'epoch'" in info.value.message
