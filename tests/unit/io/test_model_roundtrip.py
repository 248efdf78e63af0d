"""Network archives: save/load round trip, resume equivalence, and inconsistent archives."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from deepspark.config import Adam, BatchNorm, Dense, Dropout, InputType, NetworkConfig, Output
from deepspark.data import Standardize
from deepspark.errors import DeepSparkError, ModelFormatError
from deepspark.io import read_archive
from deepspark.nn import Network


def _conf(seed: int) -> NetworkConfig:
    return NetworkConfig(
        seed=seed,
        updater=Adam(learning_rate=1e-2),
        input_type=InputType.feed_forward(5),
        layers=(
            Dense(n_out=8, activation="tanh"),
            BatchNorm(),
            Dropout(rate=0.2),
            Output(n_out=3),
        ),
    )


def _data(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(60, 5)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.5)


def test_archive_save_load_restores_params_updater_and_counters(tmp_path: Path, seed: int) -> None:
    x, y = _data(seed)
    net = Network(_conf(seed))
    net.fit(x, y, epochs=2, batch_size=16)
    path = tmp_path / "m.zip"
    net.save(path)
    loaded = Network.load(path)
    assert loaded.config == net.config
    np.testing.assert_array_equal(loaded.params(), net.params())
    np.testing.assert_array_equal(loaded.updater_state(), net.updater_state())
    assert (loaded.epoch, loaded.iteration) == (net.epoch, net.iteration)
    np.testing.assert_array_equal(loaded.output(x), net.output(x))
    assert read_archive(path).metadata["iteration"] == net.iteration


def test_archive_resume_after_save_equals_uninterrupted_training(tmp_path: Path, seed: int) -> None:
    x, y = _data(seed)
    straight = Network(_conf(seed))
    straight.fit(x, y, epochs=3, batch_size=16)
    first = Network(_conf(seed))
    first.fit(x, y, epochs=1, batch_size=16)
    first.save(tmp_path / "mid.zip")
    resumed = Network.load(tmp_path / "mid.zip")
    resumed.fit(x, y, epochs=2, batch_size=16)
    np.testing.assert_array_equal(resumed.params(), straight.params())


def test_archive_without_updater_state_restarts_the_updater(tmp_path: Path) -> None:
    x, y = _data(0)
    net = Network(_conf(0))
    net.fit(x, y, epochs=1, batch_size=16)
    net.save(tmp_path / "m.zip", save_updater=False)
    loaded = Network.load(tmp_path / "m.zip")
    np.testing.assert_array_equal(loaded.params(), net.params())
    assert not loaded.updater_state().any()


def test_archive_normalizer_round_trips(tmp_path: Path) -> None:
    x, y = _data(1)
    norm = Standardize()
    norm.fit(x)
    net = Network(_conf(1))
    net.fit(norm.transform(x), y, epochs=1)
    net.save(tmp_path / "m.zip", normalizer=norm)
    loaded = Network.load(tmp_path / "m.zip")
    np.testing.assert_allclose(loaded.normalizer.transform(x), norm.transform(x), rtol=1e-6)


def test_archive_params_of_another_network_is_rejected(tmp_path: Path) -> None:
    Network(_conf(0)).save(tmp_path / "a.zip")
    other = NetworkConfig(input_type=InputType.feed_forward(5), layers=(Dense(n_out=4), Output(n_out=3)))
    Network(other).save(tmp_path / "b.zip")
    # splice b's config into a's archive: sizes disagree
    with zipfile.ZipFile(tmp_path / "a.zip") as a, zipfile.ZipFile(tmp_path / "b.zip") as b, zipfile.ZipFile(
        tmp_path / "mixed.zip", "w"
    ) as out:
        for name in a.namelist():
            out.writestr(name, (b if name == "config.json" else a).read(name))
    with pytest.raises(ModelFormatError, match="builds a network with"):
        Network.load(tmp_path / "mixed.zip")


def test_archive_config_that_is_not_a_network_is_rejected(tmp_path: Path) -> None:
    Network(_conf(0)).save(tmp_path / "a.zip")
    with zipfile.ZipFile(tmp_path / "a.zip") as a, zipfile.ZipFile(tmp_path / "bad.zip", "w") as out:
        for name in a.namelist():
            data = a.read(name)
            if name == "config.json":
                data = b'{"type": "dense2", "n_out": 3}'
            out.writestr(name, data)
    with pytest.raises(ModelFormatError, match="unknown network config type 'dense2'; valid: 'graph', 'module'"):
        Network.load(tmp_path / "bad.zip")


def test_archive_of_wrapped_module_is_refused() -> None:
    import torch

    net = Network.from_module(torch.nn.Linear(3, 2), loss="mcxent", n_out=2)
    with pytest.raises(DeepSparkError, match="no config"):
        net.save("unused.zip")
