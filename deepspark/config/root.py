"""The root of every network config and the one reader that rebuilds any of them from JSON.

``NetworkConfig``, ``GraphConfig`` and ``ModuleConfig`` derive from ``RootConfig``; the registry tag under
``"type"`` says which one a JSON document holds. Everything that receives a config as text (archives,
executors, the CLI, Spark ML params) calls ``config_from_json`` and gets the right class back, so a new
root kind needs no change in those readers.
"""

from __future__ import annotations

from dataclasses import dataclass

from deepspark.config._spec import Spec, _loads


@dataclass(frozen=True, kw_only=True, slots=True)
class RootConfig(Spec):
    """Base of the configs a ``Network`` is built from (the family ``config_from_dict`` reads)."""

    kind = "network config"
    # The field that sets the input width (data-shape errors name it); unannotated, so not a dataclass field.
    INPUT_FIELD = "input_type"


def config_from_dict(data: object) -> RootConfig:
    """The network config (``NetworkConfig``, ``GraphConfig`` or ``ModuleConfig``) that ``data`` describes.

    Example:
        >>> config_from_dict(conf.to_dict()) == conf    # doctest: +SKIP
        True
    """
    return RootConfig.from_dict(data)


def config_from_json(text: str | bytes) -> RootConfig:
    """Parse a network config of any root kind from JSON; invalid JSON or values raise ``ConfigError``."""
    return config_from_dict(_loads(text))
