"""Agent archives: the model-archive zip (``deepspark.io.archive``) holding an agent instead of one network.

``config.json`` holds the agent description (algorithm, environment, algorithm config, every network's
config and where its values sit in the buffers); ``params.safetensors`` the networks' flat parameter
buffers back to back (DQN: online then target; actor-critic: policy, value, log-std);
``updater.safetensors`` their optimizer states likewise; ``normalizer.json`` the running observation
statistics. Nothing is pickled, and loading never imports a module named in the file: an environment
stored as a ``module:factory`` reference must be passed to ``load`` by the caller.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from deepspark.config._spec import Spec
from deepspark.config.graph import GraphConfig
from deepspark.config.network import NetworkConfig
from deepspark.errors import ConfigError, DeepSparkError, ModelFormatError
from deepspark.io.archive import Archive, read_archive, write_archive
from deepspark.rl.config import FORMAT_VERSION
from deepspark.rl.normalize import RunningStats

if TYPE_CHECKING:
    from deepspark.nn import Network
    from deepspark.rl.agent import Agent
    from deepspark.rl.rollouts import Rollouts

_TYPE = "deepspark_rl_agent"


def _buffers(agent: Agent) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(name, flat params, flat updater state) of every trained buffer, in archive order."""
    from deepspark.rl.actor_critic import _ActorCritic
    from deepspark.rl.dqn import DQN

    if isinstance(agent, DQN):
        return [
            ("network", agent.network.flat.params, agent.network.updater.state),
            ("target", agent.target.flat.params, torch.zeros(0)),
        ]
    if isinstance(agent, _ActorCritic):
        return [
            ("network", agent.network.flat.params, agent.network.updater.state),
            ("value_network", agent.value_network.flat.params, agent.value_network.updater.state),
            ("log_std", agent.log_std.detach(), agent.log_std_updater.state),
        ]
    raise DeepSparkError(f"cannot archive a {type(agent).__name__}")  # pragma: no cover


def _networks(agent: Agent) -> dict[str, Network]:
    nets = {"network": agent.network}
    for name in ("value_network", "target"):
        net = getattr(agent, name, None)
        if net is not None and name != "target":
            nets[name] = net
    return nets


def save_agent(agent: Agent, path: str | os.PathLike[str]) -> None:
    """Write ``agent`` to ``path`` (local or fsspec URL) atomically."""
    buffers = _buffers(agent)
    description = {
        "type": _TYPE,
        "format_version": FORMAT_VERSION,
        "algorithm": agent.algorithm,
        "env": agent.env_name,
        "env_kwargs": json.loads(agent.env_kwargs_json),
        "config": agent.config.to_dict(),
        "networks": {name: net.config.to_dict() for name, net in _networks(agent).items()},  # type: ignore[union-attr]
        "layout": [[name, int(p.numel()), int(u.numel())] for name, p, u in buffers],
        "counters": {"steps": agent.steps, "iteration": agent.iteration, "episodes": agent.episodes,
                     "collections": agent._collections},
        "network_iterations": {name: net.iteration for name, net in _networks(agent).items()},
    }
    params = np.concatenate([p.numpy().astype(np.float32) for _, p, _ in buffers])
    state = np.concatenate([u.numpy().astype(np.float32) for _, _, u in buffers])
    write_archive(
        path,
        Archive(
            config_json=json.dumps(description),
            params=params,
            updater_state=state,
            normalizer_json=None if agent.obs_stats is None else agent.obs_stats.to_json(),
            metadata={"algorithm": agent.algorithm, "env": agent.env_name, "steps": agent.steps},
        ),
    )


