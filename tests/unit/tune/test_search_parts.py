"""The search's parts that need no Spark: settings, metrics, the data buffer, chunked training, templates, records."""

from __future__ import annotations

import numpy as np
import pytest

from deepspark.config import Adam, Dense, InputType, NetworkConfig, Output
from deepspark.errors import ConfigError
from deepspark.stats.records import RecordError, StatsRecord
from deepspark.tune import SearchSettings
from deepspark.tune._data import TrialData, pack, unpack
from deepspark.tune._trial_worker import ChunkSpec, decode_state, train_chunk
from deepspark.tune.metrics import check_metric
from deepspark.tune.template import TemplateBuild, fill


def test_settings_round_trip_and_asha_rungs_end_chunks() -> None:
    s = SearchSettings(metric="accuracy", max_trials=24, max_epochs=8, asha_reduction_factor=3)
    assert SearchSettings.from_json(s.to_json()) == s
    assert s.mode == "max" and s.direction == "maximize"
    assert s.chunk_ends() == [1, 3, 8]
    assert SearchSettings(metric="loss", max_trials=2, max_epochs=8, pruner="none").chunk_ends() == [8]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metric": "acuracy", "max_trials": 2}, "metric: unknown metric 'acuracy'; did you mean 'accuracy'"),
        ({"metric": "accuracy", "mode": "min", "max_trials": 2}, "mode: 'accuracy' is better when higher"),
        ({"metric": "accuracy"}, "max_trials: give max_trials or max_time"),
        ({"max_trials": 0}, "max_trials: expected a positive int"),
        ({"max_trials": 2, "sampler": "bayes"}, "sampler: expected one of"),
        ({"max_trials": 2, "asha_reduction_factor": 1}, "asha_reduction_factor"),
    ],
)
def test_bad_settings_raise_config_error(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SearchSettings(**kwargs)


def test_a_classification_metric_on_regression_labels_is_refused() -> None:
    with pytest.raises(
        ConfigError, match="'accuracy' is a classification metric but the label column holds regression"
    ):
        check_metric("accuracy", "max", "scalar_float")
    with pytest.raises(ConfigError, match="'mse' is a regression metric"):
        check_metric("mse", "min", "index")
    check_metric("loss", "min", "scalar_float")


def test_data_buffer_round_trip_keeps_shapes_and_values(seed: int) -> None:
    rng = np.random.default_rng(seed)
    data = TrialData(
        x_train=rng.normal(size=(7, 3)).astype(np.float32),
        y_train=rng.integers(0, 3, 7),
        x_val=rng.normal(size=(2, 3)).astype(np.float32),
        y_val=rng.normal(size=(2, 2)).astype(np.float32)[:, 0].astype(np.int64),
    )
    back = unpack(pack(data))
    for name in ("x_train", "y_train", "x_val", "y_val"):
        np.testing.assert_array_equal(getattr(back, name), getattr(data, name))
        assert getattr(back, name).flags.writeable


def test_training_in_chunks_through_the_state_bytes_equals_training_at_once(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    data = TrialData(x_train=x, y_train=y, x_val=x[:16], y_val=y[:16])
    conf = NetworkConfig(
        seed=seed,
        updater=Adam(learning_rate=0.01),
        input_type=InputType.feed_forward(4),
        layers=(Dense(n_out=8, activation="relu", dropout=0.1), Output(n_out=2)),
    )

    def spec(a: int, b: int) -> ChunkSpec:
        return ChunkSpec(
            data_id="d", trial=0, config_json=conf.to_json(), start_epoch=a, end_epoch=b, batch_size=16, metric="loss"
        )

    whole_scores, _, whole = train_chunk(spec(0, 3), data, b"")
    s1, _, mid = train_chunk(spec(0, 1), data, b"")
    s2, _, end = train_chunk(spec(1, 3), data, mid)
    assert (*s1, *s2) == whole_scores
    # the safetensors header orders its keys freely: compare the values
    (t_end, m_end), (t_whole, m_whole) = decode_state(end), decode_state(whole)
    assert m_end == m_whole == {"epoch": "3", "iteration": "12"}
    assert set(t_end) == set(t_whole) == {"params", "updater"}
    for key in t_end:
        np.testing.assert_array_equal(t_end[key], t_whole[key])


def test_template_fills_params_repeats_and_reads_a_network_config() -> None:
    template = {
        "type": "network",
        "input_type": {"type": "input_type", "form": "feed_forward", "size": 4},
        "updater": {"type": "adam", "learning_rate": {"$param": "opt.lr"}},
        "layers": [
            {"$repeat": "layers", "item": {"type": "dense", "n_out": {"$param": "units"}}},
            {"type": "output", "n_out": 3},
        ],
    }
    conf = TemplateBuild(template)({"opt": {"name": "adam", "lr": 0.01}, "units": 8, "layers": 2})
    assert isinstance(conf, NetworkConfig) and len(conf.layers) == 3 and conf.updater.learning_rate == 0.01
    with pytest.raises(ConfigError, match=r"network.layers\[0\]: the template reads parameter 'layers'"):
        fill(template, {"opt": {"lr": 0.1}, "units": 8})
    with pytest.raises(ConfigError, match="repeat count"):
        fill(template, {"opt": {"lr": 0.1}, "units": 8, "layers": -1})


def test_search_records_validate_numbers_at_ingest() -> None:
    ok = {"event": "trial_end", "trial": 3, "state": "pruned", "score": 0.5, "epochs": 1, "start": 1.0, "end": 2.0}
    StatsRecord("search-x", "search", "driver", payload=ok)
    for bad, field in [
        ({**ok, "trial": -1}, "trial"),
        ({**ok, "score": "0.9"}, "score"),
        ({**ok, "state": "won"}, "state"),
        ({**ok, "epochs": True}, "epochs"),
        ({"event": "boom"}, "event"),
        ({**ok, "end": -5.0}, "end"),
        ({"event": "trial_start", "trial": 1, "params": {"x": [1]}}, "params.x"),
    ]:
        with pytest.raises(RecordError, match=f"payload.{field}"):
            StatsRecord("search-x", "search", "driver", payload=bad)
