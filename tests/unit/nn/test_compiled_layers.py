"""Compiled layers against torch references: padding modes, pooling, masks, recurrent packing, init, losses."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deepspark.config import (
    ACTIVATIONS,
    GRU,
    LOSSES,
    LSTM,
    WEIGHT_INITS,
    Activation,
    BatchNorm,
    Bidirectional,
    Conv1D,
    Conv2D,
    Cropping2D,
    Deconv2D,
    Dense,
    Dropout,
    Embedding,
    EmbeddingSequence,
    GlobalPooling,
    InputType,
    LastTimeStep,
    LayerNorm,
    LossLayer,
    NetworkConfig,
    Output,
    RnnOutput,
    SimpleRnn,
    Subsampling1D,
    Subsampling2D,
    TorchLayer,
    Upsampling2D,
    ZeroPadding2D,
)
from deepspark.config.layers import Layer
from deepspark.nn import Network
from deepspark.nn.conv_layers import same_padding
from deepspark.nn.functional import ACTIVATION_FNS, mean_loss, per_example_loss
from deepspark.nn.init import init_weight
from deepspark.nn.layers import CompiledLayer


@pytest.fixture(autouse=True)
def _torch_seed(seed: int) -> Iterator[None]:
    """Random test inputs come from the suite seed; the global RNG is restored afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _net(input_type: InputType, *layers: Layer, seed: int = 0) -> Network:
    tail: tuple[Layer, ...] = ()
    if not layers[-1].HAS_LOSS:
        tail = (LossLayer(),)
    return Network(NetworkConfig(input_type=input_type, layers=(*layers, *tail), seed=seed))


def _layer(net: Network, i: int = 0) -> CompiledLayer:
    layer = net.model.layers[i]
    assert isinstance(layer, CompiledLayer)
    return layer


def _run(net: Network, x: torch.Tensor, mask: torch.Tensor | None = None, i: int = 0) -> tuple:  # type: ignore[type-arg]
    layer = _layer(net, i)
    layer.eval()
    with torch.no_grad():
        return layer(x, mask)


# ----------------------------------------------------------------------------- convolutions


@pytest.mark.parametrize(("kernel", "dilation"), [((3, 3), (1, 1)), ((4, 2), (1, 1)), ((3, 2), (2, 3))])
def test_conv2d_same_stride_one_equals_torch_same_padding(kernel: tuple[int, int], dilation: tuple[int, int]) -> None:
    net = _net(
        InputType.convolutional(7, 6, 2), Conv2D(n_out=3, kernel=kernel, dilation=dilation, convolution_mode="same")
    )
    layer = _layer(net)
    x = torch.randn(2, 2, 7, 6)
    y, _ = _run(net, x)
    with warnings.catch_warnings():  # torch notes that even kernels need a padded copy; that is what we compare to
        warnings.simplefilter("ignore", UserWarning)
        ref = F.conv2d(x, layer.weight, layer.bias, padding="same", dilation=dilation)
    assert y.shape == ref.shape == (2, 3, 7, 6)
    torch.testing.assert_close(y, ref)


@pytest.mark.parametrize(("size", "kernel", "stride"), [(7, 3, 2), (8, 4, 3), (5, 2, 2), (1, 3, 1)])
def test_same_padding_gives_ceil_output_length(size: int, kernel: int, stride: int) -> None:
    before, after = same_padding(size, kernel, stride, 1)
    assert after - before in (0, 1)
    out = F.conv1d(torch.zeros(1, 1, size + before + after), torch.zeros(1, 1, kernel), stride=stride).shape[-1]
    assert out == math.ceil(size / stride)


def test_conv2d_truncate_with_padding_equals_torch() -> None:
    spec = Conv2D(n_out=2, kernel=(3, 3), stride=(2, 1), padding=(1, 2), activation="relu")
    net = _net(InputType.convolutional(6, 5, 1), spec)
    layer = _layer(net)
    x = torch.randn(2, 1, 6, 5)
    ref = F.relu(F.conv2d(x, layer.weight, layer.bias, stride=(2, 1), padding=(1, 2)))
    torch.testing.assert_close(_run(net, x)[0], ref)


def test_deconv2d_equals_torch_conv_transpose() -> None:
    net = _net(InputType.convolutional(3, 4, 2), Deconv2D(n_out=3, kernel=(3, 2), stride=(2, 2), padding=(1, 0)))
    layer = _layer(net)
    assert tuple(layer.weight.shape) == (2, 3, 3, 2)
    x = torch.randn(2, 2, 3, 4)
    ref = F.conv_transpose2d(x, layer.weight, layer.bias, stride=(2, 2), padding=(1, 0))
    torch.testing.assert_close(_run(net, x)[0], ref)


