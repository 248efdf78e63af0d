"""StatsListener on a tiny network: every reported value checked against one computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deepspark.config import Dense, InputType, NetworkConfig, Output, Sgd
from deepspark.errors import ConfigError
from deepspark.nn import Network
from deepspark.stats import InMemoryStatsStorage, StatsListener
from deepspark.stats.listener import tensor_stats, update_ratio

LR = 0.1


def _linear_net(seed: int) -> Network:
    conf = NetworkConfig(
        seed=seed,
        updater=Sgd(learning_rate=LR),
        input_type=InputType.feed_forward(2),
        layers=(Output(n_out=1, activation="identity", loss="mse"),),
    )
    return Network(conf)


def test_listener_one_step_matches_hand_computed_gradient_update_and_ratio(seed: int) -> None:
    net = _linear_net(seed)
    storage = InMemoryStatsStorage()
    listener = StatsListener(storage, report_every=1, session_id="hand")
    net.add_listeners(listener)
    x = np.array([[1.0, 2.0]], dtype=np.float32)
    y = np.array([[3.0]], dtype=np.float32)
    before = net.params().astype(np.float64)
    w, b = before[:2], before[2]
    pred = float(w @ x[0] + b)
    grad_w, grad_b = 2 * (pred - 3.0) * x[0].astype(np.float64), 2 * (pred - 3.0)  # d/dθ of (p - y)^2
    net.fit(x, y, epochs=1, batch_size=1, shuffle=False)

    static, update = storage.query("hand", type_id="model")
    assert static.kind == "static" and static.payload["num_params"] == 3
    assert static.payload["layers"][0]["params"] == 3 and static.payload["layers"][0]["type"] == "Output"
    p = update.payload
    assert update.iteration == 0 and update.type_id == "model" and update.worker_id == "driver"
    assert p["score"] == pytest.approx((pred - 3.0) ** 2, rel=1e-5)
    assert p["learning_rates"] == {"layer0": pytest.approx(LR)}
    g = p["gradients"]["layer0.weight"]
    assert g["mean_magnitude"] == pytest.approx(np.abs(grad_w).mean(), rel=1e-5)
    assert g["std"] == pytest.approx(grad_w.std(), rel=1e-4, abs=1e-7)
    assert p["gradients"]["layer0.bias"]["mean_magnitude"] == pytest.approx(abs(grad_b), rel=1e-5)
    after_w = w - LR * grad_w
    u = p["updates"]["layer0.weight"]
    assert u["mean_magnitude"] == pytest.approx(np.abs(LR * grad_w).mean(), rel=1e-5)
    assert p["params"]["layer0.weight"]["mean_magnitude"] == pytest.approx(np.abs(after_w).mean(), rel=1e-5)
    expected_ratio = math.log10(np.abs(LR * grad_w).mean() / np.abs(after_w).mean())
    assert p["ratios"]["layer0.weight"] == pytest.approx(expected_ratio, abs=1e-5)
    hist = p["params"]["layer0.weight"]["histogram"]
    assert len(hist["counts"]) == 20 and sum(hist["counts"]) == 2
    assert hist["min"] == pytest.approx(after_w.min(), rel=1e-5) and hist["max"] == pytest.approx(
        after_w.max(), rel=1e-5
    )
    assert p["process"]["rss_bytes"] > 0 and len(p["process"]["gc"]["collections"]) == 3


def test_listener_reports_every_n_iterations_with_throughput(seed: int) -> None:
    net = _linear_net(seed)
    storage = InMemoryStatsStorage()
    net.add_listeners(StatsListener(storage, report_every=4, session_id="every"))
    rng = np.random.default_rng(seed)
    net.fit(rng.normal(size=(40, 2)).astype(np.float32), rng.normal(size=(40, 1)).astype(np.float32), batch_size=2)
    updates = storage.query("every", type_id="model", kind="update")
    assert [r.iteration for r in updates] == [0, 4, 8, 12, 16]
    later = updates[1].payload
    assert later["examples_per_sec"] > 0
    assert later["examples_per_sec"] == pytest.approx(2 * later["minibatches_per_sec"])


def test_listener_activation_stats_match_the_hidden_layer_output(seed: int) -> None:
    conf = NetworkConfig(
        seed=seed,
        updater=Sgd(learning_rate=LR),
        input_type=InputType.feed_forward(2),
        layers=(Dense(n_out=3, activation="relu"), Output(n_out=1, activation="identity", loss="mse")),
    )
    net = Network(conf)
    storage = InMemoryStatsStorage()
    net.add_listeners(StatsListener(storage, report_every=1, session_id="acts", activations=True))
    x = np.array([[1.0, -2.0], [0.5, 0.25]], dtype=np.float64)
    weight, bias = net.params()[:6].reshape(3, 2), net.params()[6:9]  # torch layout: (n_out, n_in)
    hidden = np.maximum(x @ weight.T + bias, 0.0)
    net.fit(x.astype(np.float32), np.zeros((2, 1), np.float32), batch_size=2, shuffle=False)
    acts = storage.query("acts", kind="update")[0].payload["activations"]
    assert acts["layer0"]["mean_magnitude"] == pytest.approx(np.abs(hidden).mean(), rel=1e-5)
    assert acts["layer0"]["std"] == pytest.approx(hidden.std(), rel=1e-4, abs=1e-7)


def test_tensor_stats_constant_values_and_ratio_of_zero() -> None:
    st = tensor_stats(np.full(5, 2.0), histogram=True)
    assert st["mean_magnitude"] == 2.0 and st["std"] == 0.0 and sum(st["histogram"]["counts"]) == 5
    assert update_ratio(0.0, 1.0) is None and update_ratio(0.01, 1.0) == pytest.approx(-2.0)


@pytest.mark.parametrize(
    ("kwargs", "field"), [({"report_every": 0}, "report_every"), ({"storage": object()}, "storage")]
)
def test_listener_bad_arguments_name_the_field(kwargs: dict[str, object], field: str) -> None:
    args: dict[str, object] = {"storage": InMemoryStatsStorage(), **kwargs}
    with pytest.raises(ConfigError, match=field):
        StatsListener(**args)  # type: ignore[arg-type]


def test_gc_monitor_counts_collections_and_time() -> None:
    import gc

    from deepspark.spark._probes import gc_monitor, process_reading

    before = gc_monitor().reading()
    gc.collect()
    after = process_reading()["gc"]
    assert after["collections"][2] == before["collections"][2] + 1
    assert after["seconds"] > before["seconds"]


def test_listener_marks_the_end_of_fit(seed: int) -> None:
    net = _linear_net(seed)
    storage = InMemoryStatsStorage()
    net.add_listeners(StatsListener(storage, session_id="end"))
    net.fit(np.ones((4, 2), np.float32), np.ones((4, 1), np.float32), batch_size=2)
    last = storage.query("end")[-1]
    assert (last.type_id, last.payload["event"], last.iteration) == ("session", "fit_end", 2)
