"""Contract tests over every registered layer tag: JSON round trip, compile + forward shapes, validation."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import torch

from deepspark.config import (
    GRU,
    LSTM,
    Activation,
    BatchNorm,
    Bidirectional,
    Conv1D,
    Conv2D,
    Cropping1D,
    Cropping2D,
    Deconv2D,
    Dense,
    Dropout,
    Elu,
    Embedding,
    EmbeddingSequence,
    Flatten,
    GlobalPooling,
    InputType,
    LastTimeStep,
    Layer,
    LayerNorm,
    LeakyRelu,
    LossLayer,
    Masking,
    NetworkConfig,
    Output,
    Permute,
    PRelu,
    Relu,
    Reshape,
    RnnOutput,
    SimpleRnn,
    SpatialDropout,
    Subsampling1D,
    Subsampling2D,
    TorchLayer,
    Upsampling1D,
    Upsampling2D,
    ZeroPadding1D,
    ZeroPadding2D,
)
from deepspark.config._spec import registered
from deepspark.errors import ConfigError
from deepspark.nn import Network
from deepspark.nn.layers import preprocess

FF = InputType.feed_forward(4)
CONV = InputType.convolutional(8, 8, 2)
RNN = InputType.recurrent(3, 5)


@dataclass(frozen=True)
class Case:
    """One valid layer of a tag, the network around it, and one invalid value it must reject."""

    layer: Layer
    input_type: InputType
    tail: tuple[Layer, ...]
    bad_field: str  # the field (path) the invalid value is given to
    bad_value: Any
    bad_path: str = ""  # the error's expected path when it is not ``bad_field`` (tuple elements)
    hint: str = ""  # text the rejection message must contain (e.g. a suggestion)
    features: Callable[[np.random.Generator, int], np.ndarray] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _indices(high: int, shape: tuple[int, ...]) -> Callable[[np.random.Generator, int], np.ndarray]:
    return lambda rng, n: rng.integers(0, high, size=(n, *shape)).astype(np.float32)


TO_FF = (Output(n_out=2),)
TO_RNN = (RnnOutput(n_out=2),)

# One case per registered tag. A new layer tag without an entry here fails test_factory_covers_every_tag.
CASES: dict[str, Case] = {
    "dense": Case(Dense(n_out=3, activation="relu"), FF, TO_FF, "n_out", 0),
    "output": Case(Output(n_out=3, loss="mcxent"), FF, (), "activation", "relux", hint="did you mean 'relu'"),
    "loss": Case(LossLayer(activation="tanh", loss="mse"), FF, (), "loss", "msee", hint="did you mean 'mse'"),
    "activation": Case(Activation(activation="elu"), FF, TO_FF, "activation", "relux", hint="did you mean 'relu'"),
    "dropout": Case(Dropout(rate=0.3), FF, TO_FF, "rate", 1.5),
    "batch_norm": Case(BatchNorm(decay=0.8), CONV, TO_FF, "decay", 1.5),
    "layer_norm": Case(LayerNorm(), RNN, TO_RNN, "eps", 0.0),
    "embedding": Case(
        Embedding(vocab_size=7, n_out=3),
        InputType.feed_forward(1),
        TO_FF,
        "vocab_size",
        0,
        features=_indices(7, (1,)),
    ),
    "embedding_sequence": Case(
        EmbeddingSequence(vocab_size=7, n_out=3),
        InputType.feed_forward(5),
        TO_RNN,
        "n_out",
        -1,
        features=_indices(7, (5,)),
    ),
    "conv1d": Case(Conv1D(n_out=3, kernel=2, activation="relu"), RNN, TO_RNN, "kernel", 0),
    "conv2d": Case(Conv2D(n_out=3, kernel=(3, 2), stride=(2, 1)), CONV, TO_FF, "kernel", (0, 3), "kernel[0]"),
    "deconv2d": Case(Deconv2D(n_out=3, kernel=(3, 2), stride=(2, 2)), CONV, TO_FF, "stride", (1, 0), "stride[1]"),
    "subsampling1d": Case(Subsampling1D(kernel=2, stride=2), RNN, TO_RNN, "stride", 0),
    "subsampling2d": Case(
        Subsampling2D(kernel=(2, 2), pooling="avg"), CONV, TO_FF, "pooling", "maxx", hint="did you mean 'max'"
    ),
    "upsampling2d": Case(Upsampling2D(size=(2, 3)), CONV, TO_FF, "size", (0, 2), "size[0]"),
    "zero_padding2d": Case(ZeroPadding2D(padding=(1, 0, 2, 1)), CONV, TO_FF, "padding", (0, -1, 0, 0), "padding[1]"),
    "cropping2d": Case(Cropping2D(cropping=(1, 0, 2, 1)), CONV, TO_FF, "cropping", (0, 0, -1, 0), "cropping[2]"),
    "global_pooling": Case(GlobalPooling(pooling="avg"), RNN, TO_FF, "pnorm", 0),
    "simple_rnn": Case(SimpleRnn(n_out=4, activation="relu"), RNN, TO_RNN, "activation", "sigmoid"),
    "lstm": Case(LSTM(n_out=4), RNN, TO_RNN, "n_out", 0),
    "gru": Case(GRU(n_out=4), RNN, TO_RNN, "dropout", 1.5),
    "bidirectional": Case(Bidirectional(layer=LSTM(n_out=4), mode="concat"), RNN, TO_RNN, "layer", Dense(n_out=2)),
    "rnn_output": Case(RnnOutput(n_out=3), RNN, (), "loss", "mcxentt", hint="did you mean 'mcxent'"),
    "last_time_step": Case(LastTimeStep(), RNN, TO_FF, "l2", -0.1),
    "flatten": Case(
        Flatten(layout="channels_last"), CONV, TO_FF, "layout", "channels_lasst", hint="did you mean 'channels_last'"
    ),
    "reshape": Case(Reshape(shape=(4, 8, 4), layout="channels_last"), CONV, TO_FF, "shape", (4, 0, 4), "shape[1]"),
    "permute": Case(Permute(dims=(2, 1)), RNN, TO_RNN, "dims", 5),
    "leaky_relu": Case(LeakyRelu(slope=0.3), FF, TO_FF, "slope", -0.1),
    "elu": Case(Elu(alpha=0.5), RNN, TO_RNN, "alpha", -1.0),
    "relu": Case(Relu(max_value=6.0, negative_slope=0.1, threshold=0.5), CONV, TO_FF, "max_value", 0.0),
    "prelu": Case(PRelu(shared_axes=(2, 3)), CONV, TO_FF, "shared_axes", (1, 0), "shared_axes[1]"),
    "zero_padding1d": Case(ZeroPadding1D(padding=(2, 1)), RNN, TO_RNN, "padding", (0, -1), "padding[1]"),
    "cropping1d": Case(Cropping1D(cropping=(1, 2)), RNN, TO_RNN, "cropping", (-1, 0), "cropping[0]"),
    "upsampling1d": Case(Upsampling1D(size=2), RNN, TO_RNN, "size", 0),
    "masking": Case(Masking(mask_value=0.0), RNN, TO_RNN, "mask_value", "x"),
    "spatial_dropout": Case(SpatialDropout(rate=0.2), CONV, TO_FF, "rate", 1.5),
    "torch_layer": Case(
        TorchLayer(factory="torch.nn:Linear", kwargs={"in_features": 4, "out_features": 3}, n_out=3),
        FF,
        TO_FF,
        "n_out",
        0,
    ),
}

TAGS = sorted(registered(Layer))


def _features(case: Case, rng: np.random.Generator, n: int) -> np.ndarray:
    if case.features is not None:
        return case.features(rng, n)
    shape = tuple(5 if d is None else d for d in case.input_type.shape())
    return rng.standard_normal((n, *shape)).astype(np.float32)


def _labels(conf: NetworkConfig, rng: np.random.Generator, n: int) -> np.ndarray:
    out = conf.output_type()
    last = conf.layers[-1]
    steps = () if out.form != "recurrent" else (out.timesteps or 5,)
    if getattr(last, "loss", "") in ("mcxent", "negativeloglikelihood"):
        return rng.integers(0, out.size, size=(n, *steps))
    return rng.standard_normal((n, *steps, out.size)).astype(np.float32)


def _received(case: Case) -> str:
    """How the rejection message must show the offending value."""
    value = case.bad_value
    if isinstance(value, Layer):
        return type(value).__name__
    if isinstance(value, tuple):
        index = int(case.bad_path.rsplit("[", 1)[1].rstrip("]"))
        return repr(value[index])
    return repr(value)


def _expected_shape(t: InputType, timesteps: int) -> tuple[int, ...]:
    return tuple(timesteps if d is None else d for d in t.shape())


def test_factory_covers_every_tag() -> None:
    assert set(CASES) == set(TAGS), (
        f"layer tags without a contract case: {sorted(set(TAGS) - set(CASES))}; "
        f"cases for unknown tags: {sorted(set(CASES) - set(TAGS))}"
    )
    for tag, case in CASES.items():
        assert case.layer.tag == tag


@pytest.mark.parametrize("tag", TAGS)
def test_layer_json_round_trip_equal_spec_and_json(tag: str) -> None:
    layer = CASES[tag].layer
    text = layer.to_json()
    back = Layer.from_json(text)
    assert back == layer
    assert type(back) is type(layer)
    assert back.to_json() == text
    assert json.loads(text)["type"] == tag
    assert Layer.from_dict(json.loads(json.dumps(layer.to_dict()))) == layer


@pytest.mark.parametrize("tag", TAGS)
def test_layer_inside_network_json_round_trip_equal(tag: str) -> None:
    case = CASES[tag]
    conf = NetworkConfig(input_type=case.input_type, layers=(case.layer, *case.tail))
    back = NetworkConfig.from_json(conf.to_json())
    assert back == conf
    assert back.to_json() == conf.to_json()


@pytest.mark.parametrize("tag", TAGS)
def test_layer_compiled_forward_matches_inferred_shapes(tag: str, seed: int) -> None:
    case = CASES[tag]
    conf = NetworkConfig(input_type=case.input_type, layers=(case.layer, *case.tail), seed=seed)
    net = Network(conf)
    rng = np.random.default_rng(seed)
    n, steps = 3, 5
    x = _features(case, rng, n)
    # Walk the compiled stack by hand: every layer's output has its inferred shape.
    h, mask = torch.from_numpy(x), None
    net.model.eval()
    with torch.no_grad():
        for plan, layer in zip(net.model.plans, net.model.layers, strict=True):
            h = preprocess(plan.preprocessor, h, plan)
            assert tuple(h.shape) == (n, *_expected_shape(plan.input_type, steps)), f"input of {plan.name}"
            h, mask = layer(h, mask)
            assert tuple(h.shape) == (n, *_expected_shape(plan.output_type, steps)), f"output of {plan.name}"
    out = net.output(x)
    assert out.shape == (n, *_expected_shape(conf.output_type(), steps))
    assert np.isfinite(out).all()


@pytest.mark.parametrize("tag", TAGS)
def test_layer_one_fit_step_changes_params_and_stays_finite(tag: str, seed: int) -> None:
    case = CASES[tag]
    conf = NetworkConfig(input_type=case.input_type, layers=(case.layer, *case.tail), seed=seed)
    net = Network(conf)
    rng = np.random.default_rng(seed)
    x = _features(case, rng, 4)
    y = _labels(conf, rng, 4)
    if net.flat.n_trainable == 0:  # nothing to train (fit: see test_network_fit_parameter_free_completes)
        assert np.isfinite(net.score(x, y))
        return
    before = net.params()
    net.fit(x, y, epochs=1, batch_size=4)
    after = net.params()
    assert np.isfinite(after).all()
    assert not np.array_equal(before, after)
    assert net.last_score is not None and np.isfinite(float(net.last_score))


@pytest.mark.parametrize("tag", TAGS)
def test_layer_invalid_value_config_error_names_field(tag: str) -> None:
    case = CASES[tag]
    kwargs = {f.name: getattr(case.layer, f.name) for f in dataclasses.fields(case.layer)}
    kwargs[case.bad_field] = case.bad_value
    with pytest.raises(ConfigError) as info:
        type(case.layer)(**kwargs)
    assert info.value.path == (case.bad_path or case.bad_field)
    assert _received(case) in info.value.message  # the message shows what it got
    if case.hint:
        assert case.hint in str(info.value)


@pytest.mark.parametrize("tag", TAGS)
def test_layer_invalid_value_in_network_json_path_names_layer_and_field(tag: str) -> None:
    case = CASES[tag]
    conf = NetworkConfig(input_type=case.input_type, layers=(case.layer, *case.tail))
    data = conf.to_dict()
    bad = case.bad_value.to_dict() if isinstance(case.bad_value, Layer) else case.bad_value
    data["layers"][0][case.bad_field] = list(bad) if isinstance(bad, tuple) else bad
    with pytest.raises(ConfigError) as info:
        NetworkConfig.from_dict(data)
    assert info.value.path == f"layers[0].{case.bad_path or case.bad_field}"


@pytest.mark.parametrize("tag", TAGS)
def test_layer_from_dict_unknown_key_suggests_closest_field(tag: str) -> None:
    layer = CASES[tag].layer
    base = {f.name for f in dataclasses.fields(Layer)}
    own = [f.name for f in dataclasses.fields(layer) if f.name not in base]
    name = own[0] if own else "dropout"
    typo = name + name[-1]
    data = layer.to_dict()
    data[typo] = data.get(name, 0.1)
    with pytest.raises(ConfigError) as info:
        Layer.from_dict(data)
    assert info.value.path == typo
    assert f"did you mean '{name}'?" in str(info.value)


def test_layer_from_dict_unknown_type_suggests_closest_tag() -> None:
    with pytest.raises(ConfigError) as info:
        Layer.from_dict({"type": "dense2", "n_out": 3})
    assert info.value.path == "type"
    assert "did you mean 'dense'?" in str(info.value)


def test_layer_from_dict_updater_tag_as_layer_rejected() -> None:
    with pytest.raises(ConfigError, match="expected a layer, got the updater 'adam'"):
        Layer.from_dict({"type": "adam"})


def test_layer_from_dict_missing_required_field_config_error() -> None:
    with pytest.raises(ConfigError, match="n_out"):
        Layer.from_dict({"type": "dense"})


@pytest.mark.parametrize(
    ("make", "path"),
    [
        (lambda: Dense(n_out=-1), "n_out"),
        (lambda: Dense(n_out=3, dropout=1.0), "dropout"),
        (lambda: Dense(n_out=3, dropout=-0.1), "dropout"),
        (lambda: Dense(n_out=3, weight_init="xavierr"), "weight_init"),
        (lambda: Dense(n_out=True), "n_out"),
        (lambda: Dense(n_out=2.5), "n_out"),
        (lambda: Dense(n_out=3, l2=float("nan")), "l2"),
        (lambda: Conv2D(n_out=3, kernel=(3,)), "kernel"),
        (lambda: Conv2D(n_out=3, padding=(0, -1)), "padding[1]"),
        (lambda: Conv2D(n_out=3, dilation=(0, 1)), "dilation[0]"),
        (lambda: Conv2D(n_out=3, convolution_mode="valid"), "convolution_mode"),
        (lambda: Subsampling2D(kernel=(2, 2), padding=(2, 0)), "padding[0]"),
        (lambda: Conv1D(n_out=3, padding=-1), "padding"),
        (lambda: BatchNorm(eps=0.0), "eps"),
        (lambda: Bidirectional(layer=LSTM(n_out=2), mode="sum"), "mode"),
        (lambda: Dropout(rate=-0.5), "rate"),
    ],
)
def test_layer_constructor_invalid_value_config_error_with_path(make: Callable[[], Layer], path: str) -> None:
    with pytest.raises(ConfigError) as info:
        make()
    assert info.value.path == path
    assert str(info.value).startswith(f"{path}: ")


def test_layer_dataclass_replace_revalidates() -> None:
    layer = Dense(n_out=3)
    assert dataclasses.replace(layer, n_out=5).n_out == 5
    with pytest.raises(ConfigError, match="n_out"):
        dataclasses.replace(layer, n_out=0)


def test_layer_spec_frozen_assignment_rejected() -> None:
    layer = Dense(n_out=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        layer.n_out = 4  # type: ignore[misc]


def test_layer_list_values_normalized_to_tuples_equal() -> None:
    assert Conv2D(n_out=2, kernel=[3, 3]) == Conv2D(n_out=2, kernel=(3, 3))  # type: ignore[arg-type]
    assert Conv2D(n_out=2, kernel=[3, 3]).kernel == (3, 3)  # type: ignore[arg-type]


@pytest.mark.parametrize(("setting", "value"), [("dropout", 0.2), ("l2", 0.1), ("weight_init", "zero"), ("name", "x")])
def test_bidirectional_wrapped_layer_own_settings_config_error(setting: str, value: Any) -> None:
    with pytest.raises(ConfigError, match="set it on Bidirectional instead") as info:
        Bidirectional(layer=LSTM(n_out=2, **{setting: value}))
    assert info.value.path == f"layer.{setting}"
    assert Bidirectional(layer=LSTM(n_out=2), **{setting: value}).layer == LSTM(n_out=2)
