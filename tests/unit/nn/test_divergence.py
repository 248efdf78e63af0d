"""A fit that diverges (NaN/inf score or parameters) stops with TrainingDivergedError; NaN parameters are not saved."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from deepspark.config import Dense, InputType, NetworkConfig, Output, Sgd
from deepspark.errors import ConfigError, DeepSparkError, TrainingDivergedError
from deepspark.nn import ModelCheckpoint, Network


def _net(learning_rate: float) -> Network:
    return Network(
        NetworkConfig(
            seed=1,
            updater=Sgd(learning_rate=learning_rate),
            input_type=InputType.feed_forward(4),
            layers=(Dense(n_out=8, activation="relu"), Output(n_out=3)),
        )
    )


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(64, 4)).astype(np.float32), rng.integers(0, 3, size=64)


def test_fit_huge_learning_rate_raises_training_diverged_naming_iteration_and_last_score(tmp_path: Path) -> None:
    net = _net(1e308)
    x, y = _data()
    ckpt = tmp_path / "ckpt.zip"
    with pytest.raises(TrainingDivergedError) as info:
        net.fit(x, y, epochs=3, batch_size=8, callbacks=[ModelCheckpoint(ckpt, monitor="loss")], verbose=0)
    err = info.value
    assert isinstance(err, DeepSparkError)
    assert err.iteration >= 1  # the first step's score is finite: it is the last finite one
    assert err.last_finite_score is not None and np.isfinite(err.last_finite_score)
    assert f"iteration {err.iteration}" in str(err) and f"{err.last_finite_score:.6g}" in str(err)
    assert "learning_rate" in str(err) and "on_divergence='warn'" in str(err)
    assert net.epoch == 0  # stopped inside the first epoch, not after three of NaN
    assert not ckpt.exists()
    back = pickle.loads(pickle.dumps(err))
    assert back.iteration == err.iteration and str(back) == str(err)


def test_fit_on_divergence_warn_trains_on_and_warns_once() -> None:
    net = _net(1e308)
    x, y = _data()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = net.fit(x, y, epochs=2, batch_size=8, on_divergence="warn", verbose=0)
    diverged = [w for w in caught if "training diverged" in str(w.message)]
    assert len(diverged) == 1 and issubclass(diverged[0].category, RuntimeWarning)
    assert len(history) == 2 and net.epoch == 2


def test_fit_stable_learning_rate_does_not_raise() -> None:
    net = _net(0.05)
    x, y = _data()
    net.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert bool(torch.isfinite(net.flat.params).all())


def test_fit_unknown_on_divergence_config_error() -> None:
    x, y = _data()
    with pytest.raises(ConfigError) as info:
        _net(0.05).fit(x, y, on_divergence="ignore")  # type: ignore[arg-type]
    assert info.value.path == "on_divergence" and "'raise' or 'warn'" in info.value.message


def test_save_refuses_nan_parameters_unless_allowed(tmp_path: Path) -> None:
    net = _net(1e308)
    x, y = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net.fit(x, y, epochs=1, batch_size=8, on_divergence="warn", verbose=0)
    assert not bool(torch.isfinite(net.flat.params).all())
    path = tmp_path / "model.zip"
    with pytest.raises(TrainingDivergedError, match=r"NaN or infinite.*allow_non_finite=True"):
        net.save(path)
    assert not path.exists()
    net.save(path, allow_non_finite=True)
    assert path.stat().st_size > 0
