"""Network.fit ergonomics: validation data, History, EarlyStopping, ModelCheckpoint, LearningRateLogger, progress."""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from deepspark.config import Adam, Dense, ExponentialSchedule, InputType, NetworkConfig, Output, Sgd
from deepspark.errors import ConfigError, DataError
from deepspark.nn import Network
from deepspark.nn.callbacks import Callback, EarlyStopping, FitLoop, LearningRateLogger, ModelCheckpoint
from deepspark.nn.history import History
from deepspark.progress import EpochProgress, interactive, resolve_verbose


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _conf(seed: int, updater: Any = None) -> NetworkConfig:
    return NetworkConfig(
        seed=seed, updater=updater or Adam(learning_rate=5e-2), input_type=InputType.feed_forward(5),
        layers=(Dense(n_out=16, activation="relu"), Output(n_out=3)),
    )


def _data(seed: int, n: int = 120, noise: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.5)
    flip = rng.random(n) < noise
    y[flip] = rng.integers(0, 3, size=int(flip.sum()))
    return x, y


def test_fit_returns_history_with_training_and_validation_metrics(seed: int) -> None:
    x, y = _data(seed)
    xv, yv = _data(seed + 1, 60)
    net = Network(_conf(seed))
    history = net.fit(x, y, epochs=3, batch_size=16, validation_data=(xv, yv), verbose=0)
    assert history.epoch == [0, 1, 2]
    assert set(history.history) == {"loss", "val_loss", "val_accuracy"}
    assert history["val_loss"][-1] == pytest.approx(net.score(xv, yv), rel=1e-6)
    assert history["val_accuracy"][-1] == pytest.approx(net.evaluate(xv, yv).accuracy())
    assert history["loss"][0] > history["loss"][-1]
    assert history.to_dict()["history"]["loss"] == history["loss"]
    again = net.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert again.epoch == [3] and "val_loss" not in again


def test_early_stopping_restores_the_best_epoch(seed: int) -> None:
    x, y = _data(seed, 60)
    xv, yv = _data(seed + 1, 200, noise=0.3)
    conf = _conf(seed, Adam(learning_rate=0.3))  # overfits fast, so val_loss turns up within a few epochs
    stop = EarlyStopping(monitor="val_loss", patience=2)
    net = Network(conf)
    history = net.fit(x, y, epochs=40, batch_size=8, validation_data=(xv, yv), callbacks=[stop], verbose=0)
    best, value = history.best("val_loss")
    assert history.best_epoch == best == stop.best_epoch
    assert history.stopped_epoch == best + 2 == history.epoch[-1] < 39
    assert net.epoch == history.epoch[-1] + 1
    reference = Network(conf)
    reference.fit(x, y, epochs=best + 1, batch_size=8, verbose=0)
    np.testing.assert_allclose(net.params(), reference.params(), atol=1e-6)
    np.testing.assert_allclose(net.updater_state(), reference.updater_state(), atol=1e-6)
    assert net.score(xv, yv) == pytest.approx(value, rel=1e-5)


def test_early_stopping_patience_zero_stops_at_the_first_non_improvement() -> None:
    losses = iter([3.0, 2.0, 2.5, 1.0])
    stop = EarlyStopping(monitor="m", patience=0, restore_best=False)
    net = Network(_conf(0))
    loop = FitLoop(net, History())
    stop.on_fit_start(loop)
    for epoch in range(4):
        stop.on_epoch_end(loop, epoch, {"m": next(losses)})
        if loop.stop_training:
            break
    assert (stop.stopped_epoch, stop.best_epoch) == (2, 1)


def test_model_checkpoint_writes_named_archives_and_best_only(tmp_path: Path) -> None:
    x, y = _data(0)
    every = ModelCheckpoint(tmp_path / "all" / "m-{epoch:02d}-{loss:.3f}.zip", save_best_only=False)
    best = ModelCheckpoint(tmp_path / "best.zip", monitor="val_accuracy", save_best_only=True)
    net = Network(_conf(0))
    history = net.fit(x, y, epochs=3, batch_size=16, validation_data=(x, y), callbacks=[every, best], verbose=0)
    names = sorted(p.name for p in (tmp_path / "all").iterdir())
    assert names == [f"m-{e + 1:02d}-{loss:.3f}.zip" for e, loss in zip(history.epoch, history["loss"], strict=True)]
    assert Network.load(tmp_path / "all" / names[-1]).epoch == 3
    best_epoch, _ = history.best("val_accuracy", mode="max")
    assert Network.load(tmp_path / "best.zip").epoch == best_epoch + 1


