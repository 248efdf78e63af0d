"""Search spaces: the parameter domains (``LogUniform``, ``Uniform``, ``IntRange``, ``Choice``, ``Fixed``), nested
conditional choices, their exact JSON round trip, and their translation to Optuna (suggestions, distributions, grids).

A space is a plain dict from parameter names to domains, as users write it; ``Space.of`` validates it once and
freezes it. A ``Choice`` whose options are a dict of sub-spaces is conditional: only the chosen branch's
parameters are sampled, and they reach ``build`` as ``{"name": <branch>, <param>: <value>, ...}``. Optuna sees
flat names (``optimizer``, ``optimizer.adam.lr``), so a parameter of one branch never shares a distribution
with another branch's parameter of the same name. Nothing here imports optuna at import time: the driver does,
executors never need to.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import KW_ONLY, dataclass
from typing import TYPE_CHECKING, Any

from deepspark.config._spec import Spec, check, register
from deepspark.errors import ConfigError

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from optuna.trial import Trial

Params = dict[str, Any]
"""Sampled parameters as ``build`` receives them (nested dicts for conditional choices)."""

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
_SCALARS = (str, int, float, bool, type(None))
MAX_GRID_POINTS = 100_000


class Domain(Spec):
    """Base of every parameter domain: how one parameter is sampled."""

    __slots__ = ()
    kind = "search domain"

    def suggest(self, trial: Trial, name: str) -> Any:
        """Ask Optuna's trial for a value of the parameter ``name``."""
        raise NotImplementedError

    def distribution(self) -> BaseDistribution | None:
        """The Optuna distribution (None for ``Fixed``, which is never sampled)."""
        raise NotImplementedError

    def grid_values(self, path: str) -> list[Any]:
        """Every value of a finite domain; ``ConfigError`` for continuous ones."""
        raise NotImplementedError


def _check_bounds(low: float, high: float, path: str) -> None:
    check(
        low < high,
        path,
        f"low ({low!r}) must be below high ({high!r}); swap them, or use Fixed({low!r}) for a constant",
    )


@register("log_uniform")
@dataclass(frozen=True, slots=True)
class LogUniform(Domain):
    """A float drawn uniformly in log space between ``low`` and ``high`` (both > 0), e.g. learning rates.

    Example:
        >>> LogUniform(1e-4, 1e-1)
        LogUniform(low=0.0001, high=0.1)
    """

    low: float
    high: float

    def _validate(self) -> None:
        check(self.low > 0, "low", f"a log-uniform domain needs low > 0, got {self.low!r}; use Uniform for 0")
        _check_bounds(self.low, self.high, "high")

    def suggest(self, trial: Trial, name: str) -> Any:
        return trial.suggest_float(name, self.low, self.high, log=True)

    def distribution(self) -> BaseDistribution:
        from optuna.distributions import FloatDistribution

        return FloatDistribution(self.low, self.high, log=True)

    def grid_values(self, path: str) -> list[Any]:
        raise ConfigError("a log-uniform domain has no grid; use Choice([...]) of the values to try", path)


@register("uniform")
@dataclass(frozen=True, slots=True)
class Uniform(Domain):
    """A float drawn uniformly between ``low`` and ``high``; with ``step``, only ``low + k * step``.

    Example:
        >>> Uniform(0.0, 0.5, step=0.1).grid_values("dropout")
        [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    """

    low: float
    high: float
    _: KW_ONLY
    step: float | None = None

    def _validate(self) -> None:
        _check_bounds(self.low, self.high, "high")
        if self.step is not None:
            check(self.step > 0, "step", f"expected a positive step, got {self.step!r}")

    def suggest(self, trial: Trial, name: str) -> Any:
        return trial.suggest_float(name, self.low, self.high, step=self.step)

    def distribution(self) -> BaseDistribution:
        from optuna.distributions import FloatDistribution

        return FloatDistribution(self.low, self.high, step=self.step)

    def grid_values(self, path: str) -> list[Any]:
        if self.step is None:
            raise ConfigError("a continuous uniform domain has no grid; give it a step, or use Choice([...])", path)
        count = math.floor((self.high - self.low) / self.step + 1e-9) + 1
        _check_grid_size(count, path)
        return [round(self.low + k * self.step, 12) for k in range(count)]


