"""The base of every config spec: a tag registry, annotation-driven validation, and the exact JSON round trip.

A spec is a frozen, slotted, keyword-only dataclass whose fields are JSON scalars, tuples, ``Literal``
strings, nested specs, or (``dict[str, Any]``) a plain JSON object such as a factory's keyword arguments.
Validation is driven by the field annotations (one rule for every spec, one message shape for every error);
a spec adds its own range checks in ``_validate``. ``to_dict`` writes
the spec's registry tag under ``"type"``; ``from_dict`` reads it back, rejecting unknown tags and keys
with the closest valid name. Specs never hold code: no callables, and the only import paths are the
``module:function`` factory references of ``ModuleConfig``/``TorchLayer``, checked here as text and imported
by name (never evaluated) in ``deepspark.nn``.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import types
import typing
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, Literal, TypeVar, Union

from deepspark.errors import ConfigError

_TAGS: dict[str, type[Spec]] = {}
_HINTS: dict[type, dict[str, Any]] = {}

S = TypeVar("S", bound="Spec")


def _edit_distance(a: str, b: str) -> int:
    """Optimal string alignment distance: insertions, deletions, substitutions and adjacent swaps."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]


def suggest(name: object, options: Iterable[str]) -> str:
    """A hint naming the closest valid option (typos, swapped letters), or listing them all when none is close."""
    opts = sorted(options)
    if isinstance(name, str) and opts:
        lowered = name.lower()
        best = min(
            opts, key=lambda o: (_edit_distance(lowered, o.lower()), -difflib.SequenceMatcher(None, lowered, o).ratio())
        )
        if _edit_distance(lowered, best.lower()) <= max(1, len(name) // 3) or difflib.get_close_matches(
            name, [best], n=1, cutoff=0.75
        ):
            return f"did you mean '{best}'?"
    if len(opts) <= 30:
        return "valid: " + ", ".join(repr(o) for o in opts)
    return f"{len(opts)} valid names, e.g. " + ", ".join(repr(o) for o in opts[:10])


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def register(tag: str) -> Callable[[type[S]], type[S]]:
    """Class decorator: make a spec class readable from JSON under ``tag`` (unique across all kinds)."""

    def deco(cls: type[S]) -> type[S]:
        if tag in _TAGS and _TAGS[tag].__qualname__ != cls.__qualname__:
            raise RuntimeError(f"spec tag {tag!r} is already used by {_TAGS[tag].__name__}")
        cls.tag = tag
        _TAGS[tag] = cls
        return cls

    return deco


def registered(base: type[S]) -> dict[str, type[S]]:
    """Every registered tag whose class is a subclass of ``base`` (e.g. all layers)."""
    return {t: c for t, c in _TAGS.items() if issubclass(c, base)}  # type: ignore[misc]


def _describe(value: object) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def _hints(cls: type) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = typing.get_type_hints(cls)
        _HINTS[cls] = hints
    return hints


def _type_name(tp: Any) -> str:
    if isinstance(tp, type) and issubclass(tp, Spec):
        return f"{_article(tp.kind)} {tp.kind} spec"
    if tp is int:
        return "an int"
    if tp is float:
        return "a number"
    if tp is bool:
        return "a bool"
    if tp is str:
        return "a string"
    if tp is type(None):
        return "None"
    return str(tp).replace("typing.", "")


