"""Suite-wide fixtures: the ``seed`` every randomized test uses, and how a failure reports it."""

from __future__ import annotations

import os
import sys
from collections.abc import Generator
from pathlib import Path

import pytest

# Test model packages that ModuleConfig/TorchLayer factories import by name (Spark tests ship them to workers).
SUPPORT = Path(__file__).parent / "support"
if str(SUPPORT) not in sys.path:
    sys.path.insert(0, str(SUPPORT))

SEED_ENV = "DEEPSPARK_TEST_SEED"
_ALL_SEEDS = list(range(5))
_SEEDS_KEY = pytest.StashKey[list[int]]()


def _seeds_from_env() -> list[int]:
    """Seeds to run with: ``0`` by default, ``DEEPSPARK_TEST_SEED=<int>`` for one, ``=all`` for 0..4."""
    value = os.environ.get(SEED_ENV, "").strip()
    if not value:
        return [0]
    if value.lower() == "all":
        return list(_ALL_SEEDS)
    try:
        seed = int(value)
    except ValueError:
        raise pytest.UsageError(f"{SEED_ENV}: expected an integer or 'all', got {value!r}") from None
    if seed < 0:
        raise pytest.UsageError(f"{SEED_ENV}: expected a non-negative integer, got {seed}")
    return [seed]


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_SEEDS_KEY] = _seeds_from_env()


def pytest_report_header(config: pytest.Config) -> str:
    return f"deepspark test seeds: {config.stash[_SEEDS_KEY]} (set {SEED_ENV}=<int>|all to change)"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # More than one seed: run each test that asks for ``seed`` once per seed, ids like test_x[seed=3].
    seeds = metafunc.config.stash[_SEEDS_KEY]
    if "seed" in metafunc.fixturenames and len(seeds) > 1:
        metafunc.parametrize("seed", seeds, ids=[f"seed={s}" for s in seeds])


@pytest.fixture
def seed(request: pytest.FixtureRequest) -> int:
    """The random seed for this test: 0 unless ``DEEPSPARK_TEST_SEED`` says otherwise.

    A test must pass for every seed; a failing one prints ``reproduce with DEEPSPARK_TEST_SEED=<n>``.
    """
    param = getattr(request, "param", None)
    if isinstance(param, int):
        return param
    return request.config.stash[_SEEDS_KEY][0]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    funcargs = getattr(item, "funcargs", {})
    if report.failed and "seed" in funcargs:
        hint = f"reproduce with {SEED_ENV}={funcargs['seed']}"
        longrepr = report.longrepr
        if hasattr(longrepr, "addsection"):
            longrepr.addsection("seed", hint)
        else:
            report.sections.append(("seed", hint))
    return report
