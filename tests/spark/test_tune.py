"""``deepspark.tune.Search`` on the shared local[2] session with real Optuna: sampling, pruning, failures, overlap."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pytest

from deepspark.config import Adam, Dense, InputType, NetworkConfig, Output
from deepspark.errors import ConfigError
from deepspark.stats import InMemoryStatsStorage
from deepspark.tune import Choice, IntRange, LogUniform, Search

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

N_FEATURES = 6


def _frame(spark: SparkSession, x: np.ndarray, y: np.ndarray) -> DataFrame:
    feats = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), x.shape[1]).cast(pa.list_(pa.float32()))
    return spark.createDataFrame(pa.table({"features": feats, "label": pa.array(y)}).to_pandas())


@pytest.fixture(scope="module")
def frames(spark: SparkSession) -> tuple[DataFrame, DataFrame]:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(240, N_FEATURES)).astype(np.float32)
    y = ((x[:, 0] + x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 0.8)).astype(np.int64)
    return _frame(spark, x[:200], y[:200]).cache(), _frame(spark, x[200:], y[200:]).cache()


def build(p: dict[str, Any]) -> NetworkConfig:
    hidden = tuple(Dense(n_out=p["units"], activation="relu") for _ in range(p.get("layers", 1)))
    return NetworkConfig(
        seed=3,
        updater=Adam(learning_rate=p.get("lr", 0.01)),
        input_type=InputType.feed_forward(N_FEATURES),
        layers=(*hidden, Output(n_out=3)),
    )


SPACE = {"lr": LogUniform(1e-3, 1e-1), "units": Choice([4, 8]), "layers": IntRange(1, 2)}


@pytest.fixture(scope="module")
def asha_run(spark: SparkSession, frames: tuple[DataFrame, DataFrame], tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One ASHA search shared by several tests (8 trials, 6 epochs each at most, 2 at once)."""
    stats = InMemoryStatsStorage()
    out = tmp_path_factory.mktemp("asha")
    search = Search(
        spark,
        build,
        SPACE,
        metric="accuracy",
        sampler="random",
        pruner="asha",
        max_trials=8,
        max_epochs=6,
        batch_size=32,
        storage=out / "s.journal",
        stats_storage=stats,
        seed=1,
    )
    seen: list[Any] = []
    result = search.fit(*frames, on_trial=seen.append)
    return result, stats, seen


def test_asha_search_prunes_and_runs_fewer_epochs_than_the_budget(asha_run: Any) -> None:
    result, _, seen = asha_run
    frame = result.trials_frame()
    assert len(frame) == 8 and len(seen) == 8
    assert set(frame["state"]) <= {"complete", "pruned"}
    assert (frame["state"] == "pruned").sum() >= 2
    epochs = [t.user_attrs["epochs_run"] for t in result.trials()]
    assert sum(epochs) == result.epochs_run() < 8 * 6
    for t in result.trials():  # a pruned trial stopped at a rung (1 or 3 epochs), its later epochs never ran
        assert len(t.intermediate_values) == t.user_attrs["epochs_run"]
        if t.state.name == "PRUNED":
            assert t.user_attrs["epochs_run"] in (1, 3)
    assert result.best_score == frame.loc[frame["state"] == "complete", "score"].max()
    net = result.best_network  # the archive of the best trial, trained for all 6 epochs
    assert net.epoch == 6 and net.config == build(result.best_params)


def test_parallel_trials_overlap_in_time_on_two_python_workers(asha_run: Any) -> None:
    result, _, _ = asha_run
    spans = [(start, end, pid, t.number) for t in result.trials() for start, end, pid in t.user_attrs["task_spans"]]
    overlapping = [
        (a, b)
        for a, b in itertools.combinations(spans, 2)
        if a[3] != b[3] and a[2] != b[2] and a[0] < b[1] and b[0] < a[1]
    ]
    assert overlapping, spans  # two trials' tasks ran at the same time in two Python workers
    workers = {w for t in result.trials() for w in t.user_attrs["workers"]}
    assert len(workers) >= 2
    # the data was decoded once per Python worker, not once per trial: counts stay at 1 per process
    loads = [n for t in result.trials() for n in t.user_attrs["data_loads"]]
    assert max(loads) <= 2 and len(loads) > len(workers)


def test_search_events_reach_the_stats_storage(asha_run: Any) -> None:
    result, stats, _ = asha_run
    records = stats.query("search-deepspark-search", type_id="search")
    events = [r.payload["event"] for r in records]
    assert events[0] == "search_start" and events[-1] == "search_end"
    assert events.count("trial_end") == 8 and events.count("epoch") == result.epochs_run()


def test_grid_sampler_covers_the_grid_once(spark: SparkSession, frames: tuple[DataFrame, DataFrame]) -> None:
    space = {"units": Choice([4, 8]), "layers": IntRange(1, 2), "lr": 0.05}
    result = Search(spark, build, space, sampler="grid", pruner="none", max_epochs=1).fit(*frames)
    points = sorted((t.params["units"], t.params["layers"]) for t in result.trials())
    assert points == [(4, 1), (4, 2), (8, 1), (8, 2)]
    assert result.stop_reason == "max_trials" and result.trials_frame()["state"].eq("complete").all()


