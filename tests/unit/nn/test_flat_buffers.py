"""Flat buffers: every parameter and gradient is a view into one buffer, before and after training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepspark.config import (
    LSTM,
    BatchNorm,
    Bidirectional,
    Conv2D,
    Dense,
    GlobalPooling,
    InputType,
    LastTimeStep,
    LayerNorm,
    NetworkConfig,
    NoOp,
    Output,
    Sgd,
    Subsampling2D,
)
from deepspark.errors import DataError
from deepspark.nn import Network


def _mixed_net(seed: int) -> Network:
    """Conv + batch norm + dense: weights, biases, gains and running statistics."""
    conf = NetworkConfig(
        seed=seed,
        updater=Sgd(learning_rate=0.1),
        input_type=InputType.convolutional(5, 5, 1),
        layers=(
            Conv2D(n_out=2, kernel=(3, 3)),
            BatchNorm(decay=0.5),
            Subsampling2D(kernel=(2, 2), stride=(1, 1)),
            Dense(n_out=4, activation="relu"),
            LayerNorm(),
            Output(n_out=3),
        ),
    )
    return Network(conf)


def _rnn_net(seed: int) -> Network:
    conf = NetworkConfig(
        seed=seed,
        input_type=InputType.recurrent(3, 4),
        layers=(Bidirectional(layer=LSTM(n_out=3)), LSTM(n_out=2), LastTimeStep(), Output(n_out=2)),
    )
    return Network(conf)


def _data(net: Network, seed: int, n: int = 6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    assert net.config is not None
    shape = tuple(d or 4 for d in net.config.input_type.shape())
    return rng.standard_normal((n, *shape)).astype(np.float32), rng.integers(0, net.heads[0].n_out, n)


def _assert_all_views(net: Network) -> None:
    params = list(net.model.parameters())
    assert params, "the network has parameters"
    for p in params:
        assert net.flat.contains(p), "a parameter lies outside flat.params"
        assert p.grad is not None and net.flat.contains(p.grad), "a gradient lies outside flat.grads"
    for b in net.model.buffers():
        if b.is_floating_point():
            assert net.flat.contains(b)
    total = sum(p.numel() for p in params)
    assert total == net.flat.n_trainable == net.flat.grads.numel()


@pytest.mark.parametrize("make", [_mixed_net, _rnn_net])
def test_flat_buffers_every_param_and_grad_is_a_view(make, seed: int) -> None:  # type: ignore[no-untyped-def]
    _assert_all_views(make(seed))


@pytest.mark.parametrize("make", [_mixed_net, _rnn_net])
def test_flat_buffers_views_survive_fit_and_grads_accumulate_in_place(make, seed: int) -> None:  # type: ignore[no-untyped-def]
    net = make(seed)
    params_ptr, grads_ptr = net.flat.params.data_ptr(), net.flat.grads.data_ptr()
    grad_ptrs = [p.grad.data_ptr() for p in net.model.parameters()]
    x, y = _data(net, seed)
    net.fit(x, y, epochs=2, batch_size=3)
    _assert_all_views(net)
    assert net.flat.params.data_ptr() == params_ptr and net.flat.grads.data_ptr() == grads_ptr
    assert [p.grad.data_ptr() for p in net.model.parameters()] == grad_ptrs
    assert net.flat.grads.abs().sum() > 0  # backward wrote into the flat gradient buffer


def test_flat_buffers_writing_flat_params_changes_module_parameters(seed: int) -> None:
    net = _rnn_net(seed)
    with torch.no_grad():
        net.flat.params.fill_(0.25)
    for p in net.model.parameters():
        assert p.eq(0.25).all()


def test_flat_buffers_lstm_forward_reads_flat_buffer(seed: int) -> None:
    net = _rnn_net(seed)
    x, _ = _data(net, seed, n=2)
    before = net.output(x)
    with torch.no_grad():
        net.flat.trainable.mul_(0.5)
    assert not np.allclose(before, net.output(x))


def test_flat_buffers_batch_norm_running_stats_in_non_trainable_tail(seed: int) -> None:
    net = _mixed_net(seed)
    bn = net.model.layers[1]
    tail = net.flat.params[net.flat.n_trainable :]
    assert tail.numel() == 4  # running mean + var of 2 channels
    for buf in (bn.running_mean, bn.running_var):
        offset = (buf.data_ptr() - net.flat.params.data_ptr()) // buf.element_size()
        assert offset >= net.flat.n_trainable
    assert [s.trainable for s in net.flat.segments][-2:] == [False, False]
    assert net.updater.state.numel() == 0  # Sgd keeps no state


def test_flat_buffers_batch_norm_running_stats_updated_by_training_not_by_updater(seed: int) -> None:
    net = _mixed_net(seed)
    x, y = _data(net, seed)
    tail_before = net.flat.params[net.flat.n_trainable :].clone()
    net.fit(x, y, epochs=1, batch_size=6)
    assert not torch.equal(net.flat.params[net.flat.n_trainable :], tail_before)

    # With a no-op updater the trainable values stay fixed but the running statistics still move.
    frozen = Network(NetworkConfig.from_dict({**net.config.to_dict(), "updater": NoOp().to_dict()}))
    trainable_before = frozen.flat.trainable.clone()
    tail_before = frozen.flat.params[frozen.flat.n_trainable :].clone()
    frozen.fit(x, y, epochs=1, batch_size=6)
    assert torch.equal(frozen.flat.trainable, trainable_before)
    assert not torch.equal(frozen.flat.params[frozen.flat.n_trainable :], tail_before)


def test_flat_buffers_batch_norm_running_stats_follow_decay(seed: int) -> None:
    conf = NetworkConfig(
        seed=seed, updater=NoOp(), input_type=InputType.feed_forward(3), layers=(BatchNorm(decay=0.75), Output(n_out=2))
    )
    net = Network(conf)
    x = np.random.default_rng(seed).standard_normal((8, 3)).astype(np.float32) + 2.0
    net.fit(x, np.zeros(8, dtype=np.int64), epochs=1, batch_size=8)
    mean = net.model.layers[0].running_mean
    np.testing.assert_allclose(mean.numpy(), 0.25 * x.mean(axis=0), rtol=1e-5)


def test_network_set_params_changes_output(seed: int) -> None:
    net = _mixed_net(seed)
    x, _ = _data(net, seed, n=3)
    before = net.output(x)
    new = net.params()
    new[: net.flat.n_trainable] *= 2.0
    net.set_params(new)
    np.testing.assert_array_equal(net.params(), new)
    assert not np.allclose(net.output(x), before)
    _assert_all_views(net)  # set_params copies into the buffer; views stay bound


def test_network_set_params_round_trip_between_networks_same_output(seed: int) -> None:
    a, b = _rnn_net(seed), _rnn_net(seed + 1)
    x, _ = _data(a, seed, n=3)
    assert not np.allclose(a.output(x), b.output(x))
    b.set_params(a.params())
    np.testing.assert_array_equal(a.output(x), b.output(x))


def test_network_params_returns_a_copy(seed: int) -> None:
    net = _mixed_net(seed)
    p = net.params()
    p[:] = 123.0
    assert not np.any(net.params() == 123.0)
    assert p.dtype == np.float32 and p.shape == (net.num_params(),)


@pytest.mark.parametrize("bad", [np.zeros(3, np.float32), np.zeros((2, 2), np.float32)])
def test_network_set_params_wrong_length_data_error(bad: np.ndarray, seed: int) -> None:
    net = _mixed_net(seed)
    with pytest.raises(DataError, match=f"expected a 1-D buffer of {net.num_params()} values"):
        net.set_params(bad)


def test_network_set_params_nan_data_error(seed: int) -> None:
    net = _mixed_net(seed)
    bad = net.params()
    bad[0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        net.set_params(bad)


def test_flat_buffers_global_pooling_network_params_equal_segments(seed: int) -> None:
    conf = NetworkConfig(
        seed=seed,
        input_type=InputType.recurrent(3, 4),
        layers=(LSTM(n_out=2), GlobalPooling(), Dense(n_out=2), Output(n_out=2)),
    )
    net = Network(conf)
    assert sum(s.numel for s in net.flat.segments) == net.num_params()
    offsets = [s.offset for s in net.flat.segments]
    assert offsets == sorted(offsets) and offsets[0] == 0
