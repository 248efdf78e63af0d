"""Config templates: a network config written as JSON with placeholders, so a search can be described in one file.

``{"$param": "lr"}`` is replaced by the trial's ``lr`` (``"opt.lr"`` reads a conditional branch's parameter);
inside a list, ``{"$repeat": "layers", "item": {...}}`` expands to ``layers`` copies of ``item``. The filled
template is read with ``Spec.from_dict``: no code is evaluated, and a bad template fails as ``ConfigError``.

Example:
    >>> template = {"type": "network", "input_type": {"type": "input_type", "form": "feed_forward", "size": 4},
    ...             "updater": {"type": "adam", "learning_rate": {"$param": "lr"}},
    ...             "layers": [{"$repeat": "layers", "item": {"type": "dense", "n_out": {"$param": "units"}}},
    ...                        {"type": "output", "n_out": 3}]}
    >>> fill(template, {"lr": 0.01, "units": 8, "layers": 2})["layers"][1]
    {'type': 'dense', 'n_out': 8}
"""

from __future__ import annotations

from typing import Any

from deepspark.config._spec import Spec
from deepspark.errors import ConfigError
from deepspark.tune.space import Params

MAX_REPEAT = 10_000


def _lookup(params: Params, name: object, path: str) -> Any:
    if not isinstance(name, str) or not name:
        raise ConfigError(f"expected a parameter name, got {name!r}", path)
    value: Any = params
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            raise ConfigError(f"the template reads parameter {name!r}, which this trial does not have", path)
        value = value[part]
    return value


def fill(template: Any, params: Params, path: str = "network") -> Any:
    """The template with every placeholder replaced by this trial's values."""
    if isinstance(template, dict):
        if "$param" in template:
            if len(template) != 1:
                raise ConfigError("a {'$param': name} placeholder takes no other keys", path)
            return _lookup(params, template["$param"], path)
        if "$repeat" in template:
            raise ConfigError("{'$repeat': ...} may only appear as an item of a list", path)
        return {k: fill(v, params, f"{path}.{k}") for k, v in template.items()}
    if isinstance(template, list):
        out: list[Any] = []
        for i, item in enumerate(template):
            where = f"{path}[{i}]"
            if isinstance(item, dict) and "$repeat" in item:
                if set(item) != {"$repeat", "item"}:
                    raise ConfigError("a repeat is {'$repeat': name, 'item': {...}}", where)
                count = _lookup(params, item["$repeat"], where)
                if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_REPEAT:
                    raise ConfigError(f"a repeat count must be an int in [0, {MAX_REPEAT}], got {count!r}", where)
                out.extend(fill(item["item"], params, f"{where}.item") for _ in range(count))
            else:
                out.append(fill(item, params, where))
        return out
    return template


class TemplateBuild:
    """``build`` for a search described by a JSON template: fills it and reads the config spec."""

    def __init__(self, template: Any) -> None:
        if not isinstance(template, dict):
            raise ConfigError(f"expected a config object, got {type(template).__name__}", "network")
        self.template = template

    def __call__(self, params: Params) -> Spec:
        return Spec.from_dict(fill(self.template, params))
