"""ModuleConfig and TorchLayer as specs: JSON round trip, dispatch through config_from_json, validation."""

from __future__ import annotations

import json
from typing import Any

import pytest

from deepspark.config import (
    Adam,
    Dense,
    GraphConfig,
    InputType,
    LayerVertex,
    ModuleConfig,
    NetworkConfig,
    Output,
    TorchLayer,
    config_from_dict,
    config_from_json,
)
from deepspark.errors import ConfigError

RESNET = "deepspark_testmodels.resnet:small_resnet"


def _module(**over: Any) -> ModuleConfig:
    fields: dict[str, Any] = dict(
        factory=RESNET, kwargs={"classes": 10, "channels": 4}, input_shape=(1, 28, 28), n_out=10, loss="mcxent",
        updater=Adam(learning_rate=1e-3), seed=42,
    )
    return ModuleConfig(**{**fields, **over})


def _graph() -> GraphConfig:
    layer = TorchLayer(factory="torch.nn:Linear", kwargs={"in_features": 4, "out_features": 6}, n_out=6)
    return GraphConfig(
        inputs=("x",),
        input_types=(InputType.feed_forward(4),),
        vertices=(LayerVertex(name="mine", inputs=("x",), layer=layer),
                  LayerVertex(name="out", inputs=("mine",), layer=Output(n_out=2))),
        outputs=("out",),
    )


@pytest.mark.parametrize(
    "conf",
    [
        _module(),
        NetworkConfig(input_type=InputType.feed_forward(4), layers=(
            Dense(n_out=4), TorchLayer(factory="torch.nn:Linear", kwargs={"in_features": 4, "out_features": 5},
                                       n_out=5), Output(n_out=3))),
        _graph(),
    ],
    ids=["module", "torch-layer-in-stack", "torch-layer-in-graph"],
)
def test_root_config_json_round_trip_through_config_from_json_equal(conf: Any) -> None:
    text = conf.to_json()
    back = config_from_json(text)
    assert type(back) is type(conf)
    assert back == conf
    assert back.to_json() == text
    assert config_from_dict(json.loads(text)) == conf
    assert hash(back) == hash(conf)  # kwargs is a dict, yet the spec stays hashable


def test_module_config_json_holds_factory_reference_and_kwargs_as_data() -> None:
    data = json.loads(_module().to_json())
    assert data["type"] == "module"
    assert data["factory"] == RESNET
    assert data["kwargs"] == {"classes": 10, "channels": 4}
    assert data["input_shape"] == [1, 28, 28]


def test_module_config_kwargs_tuple_normalized_and_copied() -> None:
    kwargs: dict[str, Any] = {"sizes": (3, 4), "nested": {"a": [1.5]}}
    conf = _module(kwargs=kwargs)
    kwargs["sizes"] = "changed"
    assert conf.kwargs == {"sizes": [3, 4], "nested": {"a": [1.5]}}
    assert config_from_json(conf.to_json()) == conf


def test_module_config_sequential_view_infers_flat_image_input() -> None:
    conf = _module()
    assert conf.input_type == InputType.convolutional_flat(28, 28, 1)
    plans = conf.plan()
    assert [type(p.layer).__name__ for p in plans] == ["TorchLayer", "LossLayer"]
    assert plans[0].preprocessor == "flat_to_cnn"
    assert conf.output_activation == "softmax"
    assert _module(loss="mse", activation=None).output_activation == "identity"
    assert _module(input_shape=(7, 3)).input_type == InputType.feed_forward(21)


@pytest.mark.parametrize(
    ("over", "path", "text"),
    [
        ({"factory": "myproject.models.small_resnet"}, "factory", "'package.module:function'"),
        ({"factory": "my project:f"}, "factory", "'my project:f'"),
        ({"factory": "pkg:1abc"}, "factory", "'pkg:1abc'"),
        ({"factory": ""}, "factory", "''"),
        ({"kwargs": {"layer": object()}}, "kwargs.layer", "never objects or code"),
        ({"kwargs": {1: 2}}, "kwargs", "string keys"),
        ({"kwargs": {"x": float("nan")}}, "kwargs.x", "finite"),
        ({"input_shape": ()}, "input_shape", "per-example shape"),
        ({"input_shape": (1, 0, 28)}, "input_shape[1]", "positive"),
        ({"input_shape": (1, 2, 3, 4, 5)}, "input_shape", "1 to 4"),
        ({"n_out": 0}, "n_out", "positive"),
        ({"loss": "mcxentt"}, "loss", "did you mean 'mcxent'"),
        ({"l2": -1.0}, "l2", ">= 0"),
    ],
)
def test_module_config_invalid_value_config_error_names_field(over: dict[str, Any], path: str, text: str) -> None:
    with pytest.raises(ConfigError) as info:
        _module(**over)
    assert info.value.path == path
    assert text in str(info.value)


def test_module_config_from_dict_unknown_field_suggests_closest() -> None:
    data = _module().to_dict()
    data["facotry"] = data.pop("factory")
    with pytest.raises(ConfigError, match="did you mean 'factory'"):
        config_from_dict(data)


def test_config_from_json_rejects_non_root_tags_and_bad_json() -> None:
    with pytest.raises(ConfigError, match="expected a network config, got the layer 'dense'"):
        config_from_dict({"type": "dense", "n_out": 3})
    with pytest.raises(ConfigError, match="did you mean 'module'"):
        config_from_dict({"type": "modul"})
    with pytest.raises(ConfigError, match="not valid JSON"):
        config_from_json("{")


@pytest.mark.parametrize(
    ("over", "path"),
    [
        ({"n_out": None}, "n_out"),
        ({"output_shape": (4, 2, 2)}, "n_out"),
        ({"n_out": None, "output_shape": (1, 2, 3, 4, 5)}, "output_shape"),
        ({"n_out": None, "output_shape": (2, 2, 2, 2)}, "output_shape"),
        ({"weight_init": "xavier"}, "weight_init"),
        ({"factory": "torch.nn.Linear"}, "factory"),
    ],
)
def test_torch_layer_invalid_settings_config_error(over: dict[str, Any], path: str) -> None:
    fields: dict[str, Any] = {"factory": "torch.nn:Linear", "n_out": 3, **over}
    with pytest.raises(ConfigError) as info:
        TorchLayer(**fields)
    assert info.value.path == path


def test_torch_layer_input_shape_must_hold_the_incoming_values() -> None:
    layer = TorchLayer(factory="torch.nn:Linear", n_out=3, input_shape=(2, 3))
    with pytest.raises(ConfigError, match="holds 6 values but the layer receives ff\\(4\\)") as info:
        NetworkConfig(input_type=InputType.feed_forward(4), layers=(layer, Output(n_out=2)))
    assert info.value.path == "layers[0].input_shape"


def test_torch_layer_output_shape_sets_the_next_input_type() -> None:
    layer = TorchLayer(factory="torch.nn:Conv2d", output_shape=(4, 6, 6))
    conf = NetworkConfig(input_type=InputType.convolutional(8, 8, 1), layers=(layer, Output(n_out=2)))
    assert conf.plan()[0].output_type == InputType.convolutional(6, 6, 4)
    assert conf.plan()[1].preprocessor == "cnn_to_ff"