def coerce(value: object, tp: Any, path: str) -> Any:
    """Check ``value`` against annotation ``tp``; return it normalized (int -> float, list -> tuple)."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value in allowed and type(value) is type(allowed[0]):
            return value
        raise ConfigError(
            f"expected one of {list(allowed)}, got {_describe(value)}; {suggest(value, map(str, allowed))}", path
        )
    if origin in (Union, types.UnionType):
        arms = typing.get_args(tp)
        if value is None and type(None) in arms:
            return None
        errors = []
        for arm in arms:
            if arm is type(None):
                continue
            try:
                return coerce(value, arm, path)
            except ConfigError as e:
                errors.append(e)
        if len(errors) == 1:
            raise errors[0]
        names = " or ".join(_type_name(a) for a in arms)
        raise ConfigError(f"expected {names}, got {_describe(value)}", path)
    if origin is dict:
        return _json_object(value, path)
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (tuple, list)):
            raise ConfigError(f"expected a list/tuple, got {_describe(value)}", path)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(coerce(v, args[0], f"{path}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"expected {len(args)} values, got {len(value)}: {list(value)!r}", path)
        return tuple(coerce(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(f"expected a finite number, got {value!r}", path)
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif isinstance(tp, type) and issubclass(tp, Spec):
        if isinstance(value, tp):
            return value
        if isinstance(value, dict):
            return tp.from_dict(value, path)
        raise ConfigError(f"expected {_type_name(tp)} ({suggest(None, registered(tp))}), got {_describe(value)}", path)
    else:  # pragma: no cover - a spec declared a field type this module does not know
        raise TypeError(f"unsupported spec field annotation {tp!r} at {path}")
    raise ConfigError(f"expected {_type_name(tp)}, got {_describe(value)}", path)


def _json_value(value: object, path: str) -> Any:
    """A copy of a JSON value (tuples become lists) that survives ``json.dumps``/``loads`` unchanged."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"expected a finite number, got {value!r}", path)
        return value
    if isinstance(value, (list, tuple)):
        return [_json_value(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return _json_object(value, path)
    raise ConfigError(
        f"expected a JSON value (None, bool, number, string, list or dict), got {_describe(value)}; "
        "configs hold data, never objects or code",
        path,
    )


def _json_object(value: object, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"expected a dict with string keys, got {_describe(value)}", path)
    out: dict[str, Any] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise ConfigError(f"expected string keys, got {_describe(key)}", path)
        out[key] = _json_value(item, f"{path}.{key}")
    return out


def _encode(value: Any) -> Any:
    if isinstance(value, Spec):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_encode(v) for v in value]
    if isinstance(value, dict):  # a JSON object field (e.g. factory kwargs): a copy, so callers cannot edit the spec
        return _json_object(value, "")
    return value


def _spec_base(tp: Any) -> type[Spec]:
    """The spec family an annotation expects (``Layer`` for ``tuple[Layer, ...]``), so that an unknown tag is
    reported against that family's names; ``Spec`` when the annotation names none or several."""
    if isinstance(tp, type) and issubclass(tp, Spec):
        return tp
    found = {b for arg in typing.get_args(tp) if arg is not Ellipsis for b in [_spec_base(arg)] if b is not Spec}
    return found.pop() if len(found) == 1 else Spec


def _decode(value: Any, path: str, base: type[Spec]) -> Any:
    if isinstance(value, dict):
        return base.from_dict(value, path)
    if isinstance(value, list):
        return tuple(_decode(v, f"{path}[{i}]", base) for i, v in enumerate(value))
    return value


class Spec:
    """Mixin for frozen dataclass specs: ``kind`` is set on a family base, ``tag`` by ``register``."""

    __slots__ = ()
    kind: ClassVar[str] = "spec"
    tag: ClassVar[str] = ""

    def __post_init__(self) -> None:
        hints = _hints(type(self))
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            fixed = coerce(value, hints[f.name], f.name)
            if fixed is not value:
                object.__setattr__(self, f.name, fixed)
        self._validate()

    def _validate(self) -> None:
        """Range and cross-field checks beyond the annotations; raise ``ConfigError`` naming the field."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: ``{"type": tag, field: value, ...}`` with nested specs as dicts."""
        out: dict[str, Any] = {"type": self.tag} if self.tag else {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            out[f.name] = _encode(getattr(self, f.name))
        return out

    @classmethod
    def from_dict(cls: type[S], data: object, path: str = "") -> S:
        """Rebuild a spec from ``to_dict`` output. Unknown tags and keys raise ``ConfigError`` with a hint."""
        if not isinstance(data, dict):
            raise ConfigError(f"expected a JSON object, got {_describe(data)}", path)
        if not path:  # the outermost call: decoding recurses per level
            check_depth(data)
        target: type[Spec] = cls
        tag = data.get("type")
        if cls.tag == "" or "type" in data:
            family = registered(cls)
            if tag is None:
                if cls.tag:
                    target = cls
                else:
                    raise ConfigError(
                        f"missing 'type' for {_article(cls.kind)} {cls.kind}; {suggest(None, family)}", path
                    )
            elif not isinstance(tag, str):  # a list or object would not even hash
                raise ConfigError(
                    f"expected a string tag for {_article(cls.kind)} {cls.kind}, got {_describe(tag)}; "
                    f"{suggest(None, family)}",
                    f"{path}.type".lstrip("."),
                )
            elif tag not in _TAGS:
                raise ConfigError(
                    f"unknown {cls.kind} type {tag!r}; {suggest(tag, family)}", f"{path}.type".lstrip(".")
                )
            elif not issubclass(_TAGS[tag], cls):
                other = _TAGS[tag]
                raise ConfigError(
                    f"expected {_article(cls.kind)} {cls.kind}, got the {other.kind} {tag!r}; {suggest(tag, family)}",
                    f"{path}.type".lstrip("."),
                )
            else:
                target = _TAGS[tag]
        names = {f.name for f in dataclasses.fields(target)}  # type: ignore[arg-type]
        hints = _hints(target)
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key == "type":
                continue
            sub = f"{path}.{key}" if path else key
            if key not in names:
                raise ConfigError(f"unknown field for {target.__name__}; {suggest(key, names)}", sub)
            plain = typing.get_origin(hints[key]) is dict  # a JSON object field holds data, not nested specs
            kwargs[key] = value if plain else _decode(value, sub, _spec_base(hints[key]))
        try:
            return target(**kwargs)  # type: ignore[return-value]
        except ConfigError as e:
            raise e.with_prefix(path) from None
        except TypeError as e:  # a required field is missing
            raise ConfigError(f"{target.__name__}: {e}", path) from None

    def to_json(self, indent: int | None = 2) -> str:
        """The spec as JSON text; ``from_json(to_json())`` gives an equal spec."""
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls: type[S], text: str | bytes) -> S:
        """Parse JSON written by ``to_json``; invalid JSON or values raise ``ConfigError``."""
        return cls.from_dict(_loads(text))


def check(condition: bool, path: str, message: str) -> None:
    """Raise ``ConfigError(message, path)`` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(message, path)


MAX_SIZE = 2**31 - 1
"""The largest size (units, channels, kernel, vocabulary) a config accepts: torch indexes dimensions with int32
in many kernels, and anything near it is out of memory long before."""

MAX_SEED = 2**63 - 1
"""The largest seed torch's generators take."""


def check_positive(spec: Spec, *names: str) -> None:
    """Every named numeric field (None allowed) is > 0; an int one also at most ``MAX_SIZE``."""
    for name in names:
        value = getattr(spec, name)
        if value is not None and not value > 0:
            kind = "int" if isinstance(value, int) else "number"
            raise ConfigError(f"expected a positive {kind}, got {value!r}", name)
        if isinstance(value, int) and value > MAX_SIZE:
            raise ConfigError(f"expected a positive int of at most {MAX_SIZE} (2**31 - 1), got {value!r}", name)


def check_seed(spec: Spec, name: str = "seed") -> None:
    """The named int field is a seed torch accepts: 0 <= seed <= 2**63 - 1."""
    value = getattr(spec, name)
    if value is not None and not 0 <= value <= MAX_SEED:
        raise ConfigError(f"expected an int in [0, 2**63 - 1], got {value!r}: pick a smaller seed", name)


def check_depth(value: object, limit: int = 64) -> None:
    """Refuse JSON data nested deeper than ``limit`` (before recursive decoding could hit Python's limit)."""
    stack: list[tuple[object, str, int]] = [(value, "", 1)]
    while stack:
        item, path, depth = stack.pop()
        children: list[tuple[str, object]] = []
        if isinstance(item, dict):
            children = [(f"{path}.{k}" if path else str(k), v) for k, v in item.items()]
        elif isinstance(item, (list, tuple)):
            children = [(f"{path}[{i}]", v) for i, v in enumerate(item)]
        if not children:
            continue
        if depth >= limit:
            raise ConfigError(
                f"nested more than {limit} levels deep; a deepspark config is a few levels deep: the file is "
                "damaged or was not written by deepspark",
                path if len(path) <= 60 else path[:60] + "...",
            )
        stack.extend((child, sub, depth + 1) for sub, child in children)


def _loads(text: str | bytes) -> Any:
    """JSON text as data; invalid or absurdly nested JSON raises ``ConfigError``."""
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as e:
        raise ConfigError(f"not valid JSON: {e}") from None
    except RecursionError:
        raise ConfigError(
            "not valid JSON for a config: nested too deeply to parse; a deepspark config is a few levels deep"
        ) from None
    check_depth(data)
    return data


FLOAT32_MAX = 3.4028234663852886e38
"""The largest float32: a coefficient beyond it cannot be written into a float32 tensor."""


def check_non_negative(spec: Spec, *names: str) -> None:
    """Every named numeric field (None allowed) is >= 0, finite and within float32's range (tensors hold it)."""
    for name in names:
        value = getattr(spec, name)
        if value is not None and value < 0:
            raise ConfigError(f"expected a number >= 0, got {value!r}", name)
        if value is not None and not value <= FLOAT32_MAX:  # NaN fails every comparison
            raise ConfigError(f"expected a finite number of at most {FLOAT32_MAX:.4g} (float32), got {value!r}", name)


def check_probability(spec: Spec, *names: str, closed: bool = False) -> None:
    """Every named field lies in [0, 1) (or [0, 1] when ``closed``)."""
    for name in names:
        value = getattr(spec, name)
        if value is None:
            continue
        ok = 0.0 <= value <= 1.0 if closed else 0.0 <= value < 1.0
        if not ok:
            rng = "[0, 1]" if closed else "[0, 1)"
            raise ConfigError(f"expected a probability in {rng}, got {value!r}", name)


def check_positive_tuple(spec: Spec, *names: str) -> None:
    """Every element of the named tuple fields is > 0."""
    for name in names:
        for i, v in enumerate(getattr(spec, name) or ()):
            if not v > 0:
                raise ConfigError(f"expected positive values, got {v!r}", f"{name}[{i}]")


def check_non_negative_tuple(spec: Spec, *names: str) -> None:
    """Every element of the named tuple fields is >= 0."""
    for name in names:
        for i, v in enumerate(getattr(spec, name) or ()):
            if v < 0:
                raise ConfigError(f"expected values >= 0, got {v!r}", f"{name}[{i}]")