def test_learning_rate_logger_records_the_schedule() -> None:
    x, y = _data(0, 32)
    lines: list[str] = []
    updater = Sgd(learning_rate=ExponentialSchedule(initial=0.1, gamma=0.5, schedule_type="epoch"))
    logger = LearningRateLogger(lines.append)
    history = Network(_conf(0, updater)).fit(x, y, epochs=3, batch_size=16, callbacks=[logger], verbose=0)
    assert history["lr"] == pytest.approx([0.05, 0.025, 0.0125])
    assert len(lines) == 3 and "learning rate 0.05" in lines[0]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"callbacks": [EarlyStopping()]}, ConfigError, "monitor 'val_loss' is not a metric of this fit"),
        ({"callbacks": [EarlyStopping(monitor="val_acc")], "validation_data": "v"}, ConfigError,
         "did you mean|available"),
        ({"callbacks": [ModelCheckpoint("m-{val_f1}.zip")]}, ConfigError, "placeholder no metric fills"),
        ({"callbacks": [lambda epoch: None]}, ConfigError, "expected a deepspark Callback"),
        ({"validation_data": "v-wide"}, DataError, "validation_data: features have shape \\(10, 7\\)"),
        ({"validation_data": (np.zeros((4, 5)),)}, DataError, "validation_data: expected \\(features, labels\\)"),
        ({"verbose": 3}, ConfigError, "verbose"),
    ],
)
def test_bad_fit_arguments_fail_before_training(kwargs: dict[str, Any], error: type, match: str) -> None:
    x, y = _data(0, 20)
    if kwargs.get("validation_data") == "v":
        kwargs["validation_data"] = (x, y)
    if kwargs.get("validation_data") == "v-wide":
        kwargs["validation_data"] = (np.zeros((10, 7), np.float32), np.zeros(10, np.int64))
    net = Network(_conf(0))
    before = net.params()
    with pytest.raises(error, match=match):
        net.fit(x, y, epochs=2, **kwargs)
    np.testing.assert_array_equal(net.params(), before)
    assert net.iteration == 0


def test_custom_callback_sees_every_epoch_and_can_stop() -> None:
    seen: list[tuple[int, float]] = []

    class StopAtTwo(Callback):
        def on_epoch_end(self, loop: FitLoop, epoch: int, logs: dict[str, float]) -> None:
            seen.append((epoch, logs["loss"]))
            loop.stop_training = epoch == 1

    x, y = _data(0, 32)
    history = Network(_conf(0)).fit(x, y, epochs=5, callbacks=[StopAtTwo()], verbose=0)
    assert [e for e, _ in seen] == [0, 1] == history.epoch
    assert all(math.isfinite(v) for _, v in seen)


def test_validation_from_a_dataset_iterator_matches_arrays() -> None:
    from deepspark.data import DataSet

    x, y = _data(0, 40)
    xv, yv = _data(1, 30)
    batches = list(DataSet(xv, yv).batches(7))
    a = Network(_conf(0)).fit(x, y, epochs=1, validation_data=batches, verbose=0)
    b = Network(_conf(0)).fit(x, y, epochs=1, validation_data=(xv, yv), verbose=0)
    assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-5)
    assert a["val_accuracy"] == b["val_accuracy"]


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_on_in_a_terminal_and_off_elsewhere() -> None:
    assert interactive(_Tty()) and not interactive(io.StringIO())
    assert resolve_verbose(None, _Tty()) == 1 and resolve_verbose(None, io.StringIO()) == 0
    assert resolve_verbose(2) == 2 and resolve_verbose(False) == 0
    out = _Tty()
    bar = EpochProgress(epochs=2, level=1, stream=out)
    bar.start_epoch(0, total=4)
    for _ in range(4):
        bar.advance(loss=0.5)
    bar.end_epoch({"loss": 0.5, "val_loss": 0.25})
    text = out.getvalue()
    assert "epoch 1/2" in text and "4/4" in text and "val_loss 0.2500" in text


def test_fit_verbose_two_prints_one_line_per_epoch_and_auto_is_silent_under_capture(
    capsys: pytest.CaptureFixture[str],
) -> None:
    x, y = _data(0, 32)
    Network(_conf(0)).fit(x, y, epochs=2, validation_data=(x, y), verbose=2)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and err[1].startswith("epoch 2/2") and "val_accuracy" in err[1]
    net = Network(_conf(0))
    net.epoch = 7  # a resumed network: the lines count the epochs of this fit
    net.fit(x, y, epochs=1, verbose=2)
    assert capsys.readouterr().err.startswith("epoch 1/1 - ")
    Network(_conf(0)).fit(x, y, epochs=2)  # stderr is not a terminal here: no bar
    assert capsys.readouterr().err == ""
