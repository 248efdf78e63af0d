"""Network training behaviour: reproducibility, data forms, regularization, masks, reports."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest

from deepspark.config import (
    LSTM,
    BatchNorm,
    Conv2D,
    Dense,
    Dropout,
    InputType,
    LastTimeStep,
    Layer,
    LossLayer,
    NetworkConfig,
    Output,
    RnnOutput,
    Sgd,
    Subsampling2D,
)
from deepspark.errors import DataError
from deepspark.nn import Network


def _conf(seed: int, *, dropout: bool = False, **kwargs) -> NetworkConfig:  # type: ignore[no-untyped-def]
    layers: tuple[Layer, ...] = (
        Dense(n_out=6, activation="relu", dropout=0.2 if dropout else 0.0),
        *((Dropout(rate=0.3),) if dropout else ()),
        Dense(n_out=5, activation="tanh"),
        Output(n_out=3),
    )
    return NetworkConfig(seed=seed, input_type=InputType.feed_forward(4), layers=layers, **kwargs)


def _data(seed: int, n: int = 24) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed + 1000)
    x = rng.standard_normal((n, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.5).astype(np.int64)
    return x, y


def _trained(conf: NetworkConfig, x: np.ndarray, y: np.ndarray, **fit) -> np.ndarray:  # type: ignore[no-untyped-def]
    net = Network(conf)
    net.fit(x, y, **{"epochs": 2, "batch_size": 8, **fit})
    return net.params()


# ----------------------------------------------------------------------------- reproducibility


@pytest.mark.parametrize("dropout", [False, True])
def test_network_fixed_seed_two_epochs_bit_identical(dropout: bool, seed: int) -> None:
    x, y = _data(seed)
    a = _trained(_conf(seed, dropout=dropout), x, y)
    b = _trained(_conf(seed, dropout=dropout), x, y)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, Network(_conf(seed, dropout=dropout)).params())  # training moved them


@pytest.mark.parametrize("dropout", [False, True])
def test_network_different_seeds_differ(dropout: bool, seed: int) -> None:
    x, y = _data(seed)
    assert not np.array_equal(
        _trained(_conf(seed, dropout=dropout), x, y), _trained(_conf(seed + 1, dropout=dropout), x, y)
    )


def test_network_dropout_training_differs_from_no_dropout(seed: int) -> None:
    x, y = _data(seed)
    with_dropout = _conf(seed, dropout=True)
    plain = dataclasses.replace(
        with_dropout,
        layers=tuple(
            dataclasses.replace(layer, rate=0.0)
            if isinstance(layer, Dropout)
            else dataclasses.replace(layer, dropout=0.0)
            for layer in with_dropout.layers
        ),
    )
    assert not np.array_equal(_trained(with_dropout, x, y), _trained(plain, x, y))


def test_network_global_rng_state_does_not_affect_training(seed: int) -> None:
    import torch

    x, y = _data(seed)
    torch.manual_seed(1)
    a = _trained(_conf(seed, dropout=True), x, y)
    torch.manual_seed(2)
    b = _trained(_conf(seed, dropout=True), x, y)
    np.testing.assert_array_equal(a, b)


def test_network_shuffle_changes_result_and_is_reproducible(seed: int) -> None:
    x, y = _data(seed)
    shuffled = _trained(_conf(seed), x, y, shuffle=True)
    np.testing.assert_array_equal(shuffled, _trained(_conf(seed), x, y, shuffle=True))
    assert not np.array_equal(shuffled, _trained(_conf(seed), x, y, shuffle=False))


# ----------------------------------------------------------------------------- data forms


@dataclass
class _Batch:
    features: np.ndarray
    labels: np.ndarray


class _Batches:
    """Any iterable of objects with ``features``/``labels`` is a valid data source."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> None:
        self.x, self.y, self.batch_size = x, y, batch_size

    def __iter__(self) -> Iterator[_Batch]:
        for i in range(0, len(self.x), self.batch_size):
            yield _Batch(self.x[i : i + self.batch_size], self.y[i : i + self.batch_size])


def test_network_fit_arrays_equals_fit_array_iterator_unshuffled(seed: int) -> None:
    from deepspark.data import ArrayIterator

    x, y = _data(seed)
    arrays = _trained(_conf(seed), x, y, shuffle=False)
    net = Network(_conf(seed))
    net.fit(ArrayIterator(x, y, batch_size=8, shuffle=False), epochs=2)
    np.testing.assert_array_equal(net.params(), arrays)
    other = Network(_conf(seed))
    other.fit(_Batches(x, y, 8), epochs=2)
    np.testing.assert_array_equal(other.params(), arrays)
    assert net.iteration == other.iteration == 6 and net.epoch == 2


