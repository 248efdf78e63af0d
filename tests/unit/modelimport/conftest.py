"""Real Keras models (Keras 3 on its torch backend), written once per session as ``.keras`` and ``.h5`` files.

Every model gets random weights everywhere (biases, batch-norm statistics, PReLU slopes, GRU recurrent
biases included), so a conversion that drops or misplaces a weight cannot pass by accident.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ["KERAS_BACKEND"] = "torch"  # before Keras is imported anywhere in this process

Inputs = Callable[[np.random.Generator, int], list[np.ndarray]]


@dataclass(frozen=True)
class KerasCase:
    """A saved Keras model: the live model (to predict with), its two files and how to draw its inputs."""

    name: str
    model: Any
    keras_path: Path
    h5_path: Path
    inputs: Inputs

    def path(self, fmt: str) -> Path:
        return self.keras_path if fmt == "keras" else self.h5_path

    def predict(self, xs: list[np.ndarray]) -> list[np.ndarray]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = self.model.predict(xs if len(xs) > 1 else xs[0], verbose=0)
        return [np.asarray(o) for o in (out if isinstance(out, list) else [out])]


def _normal(*shapes: tuple[int, ...]) -> Inputs:
    return lambda rng, n: [rng.standard_normal((n, *s)).astype(np.float32) for s in shapes]


def _padded(steps: int, features: int) -> Inputs:
    """Sequences padded with zero steps at the end (lengths 1..steps), for the masking layers."""

    def draw(rng: np.random.Generator, n: int) -> list[np.ndarray]:
        x = rng.standard_normal((n, steps, features)).astype(np.float32)
        lengths = rng.integers(1, steps + 1, n)
        lengths[0] = steps
        x[np.arange(steps)[None, :] >= lengths[:, None]] = 0.0
        return [x]

    return draw


def _tokens(steps: int, vocab: int) -> Inputs:
    def draw(rng: np.random.Generator, n: int) -> list[np.ndarray]:
        x = rng.integers(1, vocab, (n, steps))
        lengths = rng.integers(1, steps + 1, n)
        x[np.arange(steps)[None, :] >= lengths[:, None]] = 0
        return [x.astype(np.int32)]

    return draw


def _randomize(model: Any, rng: np.random.Generator) -> None:
    """Random values for every weight; variances stay positive."""
    for layer in model.layers:
        values = []
        for w in layer.weights:
            shape = tuple(w.shape)
            v = rng.normal(0.0, 0.4, shape).astype(np.float32)
            if "variance" in w.path:
                v = np.abs(v) + 0.5
            values.append(v)
        if values:
            layer.set_weights(values)


def _build(keras: Any) -> dict[str, tuple[Any, Inputs]]:
    L = keras.layers
    Seq, Input = keras.Sequential, keras.Input
    models: dict[str, tuple[Any, Inputs]] = {}

    mlp = Seq(
        [
            Input((6,)),
            L.Dense(8, activation="relu", kernel_regularizer=keras.regularizers.L2(1e-3)),
            L.Dropout(0.3),
            L.Dense(5, activation="leaky_relu"),
            L.Dense(7, activation="tanh", use_bias=False),
            L.Dense(3, activation="softmax"),
        ]
    )
    mlp.compile(loss="sparse_categorical_crossentropy", optimizer=keras.optimizers.Adam(2e-3))
    models["mlp"] = (mlp, _normal((6,)))

    models["cnn"] = (
        Seq(
            [
                Input((10, 10, 3)),
                L.Conv2D(4, 3, strides=2, padding="same"),
                L.BatchNormalization(),
                L.ReLU(max_value=6.0),
                L.MaxPooling2D(2, padding="same"),
                L.SpatialDropout2D(0.2),
                L.Conv2D(6, 3, dilation_rate=2, groups=2, padding="same", activation="selu"),
                L.AveragePooling2D(2, strides=1, padding="same"),
                L.Conv2D(5, (2, 3), padding="valid", activation="sigmoid"),
                L.Flatten(),
                L.Dense(4, activation="softmax"),
            ]
        ),
        _normal((10, 10, 3)),
    )
    models["conv_more"] = (
        Seq(
            [
                Input((9, 9, 4)),
                L.ZeroPadding2D(((1, 0), (2, 1))),
                L.DepthwiseConv2D(3, depth_multiplier=2, strides=2, padding="same", activation="relu6"),
                L.SeparableConv2D(5, 3, padding="same", activation="elu"),
                L.Conv2DTranspose(3, 4, strides=2, padding="same", activation="softplus"),
                L.Conv2DTranspose(2, 3, strides=1, padding="valid"),
                L.Cropping2D(((1, 1), (0, 1))),
                L.UpSampling2D(2),
                L.PReLU(shared_axes=[1, 2]),
                L.MaxPooling2D(3, strides=2),
                L.GlobalAveragePooling2D(),
                L.Dense(3),
            ]
        ),
        _normal((9, 9, 4)),
    )
    conv1d = Seq(
        [
            Input((12, 3)),
            L.Conv1D(4, 3, padding="causal", dilation_rate=2, activation="relu"),
            L.ZeroPadding1D((1, 2)),
            L.Conv1D(6, 2, strides=2, padding="same", groups=2),
            L.MaxPooling1D(2),
            L.UpSampling1D(2),
            L.Cropping1D((1, 0)),
            L.SpatialDropout1D(0.1),
            L.AveragePooling1D(2, padding="same"),
            L.GlobalMaxPooling1D(),
            L.Dense(2, activation="sigmoid"),
        ]
    )
    conv1d.compile(loss="binary_crossentropy", optimizer="sgd")
    models["conv1d"] = (conv1d, _normal((12, 3)))
    models["activations"] = (
        Seq(
            [
                Input((7,)),
                L.Dense(8),
                L.LeakyReLU(negative_slope=0.2),
                L.Dense(8),
                L.ELU(alpha=0.7),
                L.Dense(8),
                L.ReLU(max_value=2.0, negative_slope=0.1, threshold=0.3),
                L.Dense(8),
                L.PReLU(),
                L.Dense(8, activation="gelu"),
                L.Activation("swish"),
                L.Dense(8, activation="hard_sigmoid"),
                L.Dense(4),
                L.Softmax(),
            ]
        ),
        _normal((7,)),
    )
    models["shapes"] = (
        Seq(
            [
                Input((4, 6)),
                L.Permute((2, 1)),
                L.Reshape((3, 8)),
                L.Dense(4),
                L.Flatten(),
                L.Reshape((2, 3, -1)),
                L.Conv2D(2, 1),
                L.Permute((3, 1, 2)),
                L.Flatten(),
                L.Dense(3, activation="linear"),
            ]
        ),
        _normal((4, 6)),
    )
    models["recurrent"] = (
        Seq(
            [
                Input((5, 3)),
                L.Masking(0.0),
                L.SimpleRNN(4, return_sequences=True),
                L.LSTM(5, return_sequences=True),
                L.GRU(4, reset_after=False, return_sequences=True),
                L.TimeDistributed(L.Dense(3, activation="tanh")),
                L.LayerNormalization(),
                L.GRU(3),
                L.Dense(2),
            ]
        ),
        _padded(5, 3),
    )
    models["bidirectional"] = (
        Seq(
            [
                Input((6, 4)),
                L.Bidirectional(L.SimpleRNN(3, activation="relu", return_sequences=True), merge_mode="ave"),
                L.Bidirectional(L.LSTM(3, return_sequences=True), merge_mode="sum"),
                L.Bidirectional(L.GRU(2, reset_after=False, return_sequences=True), merge_mode="mul"),
                L.Bidirectional(L.LSTM(2)),
                L.Dense(2, activation="softmax"),
            ]
        ),
        _normal((6, 4)),
    )
    models["embedding"] = (
        Seq(
            [
                Input((6,), dtype="int32"),
                L.Embedding(20, 4, mask_zero=True),
                L.LSTM(3),
                L.Dense(2, activation="softmax"),
            ]
        ),
        _tokens(6, 20),
    )
    models["textcnn"] = (
        Seq(
            [
                Input((7,), dtype="int32"),
                L.Embedding(20, 4),
                L.Conv1D(3, 2, activation="relu"),
                L.GlobalAveragePooling1D(),
                L.Dense(2, activation="softmax"),
            ]
        ),
        _tokens(7, 20),
    )
    models["sequence_out"] = (
        Seq([Input((5, 3)), L.BatchNormalization(), L.LSTM(4, return_sequences=True), L.Dense(2)]),
        _normal((5, 3)),
    )
    models["image_out"] = (
        Seq([Input((6, 5, 2)), L.Conv2D(3, 1, activation="sigmoid")]),
        _normal((6, 5, 2)),
    )
    models["multi_io"] = (_multi_io(keras), _normal((6,), (4, 5), (8, 8, 2)))
    models["residual"] = (_residual(keras), _normal((8, 8, 3)))
    return models


def _multi_io(keras: Any) -> Any:
    L = keras.layers
    a, b, c = keras.Input((6,), name="a"), keras.Input((4, 5), name="b"), keras.Input((8, 8, 2), name="c")
    x = L.Dense(4, activation="tanh", name="da")(a)
    y = L.LSTM(4, name="lstm")(b)
    z = L.Dense(4, name="dz")(L.GlobalMaxPooling2D()(L.Conv2D(3, 3, name="conv")(c)))
    merged = L.Concatenate()([x, y, z])
    combined = L.Concatenate()(
        [
            merged,
            L.Subtract()([x, y]),
            L.Multiply()([x, z]),
            L.Average()([x, y, z]),
            L.Maximum()([y, z]),
            L.Add()([x, y, z]),
            L.Dot(axes=1, normalize=True)([x, y]),
            L.Dot(axes=-1)([y, z]),
        ]
    )
    out1 = L.Dense(3, activation="softmax", name="cls")(combined)
    out2 = L.Dense(1, name="reg")(merged)
    model = keras.Model([a, b, c], [out1, out2])
    model.compile(loss=["sparse_categorical_crossentropy", "mse"], optimizer="rmsprop")
    return model


def _residual(keras: Any) -> Any:
    L = keras.layers
    inp = keras.Input((8, 8, 3))
    x = L.Activation("relu")(L.BatchNormalization()(L.Conv2D(4, 3, padding="same")(inp)))
    y = L.BatchNormalization(momentum=0.9, epsilon=1e-5)(L.Conv2D(4, 3, padding="same")(x))
    h = L.Activation("relu")(L.Add()([x, y]))
    feat = L.Dense(5, name="features")(L.GlobalAveragePooling2D()(h))
    out = L.Dense(2, activation="softmax", name="probs")(feat)
    return keras.Model(inp, [out, feat])  # 'features' is an output that also feeds another layer


@pytest.fixture(scope="session")
def keras_module() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import keras

        keras.utils.set_random_seed(1234)
    return keras


@pytest.fixture(scope="session")
def keras_cases(tmp_path_factory: pytest.TempPathFactory, keras_module: Any) -> dict[str, KerasCase]:
    folder = tmp_path_factory.mktemp("keras-models")
    rng = np.random.default_rng(1234)
    cases = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, (model, inputs) in _build(keras_module).items():
            _randomize(model, rng)
            keras_path, h5_path = folder / f"{name}.keras", folder / f"{name}.h5"
            model.save(keras_path)
            model.save(h5_path)
            cases[name] = KerasCase(name, model, keras_path, h5_path, inputs)
    return cases


@pytest.fixture
def quiet_keras(keras_module: Any) -> Iterator[Any]:
    """Keras for a test that builds its own model, with Keras' own warnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield keras_module


