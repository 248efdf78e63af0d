"""More parameter-free graph vertices: the per-example dot product of two vectors (Keras' ``Dot``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from deepspark.config._spec import register
from deepspark.config.graph import GraphVertex, _flat, _listing
from deepspark.config.input_types import InputType
from deepspark.errors import ConfigError


@register("dot")
@dataclass(frozen=True, kw_only=True, slots=True)
class Dot(GraphVertex):
    """The dot product of two feature vectors per example -> ff(1); ``normalize`` makes it a cosine similarity.

    Example:
        >>> Dot(name="sim", inputs=("a", "b"), normalize=True).output_type(
        ...     (InputType.feed_forward(8), InputType.feed_forward(8))).describe()
        'ff(1)'
    """

    MIN_INPUTS: ClassVar[int] = 2
    MAX_INPUTS: ClassVar[int | None] = 2

    normalize: bool = False

    def output_type(self, input_types: tuple[InputType, ...]) -> InputType:
        types = tuple(_flat(t) for t in input_types)
        if any(t.form != "feed_forward" for t in types) or types[0].size != types[1].size:
            raise ConfigError(
                f"Dot needs two feed-forward inputs of one size, got {_listing(types, self.inputs)}", "inputs"
            )
        return InputType.feed_forward(1)
