"""UI test fixtures: a real ``deepspark ui`` server process on 127.0.0.1 and a real Spark run's stats file.

Every test here is marked ``ui``. Servers are started with ``--port 0`` and polled until they answer
(no sleeps); they are killed at the end of the test that started them.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deepspark.cli.ui_commands import start_ui_process

_HERE = Path(__file__).parent

UiServer = Callable[..., tuple[subprocess.Popen[str], str]]

CHROMIUM = os.environ.get("DEEPSPARK_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(_HERE):
            item.add_marker(pytest.mark.ui)


@pytest.fixture
def ui_server(tmp_path: Path) -> Iterator[UiServer]:
    """Starts ``deepspark ui`` processes (storage in tmp_path unless given); kills them afterwards."""
    started: list[subprocess.Popen[str]] = []

    def start(
        storage: Path | None = None, token: str | None = None, allowed_host: tuple[str, ...] = ()
    ) -> tuple[subprocess.Popen[str], str]:
        proc, url = start_ui_process(storage or tmp_path / "runs.db", port=0, token=token, allowed_host=allowed_host)
        started.append(proc)
        return proc, url

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium (Debian's, driven by Playwright) per test module."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: install Debian's chromium (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="session")
def spark_run_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stats file of a finished real Spark run (local[2], parameter averaging) with a StatsListener."""
    from deepspark.cli.main import _frame
    from deepspark.config import Adam, Dense, InputType, NetworkConfig, Output
    from deepspark.spark import ParameterAveraging, SparkNetwork, local_spark
    from deepspark.stats import SQLiteStatsStorage, StatsListener

    path = tmp_path_factory.mktemp("spark-run") / "runs.db"
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 8)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    spark = local_spark("local[2]", app_name="deepspark-ui-tests", conf={"spark.sql.shuffle.partitions": "2"}, ui=False)
    df = _frame(spark, x, y, 2)
    conf = NetworkConfig(
        seed=0,
        updater=Adam(learning_rate=1e-2),
        input_type=InputType.feed_forward(8),
        layers=(Dense(n_out=16, activation="relu"), Output(n_out=2, activation="softmax", loss="mcxent")),
    )
    master = ParameterAveraging(
        batch_size_per_worker=16, averaging_frequency=4, num_workers=2, collect_training_stats=True
    )
    storage = SQLiteStatsStorage(path)
    listener = StatsListener(storage, report_every=4, session_id="spark-run")
    SparkNetwork(spark, conf, master, listeners=[listener]).fit(df, epochs=3)  # one report per epoch
    storage.close()
    return path
