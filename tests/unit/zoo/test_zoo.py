"""The model zoo: published parameter counts, shapes for any input type and class count, and small variants train."""

from __future__ import annotations

import numpy as np
import pytest

from deepspark.config import GraphConfig, InputType, NetworkConfig
from deepspark.errors import ConfigError
from deepspark.nn import Network
from deepspark.zoo import alexnet, count_params, lenet, lstm_classifier, resnet50, simple_cnn, text_cnn, unet, vgg16


@pytest.mark.parametrize(
    ("build", "published"),
    [
        (lenet, 431_080),  # Caffe / DL4J LeNet on 28x28x1, 10 classes
        (alexnet, 61_100_840),  # torchvision AlexNet, 224x224x3, 1000 classes
        (vgg16, 138_357_544),  # VGG16 configuration D
        (resnet50, 25_557_032),  # ResNet-50 (bias-free convolutions, batch-norm gains and shifts)
    ],
)
def test_zoo_parameter_count_equals_published(build: object, published: int) -> None:
    assert count_params(build()).trainable == published  # type: ignore[operator]


def test_zoo_resnet50_counts_batch_norm_statistics_separately() -> None:
    counts = count_params(resnet50())
    assert counts.total - counts.trainable == 53_120  # running mean + variance of every batch-norm channel


def _convs(c_in: int, c_out: int) -> int:
    return c_in * c_out * 9 + c_out + c_out * c_out * 9 + c_out


def test_zoo_unet_parameter_count_matches_its_definition() -> None:
    widths = [64, 128, 256, 512]
    expected, c_in = 0, 3
    for w in widths:
        expected += _convs(c_in, w)
        c_in = w
    expected += _convs(512, 1024)
    for w in reversed(widths):
        expected += (2 * w) * w * 4 + w  # 2x2 transposed convolution halving the width
        expected += _convs(2 * w, w)  # after concatenating the skip connection
    expected += 64 * 2 + 2  # 1x1 to two class maps
    assert count_params(unet(num_classes=2)).trainable == expected == 31_031_810


def test_zoo_text_models_parameter_counts_match_their_definition() -> None:
    vocab, dim, f, classes = 5000, 64, 50, 4
    cnn = text_cnn(vocab_size=vocab, embedding_size=dim, filters=f, num_classes=classes)
    conv = sum(k * dim * f + f for k in (3, 4, 5))
    assert count_params(cnn).trainable == vocab * dim + conv + 3 * f * classes + classes
    h = 32
    lstm = lstm_classifier(vocab_size=vocab, embedding_size=dim, hidden=h, num_classes=classes)
    assert count_params(lstm).trainable == vocab * dim + 4 * (h * (dim + h) + 2 * h) + h * classes + classes


@pytest.mark.parametrize(
    ("build", "input_type"),
    [
        (lenet, InputType.convolutional(32, 32, 3)),
        (simple_cnn, InputType.convolutional(20, 24, 1)),
        (alexnet, InputType.convolutional(227, 227, 3)),
        (vgg16, InputType.convolutional(64, 64, 3)),
        (resnet50, InputType.convolutional(64, 96, 3)),
        (unet, InputType.convolutional(32, 48, 1)),
        (text_cnn, InputType.feed_forward(30)),
        (lstm_classifier, InputType.feed_forward(30)),
    ],
)
def test_zoo_builder_honours_input_type_and_num_classes(build: object, input_type: InputType) -> None:
    config = build(input_type=input_type, num_classes=7)  # type: ignore[operator]
    assert isinstance(config, (NetworkConfig, GraphConfig))
    (out,) = (config.output_type(),) if isinstance(config, NetworkConfig) else config.output_types()
    if build is unet:
        assert out.size == 7 * input_type.height * input_type.width  # one sigmoid per class and pixel
    else:
        assert out.size == 7
    assert type(config).from_json(config.to_json()) == config
    assert count_params(config).trainable > 0


def test_zoo_unet_rejects_sizes_not_divisible_by_its_depth() -> None:
    with pytest.raises(ConfigError, match="divisible by 16"):
        unet(input_type=InputType.convolutional(40, 40, 1))


@pytest.mark.parametrize(
    "config",
    [
        simple_cnn(input_type=InputType.convolutional(16, 16, 3), num_classes=3),
        unet(input_type=InputType.convolutional(8, 8, 1), num_classes=2, base_width=4, depth=2),
        text_cnn(input_type=InputType.feed_forward(12), vocab_size=30, embedding_size=8, filters=4, num_classes=3),
        lstm_classifier(
            input_type=InputType.feed_forward(12), vocab_size=30, embedding_size=8, hidden=5, num_classes=3,
            bidirectional=True,
        ),
    ],
    ids=["simple_cnn", "unet", "text_cnn", "lstm_classifier"],
)
def test_zoo_small_variant_trains_one_epoch(config: NetworkConfig | GraphConfig, seed: int) -> None:
    rng = np.random.default_rng(seed)
    t = config.input_type if isinstance(config, NetworkConfig) else config.input_types[0]
    n = 8
    if t.form == "feed_forward":
        x = rng.integers(1, 30, (n, t.size)).astype(np.float32)
    else:
        x = rng.standard_normal((n, t.channels, t.height, t.width)).astype(np.float32)
    out_size = (config.output_type() if isinstance(config, NetworkConfig) else config.output_types()[0]).size
    y = (rng.random((n, out_size)) > 0.5).astype(np.float32) if out_size > 3 else rng.integers(0, out_size, n)
    net = Network(config)
    before = net.params()
    net.fit(x, y, epochs=1, batch_size=4)
    assert np.isfinite(net.params()).all() and not np.array_equal(before, net.params())
    assert np.asarray(net.output(x)).shape == (n, out_size)
