"""Training listeners: score history, throughput samples, per-epoch evaluation, rolling checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deepspark.config import Dense, InputType, NetworkConfig, Output, Sgd
from deepspark.errors import ConfigError
from deepspark.nn import (
    CheckpointListener,
    EvaluativeListener,
    IterationInfo,
    Network,
    PerformanceListener,
    ScoreIterationListener,
    TrainingListener,
)


def _net(seed: int) -> Network:
    return Network(
        NetworkConfig(
            seed=seed,
            updater=Sgd(learning_rate=0.2),
            input_type=InputType.feed_forward(3),
            layers=(Dense(n_out=4, activation="tanh"), Output(n_out=2)),
        )
    )


def _data(seed: int, n: int = 20) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64)


class _Recorder(TrainingListener):
    def __init__(self) -> None:
        self.events: list[str] = []

    def on_fit_start(self, net: Network) -> None:
        self.events.append("fit_start")

    def on_epoch_start(self, net: Network, epoch: int) -> None:
        self.events.append(f"epoch_start{epoch}")

    def iteration_done(self, net: Network, info: IterationInfo) -> None:
        self.events.append(f"it{info.iteration}")

    def on_epoch_end(self, net: Network, epoch: int) -> None:
        self.events.append(f"epoch_end{epoch}")

    def on_fit_end(self, net: Network) -> None:
        self.events.append("fit_end")


def test_listener_hooks_called_in_order(seed: int) -> None:
    x, y = _data(seed, n=4)
    rec = _Recorder()
    _net(seed).add_listeners(rec).fit(x, y, epochs=2, batch_size=2)
    assert rec.events == [
        "fit_start",
        "epoch_start0",
        "it0",
        "it1",
        "epoch_end0",
        "epoch_start1",
        "it2",
        "it3",
        "epoch_end1",
        "fit_end",
    ]


def test_score_iteration_listener_history_length_and_frequency(seed: int) -> None:
    x, y = _data(seed)
    lines: list[str] = []
    listener = ScoreIterationListener(print_every=3, sink=lines.append)
    net = _net(seed).add_listeners(listener)
    net.fit(x, y, epochs=2, batch_size=4)  # 5 batches per epoch -> iterations 0..9
    assert [it for it, _ in listener.history] == [0, 3, 6, 9]
    assert len(lines) == 4 and lines[1].startswith("iteration 3 epoch 0: score ")
    assert all(np.isfinite(score) and score > 0 for _, score in listener.history)
    assert listener.history[-1][1] == pytest.approx(float(net.last_score))


def test_score_iteration_listener_default_sink_logs(seed: int, caplog: pytest.LogCaptureFixture) -> None:
    x, y = _data(seed, n=4)
    with caplog.at_level("INFO", logger="deepspark"):
        _net(seed).add_listeners(ScoreIterationListener(print_every=1)).fit(x, y, batch_size=2)
    assert sum("score" in r.message for r in caplog.records) == 2


def test_performance_listener_produces_samples(seed: int) -> None:
    x, y = _data(seed)
    listener = PerformanceListener(frequency=2, sink=lambda _: None)
    _net(seed).add_listeners(listener).fit(x, y, epochs=1, batch_size=4)  # 5 iterations -> 2 windows
    assert [s["iteration"] for s in listener.samples] == [1.0, 3.0]
    for sample in listener.samples:
        assert sample["examples_per_sec"] > 0
        assert sample["examples_per_sec"] == pytest.approx(4 * sample["batches_per_sec"])


def test_evaluative_listener_records_accuracy_per_epoch(seed: int) -> None:
    x, y = _data(seed, n=40)
    lines: list[str] = []
    listener = EvaluativeListener(x, y, frequency=1, sink=lines.append)
    net = _net(seed).add_listeners(listener)
    net.fit(x, y, epochs=3, batch_size=10)
    assert [epoch for epoch, _ in listener.results] == [1, 2, 3]
    accuracies = [ev.accuracy() for _, ev in listener.results]
    assert all(0.0 <= a <= 1.0 for a in accuracies)
    assert accuracies[-1] == pytest.approx(net.evaluate(x, y).accuracy())
    assert lines[0].startswith("epoch 1: accuracy ")


def test_evaluative_listener_every_other_epoch_and_per_iteration(seed: int) -> None:
    x, y = _data(seed)
    every_other = EvaluativeListener(x, y, frequency=2, sink=lambda _: None)
    per_iteration = EvaluativeListener(x, y, frequency=3, unit="iteration", sink=lambda _: None)
    _net(seed).add_listeners(every_other, per_iteration).fit(x, y, epochs=4, batch_size=10)
    assert [e for e, _ in every_other.results] == [2, 4]
    assert [i for i, _ in per_iteration.results] == [0, 3, 6]


@pytest.mark.parametrize(
    ("make", "path"),
    [
        (lambda: ScoreIterationListener(print_every=0), "print_every"),
        (lambda: PerformanceListener(frequency=-1), "frequency"),
        (lambda: EvaluativeListener(np.zeros((1, 3)), frequency=0), "frequency"),
        (lambda: EvaluativeListener(np.zeros((1, 3)), unit="epochs"), "unit"),
        (lambda: CheckpointListener("unused", keep_last=0), "keep_last"),
        (lambda: CheckpointListener("unused", every_epochs=0), "every_epochs"),
    ],
)
def test_listener_invalid_frequency_config_error(make, path: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as info:
        make()
    assert info.value.path == path


def test_checkpoint_listener_keeps_last_files(seed: int, tmp_path: Path) -> None:
    x, y = _data(seed, n=8)
    listener = CheckpointListener(tmp_path / "ckpt", every_epochs=1, keep_last=2)
    net = _net(seed).add_listeners(listener)
    net.fit(x, y, epochs=4, batch_size=4)
    files = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert files == ["checkpoint_e3_i6.zip", "checkpoint_e4_i8.zip"]
    latest = listener.latest()
    assert latest is not None and latest.name == "checkpoint_e4_i8.zip"
    restored = Network.load(latest)
    np.testing.assert_array_equal(restored.params(), net.params())


def test_checkpoint_listener_every_iterations(seed: int, tmp_path: Path) -> None:
    x, y = _data(seed, n=8)
    listener = CheckpointListener(tmp_path, every_epochs=None, every_iterations=3, keep_last=5)
    _net(seed).add_listeners(listener).fit(x, y, epochs=2, batch_size=2)  # 8 iterations
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_e0_i3.zip", "checkpoint_e1_i6.zip"]