def test_network_class_indices_and_one_hot_train_identically(seed: int) -> None:
    x, y = _data(seed)
    one_hot = np.eye(3, dtype=np.float32)[y]
    np.testing.assert_allclose(_trained(_conf(seed), x, y), _trained(_conf(seed), x, one_hot), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(_trained(_conf(seed), x, y), _trained(_conf(seed), x, y[:, None]), rtol=0, atol=0)


def test_network_tensor_inputs_equal_numpy_inputs(seed: int) -> None:
    import torch

    x, y = _data(seed)
    np.testing.assert_array_equal(
        _trained(_conf(seed), x, y), _trained(_conf(seed), torch.from_numpy(x), torch.from_numpy(y))
    )


def test_network_fit_learns_simple_problem(seed: int) -> None:
    x, y = _data(seed, n=96)
    net = Network(_conf(seed, updater=Sgd(learning_rate=0.3)))
    before = net.score(x, y)
    net.fit(x, y, epochs=15, batch_size=16)
    assert net.score(x, y) < before * 0.7
    assert net.evaluate(x, y).accuracy() > 0.6


# ----------------------------------------------------------------------------- regularization


@pytest.mark.parametrize(
    "setting",
    [
        {"l2": 0.5},
        {"l1": 0.1},
        {"weight_decay": 0.5},
        {"gradient_normalization": "clip_element_wise", "gradient_normalization_threshold": 0.01},
        {"gradient_normalization": "renormalize_l2_per_layer"},
        {"gradient_normalization": "clip_l2_per_param_type", "gradient_normalization_threshold": 0.01},
    ],
)
def test_network_regularization_setting_changes_result(setting: dict, seed: int) -> None:  # type: ignore[type-arg]
    x, y = _data(seed)
    base = _trained(_conf(seed, updater=Sgd(learning_rate=0.1)), x, y)
    other = _trained(_conf(seed, updater=Sgd(learning_rate=0.1), **setting), x, y)
    assert not np.allclose(base, other)


def test_network_l2_shrinks_weights_not_biases(seed: int) -> None:
    x, y = _data(seed)
    conf = NetworkConfig(
        seed=seed,
        updater=Sgd(learning_rate=0.1),
        l2=5.0,
        input_type=InputType.feed_forward(4),
        layers=(Output(n_out=3),),
    )
    net = Network(conf)
    w0 = net.model.layers[0].weight.detach().clone()
    penalty = float(net.post.regularization_score())
    assert penalty == pytest.approx(0.5 * 5.0 * float((w0 * w0).sum()), rel=1e-5)  # biases are not penalized
    unregularized = Network(dataclasses.replace(conf, l2=0.0))
    assert net.score(x, y) == pytest.approx(unregularized.score(x, y) + penalty, rel=1e-5)
    net.fit(x, y, epochs=3, batch_size=24)
    assert float(net.model.layers[0].weight.detach().norm()) < float(w0.norm())
    bias = next(s for s in net.flat.segments if s.name == "layers.0.bias")
    assert net.post.l2 is not None and net.post.l2[bias.offset : bias.offset + bias.numel].eq(0).all()


def test_network_per_layer_l2_override_takes_effect(seed: int) -> None:
    x, y = _data(seed)
    sgd = Sgd(learning_rate=0.1)

    def layers(first_l2: float | None) -> tuple[Layer, ...]:
        return (Dense(n_out=6, activation="relu", l2=first_l2), Dense(n_out=5, activation="tanh"), Output(n_out=3))

    def first_weight(conf: NetworkConfig) -> np.ndarray:
        net = Network(conf)
        net.fit(x, y, epochs=2, batch_size=8)
        return net.model.layers[0].weight.detach().numpy().copy()

    ff = InputType.feed_forward(4)
    none = first_weight(NetworkConfig(seed=seed, updater=sgd, input_type=ff, layers=layers(None), l2=0.0))
    network_l2 = first_weight(NetworkConfig(seed=seed, updater=sgd, input_type=ff, layers=layers(None), l2=0.1))
    overridden = first_weight(NetworkConfig(seed=seed, updater=sgd, input_type=ff, layers=layers(0.0), l2=0.1))
    assert not np.allclose(none, network_l2)
    # The first layer's own l2=0.0 wins over the network's 0.1; other layers still regularize, so the
    # first layer's weights differ only through back-propagated effects, far less than with l2 on it.
    assert np.abs(overridden - none).max() < np.abs(network_l2 - none).max()
    net = Network(NetworkConfig(seed=seed, updater=sgd, input_type=ff, layers=layers(0.0), l2=0.1))
    assert net.post.l2 is not None
    seg = next(s for s in net.flat.segments if s.name == "layers.0.weight")
    assert float(net.post.l2[seg.offset : seg.offset + seg.numel].abs().sum()) == 0.0
    seg1 = next(s for s in net.flat.segments if s.name == "layers.1.weight")
    assert net.post.l2[seg1.offset : seg1.offset + seg1.numel].eq(0.1).all()


# ----------------------------------------------------------------------------- masks


def _lstm_net(seed: int) -> Network:
    return Network(
        NetworkConfig(
            seed=seed, input_type=InputType.recurrent(2), layers=(LSTM(n_out=4), LastTimeStep(), Output(n_out=2))
        )
    )


def test_network_lstm_features_mask_right_padding_equals_unpadded(seed: int) -> None:
    net = _lstm_net(seed)
    rng = np.random.default_rng(seed)
    lengths = [5, 3, 1]
    seqs = [rng.standard_normal((t, 2)).astype(np.float32) for t in lengths]
    padded = np.full((3, 5, 2), 7.0, dtype=np.float32)  # junk in the padding must not matter
    mask = np.zeros((3, 5), dtype=np.float32)
    for i, s in enumerate(seqs):
        padded[i, : len(s)] = s
        mask[i, : len(s)] = 1
    out = net.output(padded, features_mask=mask)
    for i, s in enumerate(seqs):
        np.testing.assert_allclose(out[i], net.output(s[None])[0], rtol=1e-5, atol=1e-6)
    assert not np.allclose(out[1], net.output(padded[1:2])[0])  # without the mask, padding leaks in


def test_network_rnn_output_labels_mask_ignores_padded_steps(seed: int) -> None:
    conf = NetworkConfig(
        seed=seed,
        updater=Sgd(learning_rate=0.1),
        input_type=InputType.recurrent(2, 4),
        layers=(LSTM(n_out=3), RnnOutput(n_out=2)),
    )
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((3, 4, 2)).astype(np.float32)
    y = rng.integers(0, 2, (3, 4))
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]], dtype=np.float32)
    y_other = y.copy()
    y_other[mask == 0] = 1 - y_other[mask == 0]  # change only the labels of masked steps

    def params(labels: np.ndarray, labels_mask: np.ndarray | None) -> np.ndarray:
        net = Network(conf)
        net.fit(x, labels, epochs=2, batch_size=3, labels_mask=labels_mask)
        return net.params()

    np.testing.assert_array_equal(params(y, mask), params(y_other, mask))
    assert not np.array_equal(params(y, None), params(y_other, None))