def test_conv1d_on_sequences_equals_torch_conv1d_over_time() -> None:
    net = _net(InputType.recurrent(3, 6), Conv1D(n_out=2, kernel=3, stride=2, padding=1))
    layer = _layer(net)
    x = torch.randn(2, 6, 3)
    y, _ = _run(net, x)
    ref = F.conv1d(x.transpose(1, 2), layer.weight, layer.bias, stride=2, padding=1).transpose(1, 2)
    torch.testing.assert_close(y, ref)


def test_conv1d_padding_wider_than_half_kernel_with_mask_pools_mask() -> None:
    net = _net(InputType.recurrent(2, 4), Conv1D(n_out=2, kernel=3, padding=2))
    mask = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0]])
    y, out_mask = _run(net, torch.randn(2, 4, 2), mask)
    assert y.shape == (2, 6, 2)
    # Output step j sees input steps j-2..j; it is valid when any of them was a real step.
    assert out_mask.tolist() == [[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]]


# ----------------------------------------------------------------------------- pooling


@pytest.mark.parametrize("mode", ["same", "truncate"])
def test_subsampling2d_avg_of_ones_is_one_including_borders(mode: str) -> None:
    spec = Subsampling2D(kernel=(3, 3), stride=(2, 2), padding=(1, 1), pooling="avg", convolution_mode=mode)
    net = _net(InputType.convolutional(5, 6, 1), spec)
    y, _ = _run(net, torch.ones(1, 1, 5, 6))
    torch.testing.assert_close(y, torch.ones_like(y))  # padding never counts towards the average


@pytest.mark.parametrize("mode", ["same", "truncate"])
def test_subsampling1d_avg_of_ones_is_one_including_borders(mode: str) -> None:
    spec = Subsampling1D(kernel=3, stride=2, padding=1, pooling="avg", convolution_mode=mode)
    net = _net(InputType.recurrent(1, 5), spec)
    y, _ = _run(net, torch.ones(1, 5, 1))
    torch.testing.assert_close(y, torch.ones_like(y))


@pytest.mark.parametrize("mode", ["same", "truncate"])
def test_subsampling_max_negative_input_padding_never_wins(mode: str) -> None:
    spec2 = Subsampling2D(kernel=(3, 3), stride=(2, 2), padding=(1, 1), convolution_mode=mode)
    y2, _ = _run(_net(InputType.convolutional(5, 5, 1), spec2), -torch.ones(1, 1, 5, 5) - torch.rand(1, 1, 5, 5))
    assert (y2 < -1.0).all()
    spec1 = Subsampling1D(kernel=3, stride=2, padding=1, convolution_mode=mode)
    y1, _ = _run(_net(InputType.recurrent(2, 5), spec1), -torch.ones(1, 5, 2) - torch.rand(1, 5, 2))
    assert (y1 < -1.0).all()


def test_subsampling2d_max_equals_torch_max_pool() -> None:
    net = _net(InputType.convolutional(7, 6, 2), Subsampling2D(kernel=(3, 2), stride=(2, 2), padding=(1, 1)))
    x = torch.randn(2, 2, 7, 6)
    torch.testing.assert_close(_run(net, x)[0], F.max_pool2d(x, (3, 2), (2, 2), (1, 1)))


def test_subsampling2d_pnorm_equals_p_norm_of_window() -> None:
    net = _net(InputType.convolutional(4, 4, 1), Subsampling2D(kernel=(2, 2), stride=(2, 2), pooling="pnorm", pnorm=3))
    x = torch.randn(1, 1, 4, 4)
    y, _ = _run(net, x)
    window = x[0, 0, :2, :2]
    torch.testing.assert_close(y[0, 0, 0, 0], window.abs().pow(3).sum().pow(1 / 3))


def test_subsampling1d_pools_mask_like_values() -> None:
    net = _net(InputType.recurrent(2, 6), Subsampling1D(kernel=2, stride=2))
    mask = torch.tensor([[1.0, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]])
    y, out_mask = _run(net, torch.randn(2, 6, 2), mask)
    assert y.shape == (2, 3, 2)
    assert out_mask.tolist() == [[1, 1, 1], [1, 1, 0]]


