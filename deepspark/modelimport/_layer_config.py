"""One Keras layer as read from a model config, with typed getters that turn a bad value into ``ModelImportError``.

A model file is untrusted input: every value a converter uses goes through these getters, which check its
type and range and name the layer and key when it is wrong, so a hostile or damaged config gives a clear
error instead of a ``KeyError`` or a silently wrong network.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from deepspark.errors import ModelImportError


@dataclass(frozen=True)
class KerasLayer:
    """A layer of the Keras model: its name, class, config and the layers it reads (functional models)."""

    name: str
    class_name: str
    config: Mapping[str, Any]
    inbound: tuple[str, ...] = ()
    keras_major: int = 3

    def where(self) -> str:
        return f"layer {self.name!r} ({self.class_name})"

    def error(self, message: str) -> ModelImportError:
        """A ``ModelImportError`` that names this layer."""
        return ModelImportError(f"{self.where()}: {message}")

    def has(self, key: str) -> bool:
        return self.config.get(key) is not None

    def raw(self, key: str, default: Any = None) -> Any:
        value = self.config.get(key, default)
        return default if value is None else value

    def integer(self, key: str, default: int | None = None, *, minimum: int = 1) -> int:
        value = self.raw(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.error(f"{key} must be an int >= {minimum}, got {value!r}")
        return value

    def number(self, key: str, default: float | None = None) -> float:
        value = self.raw(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.error(f"{key} must be a finite number, got {value!r}")
        return float(value)

    def optional_float(self, key: str) -> float | None:
        return None if self.config.get(key) is None else self.number(key)

    def flag(self, key: str, default: bool) -> bool:
        value = self.raw(key, default)
        if not isinstance(value, bool):
            raise self.error(f"{key} must be true or false, got {value!r}")
        return value

    def text(self, key: str, default: str | None = None) -> str:
        value = self.raw(key, default)
        if not isinstance(value, str):
            raise self.error(f"{key} must be a string, got {value!r}")
        return value

    def integers(
        self, key: str, n: int, default: int | tuple[int, ...] | None = None, *, minimum: int = 1
    ) -> tuple[int, ...]:
        """An int or a list of ``n`` ints (Keras writes ``kernel_size=3`` or ``[3, 3]``), as an n-tuple."""
        value = self.raw(key, default)
        items = [value] * n if isinstance(value, int) and not isinstance(value, bool) else value
        if not isinstance(items, (list, tuple)) or len(items) != n:
            raise self.error(f"{key} must be an int or a list of {n} ints, got {value!r}")
        for v in items:
            if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
                raise self.error(f"{key} must hold ints >= {minimum}, got {value!r}")
        return tuple(items)

    def pairs(self, key: str, n: int, default: Any = None) -> tuple[tuple[int, int], ...]:
        """Per-axis (before, after) amounts: ``1``, ``[1, 2]`` (symmetric per axis) or ``[[1, 2], [0, 1]]``."""
        value = self.raw(key, default)
        if isinstance(value, int) and not isinstance(value, bool):
            value = [value] * n
        if n == 1 and isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) for v in value):
            value = [value]
        if not isinstance(value, (list, tuple)) or len(value) != n:
            raise self.error(f"{key} must give {n} (before, after) pairs, got {value!r}")
        out = []
        for axis in value:
            pair = [axis, axis] if isinstance(axis, int) and not isinstance(axis, bool) else axis
            if (
                not isinstance(pair, (list, tuple))
                or len(pair) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in pair)
            ):
                raise self.error(f"{key} must hold non-negative (before, after) ints, got {value!r}")
            out.append((pair[0], pair[1]))
        return tuple(out)

    def choice(self, key: str, options: tuple[str, ...], default: str) -> str:
        value = self.text(key, default)
        if value not in options:
            raise self.error(f"{key}={value!r} is not supported; supported: {', '.join(options)}")
        return value

    def channels_last(self) -> None:
        """Refuse ``data_format='channels_first'`` layers (Keras' default and deepspark's import are channels-last)."""
        fmt = self.raw("data_format", "channels_last")
        if fmt != "channels_last":
            raise self.error(f"data_format={fmt!r} is not supported; re-save the model with channels_last layers")

    def inner(self) -> KerasLayer:
        """The layer a wrapper (Bidirectional, TimeDistributed) wraps."""
        spec = self.config.get("layer")
        if not isinstance(spec, Mapping) or not isinstance(spec.get("class_name"), str):
            raise self.error("the wrapped 'layer' is missing or not a {class_name, config} object")
        cfg = spec.get("config")
        if not isinstance(cfg, Mapping):
            raise self.error("the wrapped layer has no config object")
        return KerasLayer(f"{self.name}/{cfg.get('name', 'layer')}", spec["class_name"], cfg, (), self.keras_major)


@dataclass
class Notes:
    """Warnings collected while converting (shown by the CLI, logged by ``import_keras``)."""

    items: list[str] = field(default_factory=list)

    def add(self, message: str) -> None:
        if message not in self.items:
            self.items.append(message)