def test_tpe_is_reproducible_with_a_seed(spark: SparkSession, frames: tuple[DataFrame, DataFrame], seed: int) -> None:
    def run() -> list[dict[str, Any]]:
        search = Search(
            spark, build, SPACE, sampler="tpe", pruner="none", max_trials=3, max_epochs=1, parallelism=1, seed=seed
        )
        return [t.params for t in search.fit(*frames).trials()]

    first = run()
    assert run() == first and len({str(p) for p in first}) == 3


def test_failing_trials_are_recorded_and_the_search_goes_on(
    spark: SparkSession, frames: tuple[DataFrame, DataFrame]
) -> None:
    def flaky(p: dict[str, Any]) -> Any:
        if p["kind"] == "raises":
            raise RuntimeError("no such architecture")
        if p["kind"] == "not_config":
            return {"layers": 2}
        if p["kind"] == "bad_labels":  # 2 outputs for 3 classes: fails inside the Spark task
            return NetworkConfig(input_type=InputType.feed_forward(N_FEATURES), layers=(Output(n_out=2),))
        return build({"units": 4})

    space = {"kind": Choice(["raises", "not_config", "bad_labels", "fine"])}
    with pytest.warns(UserWarning, match="parallelism=8 is above the 2 free task slot"):
        result = Search(spark, flaky, space, sampler="grid", pruner="none", max_epochs=1, parallelism=8).fit(*frames)
    frame = result.trials_frame().set_index(
        result.trials_frame()["number"].map(lambda n: result.trials()[n].params["kind"])
    )
    assert frame.loc["fine", "state"] == "complete"
    assert "build raised RuntimeError: no such architecture" in frame.loc["raises", "error"]
    assert "build returned dict, expected a NetworkConfig" in frame.loc["not_config", "error"]
    assert frame.loc["bad_labels", "state"] == "failed" and "DataError" in frame.loc["bad_labels", "error"]
    assert result.best_params == {"kind": "fine"}


def test_bad_search_input_raises_typed_errors(
    spark: SparkSession, frames: tuple[DataFrame, DataFrame], tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="'mse' is a regression metric but the label column holds classification"):
        Search(spark, build, SPACE, metric="mse", max_trials=1, max_epochs=1).fit(*frames)
    with pytest.raises(ConfigError, match="build: expected a function"):
        Search(spark, "build", SPACE, max_trials=1)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown option"):
        Search(spark, build, SPACE, max_trails=1)
    journal = tmp_path / "s.journal"
    Search(spark, build, SPACE, max_trials=1, max_epochs=1, pruner="none", storage=journal).fit(*frames)
    with pytest.raises(ConfigError, match=r"storage: .* over a different search space"):
        Search(spark, build, {"units": Choice([4, 8])}, max_trials=2, max_epochs=1, storage=journal).fit(*frames)


def test_target_score_stops_the_search_and_max_time_interrupts_and_requeues(
    spark: SparkSession, frames: tuple[DataFrame, DataFrame], tmp_path: Path
) -> None:
    result = Search(
        spark,
        build,
        SPACE,
        sampler="random",
        pruner="none",
        max_trials=6,
        max_epochs=1,
        parallelism=1,
        target_score=0.0,
    ).fit(*frames)
    assert result.stop_reason == "target_score" and len(result.trials()) == 1
    journal = tmp_path / "t.journal"
    stopped = Search(
        spark,
        build,
        SPACE,
        sampler="random",
        pruner="none",
        max_trials=2,
        max_epochs=300,
        parallelism=1,
        max_time=0.5,
        storage=journal,
    ).fit(*frames)
    assert stopped.stop_reason == "max_time"
    first = stopped.trials()[0]
    assert first.state.name == "FAIL" and "max_time" in first.user_attrs["interrupted"]  # cancelled through its tag
    resumed = Search(
        spark, build, SPACE, sampler="random", pruner="none", max_trials=1, max_epochs=1, parallelism=1, storage=journal
    ).fit(*frames)
    assert resumed.trials()[1].params == first.params and resumed.trials()[1].state.name == "COMPLETE"


@pytest.mark.slow
def test_trial_master_runs_each_trial_as_a_distributed_fit(
    spark: SparkSession, frames: tuple[DataFrame, DataFrame]
) -> None:
    from deepspark.spark import ParameterAveraging

    master = ParameterAveraging(num_workers=2, batch_size_per_worker=16, averaging_frequency=2)
    search = Search(
        spark,
        build,
        {"units": Choice([4, 8])},
        sampler="random",
        pruner="none",
        max_trials=1,
        max_epochs=2,
        trial_master=master,
    )
    result = search.fit(*frames)
    frame = result.trials_frame()
    assert list(frame["state"]) == ["complete"] and list(frame["epochs"]) == [2]
    assert len(result.trials()[0].intermediate_values) == 2  # scored with Spark after each epoch
    assert 0.0 <= result.best_score <= 1.0 and result.best_network.epoch == 2