@pytest.mark.parametrize("pooling", ["max", "avg", "sum", "pnorm"])
def test_global_pooling_masked_equals_pooling_valid_steps_only(pooling: str) -> None:
    net = _net(InputType.recurrent(3, 5), GlobalPooling(pooling=pooling, pnorm=2))
    x = torch.randn(2, 5, 3)
    mask = torch.tensor([[1.0, 1, 1, 1, 1], [1, 1, 0, 0, 0]])
    y, out_mask = _run(net, x, mask)
    assert out_mask is None
    valid = x[1, :2]
    expected = {
        "max": valid.amax(0),
        "avg": valid.mean(0),
        "sum": valid.sum(0),
        "pnorm": valid.pow(2).sum(0).sqrt(),
    }[pooling]
    torch.testing.assert_close(y[1], expected)


def test_global_pooling_max_fully_masked_sequence_is_finite_zero() -> None:
    net = _net(InputType.recurrent(2, 3), GlobalPooling(pooling="max"))
    y, _ = _run(net, torch.randn(2, 3, 2), torch.tensor([[1.0, 1, 0], [0, 0, 0]]))
    assert torch.isfinite(y).all()
    assert y[1].tolist() == [0.0, 0.0]


def test_global_pooling_images_pools_over_height_and_width() -> None:
    net = _net(InputType.convolutional(3, 4, 2), GlobalPooling(pooling="avg"))
    x = torch.randn(2, 2, 3, 4)
    torch.testing.assert_close(_run(net, x)[0], x.mean(dim=(2, 3)))


# ----------------------------------------------------------------------------- resizing


def test_upsampling2d_repeats_pixels_nearest() -> None:
    net = _net(InputType.convolutional(2, 2, 1), Upsampling2D(size=(2, 3)))
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    y, _ = _run(net, x)
    torch.testing.assert_close(y, F.interpolate(x, scale_factor=(2, 3), mode="nearest"))


def test_zero_padding2d_order_is_top_bottom_left_right() -> None:
    net = _net(InputType.convolutional(2, 2, 1), ZeroPadding2D(padding=(1, 0, 2, 3)))
    y, _ = _run(net, torch.ones(1, 1, 2, 2))
    assert y.shape == (1, 1, 3, 7)
    assert y[0, 0, 0].abs().sum() == 0  # top row padded
    assert y[0, 0, 1:, 2:4].eq(1).all() and y[0, 0, 1:, :2].eq(0).all() and y[0, 0, 1:, 4:].eq(0).all()


def test_cropping2d_order_is_top_bottom_left_right() -> None:
    net = _net(InputType.convolutional(4, 5, 1), Cropping2D(cropping=(1, 0, 2, 1)))
    x = torch.arange(20.0).reshape(1, 1, 4, 5)
    y, _ = _run(net, x)
    torch.testing.assert_close(y, x[:, :, 1:4, 2:4])


# ----------------------------------------------------------------------------- feed-forward


def test_dense_on_sequences_applies_per_step() -> None:
    net = _net(InputType.recurrent(3, 4), Dense(n_out=2, activation="tanh"))
    layer = _layer(net)
    x = torch.randn(2, 4, 3)
    y, _ = _run(net, x)
    for t in range(4):
        torch.testing.assert_close(y[:, t], torch.tanh(F.linear(x[:, t], layer.weight, layer.bias)))