@register("int_range")
@dataclass(frozen=True, slots=True)
class IntRange(Domain):
    """An int from ``low`` to ``high`` inclusive, every ``step``-th; ``log=True`` draws in log space (step 1).

    Example:
        >>> IntRange(1, 3).grid_values("layers")
        [1, 2, 3]
    """

    low: int
    high: int
    _: KW_ONLY
    step: int = 1
    log: bool = False

    def _validate(self) -> None:
        _check_bounds(self.low, self.high, "high")
        check(self.step >= 1, "step", f"expected a positive int, got {self.step!r}")
        if self.log:
            check(self.low >= 1, "low", f"a log-scale int range needs low >= 1, got {self.low!r}")
            check(self.step == 1, "step", f"a log-scale int range takes step 1 (Optuna's rule), got {self.step!r}")

    def suggest(self, trial: Trial, name: str) -> Any:
        return trial.suggest_int(name, self.low, self.high, step=self.step, log=self.log)

    def distribution(self) -> BaseDistribution:
        from optuna.distributions import IntDistribution

        return IntDistribution(self.low, self.high, step=self.step, log=self.log)

    def grid_values(self, path: str) -> list[Any]:
        values = list(range(self.low, self.high + 1, self.step))
        _check_grid_size(len(values), path)
        return values


@register("fixed")
@dataclass(frozen=True, slots=True)
class Fixed(Domain):
    """A constant handed to ``build`` as is (any JSON value); never sampled. Bare values in a space become Fixed.

    Example:
        >>> Fixed(64).value
        64
    """

    value: Any

    def _validate(self) -> None:
        try:
            normal = json.loads(json.dumps(self.value, allow_nan=False))
        except (TypeError, ValueError) as e:
            message = f"expected a JSON value (number, string, bool, null, list, dict), got: {e}"
            raise ConfigError(message, "value") from None
        object.__setattr__(self, "value", normal)

    def suggest(self, trial: Trial, name: str) -> Any:
        return self.value

    def distribution(self) -> None:
        return None

    def grid_values(self, path: str) -> list[Any]:
        return [self.value]


@register("choice")
@dataclass(frozen=True, slots=True)
class Choice(Domain):
    """One of ``options``: a list of JSON scalars, or a dict of named sub-spaces (a conditional choice).

    Example:
        >>> units = Choice([64, 128, 256])
        >>> optimizer = Choice({"adam": {"lr": LogUniform(1e-4, 1e-2)},
        ...                     "sgd": {"lr": LogUniform(1e-3, 1e-1), "momentum": Uniform(0.0, 0.95)}})
        >>> optimizer.options
        ('adam', 'sgd')
    """

    options: Any
    _: KW_ONLY
    branches: Any = None

    def _validate(self) -> None:
        options = self.options
        if isinstance(options, dict):
            check(self.branches is None, "branches", "give either a dict of sub-spaces or a list of options")
            check(len(options) > 0, "options", "expected at least one option")
            names, spaces = [], []
            for name, sub in options.items():
                _check_name(name, "options")
                spaces.append(sub if isinstance(sub, Space) else Space.of(sub, f"options.{name}", allow_empty=True))
                names.append(name)
            object.__setattr__(self, "options", tuple(names))
            object.__setattr__(self, "branches", tuple(spaces))
            return
        if not isinstance(options, (list, tuple)):
            raise ConfigError(
                f"expected a list of options or a dict of sub-spaces, got {type(options).__name__}", "options"
            )
        check(len(options) > 0, "options", "expected at least one option, got an empty list")
        for i, value in enumerate(options):
            if not isinstance(value, _SCALARS) or (isinstance(value, float) and not math.isfinite(value)):
                raise ConfigError(
                    f"expected a JSON scalar (number, string, bool, null), got {value!r}; to choose among "
                    "structures, choose among names and map them in build, or use a dict of sub-spaces",
                    f"options[{i}]",
                )
        keys = [json.dumps(v) for v in options]
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        check(not dupes, "options", f"options must be distinct, repeated: {dupes}")
        object.__setattr__(self, "options", tuple(options))
        if self.branches is not None:
            branches = tuple(self.branches)
            check(len(branches) == len(options), "branches", "expected one sub-space per option")
            check(all(isinstance(b, Space) for b in branches), "branches", "expected Space objects")
            for i, name in enumerate(options):
                _check_name(name, f"options[{i}]")
            object.__setattr__(self, "branches", branches)

    @property
    def conditional(self) -> bool:
        """Whether each option carries a sub-space of its own."""
        return self.branches is not None

    def suggest(self, trial: Trial, name: str) -> Any:
        value = trial.suggest_categorical(name, list(self.options))
        if self.branches is None:
            return value
        branch = self.branches[self.options.index(value)]
        return {"name": value, **branch.suggest(trial, f"{name}.{value}.")}

    def distribution(self) -> BaseDistribution:
        from optuna.distributions import CategoricalDistribution

        return CategoricalDistribution(list(self.options))

    def grid_values(self, path: str) -> list[Any]:
        if self.branches is not None:
            raise ConfigError(
                "the grid sampler takes flat spaces; a conditional choice needs sampler='random' or 'tpe'", path
            )
        return list(self.options)

    def to_dict(self) -> dict[str, Any]:
        if self.branches is None:
            return {"type": self.tag, "options": list(self.options)}
        return {"type": self.tag, "options": {n: b.to_dict() for n, b in zip(self.options, self.branches, strict=True)}}