def test_network_rnn_output_score_labels_mask_is_mean_over_valid_steps(seed: int) -> None:
    conf = NetworkConfig(
        seed=seed, input_type=InputType.recurrent(2, 3), layers=(RnnOutput(n_out=1, activation="identity", loss="mse"),)
    )
    net = Network(conf)
    x = np.zeros((2, 3, 2), dtype=np.float32)  # output = bias = 0
    y = np.array([[[1.0], [2.0], [100.0]], [[3.0], [100.0], [100.0]]], dtype=np.float32)
    mask = np.array([[1, 1, 0], [1, 0, 0]], dtype=np.float32)
    from deepspark.data import DataSet

    assert net.score([DataSet(x, y, labels_mask=mask)]) == pytest.approx((1 + 4 + 9) / 3)


# ----------------------------------------------------------------------------- parameter-free networks


def test_network_fit_parameter_free_completes(seed: int) -> None:
    net = Network(NetworkConfig(seed=seed, input_type=InputType.feed_forward(2), layers=(LossLayer(loss="mse"),)))
    x = np.ones((4, 2), dtype=np.float32)
    net.fit(x, np.zeros((4, 2), dtype=np.float32), epochs=1, batch_size=2)
    assert net.last_score is not None and float(net.last_score) == pytest.approx(1.0)


# ----------------------------------------------------------------------------- reports


def _cnn(seed: int) -> Network:
    return Network(
        NetworkConfig(
            seed=seed,
            input_type=InputType.convolutional_flat(8, 8, 1),
            layers=(
                Conv2D(n_out=2, kernel=(3, 3), activation="relu", name="conv"),
                BatchNorm(),
                Subsampling2D(kernel=(2, 2), stride=(2, 2)),
                Dense(n_out=5, activation="relu", dropout=0.1),
                Output(n_out=3, name="out"),
            ),
        )
    )


def test_network_summary_lists_layers_and_param_counts_sum_to_total(seed: int) -> None:
    net = _cnn(seed)
    text = net.summary()
    expected = {
        "conv": ("Conv2D", 2 * 9 + 2),
        "layer1": ("BatchNorm", 4 * 2),
        "layer2": ("Subsampling2D", 0),
        "layer3": ("Dense", 18 * 5 + 5),
        "out": ("Output", 5 * 3 + 3),
    }
    counts = {}
    for name, (kind, n) in expected.items():
        row = next(line for line in text.splitlines() if re.match(rf"^\d+\s+{name}\s", line))
        assert kind in row
        count = int(row.split()[-1].replace(",", ""))
        assert count == n, row
        counts[name] = count
    assert sum(counts.values()) == net.num_params()
    assert f"total params: {net.num_params():,}" in text
    assert "[flat_to_cnn]" in text and "[cnn_to_ff]" in text


