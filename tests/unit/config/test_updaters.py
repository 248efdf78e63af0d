"""Updater specs: JSON round trip of every tag, validation messages, state sizes, learning rates."""

from __future__ import annotations

from typing import Any

import pytest

from deepspark.config._spec import registered
from deepspark.config.schedules import ExponentialSchedule, StepSchedule
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
from deepspark.errors import ConfigError

EXAMPLES: dict[str, Updater] = {
    "sgd": Sgd(learning_rate=0.05),
    "nesterovs": Nesterovs(learning_rate=StepSchedule(initial=0.1, decay_rate=0.5, step=10), momentum=0.8),
    "adam": Adam(learning_rate=ExponentialSchedule(initial=1e-3, gamma=0.99, schedule_type="epoch"), beta2=0.98),
    "adamw": AdamW(learning_rate=3e-4, weight_decay=0.05),
    "adamax": AdaMax(beta1=0.8),
    "nadam": Nadam(epsilon=1e-7),
    "amsgrad": AmsGrad(learning_rate=5e-4),
    "rmsprop": RmsProp(rms_decay=0.9),
    "adagrad": AdaGrad(epsilon=1e-8),
    "adadelta": AdaDelta(rho=0.9),
    "noop": NoOp(),
}

# (tag, field, invalid value, expected error path)
INVALID: list[tuple[str, str, Any, str]] = [
    ("sgd", "learning_rate", -0.1, "learning_rate"),
    ("nesterovs", "momentum", 1.0, "momentum"),
    ("adam", "beta1", 1.5, "beta1"),
    ("adamw", "weight_decay", -0.01, "weight_decay"),
    ("adamax", "epsilon", 0.0, "epsilon"),
    ("nadam", "beta2", -0.1, "beta2"),
    ("amsgrad", "learning_rate", 0.0, "learning_rate"),
    ("rmsprop", "rms_decay", 1.0, "rms_decay"),
    ("adagrad", "epsilon", -1e-6, "epsilon"),
    ("adadelta", "rho", 1.2, "rho"),
    ("noop", "learning_rate", 0.1, "learning_rate"),  # NoOp has no learning rate: an unknown field
]

STATE_SIZES = {
    "sgd": 0,
    "nesterovs": 1,
    "adam": 2,
    "adamw": 2,
    "adamax": 2,
    "nadam": 2,
    "amsgrad": 3,
    "rmsprop": 1,
    "adagrad": 1,
    "adadelta": 2,
    "noop": 0,
}


def test_updater_examples_cover_every_registered_tag() -> None:
    tags = set(registered(Updater))
    assert set(EXAMPLES) == tags
    assert {tag for tag, *_ in INVALID} == tags
    assert set(STATE_SIZES) == tags


@pytest.mark.parametrize("tag", sorted(registered(Updater)))
def test_updater_json_round_trip_gives_equal_spec(tag: str) -> None:
    spec = EXAMPLES[tag]
    assert spec.tag == tag
    text = spec.to_json()
    assert Updater.from_json(text) == spec
    assert type(spec).from_json(text) == spec
    assert Updater.from_json(text).to_json() == text


def test_updater_schedule_learning_rate_round_trips_as_nested_object() -> None:
    spec = EXAMPLES["adam"]
    data = spec.to_dict()
    assert data["learning_rate"]["type"] == "exponential"
    restored = Updater.from_json(spec.to_json())
    assert isinstance(restored, Adam)
    assert restored.learning_rate == ExponentialSchedule(initial=1e-3, gamma=0.99, schedule_type="epoch")


@pytest.mark.parametrize(("tag", "field", "bad", "path"), INVALID, ids=[row[0] for row in INVALID])
def test_updater_invalid_value_raises_config_error_naming_field(tag: str, field: str, bad: Any, path: str) -> None:
    with pytest.raises(ConfigError) as info:
        Updater.from_dict({"type": tag, field: bad})
    assert info.value.path == path
    assert str(info.value).startswith(f"{path}: ")