def _check_name(name: object, path: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name) or name in ("name", "type"):
        raise ConfigError(
            f"parameter and branch names are 1-64 letters, digits, '_' or '-' starting with a letter or '_' "
            f"(not 'name' or 'type'), got {name!r}",
            path,
        )


def _check_grid_size(count: int, path: str) -> None:
    if count > MAX_GRID_POINTS:
        raise ConfigError(f"{count} grid values, over the limit of {MAX_GRID_POINTS}; use a larger step", path)


@dataclass(frozen=True, slots=True)
class Space:
    """A validated, frozen search space: named domains in the order given.

    Example:
        >>> space = Space.of({"lr": LogUniform(1e-4, 1e-1), "units": Choice([64, 128]), "epochs_hint": 3})
        >>> Space.from_json(space.to_json()) == space
        True
    """

    entries: tuple[tuple[str, Domain], ...]

    @classmethod
    def of(cls, space: Space | dict[str, Any], path: str = "space", *, allow_empty: bool = False) -> Space:
        """Validate a user's dict (domains, or bare JSON values taken as ``Fixed``) into a ``Space``."""
        if isinstance(space, Space):
            return space
        if not isinstance(space, dict):
            raise ConfigError(f"expected a dict of parameter names to domains, got {type(space).__name__}", path)
        if not space and not allow_empty:
            raise ConfigError(
                "the search space is empty: give at least one parameter, e.g. {'lr': LogUniform(1e-4, 1e-1)}", path
            )
        entries = []
        for name, domain in space.items():
            _check_name(name, path)
            if not isinstance(domain, Domain):
                if isinstance(domain, dict):
                    raise ConfigError(
                        "a nested dict is not a domain: use Choice({'branch': {...}}) for conditional parameters, "
                        "or Fixed({...}) for a constant",
                        f"{path}.{name}",
                    )
                try:
                    domain = Fixed(domain)
                except ConfigError as e:
                    raise e.with_prefix(f"{path}.{name}") from None
            entries.append((name, domain))
        return cls(entries=tuple(entries))

    def names(self) -> list[str]:
        """The top-level parameter names."""
        return [n for n, _ in self.entries]

    def suggest(self, trial: Trial, prefix: str = "") -> Params:
        """Sample every parameter through Optuna's define-by-run trial (conditional branches included)."""
        return {name: domain.suggest(trial, prefix + name) for name, domain in self.entries}

    def distributions(self, prefix: str = "") -> dict[str, BaseDistribution]:
        """Every sampled parameter's Optuna distribution under its flat name, all branches included."""
        out: dict[str, BaseDistribution] = {}
        for name, domain in self.entries:
            dist = domain.distribution()
            if dist is not None:
                out[prefix + name] = dist
            if isinstance(domain, Choice) and domain.branches is not None:
                for option, branch in zip(domain.options, domain.branches, strict=True):
                    out.update(branch.distributions(f"{prefix}{name}.{option}."))
        return out

    def grid(self) -> dict[str, list[Any]]:
        """The grid over a finite, flat space: sampled parameter name -> its values (``Fixed`` ones left out)."""
        grid = {name: d.grid_values(name) for name, d in self.entries if not isinstance(d, Fixed)}
        for name, d in self.entries:
            if isinstance(d, Fixed):
                d.grid_values(name)
        if not grid:
            raise ConfigError("every parameter is Fixed: there is nothing to search", "space")
        _check_grid_size(self.grid_size(grid), "space")
        return grid

    @staticmethod
    def grid_size(grid: dict[str, list[Any]]) -> int:
        """Number of points of a grid (the product of the value counts)."""
        return math.prod(len(v) for v in grid.values())

    def unflatten(self, flat: dict[str, Any], prefix: str = "") -> Params:
        """Rebuild ``build``'s nested params from Optuna's flat ``trial.params`` (missing ones are left out)."""
        out: Params = {}
        for name, domain in self.entries:
            key = prefix + name
            if isinstance(domain, Fixed):
                out[name] = domain.value
            elif isinstance(domain, Choice) and domain.branches is not None:
                if key in flat:
                    option = flat[key]
                    branch = domain.branches[domain.options.index(option)]
                    out[name] = {"name": option, **branch.unflatten(flat, f"{key}.{option}.")}
            elif key in flat:
                out[name] = flat[key]
        return out

    def to_dict(self) -> dict[str, Any]:
        """``{name: domain dict}``; ``Space.from_dict`` gives an equal space."""
        return {name: domain.to_dict() for name, domain in self.entries}

    def to_json(self, indent: int | None = 2) -> str:
        """The space as JSON text (exact round trip through ``from_json``)."""
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: object, path: str = "space", *, allow_empty: bool = False) -> Space:
        """Read ``to_dict`` output; unknown domain types and fields raise ``ConfigError`` with a hint."""
        if not isinstance(data, dict):
            raise ConfigError(f"expected a JSON object of parameter names to domains, got {type(data).__name__}", path)
        domains = {name: _domain_from_dict(value, f"{path}.{name}") for name, value in data.items()}
        return cls.of(domains, path, allow_empty=allow_empty)

    @classmethod
    def from_json(cls, text: str | bytes) -> Space:
        """Parse JSON written by ``to_json``."""
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as e:
            raise ConfigError(f"not valid JSON: {e}", "space") from None
        return cls.from_dict(data)