def _strip_keras3(value: Any) -> Any:
    """Keras 2 configs have no module/registered_name/build_config keys and plain dtype strings."""
    if isinstance(value, dict):
        if value.get("class_name") == "DTypePolicy":
            return value["config"]["name"]
        skip = ("module", "registered_name", "build_config", "shared_object_id")
        return {k: _strip_keras3(v) for k, v in value.items() if k not in skip}
    if isinstance(value, list):
        return [_strip_keras3(v) for v in value]
    return value


def _keras2_nodes(nodes: list[Any]) -> list[Any]:
    out = []
    for node in nodes:
        refs: list[Any] = []

        def walk(v: Any, refs: list[Any] = refs) -> None:
            if isinstance(v, dict) and v.get("class_name") == "__keras_tensor__":
                name, node_index, tensor_index = v["config"]["keras_history"]
                refs.append([name, node_index, tensor_index, {}])
            elif isinstance(v, dict):
                for x in v.values():
                    walk(x)
            elif isinstance(v, list):
                for x in v:
                    walk(x)

        walk(node["args"])
        out.append(refs)
    return out


def _to_keras2(config: dict[str, Any]) -> dict[str, Any]:
    body = config["config"]
    for layer in body["layers"]:
        if "inbound_nodes" in layer:
            layer["inbound_nodes"] = _keras2_nodes(layer["inbound_nodes"])
        cfg = layer["config"]
        if "batch_shape" in cfg:
            cfg["batch_input_shape"] = cfg.pop("batch_shape")
    for key in ("input_layers", "output_layers"):
        if key in body and isinstance(body[key][0], str):
            body[key] = [body[key]]
    stripped: dict[str, Any] = _strip_keras3(config)
    return stripped


@pytest.fixture
def keras2_copy(tmp_path: Path) -> Callable[[Path], Path]:
    """Rewrite a Keras-3-written .h5 the way a Keras 2 (tf.keras) writer lays it out."""
    import json
    import shutil

    import h5py

    def convert(src: Path) -> Path:
        dst = tmp_path / f"{src.stem}-keras2.h5"
        shutil.copy(src, dst)
        with h5py.File(dst, "r+") as f:
            f.attrs["model_config"] = json.dumps(_to_keras2(json.loads(f.attrs["model_config"])))
            f.attrs["keras_version"] = "2.15.0"
            weights = f["model_weights"]
            for layer_name in list(weights):
                group = weights[layer_name]
                names = [n.decode() if isinstance(n, bytes) else str(n) for n in group.attrs["weight_names"]]
                renamed = []
                for name in names:
                    parts = name.split("/")
                    new = "/".join(parts[parts.index(layer_name) :]) + ":0"
                    data = group[name][()]
                    del group[name]
                    group.create_dataset(new, data=data)
                    renamed.append(new)
                group.attrs["weight_names"] = np.array(renamed, dtype="S")
        return dst

    return convert
