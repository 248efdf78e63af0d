"""Decoding one image (no Spark) and the label list a model archive carries."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepspark.config import Dense, InputType, NetworkConfig, Output
from deepspark.data.images import decode_image
from deepspark.errors import ConfigError
from deepspark.nn import Network


def _encoded(pixels: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt)
    return buf.getvalue()


def test_decode_image_grayscale_scaled_and_rgb_channels_first() -> None:
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    np.testing.assert_allclose(decode_image(_encoded(gray), 3, 4, scale=0.5), gray.reshape(-1) * 0.5)
    rgb = np.stack([np.full((2, 2), c, np.uint8) for c in (1, 2, 3)], axis=-1)
    np.testing.assert_array_equal(decode_image(_encoded(rgb), 2, 2, channels=3), [1] * 4 + [2] * 4 + [3] * 4)
    assert decode_image(_encoded(rgb), 2, 2, channels=1).shape == (4,)  # RGB -> grayscale conversion


def test_decode_image_rejects_bytes_that_are_not_an_image() -> None:
    with pytest.raises(OSError, match="cannot identify image file"):
        decode_image(b"not an image", 2, 2)


def test_network_labels_survive_save_and_load(tmp_path: Path) -> None:
    net = Network(NetworkConfig(input_type=InputType.feed_forward(2), layers=(Dense(n_out=3), Output(n_out=2))))
    net.labels = ("cat", "dog")
    net.save(tmp_path / "m.zip")
    assert Network.load(tmp_path / "m.zip").labels == ("cat", "dog")
    net.labels = None
    net.save(tmp_path / "n.zip")
    assert Network.load(tmp_path / "n.zip").labels is None


def test_image_config_errors_name_the_field(tmp_path: Path) -> None:
    from deepspark.data.images import _check_plan

    with pytest.raises(ConfigError, match="channels"):
        _check_plan(4, 4, 2, 1.0, "skip")
    with pytest.raises(ConfigError, match="on_error"):
        _check_plan(4, 4, 1, 1.0, "ignore")
