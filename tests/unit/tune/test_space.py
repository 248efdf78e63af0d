"""Search spaces: JSON round trip, Optuna distributions and suggestions, grids, and bad input."""

from __future__ import annotations

import math
from typing import Any

import optuna
import pytest

from deepspark.errors import ConfigError
from deepspark.tune import Choice, Fixed, IntRange, LogUniform, Space, Uniform

optuna.logging.set_verbosity(optuna.logging.WARNING)

DOMAINS = [
    LogUniform(1e-4, 1e-1),
    Uniform(0.0, 0.5),
    Uniform(0.0, 0.5, step=0.1),
    IntRange(1, 3),
    IntRange(8, 512, log=True),
    IntRange(0, 10, step=5),
    Choice([64, 128, 256]),
    Choice(["relu", "tanh", None, True, 0.5]),
    Fixed([1, {"a": 2}]),
    Choice({"adam": {"lr": LogUniform(1e-4, 1e-2)}, "sgd": {"lr": LogUniform(1e-3, 1e-1), "m": Uniform(0.0, 0.9)}}),
]


def _space() -> Space:
    return Space.of(
        {
            "lr": LogUniform(1e-4, 1e-1),
            "units": Choice([64, 128, 256]),
            "dropout": Uniform(0.0, 0.5),
            "layers": IntRange(1, 3),
            "batch": 64,
            "opt": Choice(
                {
                    "adam": {"beta": Uniform(0.8, 0.99)},
                    "sgd": {
                        "momentum": Uniform(0.0, 0.9),
                        "nesterov": Choice({"yes": {"k": IntRange(1, 2)}, "no": {}}),
                    },
                }
            ),
        }
    )


@pytest.mark.parametrize("domain", DOMAINS, ids=lambda d: type(d).__name__)
def test_domain_json_round_trip_gives_an_equal_space(domain: Any) -> None:
    space = Space.of({"p": domain})
    assert Space.from_json(space.to_json()) == space


def test_space_of_nested_conditional_choices_round_trips_and_lists_every_branch_distribution() -> None:
    space = _space()
    assert Space.from_json(space.to_json()) == space
    dists = space.distributions()
    assert set(dists) == {
        "lr",
        "units",
        "dropout",
        "layers",
        "opt",
        "opt.adam.beta",
        "opt.sgd.momentum",
        "opt.sgd.nesterov",
        "opt.sgd.nesterov.yes.k",
    }
    assert isinstance(dists["lr"], optuna.distributions.FloatDistribution) and dists["lr"].log
    assert isinstance(dists["layers"], optuna.distributions.IntDistribution)
    assert dists["units"].choices == (64, 128, 256)


def test_space_suggest_samples_in_bounds_and_only_the_chosen_branch(seed: int) -> None:
    space = _space()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    seen = set()
    for _ in range(40):
        trial = study.ask()
        p = space.suggest(trial)
        assert 1e-4 <= p["lr"] <= 1e-1 and p["units"] in (64, 128, 256) and 1 <= p["layers"] <= 3
        assert p["batch"] == 64
        opt = p["opt"]
        seen.add(opt["name"])
        assert set(opt) == ({"name", "beta"} if opt["name"] == "adam" else {"name", "momentum", "nesterov"})
        assert not any(k.startswith("opt.adam") for k in trial.params) or opt["name"] == "adam"
        assert space.unflatten(trial.params) == p  # params rebuild from Optuna's flat record
        study.tell(trial, 0.0)
    assert seen == {"adam", "sgd"}


def test_grid_enumerates_finite_domains_and_refuses_continuous_ones() -> None:
    space = Space.of({"units": Choice([8, 16]), "layers": IntRange(1, 3), "drop": Uniform(0.0, 0.2, step=0.1), "k": 1})
    grid = space.grid()
    assert grid == {"units": [8, 16], "layers": [1, 2, 3], "drop": [0.0, 0.1, 0.2]}
    assert Space.grid_size(grid) == 18
    with pytest.raises(ConfigError, match="lr: a log-uniform domain has no grid"):
        Space.of({"lr": LogUniform(1e-3, 1e-1)}).grid()
    with pytest.raises(ConfigError, match="conditional"):
        Space.of({"opt": Choice({"a": {}, "b": {}})}).grid()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: LogUniform(1e-1, 1e-4), "high: low .* must be below high"),
        (lambda: LogUniform(0.0, 1.0), "low: a log-uniform domain needs low > 0"),
        (lambda: Uniform(1.0, 1.0), "must be below high"),
        (lambda: IntRange(3, 1), "must be below high"),
        (lambda: IntRange(1, 8, step=2, log=True), "step: a log-scale int range takes step 1"),
        (lambda: Choice([]), "options: expected at least one option"),
        (lambda: Choice([1, 1]), "options must be distinct"),
        (lambda: Choice([[64, 32], [128]]), r"options\[0\]: expected a JSON scalar"),
        (lambda: Fixed(math.nan), "value: expected a JSON value"),
        (lambda: Space.of({}), "the search space is empty"),
        (lambda: Space.of({"a.b": 1}), "space: parameter and branch names"),
        (lambda: Space.of({"x": {"y": Uniform(0, 1)}}), "space.x: a nested dict is not a domain"),
        (lambda: Space.of({"x": object()}), "space.x.value: expected a JSON value"),
        (
            lambda: Space.from_json('{"lr": {"type": "log_uniformm", "low": 1, "high": 2}}'),
            "did you mean 'log_uniform'",
        ),
        (lambda: Space.from_json('{"lr": {"low": 1}}'), "space.lr: expected a domain object with a 'type'"),
        (lambda: Space.from_json("[1]"), "expected a JSON object"),
    ],
)
def test_bad_space_input_raises_config_error_naming_the_field(make: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make()