def test_adam_beta1_out_of_range_message_names_field_and_value() -> None:
    with pytest.raises(ConfigError, match=r"^beta1: expected a probability in \[0, 1\), got 1\.5$"):
        Adam(beta1=1.5)


def test_updater_invalid_schedule_learning_rate_error_path_is_nested() -> None:
    with pytest.raises(ConfigError) as info:
        Updater.from_dict(
            {"type": "sgd", "learning_rate": {"type": "step", "initial": 0.1, "decay_rate": 0.5, "step": 0}}
        )
    assert info.value.path == "learning_rate.step"


def test_updater_learning_rate_of_wrong_type_rejected() -> None:
    with pytest.raises(ConfigError) as info:
        Updater.from_dict({"type": "adam", "learning_rate": "fast"})
    assert info.value.path == "learning_rate"
    assert "schedule" in info.value.message


def test_updater_from_json_unknown_tag_suggests_adam() -> None:
    with pytest.raises(ConfigError) as info:
        Updater.from_json('{"type": "adma"}')
    assert info.value.path == "type"
    assert "'adam'" in info.value.message


def test_updater_from_json_unknown_tag_raises_with_hint() -> None:
    with pytest.raises(ConfigError) as info:
        Updater.from_json('{"type": "adma"}')
    assert info.value.path == "type"
    assert "did you mean" in info.value.message


def test_updater_from_json_schedule_tag_rejected_as_wrong_kind() -> None:
    with pytest.raises(ConfigError, match=r"expected an? updater, got the schedule .exponential."):
        Updater.from_json('{"type": "exponential", "initial": 0.1, "gamma": 0.9}')


def test_updater_int_learning_rate_normalized_to_float() -> None:
    spec = Sgd(learning_rate=1)
    assert isinstance(spec.learning_rate, float)
    assert Updater.from_json(spec.to_json()) == spec


@pytest.mark.parametrize("tag", sorted(registered(Updater)))
def test_updater_state_size_scales_with_parameter_count(tag: str) -> None:
    spec = EXAMPLES[tag]
    assert spec.state_size(0) == 0
    assert spec.state_size(7) == 7 * STATE_SIZES[tag]


def test_updater_defaults_follow_dl4j() -> None:
    assert Sgd().learning_rate == 1e-3
    assert Nesterovs() == Nesterovs(learning_rate=0.1, momentum=0.9)
    assert Adam() == Adam(learning_rate=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-8)
    assert AdamW().weight_decay == 0.01
    assert AdaMax().learning_rate == 2e-3
    assert RmsProp() == RmsProp(learning_rate=0.1, rms_decay=0.95, epsilon=1e-8)
    assert AdaGrad() == AdaGrad(learning_rate=0.1, epsilon=1e-6)
    assert AdaDelta() == AdaDelta(rho=0.95, epsilon=1e-6)


def test_updater_constant_learning_rate_ignores_counters() -> None:
    assert Adam(learning_rate=0.01).learning_rate_at(iteration=1000, epoch=5) == 0.01


def test_updater_schedule_learning_rate_follows_schedule() -> None:
    spec = Nesterovs(learning_rate=StepSchedule(initial=0.1, decay_rate=0.5, step=10))
    assert spec.learning_rate_at(iteration=0, epoch=0) == pytest.approx(0.1)
    assert spec.learning_rate_at(iteration=25, epoch=0) == pytest.approx(0.025)
    epoch_based = Adam(learning_rate=ExponentialSchedule(initial=0.1, gamma=0.5, schedule_type="epoch"))
    assert epoch_based.learning_rate_at(iteration=25, epoch=1) == pytest.approx(0.05)


def test_updater_without_learning_rate_reports_fixed_value() -> None:
    assert AdaDelta().learning_rate_at(iteration=3, epoch=1) == 1.0
    assert NoOp().learning_rate_at(iteration=3, epoch=1) == 0.0
