"""The MDP interface: Gymnasium environments by id, factory reference or instance, and their spaces checked once.

An agent accepts a registered Gymnasium id (``"CartPole-v1"``), an importable factory reference
(``"my_package.envs:make_env"``), a zero-argument callable or an ``Env`` instance. Only the two string
forms can travel to Spark executors: they are rebuilt there by name, never unpickled.
"""

from __future__ import annotations

import difflib
import importlib
import json
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from deepspark.errors import ConfigError, DataError, EnvironmentStepError

ActionKind = Literal["discrete", "box"]



@dataclass(frozen=True, slots=True)
class EnvInfo:
    """What an agent needs to know about an environment: its name and the shapes of its spaces.

    Attributes:
        name: The id or factory reference (or the class name of an instance), for messages.
        obs_shape: Shape of one observation as the environment returns it.
        obs_size: Values in one flattened observation (what the network's input takes).
        action: ``"discrete"`` or ``"box"`` (continuous).
        action_size: Number of actions (discrete) or action dimensions (box).
        low: Lower action bounds (box), else empty.
        high: Upper action bounds (box), else empty.
    """

    name: str
    obs_shape: tuple[int, ...]
    obs_size: int
    action: ActionKind
    action_size: int
    low: tuple[float, ...] = ()
    high: tuple[float, ...] = ()


def _gym() -> Any:
    import gymnasium

    return gymnasium


def check_env_id(env_id: str) -> None:
    """Raise ``ConfigError`` listing close matches when ``env_id`` is not a registered Gymnasium id."""
    gym = _gym()
    if ":" in env_id or env_id in gym.registry:
        return
    ids = sorted(gym.registry.keys())
    close = difflib.get_close_matches(env_id, ids, n=5, cutoff=0.5)
    lowered = [i for i in ids if env_id.lower().split("-v")[0] in i.lower()]
    matches = list(dict.fromkeys(close + lowered))[:5]
    hint = f"close matches: {', '.join(matches)}" if matches else f"{len(ids)} ids are registered, e.g. CartPole-v1"
    raise ConfigError(
        f"unknown Gymnasium environment {env_id!r}; {hint}. Ids of other packages need their module imported "
        "first, or the 'module:EnvId' form",
        "env",
    )


def make_env(source: str, kwargs_json: str = "{}") -> Any:
    """Build an environment from a registered id or a ``"module:factory"`` reference (with JSON kwargs).

    A reference whose attribute exists in the module is called with the kwargs; any other ``module:Id``
    goes to ``gymnasium.make``, which imports the module so that it registers its ids.
    """
    gym = _gym()
    kwargs = _kwargs(kwargs_json)
    module_name, sep, attr = source.partition(":")
    if sep:
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:
            raise ConfigError(f"cannot import {module_name!r} for environment {source!r}: {e}", "env") from e
        factory = getattr(module, attr, None)
        if callable(factory):
            return check_is_env(factory(**kwargs), source)
    else:
        check_env_id(source)
    return gym.make(source, **kwargs)


def _kwargs(kwargs_json: str) -> dict[str, Any]:
    try:
        kwargs = json.loads(kwargs_json)
    except ValueError as e:
        raise ConfigError(f"not valid JSON: {e}", "env_kwargs") from None
    if not isinstance(kwargs, dict):
        raise ConfigError(f"expected a JSON object of keyword arguments, got {kwargs_json!r:.60}", "env_kwargs")
    return kwargs


def check_is_env(env: Any, name: str) -> Any:
    """``env`` itself when it has Gymnasium's ``reset``/``step`` and spaces, else ``ConfigError``."""
    missing = [a for a in ("reset", "step", "observation_space", "action_space") if not hasattr(env, a)]
    if missing:
        raise ConfigError(
            f"{name!r} gave a {type(env).__name__}, not a Gymnasium environment (missing {', '.join(missing)})", "env"
        )
    return env


def env_name(source: Any) -> str:
    """A readable name for messages and archives."""
    if isinstance(source, str):
        return source
    spec = getattr(source, "spec", None)
    if spec is not None and getattr(spec, "id", None):
        return str(spec.id)
    return getattr(source, "__name__", type(source).__name__)


def env_info(env: Any, name: str) -> EnvInfo:
    """The spaces of ``env`` as an ``EnvInfo``; spaces no algorithm here handles raise ``ConfigError``."""
    spaces = _gym().spaces
    obs_space, act_space = env.observation_space, env.action_space
    if isinstance(obs_space, spaces.Box):
        obs_shape = tuple(int(d) for d in obs_space.shape)
    else:
        obs_shape = (int(spaces.flatdim(obs_space)),)
    obs_size = int(spaces.flatdim(obs_space))
    if isinstance(act_space, spaces.Discrete):
        return EnvInfo(name, obs_shape, obs_size, "discrete", int(act_space.n))
    if isinstance(act_space, spaces.Box) and len(act_space.shape) == 1:
        low = tuple(float(v) for v in np.asarray(act_space.low, dtype=np.float64))
        high = tuple(float(v) for v in np.asarray(act_space.high, dtype=np.float64))
        return EnvInfo(name, obs_shape, obs_size, "box", int(act_space.shape[0]), low, high)
    raise ConfigError(
        f"environment {name!r} has action space {act_space}; supported: Discrete and 1-D Box", "env.action_space"
    )


class ObservationFlattener:
    """Turns what ``reset``/``step`` return into one flat float32 row; checks shape and finiteness."""

    def __init__(self, env: Any, info: EnvInfo) -> None:
        spaces = _gym().spaces
        self.space = env.observation_space
        self.info = info
        self.box = isinstance(self.space, spaces.Box)
        self._flatten = spaces.flatten

    def __call__(self, obs: Any, step: int) -> np.ndarray:
        arr = np.asarray(obs, dtype=np.float32) if self.box else np.asarray(self._flatten(self.space, obs), np.float32)
        if arr.size != self.info.obs_size:
            raise DataError(
                f"environment {self.info.name!r} returned an observation of shape {np.shape(obs)} at step {step}, "
                f"but its observation space says {self.info.obs_shape}; fix the environment's observation_space"
            )
        return arr.reshape(-1)


def step_error(name: str, step: int, worker: int, env_index: int, error: BaseException) -> EnvironmentStepError:
    """The typed error for an exception raised inside ``env.step``/``env.reset``."""
    where = f"worker {worker}, env {env_index}" if worker >= 0 else f"env {env_index}"
    return EnvironmentStepError(
        f"environment {name!r} ({where}) raised at step {step}: {type(error).__name__}: {error}"
    )



__all__ = [
    "ActionKind",
    "EnvInfo",
    "ObservationFlattener",
    "check_env_id",
    "check_is_env",
    "env_info",
    "env_name",
    "make_env",
    "step_error",
]
