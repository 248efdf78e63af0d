"""``ModuleConfig``: a network that IS your own ``torch.nn.Module``, named by an importable factory.

The third root config beside ``NetworkConfig`` and ``GraphConfig``. It round-trips through JSON like them,
travels to executors as JSON (never pickled) and is saved in archives with a safetensors parameter buffer.
For everything downstream it behaves as the two-layer sequential network ``network()`` returns: a
``TorchLayer`` holding the module, then a ``LossLayer`` with the loss and output activation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from deepspark.config._spec import check, check_non_negative, check_positive, check_seed, register
from deepspark.config.input_types import InputType
from deepspark.config.layers import Layer, LossLayer, TorchLayer
from deepspark.config.layers.torch_layer import check_factory, check_shape
from deepspark.config.names import Activation, Loss
from deepspark.config.network import (
    FORMAT_VERSION,
    GradientNormalization,
    LayerPlan,
    NetworkConfig,
    Precision,
    check_precision_dtype,
)
from deepspark.config.root import RootConfig
from deepspark.config.updaters import Adam, Updater

DEFAULT_ACTIVATIONS: dict[str, str] = {"mcxent": "softmax", "negativeloglikelihood": "softmax", "xent": "sigmoid"}
"""The output activation a loss implies when ``activation`` is not given (identity for the others)."""


def default_activation(loss: str) -> str:
    """Softmax for multi-class losses, sigmoid for binary cross-entropy, identity otherwise."""
    return DEFAULT_ACTIVATIONS.get(loss, "identity")


@register("module")
@dataclass(frozen=True, kw_only=True, slots=True)
class ModuleConfig(RootConfig):
    """Your own ``nn.Module`` as a deepspark network: train it on one machine or on Spark, save, export.

    The module maps a batch of shape (N, *input_shape) to (N, n_out) pre-activations (logits for
    classifiers). Features arrive flat (N, prod(input_shape)) and are reshaped; image shapes (c, h, w)
    also accept (N, c, h, w) arrays. Its parameters and floating-point buffers (e.g. batch-norm running
    statistics) become views into the network's flat buffers, so averaging, gradient sharing, checkpoints
    and archives cover them. Executors import ``factory`` by name: make the package importable there
    (``pip install`` on the cluster, or ``spark.sparkContext.addPyFile("models.zip")``).

    Attributes:
        factory: ``"package.module:function"`` (or ``:Class``) returning an ``nn.Module``.
        kwargs: keyword arguments for the factory (JSON values).
        input_shape: per-example input shape without the batch axis, e.g. (1, 28, 28) or (784,).
        n_out: outputs per example (classes for a classifier).
        loss: the loss (DL4J's names: ``mcxent``, ``xent``, ``mse``...).
        activation: output activation; None picks softmax for ``mcxent``, sigmoid for ``xent``, else identity.
        updater, seed, l1, l2, weight_decay, gradient_normalization, gradient_normalization_threshold, dtype,
        precision:
            as in ``NetworkConfig`` (l1/l2/weight decay apply to parameters with 2 or more dimensions). The
            module's initial parameters are drawn from ``seed``.

    Example:
        >>> conf = ModuleConfig(factory="myproject.models:small_resnet", kwargs={"classes": 10},
        ...                     input_shape=(1, 28, 28), n_out=10, loss="mcxent", seed=42)
        >>> ModuleConfig.from_json(conf.to_json()) == conf
        True
    """

    kind = "network config"
    weight_init = "xavier"  # not a field (unused): the module initializes its own parameters
    INPUT_FIELD = "input_shape"

    factory: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    input_shape: tuple[int, ...]
    n_out: int
    loss: Loss
    activation: Activation | None = None
    updater: Updater = field(default_factory=Adam)
    seed: int = 0
    l1: float = 0.0
    l2: float = 0.0
    weight_decay: float = 0.0
    gradient_normalization: GradientNormalization = "none"
    gradient_normalization_threshold: float = 1.0
    dtype: Literal["float32", "float64"] = "float32"
    precision: Precision = "fp32"
    format_version: int = FORMAT_VERSION

    def __hash__(self) -> int:  # kwargs is a dict: hash the canonical JSON so the spec stays usable as a key
        return hash(self.to_json(indent=None))

    def _validate(self) -> None:
        check(
            self.format_version <= FORMAT_VERSION,
            "format_version",
            f"config format {self.format_version} is newer than this deepspark supports ({FORMAT_VERSION}): "
            "upgrade deepspark",
        )
        check(self.format_version >= 1, "format_version", f"expected a positive int, got {self.format_version}")
        check_factory(self.factory)
        check(len(self.input_shape) > 0, "input_shape", "expected the per-example shape, e.g. (1, 28, 28) or (784,)")
        check_shape(self.input_shape, "input_shape")
        check_positive(self, "n_out", "gradient_normalization_threshold")
        check_non_negative(self, "l1", "l2", "weight_decay")
        check_seed(self)
        check_precision_dtype(self.precision, self.dtype)

    @property
    def output_activation(self) -> str:
        """``activation``, or the one ``loss`` implies when it is None."""
        return self.activation or default_activation(self.loss)

    @property
    def input_type(self) -> InputType:
        """Flat features of ``prod(input_shape)`` values; (c, h, w) shapes are flattened images."""
        if len(self.input_shape) == 3:
            c, h, w = self.input_shape
            return InputType.convolutional_flat(h, w, c)
        return InputType.feed_forward(math.prod(self.input_shape))

    @property
    def layers(self) -> tuple[Layer, ...]:
        """The equivalent sequential layers: the module as a ``TorchLayer``, then the loss."""
        return (
            TorchLayer(factory=self.factory, kwargs=self.kwargs, n_out=self.n_out, input_shape=self.input_shape),
            LossLayer(activation=self.output_activation, loss=self.loss),  # type: ignore[arg-type]
        )

    def network(self) -> NetworkConfig:
        """The equivalent ``NetworkConfig`` (what the network compiles; its JSON is not what gets saved)."""
        return NetworkConfig(
            layers=self.layers,
            input_type=self.input_type,
            updater=self.updater,
            seed=self.seed,
            l1=self.l1,
            l2=self.l2,
            weight_decay=self.weight_decay,
            gradient_normalization=self.gradient_normalization,
            gradient_normalization_threshold=self.gradient_normalization_threshold,
            dtype=self.dtype,
            precision=self.precision,
        )

    def plan(self) -> list[LayerPlan]:
        """Shape inference of the equivalent sequential network."""
        return self.network().plan()

    def output_type(self) -> InputType:
        """The type the network emits: (n_out,) per example."""
        return InputType.feed_forward(self.n_out)

    def is_flat_input(self) -> bool:
        """Always: features arrive as flat vectors."""
        return True
