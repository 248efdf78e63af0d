"""NetworkConfig: shape inference across forms (conv, flat, recurrent), preprocessors, validation, JSON.

Every inference test also compiles the config and checks the shapes torch actually produces.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deepspark.config import (
    LSTM,
    Adam,
    BatchNorm,
    Conv1D,
    Conv2D,
    Deconv2D,
    Dense,
    Dropout,
    GlobalPooling,
    InputType,
    LastTimeStep,
    Layer,
    LossLayer,
    NetworkConfig,
    Output,
    RnnOutput,
    Sgd,
    Subsampling1D,
    Subsampling2D,
    Upsampling2D,
)
from deepspark.config.network import FORMAT_VERSION
from deepspark.errors import ConfigError
from deepspark.nn import Network
from deepspark.nn.layers import preprocess


def _shape(t: InputType, steps: int) -> tuple[int, ...]:
    return tuple(steps if d is None else d for d in t.shape())


def _matches(actual: tuple[int, ...], t: InputType) -> bool:
    """``actual`` (batch axis excluded) fits ``t``; unknown time steps match any length."""
    expected = t.shape()
    return len(actual) == len(expected) and all(e is None or e == a for e, a in zip(expected, actual, strict=True))


def _check_forward(conf: NetworkConfig, steps: int = 5, n: int = 2) -> list[tuple[int, ...]]:
    """Compile ``conf``, push random data through layer by layer, assert every inferred shape; return them."""
    net = Network(conf)
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((n, *_shape(conf.input_type, steps)))).float()
    shapes = []
    mask = None
    net.model.eval()
    with torch.no_grad():
        h = x
        for plan, layer in zip(net.model.plans, net.model.layers, strict=True):
            h = preprocess(plan.preprocessor, h, plan)
            assert h.shape[0] == n and _matches(tuple(h.shape[1:]), plan.input_type), f"{plan.name} input"
            h, mask = layer(h, mask)
            assert h.shape[0] == n and _matches(tuple(h.shape[1:]), plan.output_type), f"{plan.name} output"
            shapes.append(tuple(h.shape[1:]))
    out = net.output(x.numpy())
    assert out.shape[0] == n and _matches(out.shape[1:], conf.output_type())
    return shapes


# ----------------------------------------------------------------------------- conv -> dense -> rnn paths


def test_network_config_conv_flat_to_dense_inserts_flat_to_cnn_and_cnn_to_ff() -> None:
    conf = NetworkConfig(
        input_type=InputType.convolutional_flat(12, 12, 1),
        layers=(
            Conv2D(n_out=3, kernel=(5, 5), activation="relu"),
            Subsampling2D(kernel=(2, 2), stride=(2, 2)),
            Dense(n_out=6, activation="relu"),
            Output(n_out=4),
        ),
    )
    plans = conf.plan()
    assert [p.preprocessor for p in plans] == ["flat_to_cnn", "", "cnn_to_ff", ""]
    assert plans[0].input_type == InputType.convolutional(12, 12, 1)
    assert plans[0].output_type == InputType.convolutional(8, 8, 3)
    assert plans[1].output_type == InputType.convolutional(4, 4, 3)
    assert plans[2].input_type == InputType.feed_forward(48)
    assert conf.output_type() == InputType.feed_forward(4)
    assert _check_forward(conf) == [(3, 8, 8), (3, 4, 4), (6,), (4,)]


def test_network_config_mnist_shaped_config_infers_design_doc_shapes() -> None:
    conf = NetworkConfig(
        input_type=InputType.convolutional_flat(28, 28, 1),
        layers=(
            Conv2D(n_out=2, kernel=(5, 5), activation="relu"),
            Subsampling2D(kernel=(2, 2), stride=(2, 2)),
            Dense(n_out=3, activation="relu"),
            Output(n_out=10),
        ),
    )
    assert conf.plan()[1].output_type == InputType.convolutional(12, 12, 2)
    assert conf.plan()[2].input_type == InputType.feed_forward(288)
    _check_forward(conf, n=1)


def test_network_config_conv_to_lstm_time_along_width() -> None:
    conf = NetworkConfig(
        input_type=InputType.convolutional(6, 7, 2),
        layers=(Conv2D(n_out=3, kernel=(3, 2)), LSTM(n_out=4), LastTimeStep(), Output(n_out=2)),
    )
    plans = conf.plan()
    assert plans[0].output_type == InputType.convolutional(4, 6, 3)
    assert plans[1].preprocessor == "cnn_to_rnn"
    assert plans[1].input_type == InputType.recurrent(3 * 4, 6)  # channels*height features, width steps
    assert plans[1].output_type == InputType.recurrent(4, 6)
    assert _check_forward(conf) == [(3, 4, 6), (6, 4), (4,), (2,)]


def test_network_config_cnn_to_rnn_preprocessor_orders_time_by_column() -> None:
    conf = NetworkConfig(
        input_type=InputType.convolutional(2, 3, 2),
        layers=(RnnOutput(n_out=1, activation="identity", loss="mse"),),
    )
    plan = conf.plan()[0]
    x = torch.arange(12.0).reshape(1, 2, 2, 3)  # (N, C, H, W)
    y = preprocess(plan.preprocessor, x, plan)
    assert tuple(y.shape) == (1, 3, 4)
    for w in range(3):
        assert torch.equal(y[0, w], x[0, :, :, w].reshape(-1))  # step w = column w, channel-major


def test_network_config_recurrent_dense_lstm_last_step_output_shapes() -> None:
    conf = NetworkConfig(
        input_type=InputType.recurrent(3, 5),
        layers=(Dense(n_out=4, activation="tanh"), LSTM(n_out=6), LastTimeStep(), Output(n_out=2)),
    )
    plans = conf.plan()
    assert plans[0].output_type == InputType.recurrent(4, 5)  # time-distributed
    assert all(p.preprocessor == "" for p in plans)
    assert plans[2].output_type == InputType.feed_forward(6)
    assert _check_forward(conf) == [(5, 4), (5, 6), (6,), (2,)]


def test_network_config_recurrent_variable_length_keeps_none_timesteps() -> None:
    conf = NetworkConfig(
        input_type=InputType.recurrent(3),
        layers=(LSTM(n_out=4), Conv1D(n_out=2, kernel=2), RnnOutput(n_out=2)),
    )
    assert conf.output_type() == InputType.recurrent(2, None)
    assert _check_forward(conf, steps=7)[-1] == (6, 2)


def test_network_config_ff_to_lstm_length_one_sequences() -> None:
    conf = NetworkConfig(
        input_type=InputType.feed_forward(4),
        layers=(LSTM(n_out=3), RnnOutput(n_out=2)),
    )
    plan = conf.plan()[0]
    assert plan.preprocessor == "ff_to_rnn"
    assert plan.input_type == InputType.recurrent(4, 1)
    assert _check_forward(conf) == [(1, 3), (1, 2)]


def test_network_config_output_after_lstm_config_error_mentions_last_time_step() -> None:
    with pytest.raises(ConfigError) as info:
        NetworkConfig(input_type=InputType.recurrent(3, 5), layers=(LSTM(n_out=4), Output(n_out=2)))
    assert info.value.path == "layers[1]"
    assert "LastTimeStep" in str(info.value)
    assert "rnn(5x4)" in str(info.value)


def test_network_config_conv_after_recurrent_config_error_names_forms() -> None:
    with pytest.raises(ConfigError) as info:
        NetworkConfig(input_type=InputType.recurrent(3, 5), layers=(Conv2D(n_out=2), Output(n_out=2)))
    assert info.value.path == "layers[0]"
    assert "convolutional" in str(info.value) and "rnn(5x3)" in str(info.value)


def test_network_config_global_pooling_after_conv_feed_forward_channels() -> None:
    conf = NetworkConfig(
        input_type=InputType.convolutional(5, 5, 2),
        layers=(Conv2D(n_out=3), GlobalPooling(pooling="avg"), Output(n_out=2)),
    )
    assert conf.plan()[1].output_type == InputType.feed_forward(3)
    assert _check_forward(conf)[1] == (3,)


# ----------------------------------------------------------------------------- conv arithmetic vs torch


@pytest.mark.parametrize("size", [(7, 9), (8, 5), (5, 5)])
@pytest.mark.parametrize("stride", [(1, 1), (2, 3), (3, 2)])
@pytest.mark.parametrize("mode", ["same", "truncate"])
def test_network_config_conv2d_output_size_matches_torch(
    size: tuple[int, int], stride: tuple[int, int], mode: str
) -> None:
    h, w = size
    kernel = (3, 2)
    conf = NetworkConfig(
        input_type=InputType.convolutional(h, w, 1),
        layers=(Conv2D(n_out=2, kernel=kernel, stride=stride, convolution_mode=mode), LossLayer()),
    )
    out = conf.plan()[0].output_type
    if mode == "same":
        assert (out.height, out.width) == (math.ceil(h / stride[0]), math.ceil(w / stride[1]))
    else:
        ref = F.conv2d(torch.zeros(1, 1, h, w), torch.zeros(2, 1, *kernel), stride=stride)
        assert (out.height, out.width) == tuple(ref.shape[2:])
    assert _check_forward(conf)[0] == (2, out.height, out.width)


@pytest.mark.parametrize("mode", ["same", "truncate"])
@pytest.mark.parametrize("pooling", ["max", "avg", "pnorm"])
def test_network_config_subsampling_odd_sizes_matches_torch(mode: str, pooling: str) -> None:
    conf = NetworkConfig(
        input_type=InputType.convolutional(7, 5, 2),
        layers=(Subsampling2D(kernel=(3, 2), stride=(2, 2), pooling=pooling, convolution_mode=mode), LossLayer()),
    )
    out = conf.plan()[0].output_type
    if mode == "same":
        assert (out.height, out.width) == (4, 3)
    else:
        ref = F.max_pool2d(torch.zeros(1, 2, 7, 5), (3, 2), (2, 2))
        assert (out.height, out.width) == tuple(ref.shape[2:]) == (3, 2)
    _check_forward(conf)


def test_network_config_conv2d_dilation_padding_truncate_matches_torch() -> None:
    conf = NetworkConfig(
        input_type=InputType.convolutional(9, 8, 1),
        layers=(Conv2D(n_out=2, kernel=(3, 3), stride=(2, 1), padding=(1, 2), dilation=(2, 3)), LossLayer()),
    )
    ref = F.conv2d(torch.zeros(1, 1, 9, 8), torch.zeros(2, 1, 3, 3), stride=(2, 1), padding=(1, 2), dilation=(2, 3))
    out = conf.plan()[0].output_type
    assert (out.channels, out.height, out.width) == tuple(ref.shape[1:])
    _check_forward(conf)


@pytest.mark.parametrize(("kernel", "stride", "padding"), [((2, 2), (2, 2), (0, 0)), ((3, 4), (2, 3), (1, 0))])
def test_network_config_deconv2d_output_size_matches_torch(
    kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int]
) -> None:
    conf = NetworkConfig(
        input_type=InputType.convolutional(4, 5, 2),
        layers=(Deconv2D(n_out=3, kernel=kernel, stride=stride, padding=padding), LossLayer()),
    )
    ref = F.conv_transpose2d(torch.zeros(1, 2, 4, 5), torch.zeros(2, 3, *kernel), stride=stride, padding=padding)
    out = conf.plan()[0].output_type
    assert (out.channels, out.height, out.width) == tuple(ref.shape[1:])
    assert _check_forward(conf)[0] == tuple(ref.shape[1:])


def test_network_config_upsampling_then_conv_same_keeps_size() -> None:
    conf = NetworkConfig(
        input_type=InputType.convolutional(3, 4, 1),
        layers=(Upsampling2D(size=(2, 3)), Conv2D(n_out=2, kernel=(4, 3), convolution_mode="same"), LossLayer()),
    )
    assert _check_forward(conf) == [(1, 6, 12), (2, 6, 12), (144,)]  # LossLayer flattens (cnn_to_ff)


@pytest.mark.parametrize(("mode", "expected"), [("same", 4), ("truncate", 3)])
def test_network_config_conv1d_subsampling1d_time_axis_sizes(mode: str, expected: int) -> None:
    conf = NetworkConfig(
        input_type=InputType.recurrent(2, 7),
        layers=(
            Conv1D(n_out=3, kernel=3, stride=2, convolution_mode=mode),
            Subsampling1D(kernel=1, stride=1),
            RnnOutput(n_out=2),
        ),
    )
    assert conf.plan()[0].output_type == InputType.recurrent(3, expected)
    assert _check_forward(conf, steps=7)[0] == (expected, 3)


@pytest.mark.parametrize(
    "layers",
    [
        (Conv2D(n_out=2, kernel=(5, 5)), Output(n_out=2)),
        (
            Subsampling2D(kernel=(2, 2), stride=(2, 2)),
            Subsampling2D(kernel=(2, 2), stride=(2, 2)),
            Conv2D(n_out=2, kernel=(2, 2)),
            Output(n_out=2),
        ),
    ],
)
def test_network_config_input_too_small_config_error_names_layer(layers: tuple) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError) as info:
        NetworkConfig(input_type=InputType.convolutional(4, 4, 1), layers=layers)
    assert info.value.path == f"layers[{len(layers) - 2}]"
    assert "conv(1x" in str(info.value) and "smaller kernel" in str(info.value)


def test_network_config_conv1d_too_short_sequence_config_error() -> None:
    with pytest.raises(ConfigError, match=r"layers\[0\]: Conv1D cannot take input rnn\(2x3\)"):
        NetworkConfig(input_type=InputType.recurrent(3, 2), layers=(Conv1D(n_out=2, kernel=3), RnnOutput(n_out=2)))


# ----------------------------------------------------------------------------- validation and JSON


def test_network_config_last_layer_without_loss_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        NetworkConfig(input_type=InputType.feed_forward(3), layers=(Dense(n_out=2),))
    assert info.value.path == "layers[0]"
    assert "must carry a loss" in str(info.value)


def test_network_config_loss_layer_in_middle_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        NetworkConfig(input_type=InputType.feed_forward(3), layers=(Output(n_out=2), Output(n_out=2)))
    assert info.value.path == "layers[0]"


def test_network_config_empty_layers_config_error() -> None:
    with pytest.raises(ConfigError, match="at least one layer"):
        NetworkConfig(input_type=InputType.feed_forward(3), layers=())


def test_network_config_duplicate_layer_names_config_error() -> None:
    with pytest.raises(ConfigError, match=r"repeated: \['a'\]"):
        NetworkConfig(
            input_type=InputType.feed_forward(3), layers=(Dense(n_out=2, name="a"), Output(n_out=2, name="a"))
        )


@pytest.mark.parametrize(("field", "value"), [("l2", -0.1), ("l1", -1.0), ("gradient_normalization_threshold", 0.0)])
def test_network_config_negative_regularization_config_error(field: str, value: float) -> None:
    with pytest.raises(ConfigError) as info:
        NetworkConfig(input_type=InputType.feed_forward(3), layers=(Output(n_out=2),), **{field: value})
    assert info.value.path == field


def test_network_config_newer_format_version_config_error() -> None:
    conf = NetworkConfig(input_type=InputType.feed_forward(3), layers=(Output(n_out=2),))
    data = conf.to_dict()
    data["format_version"] = FORMAT_VERSION + 1
    with pytest.raises(ConfigError, match="upgrade deepspark") as info:
        NetworkConfig.from_dict(data)
    assert info.value.path == "format_version"


def test_network_config_json_round_trip_full_config_equal() -> None:
    conf = NetworkConfig(
        seed=7,
        updater=Sgd(learning_rate=0.05),
        l2=1e-4,
        weight_decay=1e-3,
        weight_init="relu",
        gradient_normalization="clip_l2_per_layer",
        gradient_normalization_threshold=0.5,
        dtype="float64",
        input_type=InputType.convolutional_flat(8, 8, 1),
        layers=(
            Conv2D(n_out=2, kernel=(3, 3), activation="relu", name="conv"),
            BatchNorm(),
            Subsampling2D(kernel=(2, 2), stride=(2, 2)),
            Dropout(rate=0.2),
            Dense(n_out=5, activation="relu", l2=0.0),
            Output(n_out=3),
        ),
    )
    text = conf.to_json()
    back = NetworkConfig.from_json(text)
    assert back == conf
    assert back.to_json() == text
    assert back.plan() == conf.plan()


def test_network_config_from_json_unknown_layer_type_suggests_dense() -> None:
    conf = NetworkConfig(input_type=InputType.feed_forward(3), layers=(Dense(n_out=2), Output(n_out=2)))
    data = conf.to_dict()
    data["layers"][0]["type"] = "dense2"
    with pytest.raises(ConfigError) as info:
        NetworkConfig.from_dict(data)
    assert info.value.path == "layers[0].type"
    assert "did you mean 'dense'?" in str(info.value)


def test_network_config_from_json_unknown_top_level_key_suggests_field() -> None:
    conf = NetworkConfig(input_type=InputType.feed_forward(3), layers=(Output(n_out=2),))
    data = conf.to_dict()
    data["updatr"] = Adam().to_dict()
    with pytest.raises(ConfigError, match="did you mean 'updater'") as info:
        NetworkConfig.from_dict(data)
    assert info.value.path == "updatr"


def test_network_config_from_json_invalid_text_config_error() -> None:
    with pytest.raises(ConfigError, match="not valid JSON"):
        NetworkConfig.from_json("{not json")


@pytest.mark.parametrize(
    ("make", "path"),
    [
        (lambda: InputType.feed_forward(0), "size"),
        (lambda: InputType.convolutional(0, 3, 1), "height"),
        (lambda: InputType.convolutional(3, 3, -1), "channels"),
        (lambda: InputType.recurrent(3, 0), "timesteps"),
    ],
)
def test_input_type_non_positive_size_config_error(make, path: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as info:
        make()
    assert info.value.path == path


def test_input_type_shapes_and_describe() -> None:
    assert InputType.convolutional_flat(28, 28, 1).shape() == (784,)
    assert InputType.convolutional(4, 5, 3).shape() == (3, 4, 5)
    assert InputType.recurrent(3).shape() == (None, 3)
    assert InputType.recurrent(3, 7).describe() == "rnn(7x3)"
    assert InputType.convolutional(4, 5, 3).describe() == "conv(3x4x5)"
    assert InputType.from_json(InputType.recurrent(3, 7).to_json()) == InputType.recurrent(3, 7)


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000 + "]" * 100_000,  # past the JSON parser's own recursion limit
        '{"type": "network", "layers": ' + "[" * 500 + "]" * 500 + "}",  # parses, but would recurse when decoded
    ],
    ids=["parser_depth", "decoder_depth"],
)
def test_config_from_json_deeply_nested_config_error(text: str) -> None:
    from deepspark.config.root import config_from_json

    with pytest.raises(ConfigError, match="nested") as info:
        config_from_json(text)
    assert "deep" in info.value.message and not isinstance(info.value, RecursionError)
    with pytest.raises(ConfigError, match="nested"):
        NetworkConfig.from_json(text)


def test_layer_from_dict_deeply_nested_field_config_error() -> None:
    deep: object = 1
    for _ in range(2000):
        deep = [deep]
    with pytest.raises(ConfigError, match="nested more than 64 levels") as info:
        Layer.from_dict({"type": "dense", "n_out": deep})
    assert info.value.path.startswith("n_out[0]")


@pytest.mark.parametrize("seed", [2**70, 2**63, -1])
def test_network_config_seed_out_of_range_config_error(seed: int) -> None:
    with pytest.raises(ConfigError) as info:
        NetworkConfig(seed=seed, input_type=InputType.feed_forward(2), layers=(Output(n_out=2),))
    assert info.value.path == "seed" and "[0, 2**63 - 1]" in info.value.message


def test_network_config_largest_seed_builds() -> None:
    conf = NetworkConfig(seed=2**63 - 1, input_type=InputType.feed_forward(2), layers=(Output(n_out=2),))
    assert Network(conf).num_params() == 6


def test_dense_n_out_over_int32_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        Dense(n_out=2**40)
    assert info.value.path == "n_out" and "at most 2147483647" in info.value.message


def test_network_too_large_for_memory_refused_before_allocating_with_estimate() -> None:
    import resource

    # 10**12 weights: about 15 TiB with gradients and Adam state, more than any test machine has
    conf = NetworkConfig(input_type=InputType.feed_forward(10**6), layers=(Dense(n_out=10**6), Output(n_out=3)))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ConfigError) as info:
        Network(conf)
    assert info.value.path == "layers"
    pattern = r"needs about \d+\.\d GiB \(1,000,004,000,003 float32 parameters.*GiB available"
    assert re.search(pattern, info.value.message)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 512 * 1024  # nothing near the 3.6 TiB of parameters was touched