def _domain_from_dict(data: object, path: str) -> Domain:
    if isinstance(data, dict) and data.get("type") == "choice" and isinstance(data.get("options"), dict):
        extra = sorted(set(data) - {"type", "options"})
        if extra:
            raise ConfigError(f"unknown field(s) {extra} for Choice", path)
        branches = {
            name: Space.from_dict(sub, f"{path}.options.{name}", allow_empty=True)
            for name, sub in data["options"].items()
        }
        try:
            return Choice(branches)
        except ConfigError as e:
            raise e.with_prefix(path) from None
    if isinstance(data, dict) and data.get("type") == "fixed":  # the value is plain JSON, never a nested spec
        extra = sorted(set(data) - {"type", "value"})
        if extra or "value" not in data:
            raise ConfigError(f"a fixed domain is {{'type': 'fixed', 'value': ...}}, got keys {sorted(data)}", path)
        try:
            return Fixed(data["value"])
        except ConfigError as e:
            raise e.with_prefix(path) from None
    if isinstance(data, dict) and "type" not in data:
        raise ConfigError(
            "expected a domain object with a 'type' (log_uniform, uniform, int_range, choice, fixed)", path
        )
    return Domain.from_dict(data, path)


def space_fields(domain: Domain) -> list[str]:
    """The dataclass field names of a domain (for messages and docs)."""
    return [f.name for f in dataclasses.fields(domain)]  # type: ignore[arg-type]


__all__ = ["Choice", "Domain", "Fixed", "IntRange", "LogUniform", "Params", "Space", "Uniform"]