def load_agent(path: str | os.PathLike[str] | Path, *, env: Any = None, rollouts: Rollouts | None = None) -> Agent:
    """Rebuild an agent from ``save_agent`` output; damaged or foreign archives raise ``ModelFormatError``."""
    from deepspark.rl.actor_critic import A2C, PPO
    from deepspark.rl.dqn import DQN

    archive = read_archive(path)
    src = os.fsdecode(path)
    try:
        desc = json.loads(archive.config_json)
    except ValueError as e:  # pragma: no cover - read_archive checked it is a JSON object
        raise ModelFormatError(f"agent archive {src}: config.json is not JSON ({e})") from None
    if desc.get("type") != _TYPE:
        raise ModelFormatError(f"{src} is not an RL agent archive (load a network archive with Network.load)")
    if desc.get("format_version") != FORMAT_VERSION:
        raise ModelFormatError(f"agent archive {src}: unsupported format_version {desc.get('format_version')!r}")
    classes: dict[str, type[DQN] | type[PPO] | type[A2C]] = {"dqn": DQN, "ppo": PPO, "a2c": A2C}
    cls = classes.get(desc.get("algorithm"))  # type: ignore[arg-type]
    if cls is None:
        raise ModelFormatError(f"agent archive {src}: unknown algorithm {desc.get('algorithm')!r}")
    stored_env = desc.get("env")
    if env is None:
        if not isinstance(stored_env, str) or ":" in stored_env:
            raise ConfigError(
                f"agent archive {src} was trained on {stored_env!r}, a factory reference; loading never imports "
                "modules named in a file: pass env= (the factory or an Env) to load",
                "env",
            )
        env = stored_env
    try:
        config = cls.config_type.from_dict(desc.get("config"))
        nets = {k: Spec.from_dict(v, f"networks.{k}") for k, v in (desc.get("networks") or {}).items()}
    except ConfigError as e:
        raise ModelFormatError(f"agent archive {src}: invalid config: {e}") from None
    for name, conf in nets.items():
        if not isinstance(conf, (NetworkConfig, GraphConfig)):
            raise ModelFormatError(f"agent archive {src}: networks.{name} is not a network config")
    kwargs: dict[str, Any] = {"rollouts": rollouts, "env_kwargs": desc.get("env_kwargs") or None}
    if "value_network" in nets:
        kwargs["value_network"] = nets["value_network"]
    agent: Agent = cls(env, nets.get("network"), config, **kwargs)  # type: ignore[arg-type]
    _restore(agent, desc, archive, src)
    if archive.normalizer_json is not None:
        agent.obs_stats = RunningStats.from_json(archive.normalizer_json, agent.info.obs_size)
    return agent


def _restore(agent: Agent, desc: dict[str, Any], archive: Archive, src: str) -> None:
    buffers = _buffers(agent)
    layout = desc.get("layout")
    expected = [[name, int(p.numel()), int(u.numel())] for name, p, u in buffers]
    if layout != expected:
        raise ModelFormatError(
            f"agent archive {src}: buffer layout {layout!r:.200} does not match the networks its configs build "
            f"({expected}); the archive is inconsistent"
        )
    state = archive.updater_state if archive.updater_state is not None else np.zeros(0, np.float32)
    sizes = [(int(p.numel()), int(u.numel())) for _, p, u in buffers]
    if archive.params.size != sum(p for p, _ in sizes) or state.size != sum(u for _, u in sizes):
        raise ModelFormatError(f"agent archive {src}: buffer sizes disagree with the layout in config.json")
    if not np.isfinite(archive.params).all():
        raise ModelFormatError(f"agent archive {src}: parameters hold NaN or inf values (the agent diverged)")
    p_off = u_off = 0
    with torch.no_grad():
        for _, p, u in buffers:
            p.copy_(torch.from_numpy(np.array(archive.params[p_off : p_off + p.numel()], np.float32)))
            u.copy_(torch.from_numpy(np.array(state[u_off : u_off + u.numel()], np.float32)))
            p_off, u_off = p_off + p.numel(), u_off + u.numel()
    counters = desc.get("counters") or {}
    for key in ("steps", "iteration", "episodes"):
        value = counters.get(key, 0)
        if type(value) is not int or value < 0:
            raise ModelFormatError(f"agent archive {src}: counters.{key} must be an int >= 0, got {value!r}")
        setattr(agent, key, value)
    if hasattr(agent, "_next_target"):  # DQN: the next target update is due one interval from now
        agent._next_target = agent.steps + int(agent.config.target_update)
    for name, net in _networks(agent).items():
        value = (desc.get("network_iterations") or {}).get(name, 0)
        if type(value) is not int or value < 0:
            raise ModelFormatError(f"agent archive {src}: network_iterations.{name} must be an int >= 0")
        net.iteration = value


__all__ = ["load_agent", "save_agent"]