def test_network_memory_report_fields_consistent(seed: int) -> None:
    net = _cnn(seed)
    report = net.memory_report(batch_size=16)
    assert report.params == net.num_params() * 4
    assert report.gradients == net.flat.n_trainable * 4
    assert report.updater_state == net.updater.state.numel() * 4 > 0  # Adam keeps two moments
    assert report.input == 16 * 64 * 4
    assert [name for name, _ in report.activations] == ["conv", "layer1", "layer2", "layer3", "out"]
    assert all(b > 0 for _, b in report.activations)
    assert report.total == (
        report.params + report.gradients + report.updater_state + report.input + sum(b for _, b in report.activations)
    )
    assert report.activation_total == sum(b for _, b in report.activations)
    assert net.memory_report(batch_size=32).activation_total == 2 * report.activation_total
    assert "total" in str(report)


def test_network_memory_report_recurrent_input_counts_timesteps(seed: int) -> None:
    net = Network(
        NetworkConfig(
            seed=seed, input_type=InputType.recurrent(3, 10), layers=(LSTM(n_out=2), LastTimeStep(), Output(n_out=2))
        )
    )
    assert net.memory_report(batch_size=4).input == 4 * 10 * 3 * 4


def test_network_memory_report_float64_uses_eight_bytes(seed: int) -> None:
    net = Network(dataclasses.replace(_conf(seed), dtype="float64"))
    assert net.memory_report(batch_size=2).params == net.num_params() * 8


def _image_net(side: int, channels: int, dtype: str = "float32") -> Network:
    return Network(
        NetworkConfig(
            seed=0,
            dtype=dtype,  # type: ignore[arg-type]
            input_type=InputType.convolutional_flat(side, side, 1),
            layers=(
                Conv2D(n_out=channels, kernel=(5, 5), activation="relu"),
                Subsampling2D(kernel=(2, 2), stride=(2, 2)),
                Output(n_out=3),
            ),
        )
    )


def test_inference_batch_size_keeps_the_widest_activation_cache_sized() -> None:
    """Left to the network, a CPU forward pass takes the largest power of two of rows whose widest layer output
    fits the cache budget, within the bounds: 64 for LeNet's first convolution (20 x 24 x 24 floats per row)."""
    from deepspark.nn.inference_batch import INFERENCE_CACHE_BYTES, INFERENCE_ROWS

    low, high = INFERENCE_ROWS
    cases = {  # network -> (widest bytes per row, expected rows)
        "lenet": (_image_net(28, 20), 20 * 24 * 24 * 4, 64),
        "lenet float64": (_image_net(28, 20, "float64"), 20 * 24 * 24 * 8, 32),
        "mlp": (Network(_conf(0)), 6 * 4, high),
        "huge": (_image_net(200, 64), 64 * 196 * 196 * 4, low),
    }
    for name, (net, widest, expected) in cases.items():
        rows = net.inference_batch_size()
        assert rows == expected, name
        assert rows in (low, high) or rows * widest <= INFERENCE_CACHE_BYTES < 2 * rows * widest, name


def test_output_batch_size_none_matches_an_explicit_batch_and_bad_sizes_are_refused() -> None:
    net = _image_net(28, 20)
    x = np.random.default_rng(0).random((300, 784)).astype(np.float32)
    np.testing.assert_allclose(net.output(x), net.output(x, batch_size=1024), rtol=1e-5, atol=1e-7)
    labels = np.arange(300) % 3
    assert net.score(x, labels) == pytest.approx(net.score(x, labels, batch_size=300), rel=1e-5)
    for bad in (0, -1, 2.5, True, "64"):
        with pytest.raises(DataError, match=r"batch_size: expected a positive int, or None"):
            net.output(x, batch_size=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("form", ["convolutional", "convolutional_flat"])
def test_network_image_input_flat_or_shaped_arrays_same_output(form: str, seed: int) -> None:
    make = InputType.convolutional if form == "convolutional" else InputType.convolutional_flat
    net = Network(
        NetworkConfig(seed=seed, input_type=make(4, 5, 2), layers=(Conv2D(n_out=2, kernel=(2, 2)), Output(n_out=3)))
    )
    images = np.random.default_rng(seed).standard_normal((3, 2, 4, 5)).astype(np.float32)
    np.testing.assert_array_equal(net.output(images), net.output(images.reshape(3, -1)))
