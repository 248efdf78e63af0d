"""``TorchLayer``: a user's own ``torch.nn.Module`` as one layer of a ``NetworkConfig`` or ``GraphConfig``.

The spec holds a factory REFERENCE (``"package.module:function"``), never the module: configs cross process
boundaries as JSON, and an executor rebuilds the module by importing the factory by name. This module
checks the reference as text only (``deepspark.config`` does not import torch); ``deepspark.nn`` imports it,
calls it with ``kwargs`` and dry-runs the module to check the declared output shape.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from deepspark.config._spec import check, register
from deepspark.config.input_types import CONVOLUTIONAL, RECURRENT, InputType
from deepspark.config.layers._base import Layer
from deepspark.errors import ConfigError

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
FACTORY_PATTERN = re.compile(rf"^{_IDENT}(\.{_IDENT})*:{_IDENT}(\.{_IDENT})*$")
"""``module.path:attribute.path``: what ``importlib.import_module`` + ``getattr`` can resolve."""


def check_factory(value: str, path: str = "factory") -> None:
    """A factory reference must read ``package.module:function`` (a class or a nested attribute also works)."""
    check(
        bool(FACTORY_PATTERN.match(value)),
        path,
        f"expected an importable reference 'package.module:function' (or ':Class'), got {value!r}; "
        "e.g. 'myproject.models:small_resnet'",
    )


def check_shape(shape: tuple[int, ...] | None, name: str) -> None:
    """A per-example shape: 1 to 4 positive sizes (the batch axis is never part of it)."""
    if shape is None:
        return
    check(0 < len(shape) <= 4, name, f"expected 1 to 4 sizes per example (no batch axis), got {list(shape)}")
    for i, v in enumerate(shape):
        check(v > 0, f"{name}[{i}]", f"expected positive values, got {v!r}")


def shape_to_type(shape: tuple[int, ...], name: str) -> InputType:
    """The ``InputType`` of a per-example shape: (n,) flat, (t, n) sequence, (c, h, w) image."""
    if len(shape) == 1:
        return InputType.feed_forward(shape[0])
    if len(shape) == 2:
        return InputType.recurrent(shape[1], shape[0])
    if len(shape) == 3:
        return InputType.convolutional(shape[1], shape[2], shape[0])
    raise ConfigError(f"expected 1 (n,), 2 (time, n) or 3 (c, h, w) sizes, got {list(shape)}", name)


def example_values(t: InputType) -> int | None:
    """Values per example of an activation of type ``t`` (None for sequences of unknown length)."""
    if t.form == RECURRENT:
        return None if t.timesteps is None else t.timesteps * t.size
    return t.flat_size()


@register("torch_layer")
@dataclass(frozen=True, kw_only=True, slots=True)
class TorchLayer(Layer):
    """A layer computed by your own ``torch.nn.Module``, built by an importable factory.

    The module receives the activation in PyTorch layout, (N, features), (N, C, H, W) or (N, T, features)
    (flattened images arrive as (N, C, H, W)), or reshaped to (N, *input_shape) when ``input_shape`` is set.
    It returns (N, n_out), or (N, *output_shape) for image or sequence outputs. Its parameters and
    floating-point buffers join the network's flat buffers like any built-in layer's; they keep the
    module's own initialization (drawn from the network's seed), so ``weight_init`` does not apply.

    Attributes:
        factory: ``"package.module:function"`` (or ``:Class``) returning an ``nn.Module``; it must be importable
            on the driver and on every executor (ship it with ``spark.sparkContext.addPyFile``).
        kwargs: keyword arguments for the factory (JSON values).
        n_out: features per example the module returns (flat output).
        output_shape: per-example output shape instead of ``n_out``: (t, n) sequences or (c, h, w) images.
        input_shape: reshape each example to this before calling the module (same number of values).

    Example:
        >>> TorchLayer(factory="torch.nn:Linear", kwargs={"in_features": 8, "out_features": 4}, n_out=4).n_out
        4
    """

    ACCEPTS: ClassVar[tuple[str, ...]] = ("convolutional", "feed_forward", "recurrent")

    factory: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    n_out: int | None = None
    output_shape: tuple[int, ...] | None = None
    input_shape: tuple[int, ...] | None = None

    def __hash__(self) -> int:  # kwargs is a dict: hash the canonical JSON so the spec stays usable as a key
        return hash(self.to_json(indent=None))

    def _validate(self) -> None:
        Layer._validate(self)
        check_factory(self.factory)
        check(
            (self.n_out is None) != (self.output_shape is None),
            "n_out",
            "set exactly one of n_out (flat output) and output_shape (image or sequence output), "
            f"got n_out={self.n_out!r} and output_shape={self.output_shape!r}",
        )
        if self.n_out is not None:
            check(self.n_out > 0, "n_out", f"expected a positive int, got {self.n_out!r}")
        check_shape(self.output_shape, "output_shape")
        check_shape(self.input_shape, "input_shape")
        if self.output_shape is not None:
            shape_to_type(self.output_shape, "output_shape")
        check(
            self.weight_init is None,
            "weight_init",
            f"a TorchLayer keeps its module's own initialization, got weight_init={self.weight_init!r}; "
            "initialize inside the factory instead",
        )

    def output_type(self, input_type: InputType) -> InputType:
        if self.input_shape is not None:
            have, want = example_values(input_type), math.prod(self.input_shape)
            if have is not None and have != want:
                raise ConfigError(
                    f"input_shape {list(self.input_shape)} holds {want} values but the layer receives "
                    f"{input_type.describe()} ({have} values per example)",
                    "input_shape",
                )
        if self.output_shape is not None:
            return shape_to_type(self.output_shape, "output_shape")
        return InputType.feed_forward(self.n_out or 0)

    def module_input_shape(self, input_type: InputType) -> tuple[int, ...]:
        """The per-example shape the module is called with (sequences of unknown length dry-run with 3 steps)."""
        if self.input_shape is not None:
            return self.input_shape
        if input_type.form == CONVOLUTIONAL:
            return (input_type.channels, input_type.height, input_type.width)
        if input_type.form == RECURRENT:
            return (input_type.timesteps or 3, input_type.size)
        return (input_type.flat_size(),)

    def module_output_shape(self) -> tuple[int, ...]:
        """The per-example shape the module must return."""
        return self.output_shape if self.output_shape is not None else (self.n_out or 0,)


__all__ = ["FACTORY_PATTERN", "TorchLayer", "check_factory", "check_shape"]
