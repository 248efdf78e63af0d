"""The barrier-stage launcher: a rendezvous store on the driver, and the process group each rank joins.

Our own launcher rather than TorchDistributor's torchrun wrapper, which hides a rank's exit code: every rank
runs inside its Spark task, so a rank that fails fails its task and Spark sees it. The driver hosts a
``TCPStore`` bound to ``spark.driver.host`` (executors can always reach the driver); each stage attempt uses
its own key prefix. This costs nothing per stage, whereas ``BarrierTaskContext.allGather`` waits in
one-second polls on the JVM side (measured: ~1 s per call). Every wait is bounded by the group's timeout.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from deepspark.errors import ConfigError

Backend = Literal["gloo", "nccl"]
log = logging.getLogger("deepspark")


class DriverStore:
    """A ``TCPStore`` server in the driver process, listening on one address only (not 0.0.0.0)."""

    def __init__(self, host: str, timeout_s: float) -> None:
        import torch.distributed as dist

        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_STREAM)
        try:
            self._socket.bind((host, 0))
            self._socket.listen(128)
        except OSError:
            self._socket.close()
            raise
        self.host = host
        self.port = int(self._socket.getsockname()[1])
        self._store: Any = dist.TCPStore(  # type: ignore[attr-defined]
            host,
            self.port,
            None,
            is_master=True,
            master_listen_fd=self._socket.fileno(),
            wait_for_workers=False,
            timeout=timedelta(seconds=timeout_s),
        )
        self._socket.detach()  # the store owns the descriptor now and closes it when it is dropped

    def check(self, keys: list[str]) -> bool:
        """Whether every key has been set (does not wait)."""
        return bool(self._store.check(keys))

    def set(self, key: str, value: bytes) -> None:
        self._store.set(key, value)

    def take(self, key: str) -> bytes:
        """The value of a key that is set, removed from the store (epoch states are read once)."""
        value = bytes(self._store.get(key))
        self._store.delete_key(key)
        return value

    def delete(self, key: str) -> None:
        """Remove a key (set or not)."""
        self._store.delete_key(key)

    def close(self) -> None:
        """Stop serving (the store's server closes the listening socket)."""
        self._store = None


@dataclass(frozen=True)
class Member:
    """What a rank holds while it is in the group."""

    rank: int
    world_size: int
    backend: Backend
    store: Any  # kept alive for the group's lifetime


def pick_backend(requested: str, devices: Sequence[str] = ()) -> tuple[Backend, str]:
    """The process-group backend for a master's ``backend`` setting, and why, given each rank's device as
    ``"<device>@<host>"`` (e.g. ``"cuda:1@node7"``; the host part may be left out).

    ``auto`` is NCCL when every rank computes on its own CUDA device, gloo otherwise: NCCL moves CUDA tensors only,
    and refuses two ranks on one GPU (``spark.task.resource.gpu.amount`` < 1 puts several tasks on one).

    Raises:
        ConfigError: ``nccl`` asked for while some rank computes on the CPU, or ranks share a GPU.
    """
    cpu = [rank for rank, d in enumerate(devices) if not d.startswith("cuda")]
    shared = len(set(devices)) < len(devices)
    if requested == "gloo":
        return "gloo", "backend='gloo' asked for"
    if requested == "nccl":
        if cpu or not devices:
            raise ConfigError(
                f"NCCL moves CUDA tensors only, but rank(s) {cpu} compute on the CPU; use 'auto' or 'gloo', or give "
                "every task a GPU (spark.task.resource.gpu.amount, docs/gpu.md)",
                "backend",
            )
        if shared:
            raise ConfigError(
                f"NCCL needs one GPU per rank, but ranks share GPUs ({', '.join(devices)}); use 'auto' or 'gloo', "
                "or set spark.task.resource.gpu.amount=1",
                "backend",
            )
        return "nccl", "backend='nccl' asked for"
    if devices and not cpu:
        if shared:
            return "gloo", "ranks share a GPU, and NCCL needs one per rank"
        return "nccl", "every rank has its own CUDA device"
    if len(cpu) == len(devices):
        return "gloo", "no rank has a CUDA device (CPU fallback)"
    return "gloo", f"rank(s) {cpu} of {len(devices)} have no CUDA device (CPU fallback for all)"


ARRIVAL_TIMEOUT_S = 300.0
"""How long a rank waits for every peer to arrive in the stage, before the group forms. A stage relaunched after
a lost executor starts one rank on the replacement executor, whose first Python worker imports torch cold and
recomputes the lost cached block first: a minute or more on a busy machine, far longer than a collective may
take (``collective_timeout``). A peer that fails instead fails its task, and Spark then ends the whole barrier
stage, so this bound only matters if Spark itself hangs."""


def join(
    host: str,
    port: int,
    prefix: str,
    rank: int,
    world_size: int,
    backend: str,
    timeout_s: float,
    device: str = "cpu",
) -> Member:
    """Join the stage attempt's process group through the driver's store; every rank calls it once.

    Waits up to ``ARRIVAL_TIMEOUT_S`` for every rank to arrive, then forms the group with ``timeout_s`` as the
    bound of every later wait (collectives, epoch exchanges). With ``auto`` or ``nccl`` the ranks first tell
    each other their device (``device`` and host) through the store, so they all pick the same backend; the
    choice and its reason go to the ``deepspark`` log.
    """
    import torch.distributed as dist

    timeout = timedelta(seconds=timeout_s)
    arrival = timedelta(seconds=max(timeout_s, ARRIVAL_TIMEOUT_S))
    client = dist.TCPStore(host, port, None, is_master=False, timeout=arrival)  # type: ignore[attr-defined]
    store = dist.PrefixStore(prefix, client)  # type: ignore[attr-defined]
    store.set(f"arrived/{rank}", "1")
    store.wait([f"arrived/{r}" for r in range(world_size)], arrival)
    store.set_timeout(timeout)
    devices: list[str] = []
    if backend != "gloo":
        store.set(f"device/r{rank}", f"{device}@{socket.gethostname()}")
        keys = [f"device/r{r}" for r in range(world_size)]
        store.wait(keys, timeout)
        devices = [bytes(store.get(k)).decode() for k in keys]
    chosen, why = pick_backend(backend, devices)
    some_cuda = any(d.startswith("cuda") for d in devices)
    log.log(logging.WARNING if chosen == "gloo" and some_cuda else logging.INFO,
            "rank %d/%d on %s: process group backend %s (%s)", rank, world_size, device, chosen, why)
    dist.init_process_group(chosen, store=store, rank=rank, world_size=world_size, timeout=timeout)
    return Member(rank, world_size, chosen, store)


def leave() -> None:
    """Destroy the process group before the task returns (gloo can abort a process that exits holding one)."""
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
