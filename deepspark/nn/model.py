"""The torch module a ``NetworkConfig`` compiles to, behind the small protocol ``Network`` trains through.

``Network`` never looks inside a model: it asks for pre-activations per output head, the head's loss and
activation, and each parameter's role. A sequential stack, a graph and a user's own module all fit that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deepspark.config.layers import Layer
from deepspark.config.module import ModuleConfig
from deepspark.config.network import LayerPlan, NetworkConfig
from deepspark.errors import ConfigError
from deepspark.nn.activation_layers import ACTIVATION_BUILDERS
from deepspark.nn.conv_layers import CONV_BUILDERS
from deepspark.nn.layers import FEED_FORWARD_BUILDERS, CompiledLayer, OutputLayer, preprocess
from deepspark.nn.recurrent_layers import RECURRENT_BUILDERS
from deepspark.nn.sequence_layers import SEQUENCE_BUILDERS
from deepspark.nn.shape_layers import SHAPE_BUILDERS
from deepspark.nn.torch_layer import TORCH_BUILDERS

BUILDERS: dict[type[Layer], type[CompiledLayer]] = {
    **FEED_FORWARD_BUILDERS,
    **CONV_BUILDERS,
    **RECURRENT_BUILDERS,
    **SHAPE_BUILDERS,
    **ACTIVATION_BUILDERS,
    **SEQUENCE_BUILDERS,
    **TORCH_BUILDERS,
}

TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class Head:
    """One output of a model: its loss, activation and per-example output size."""

    loss: str
    activation: str
    n_out: int
    recurrent: bool


@dataclass(frozen=True)
class ParamRole:
    """Where a parameter belongs: the layer (for per-layer settings and summaries) and whether it is a weight."""

    layer: int
    layer_name: str
    is_weight: bool


def layer_roles(compiled: list[CompiledLayer], names: list[str]) -> dict[str, ParamRole]:
    """Roles of the parameters and buffers of compiled layers held in a ``ModuleList`` named ``layers``."""
    roles: dict[str, ParamRole] = {}
    for i, layer in enumerate(compiled):
        weights = set(layer.weight_names())
        for name, _ in layer.named_parameters():
            roles[f"layers.{i}.{name}"] = ParamRole(i, names[i], name in weights)
        for name, _ in layer.named_buffers():
            roles[f"layers.{i}.{name}"] = ParamRole(i, names[i], False)
    return roles


def build_layer(plan: LayerPlan, dtype: torch.dtype, path: str = "") -> CompiledLayer:
    """Compile one planned layer; a compile error (a ``TorchLayer``'s module) is located under ``path``."""
    try:
        return BUILDERS[type(plan.layer)](plan, dtype)
    except ConfigError as e:
        raise e.with_prefix(path) from e.__cause__


class SequentialModel(nn.Module):
    """A compiled ``NetworkConfig``: preprocessors and layers in order, the last one with a loss."""

    def __init__(self, config: NetworkConfig | ModuleConfig) -> None:
        super().__init__()
        self.dtype = TORCH_DTYPES[config.dtype]
        self.plans = config.plan()
        self.compiled: list[CompiledLayer] = [build_layer(p, self.dtype, self._path(p.index)) for p in self.plans]
        self.layers = nn.ModuleList(self.compiled)
        last = self.compiled[-1]
        if not isinstance(last, OutputLayer):  # pragma: no cover - NetworkConfig validates this
            raise TypeError("the last layer must carry a loss")
        out = self.plans[-1].output_type
        self.heads = [Head(last.loss_name, last.activation_name, out.size, out.form == "recurrent")]
        self.layer_names = [p.name for p in self.plans]

    def _path(self, index: int) -> str:
        """Where the config defines layer ``index`` (compile errors name it)."""
        return f"layers[{index}]"

    def init_params(self, default_scheme: str, gen: torch.Generator) -> None:
        """Initialize every layer from ``gen`` with its own or the network's weight-init scheme."""
        for plan, layer in zip(self.plans, self.compiled, strict=True):
            layer.init_params(plan.layer.weight_init or default_scheme, gen)

    def forward_preouts(self, inputs: list[Tensor], masks: list[Tensor | None]) -> list[tuple[Tensor, Tensor | None]]:
        """Pre-activation output and its mask for each head (one for a stack)."""
        x, mask = inputs[0], masks[0]
        n = len(self.compiled)
        for i, (plan, layer) in enumerate(zip(self.plans, self.compiled, strict=True)):
            x = preprocess(plan.preprocessor, x, plan)
            if i == n - 1:
                out_layer: OutputLayer = layer  # type: ignore[assignment]
                if out_layer.input_dropout > 0.0 and self.training:
                    x = F.dropout(x, out_layer.input_dropout, True)
                return [(out_layer.preout(x), mask)]
            x, mask = layer(x, mask)
        raise RuntimeError("unreachable")  # pragma: no cover

    def param_roles(self) -> dict[str, ParamRole]:
        """Role of every parameter and buffer, keyed by its ``named_parameters`` name."""
        return layer_roles(self.compiled, self.layer_names)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """Activated output of the network (what ``Network.output`` returns)."""
        from deepspark.nn.functional import activation_fn

        preout, _ = self.forward_preouts([x], [mask])[0]
        return activation_fn(self.heads[0].activation)(preout)


class ModuleModel(SequentialModel):
    """A compiled ``ModuleConfig``: its module as a ``TorchLayer`` (``layers.0.module``), then the loss.

    Compile errors name the config's own fields (``factory``, ``input_shape``, ``n_out``), not a layer path.
    """

    def __init__(self, config: ModuleConfig) -> None:
        super().__init__(config)

    def _path(self, index: int) -> str:
        return ""

    @property
    def module(self) -> nn.Module:
        """The user's module, as the factory built it (its parameters are views into the flat buffer)."""
        return cast(nn.Module, self.compiled[0].module)
