"""Executor-side rollout collection: plain functions of one frozen ``RolloutSpec``, and the live-runner cache.

The same code runs in a Spark Python worker (``SparkRollouts``) and in the driver (``LocalRollouts``),
so one worker with a fixed seed collects exactly what a local run collects. A process keeps its
``EnvRunner`` and compiled policy per (run, task) between iterations; each iteration brings the policy
weights as one flat float32 buffer and the task's resume state, used only when the live runner is
missing or stale (see ``deepspark.rl.runner``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from deepspark.config._spec import Spec
from deepspark.errors import ConfigError, DataError
from deepspark.rl._arrays import pack_arrays, unpack_arrays
from deepspark.rl.env import EnvInfo, env_info, make_env
from deepspark.rl.normalize import normalize
from deepspark.rl.policies import Policy
from deepspark.rl.runner import EnvRunner, Trajectories

_MAX_RUNS = 4  # runs whose runners a process keeps (the oldest are closed)


@dataclass(frozen=True, kw_only=True, slots=True)
class RolloutSpec:
    """What every collection of one run shares: the environment, the policy network and the seeds.

    Attributes:
        run_id: Identifies the run (the runner cache key).
        env: A registered Gymnasium id or a ``"module:factory"`` reference.
        env_kwargs_json: Keyword arguments for the environment, as a JSON object.
        network_json: The policy network's config JSON (compiled once per process and run).
        envs_per_task: Environments each task steps.
        n_steps: Steps per environment per collection.
        seed: The run's seed.
    """

    run_id: str
    env: str
    env_kwargs_json: str = "{}"
    network_json: str
    envs_per_task: int
    n_steps: int
    seed: int

    def __post_init__(self) -> None:
        if self.envs_per_task < 1 or self.n_steps < 1:
            raise ConfigError(f"expected positive envs_per_task and n_steps, got {self.envs_per_task}, {self.n_steps}")


@dataclass(frozen=True, kw_only=True, slots=True)
class IterationState:
    """What changes every collection: the count, the acting policy, its weights and the observation scaling.

    Attributes:
        count: Collections completed before this one (the runners' expected position).
        policy_json: The acting ``Policy`` spec as JSON (e.g. epsilon-greedy with this step's epsilon).
        params: The policy network's flat parameter buffer.
        log_std: Log standard deviations of a Gaussian policy; empty for discrete actions.
        obs_mean: Observation means to normalize with; empty when observations are not normalized.
        obs_inv_std: Matching ``1/std``.
        obs_clip: Clip normalized observations to ``[-obs_clip, obs_clip]``.
    """

    count: int
    policy_json: str
    params: np.ndarray
    log_std: np.ndarray
    obs_mean: np.ndarray
    obs_inv_std: np.ndarray
    obs_clip: float = 10.0

    def pack(self, resume: list[bytes | None]) -> bytes:
        """One message for all tasks: this state plus each task's resume state (``None``: not known)."""
        arrays: dict[str, np.ndarray] = {
            "params": self.params,
            "log_std": self.log_std,
            "obs_mean": self.obs_mean,
            "obs_inv_std": self.obs_inv_std,
        }
        for task, blob in enumerate(resume):
            if blob is not None:
                arrays[f"resume{task}"] = np.frombuffer(blob, np.uint8)
        meta = {"count": self.count, "policy": self.policy_json, "obs_clip": self.obs_clip}
        return pack_arrays(arrays, meta)

    @classmethod
    def unpack(cls, data: bytes, task: int) -> tuple[IterationState, bytes | None]:
        """The state and this task's resume message from ``pack`` output."""
        arrays, meta = unpack_arrays(data)
        resume = arrays.get(f"resume{task}")
        state = cls(
            count=int(meta["count"]),
            policy_json=str(meta["policy"]),
            params=arrays["params"],
            log_std=arrays["log_std"],
            obs_mean=arrays["obs_mean"],
            obs_inv_std=arrays["obs_inv_std"],
            obs_clip=float(meta["obs_clip"]),
        )
        return state, None if resume is None else resume.tobytes()


class Live:
    """One task's runner and compiled policy network in this process."""

    def __init__(self, spec: RolloutSpec, task: int, worker: int, make: Callable[[], Any] | None = None) -> None:
        from deepspark.nn import Network

        build = make if make is not None else lambda: make_env(spec.env, spec.env_kwargs_json)
        first = build()
        self.info: EnvInfo = env_info(first, spec.env)
        pending = [first]

        def one() -> Any:
            return pending.pop() if pending else build()

        self.runner = EnvRunner(one, self.info, spec.envs_per_task, spec.seed, task)
        self.runner.worker = worker
        self.net = Network(Spec.from_json(spec.network_json))  # type: ignore[arg-type]
        self.net.model.eval()


_LIVE: OrderedDict[str, dict[int, Live]] = OrderedDict()


def _live(spec: RolloutSpec, task: int, worker: int) -> Live:
    runs = _LIVE.get(spec.run_id)
    if runs is None:
        while len(_LIVE) >= _MAX_RUNS:
            _, old = _LIVE.popitem(last=False)
            for live in old.values():
                live.runner.close()
        runs = _LIVE[spec.run_id] = {}
    _LIVE.move_to_end(spec.run_id)
    found = runs.get(task)
    if found is not None:
        return found
    live = runs[task] = Live(spec, task, worker)
    return live


def forget_run(run_id: str) -> None:
    """Close and drop this process's runners of ``run_id`` (the next collection rebuilds from resume state)."""
    for live in _LIVE.pop(run_id, {}).values():
        live.runner.close()


def spark_collect(spec: RolloutSpec, state_bc: Any, task: int, rows: Iterator[Any]) -> Iterator[bytes]:
    """The Spark task: one partition = one task; yields one Arrow message (trajectories + resume state)."""
    for _ in rows:
        pass
    state, resume = IterationState.unpack(state_bc.value, task)
    traj, resume_out = collect_with(_live(spec, task, task), spec, state, task, resume)
    arrays = {f"t_{k}": v for k, v in traj.to_arrays().items()}
    arrays.update({f"r_{k}": v for k, v in resume_out.items()})
    yield pack_arrays(arrays)


def pack_resume(arrays: dict[str, np.ndarray]) -> bytes:
    """A runner's resume arrays as the message ``collect_with`` accepts."""
    return pack_arrays({f"r_{k}": v for k, v in arrays.items()})


def collect_with(
    live: Live, spec: RolloutSpec, state: IterationState, task: int, resume: bytes | None
) -> tuple[Trajectories, dict[str, np.ndarray]]:
    """One task's collection with ``live``'s runner and network; returns trajectories and resume arrays."""
    runner = live.runner
    if state.count == 0 and runner.position != 0:
        runner.start()
    elif runner.position != state.count:
        if resume is None:
            raise DataError(
                f"rollout task {task} is at collection {runner.position} but collection {state.count} was asked, "
                "and no resume state came with it"
            )
        arrays, _ = unpack_arrays(resume)
        runner.restore({k[2:]: v for k, v in arrays.items() if k.startswith("r_")})
    net = live.net
    net.set_params(state.params)
    policy = Policy.from_json(state.policy_json)
    log_std = torch.from_numpy(np.array(state.log_std, np.float32)) if state.log_std.size else None
    seed = int(np.random.SeedSequence([spec.seed, 7, state.count, task]).generate_state(1)[0])
    gen = torch.Generator().manual_seed(seed)  # actions depend on (seed, collection, task) only
    scale = (state.obs_mean, state.obs_inv_std, state.obs_clip) if state.obs_mean.size else None

    @torch.no_grad()
    def act(obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = normalize(obs, *scale) if scale is not None else obs
        out = net.model.forward_preouts([torch.from_numpy(np.ascontiguousarray(x))], [None])[0][0]
        actions, logp = policy.select(out, log_std, gen)
        return actions.numpy(), logp.numpy()

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one small forward per step: more threads only add contention
    try:
        traj = runner.collect(spec.n_steps, act)
    finally:
        torch.set_num_threads(threads)
    return traj, runner.resume_arrays()


def decode_task_result(data: bytes) -> tuple[Trajectories, bytes]:
    """Trajectories and the resume message (to send back next iteration) from ``spark_collect`` output."""
    arrays, _ = unpack_arrays(data)
    traj = Trajectories.from_arrays({k[2:]: v for k, v in arrays.items() if k.startswith("t_")})
    resume = pack_arrays({k: v for k, v in arrays.items() if k.startswith("r_")})
    return traj, resume


__all__ = [
    "IterationState",
    "Live",
    "RolloutSpec",
    "collect_with",
    "decode_task_result",
    "forget_run",
    "pack_resume",
    "spark_collect",
]