def test_dense_without_bias_has_only_weight() -> None:
    net = _net(InputType.feed_forward(3), Dense(n_out=2, has_bias=False))
    assert [n for n, _ in _layer(net).named_parameters()] == ["weight"]


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_every_name_compiles_and_is_finite(name: str) -> None:
    net = _net(InputType.feed_forward(4), Activation(activation=name))
    x = torch.linspace(-3, 3, 8).reshape(2, 4)
    y, _ = _run(net, x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert name in ACTIVATION_FNS


def test_activation_softmax_on_images_normalizes_channels() -> None:
    net = _net(InputType.convolutional(2, 3, 4), Activation(activation="softmax"))
    y, _ = _run(net, torch.randn(2, 4, 2, 3))
    torch.testing.assert_close(y.sum(dim=1), torch.ones(2, 2, 3))


def test_dropout_layer_identity_in_eval_scaled_zeros_in_training() -> None:
    net = _net(InputType.feed_forward(200), Dropout(rate=0.5))
    layer = _layer(net)
    x = torch.ones(4, 200)
    assert torch.equal(_run(net, x)[0], x)
    layer.train()
    y, _ = layer(x)
    assert set(torch.unique(y).tolist()) == {0.0, 2.0}


def test_batch_norm_conv_training_normalizes_per_channel_eval_uses_running_stats() -> None:
    net = _net(InputType.convolutional(3, 3, 2), BatchNorm(decay=0.5))
    layer = _layer(net)
    x = torch.randn(4, 2, 3, 3) * 3 + 5
    layer.train()
    y, _ = layer(x)
    torch.testing.assert_close(y.mean(dim=(0, 2, 3)), torch.zeros(2), atol=1e-5, rtol=0)
    expected_mean = 0.5 * 0 + 0.5 * x.mean(dim=(0, 2, 3))  # running = decay * running + (1 - decay) * batch
    torch.testing.assert_close(layer.running_mean, expected_mean)
    y_eval, _ = _run(net, x)
    ref = (x - layer.running_mean.view(1, -1, 1, 1)) / torch.sqrt(layer.running_var.view(1, -1, 1, 1) + 1e-5)
    torch.testing.assert_close(y_eval, ref)


def test_batch_norm_lock_gamma_beta_has_no_trainable_params() -> None:
    net = _net(InputType.feed_forward(3), BatchNorm(lock_gamma_beta=True))
    layer = _layer(net)
    assert list(layer.parameters()) == []
    assert net.flat.n_trainable == 0
    assert net.num_params() == 6  # running mean and variance only


def test_batch_norm_on_sequences_normalizes_features_over_batch_and_time() -> None:
    net = _net(InputType.recurrent(3, 4), BatchNorm())
    layer = _layer(net)
    layer.train()
    y, _ = layer(torch.randn(2, 4, 3) * 2 + 1)
    torch.testing.assert_close(y.mean(dim=(0, 1)), torch.zeros(3), atol=1e-5, rtol=0)


def test_layer_norm_images_normalizes_each_example_over_chw() -> None:
    net = _net(InputType.convolutional(2, 3, 2), LayerNorm())
    y, _ = _run(net, torch.randn(3, 2, 2, 3) * 4 + 2)
    torch.testing.assert_close(y.mean(dim=(1, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.var(dim=(1, 2, 3), unbiased=False), torch.ones(3), atol=1e-3, rtol=0)


def test_embedding_looks_up_rows_and_sequence_variant_emits_recurrent() -> None:
    net = _net(InputType.feed_forward(1), Embedding(vocab_size=5, n_out=3), Output(n_out=2))
    layer = _layer(net)
    y, _ = _run(net, torch.tensor([[4.0], [0.0]]))
    torch.testing.assert_close(y, layer.weight[[4, 0]])
    seq = _net(InputType.feed_forward(4), EmbeddingSequence(vocab_size=5, n_out=3), RnnOutput(n_out=2))
    ys, _ = _run(seq, torch.tensor([[1.0, 2.0, 3.0, 1.0]]))
    assert ys.shape == (1, 4, 3)
    torch.testing.assert_close(ys[0], _layer(seq).weight[[1, 2, 3, 1]])


# ----------------------------------------------------------------------------- recurrent


def test_lstm_compiled_equals_torch_lstm_with_same_weights() -> None:
    net = _net(InputType.recurrent(3, 5), LSTM(n_out=4))
    layer = _layer(net)
    ref = torch.nn.LSTM(3, 4, batch_first=True)
    with torch.no_grad():
        for name, p in ref.named_parameters():
            p.copy_(getattr(layer.rnn, name))
    x = torch.randn(2, 5, 3)
    torch.testing.assert_close(_run(net, x)[0], ref(x)[0])


def test_lstm_forget_gate_bias_initialized_other_biases_zero() -> None:
    net = _net(InputType.recurrent(3, 5), LSTM(n_out=4, forget_gate_bias_init=2.0))
    rnn = _layer(net).rnn
    assert rnn.bias_ih_l0[4:8].eq(2.0).all()
    assert rnn.bias_ih_l0[:4].eq(0).all() and rnn.bias_ih_l0[8:].eq(0).all()
    assert rnn.bias_hh_l0.eq(0).all()
    assert rnn.weight_ih_l0.abs().sum() > 0


def test_recurrent_layers_building_does_not_touch_global_rng() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    _net(InputType.recurrent(3, 5), Bidirectional(layer=GRU(n_out=2)), SimpleRnn(n_out=2), LSTM(n_out=2))
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("mode", ["add", "mul", "average"])
def test_bidirectional_modes_combine_concat_halves(mode: str) -> None:
    concat = _net(InputType.recurrent(3, 4), Bidirectional(layer=GRU(n_out=2), mode="concat"))
    other = _net(InputType.recurrent(3, 4), Bidirectional(layer=GRU(n_out=2), mode=mode))
    assert torch.equal(concat.flat.params, other.flat.params)  # same seed, same weights
    x = torch.randn(2, 4, 3)
    both, _ = _run(concat, x)
    assert both.shape == (2, 4, 4)
    fwd, bwd = both[..., :2], both[..., 2:]
    expected = {"add": fwd + bwd, "mul": fwd * bwd, "average": (fwd + bwd) / 2}[mode]
    torch.testing.assert_close(_run(other, x)[0], expected)


@pytest.mark.parametrize(
    "make",
    [
        lambda: LSTM(n_out=3),
        lambda: GRU(n_out=3),
        lambda: SimpleRnn(n_out=3),
        lambda: Bidirectional(layer=LSTM(n_out=3)),
    ],
)
def test_recurrent_masked_padding_does_not_change_valid_steps(make) -> None:  # type: ignore[no-untyped-def]
    net = _net(InputType.recurrent(2), make())
    x = torch.randn(1, 3, 2)
    padded = torch.cat([x, torch.randn(1, 2, 2) * 10], dim=1)
    mask = torch.tensor([[1.0, 1, 1, 0, 0]])
    short, _ = _run(net, x)
    long, out_mask = _run(net, padded, mask)
    torch.testing.assert_close(long[:, :3], short)
    assert long[:, 3:].abs().sum() == 0
    assert torch.equal(out_mask, mask)


def test_last_time_step_masked_picks_last_valid_step() -> None:
    net = _net(InputType.recurrent(2, 4), LastTimeStep())
    x = torch.arange(16.0).reshape(2, 4, 2)
    y, out_mask = _run(net, x, torch.tensor([[1.0, 1, 1, 1], [1, 1, 0, 0]]))
    assert out_mask is None
    torch.testing.assert_close(y, torch.stack([x[0, 3], x[1, 1]]))
    torch.testing.assert_close(_run(net, x)[0], x[:, -1])


# ----------------------------------------------------------------------------- init


@pytest.mark.parametrize("scheme", WEIGHT_INITS)
def test_init_weight_every_scheme_deterministic_and_finite(scheme: str) -> None:
    a, b = torch.empty(6, 6), torch.empty(6, 6)
    init_weight(a, scheme, torch.Generator().manual_seed(3))
    init_weight(b, scheme, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and torch.isfinite(a).all()
    if scheme == "identity":
        assert torch.equal(a, torch.eye(6))


def test_init_per_layer_weight_init_overrides_network_default() -> None:
    net = _net(InputType.feed_forward(3), Dense(n_out=4, weight_init="ones"), Output(n_out=2, weight_init="zero"))
    assert _layer(net, 0).weight.eq(1).all()
    assert _layer(net, 1).weight.eq(0).all()
    assert _layer(net, 0).bias.eq(0).all()


def test_init_xavier_std_close_to_theory() -> None:
    w = torch.empty(400, 600)
    init_weight(w, "xavier", torch.Generator().manual_seed(0))
    assert abs(float(w.std()) - math.sqrt(2 / 1000)) < 0.002


# ----------------------------------------------------------------------------- losses


def test_loss_softmax_mcxent_equals_torch_cross_entropy_and_one_hot() -> None:
    logits = torch.randn(5, 3)
    idx = torch.tensor([0, 2, 1, 1, 0])
    per = per_example_loss("mcxent", "softmax", logits, idx)
    torch.testing.assert_close(per, F.cross_entropy(logits, idx, reduction="none"))
    torch.testing.assert_close(per_example_loss("mcxent", "softmax", logits, F.one_hot(idx, 3).float()), per)


def test_loss_sigmoid_xent_equals_bce_with_logits() -> None:
    logits, y = torch.randn(4, 2), torch.randint(0, 2, (4, 2)).float()
    ref = F.binary_cross_entropy_with_logits(logits, y, reduction="none").sum(-1)
    torch.testing.assert_close(per_example_loss("xent", "sigmoid", logits, y), ref)
    torch.testing.assert_close(per_example_loss("xent", "tanh", logits, y).shape, ref.shape)


@pytest.mark.parametrize("loss", LOSSES)
def test_loss_every_name_per_example_finite_with_gradient(loss: str) -> None:
    preout = torch.randn(4, 3, requires_grad=True)
    if loss in ("mcxent", "negativeloglikelihood"):
        labels = torch.tensor([0, 1, 2, 1])
        act = "softmax"
    else:
        labels = torch.rand(4, 3) + 0.1
        act = "sigmoid" if loss in ("xent", "kl_divergence", "poisson") else "identity"
    per = per_example_loss(loss, act, preout, labels)
    assert per.shape == (4,)
    per.mean().backward()
    assert torch.isfinite(per).all() and torch.isfinite(preout.grad).all()  # type: ignore[arg-type]


def test_mean_loss_mask_averages_only_valid_steps() -> None:
    per = torch.tensor([[1.0, 2.0, 100.0], [3.0, 100.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    assert float(mean_loss(per, mask)) == pytest.approx(2.0)
    assert float(mean_loss(per, None)) == pytest.approx(per.mean().item())


def test_numpy_compat_network_output_is_numpy_float32() -> None:
    net = _net(InputType.feed_forward(3), Output(n_out=2))
    out = net.output(np.zeros((2, 3), dtype=np.float64))
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-6)


def test_conv_layers_run_channels_last_on_cpu_and_match_plain_nchw_torch() -> None:
    """On CPU, 2-D convolutions compute NHWC (oneDNN's faster kernels) in training and in inference; the
    parameters stay NCHW views of the flat buffer, and the outputs, the loss and the gradient equal a plain NCHW
    torch computation with the same weights up to float32 rounding. A TorchLayer after a convolution still gets
    contiguous input (its module flattens with ``view``)."""
    from deepspark.nn.conv_layers import Conv2DLayer

    conf = NetworkConfig(
        seed=0,
        input_type=InputType.convolutional_flat(12, 12, 1),
        layers=(
            Conv2D(n_out=4, kernel=(3, 3), activation="relu"),
            Subsampling2D(kernel=(2, 2), stride=(2, 2)),
            Conv2D(n_out=6, kernel=(3, 3), activation="relu"),
            TorchLayer(factory="deepspark_testmodels.resnet:flat_linear", kwargs={"n_in": 54, "n_out": 5}, n_out=5),
            Output(n_out=3),
        ),
    )
    net = Network(conf)
    layouts: list[tuple[bool, bool]] = []

    def record(module: torch.nn.Module, args: tuple[torch.Tensor, ...], out: tuple[torch.Tensor, None]) -> None:
        y = out[0]
        layouts.append((y.stride(1) == 1, y.is_contiguous()))

    hooks = [m.register_forward_hook(record) for m in net.model.modules() if isinstance(m, Conv2DLayer)]
    rng = np.random.default_rng(0)
    x = rng.random((9, 144)).astype(np.float32)
    labels = rng.integers(0, 3, size=9)
    inferred = net.output(x)
    assert layouts == [(True, False), (True, False)]  # NHWC (channel stride 1), not NCHW-contiguous
    layouts.clear()
    score = net.compute_gradient(net._prepare(x, labels))
    assert layouts == [(True, False), (True, False)]  # training too
    for h in hooks:
        h.remove()

    named = dict(net.model.named_parameters())
    flat = net.flat.params
    for name in ("layers.0.weight", "layers.2.weight"):  # still NCHW-contiguous views into the flat buffer
        weight = named[name]
        assert weight.is_contiguous()
        assert flat.data_ptr() <= weight.data_ptr() < flat.data_ptr() + flat.numel() * flat.element_size()
    ref = {k: v.detach().clone().requires_grad_() for k, v in named.items()}
    h = F.relu(F.conv2d(torch.from_numpy(x).view(9, 1, 12, 12), ref["layers.0.weight"], ref["layers.0.bias"]))
    h = F.relu(F.conv2d(F.max_pool2d(h, 2, 2), ref["layers.2.weight"], ref["layers.2.bias"]))
    h = F.linear(h.reshape(9, -1), ref["layers.3.module.linear.weight"], ref["layers.3.module.linear.bias"])
    logits = F.linear(h, ref["layers.4.weight"], ref["layers.4.bias"])
    loss = F.cross_entropy(logits, torch.from_numpy(labels))
    grads = torch.autograd.grad(loss, list(ref.values()))
    np.testing.assert_allclose(inferred, torch.softmax(logits, dim=1).detach().numpy(), rtol=1e-5, atol=1e-6)
    assert float(score) == pytest.approx(loss.item(), rel=1e-5)
    for (name, param), expected in zip(named.items(), grads, strict=True):
        assert param.grad is not None, name
        np.testing.assert_allclose(param.grad.numpy(), expected.numpy(), rtol=1e-4, atol=1e-6, err_msg=name)
