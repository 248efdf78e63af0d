"""Which device each Spark task computes on: the GPU Spark assigned it, or the CPU; never "cuda:0" by habit.

The driver reads two settings into a frozen ``Placement`` that travels with every shipped model:
``spark.deepspark.device`` (``auto`` by default, ``cpu`` or ``cuda``) and ``spark.task.resource.gpu.amount``
(Spark's GPU scheduling; 0 or unset means tasks get no GPU). On the executor, ``task_device`` turns the
addresses in ``TaskContext.resources()["gpu"]`` into a torch device: ``cuda:<address>``, or the address's
position in ``CUDA_VISIBLE_DEVICES`` when the cluster manager isolates GPUs per executor (YARN, Kubernetes).
Two tasks share a GPU only when the resource amounts say so (``spark.task.resource.gpu.amount`` < 1).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from deepspark.errors import ConfigError
from deepspark.nn.device import parse_device

DEVICE_KEY = "spark.deepspark.device"
"""Spark conf key: ``auto`` (default: the GPU Spark assigned a task, else the CPU), ``cpu`` or ``cuda``."""

GPU_RESOURCE = "gpu"
TASK_AMOUNT_KEY = f"spark.task.resource.{GPU_RESOURCE}.amount"


@dataclass(frozen=True, kw_only=True, slots=True)
class Placement:
    """Where the executors of one job compute (decided on the driver, read on the executors).

    Attributes:
        device: ``auto``, ``cpu`` or ``cuda`` (from ``spark.deepspark.device``).
        task_amount: ``spark.task.resource.gpu.amount`` (0.0: Spark hands tasks no GPU).
        resource: the Spark resource name holding GPU addresses.
    """

    device: str = "cpu"
    task_amount: float = 0.0
    resource: str = GPU_RESOURCE

    @property
    def gpus(self) -> bool:
        """Whether tasks compute on the GPU Spark assigned them."""
        return self.device != "cpu" and self.task_amount > 0


def placement_from_conf(conf: Mapping[str, str], master: str = "") -> Placement:
    """The placement two Spark settings ask for (see the module docstring); bad values raise ``ConfigError``.

    ``master`` (the session's master URL) refuses GPU amounts on ``local[N]``: Spark's local mode hands tasks
    no resource addresses, and a job asking for them waits forever.

    Example:
        >>> placement_from_conf({"spark.task.resource.gpu.amount": "1"})
        Placement(device='auto', task_amount=1.0, resource='gpu')
    """
    device = parse_device(conf.get(DEVICE_KEY, "auto"), DEVICE_KEY)
    if device not in ("auto", "cpu", "cuda"):
        raise ConfigError(
            f"expected 'auto', 'cpu' or 'cuda', got {device!r}: on Spark every task uses the GPU Spark assigned it "
            f"({TASK_AMOUNT_KEY}), so a fixed index would put every task on one GPU",
            DEVICE_KEY,
        )
    raw = conf.get(TASK_AMOUNT_KEY, "0")
    try:
        amount = float(raw)
    except ValueError:
        raise ConfigError(f"expected a number, got {raw!r}", TASK_AMOUNT_KEY) from None
    if amount > 0 and (master == "local" or master.startswith("local[")):
        raise ConfigError(
            f"Spark's local mode ({master}) hands tasks no GPU addresses, so a job asking for {amount:g} GPU per "
            "task would wait forever; use 'local-cluster[1,<cores>,<MiB>]' or a cluster with "
            "spark.worker.resource.gpu.* settings, or unset it",
            TASK_AMOUNT_KEY,
        )
    if device == "cuda" and amount <= 0:
        raise ConfigError(
            f"device 'cuda' asked for, but Spark hands tasks no GPU: set {TASK_AMOUNT_KEY} (e.g. 1), "
            "spark.executor.resource.gpu.amount and a discovery script (docs/gpu.md), or use 'auto'",
            DEVICE_KEY,
        )
    return Placement(device=device, task_amount=amount)


def task_device(placement: Placement, resources: Mapping[str, Sequence[str]], visible: str | None) -> str:
    """The torch device string of a task given the resource addresses Spark handed it.

    Args:
        placement: the driver's decision.
        resources: resource name -> addresses (``TaskContext.resources()``, addresses only).
        visible: ``CUDA_VISIBLE_DEVICES`` in the task's process, or None.

    Raises:
        ConfigError: GPUs are configured but the task received no address (or an address CUDA cannot name).
    """
    if not placement.gpus:
        return "cpu"
    addresses = list(resources.get(placement.resource, ()))
    if not addresses:
        got = ", ".join(sorted(resources)) or "none"
        raise ConfigError(
            f"{TASK_AMOUNT_KEY}={placement.task_amount:g} is set but Spark handed this task no "
            f"{placement.resource!r} address (resources it got: {got}); give executors GPUs with "
            f"spark.executor.resource.{placement.resource}.amount and a discoveryScript, or set "
            f"{DEVICE_KEY}=cpu",
            TASK_AMOUNT_KEY,
        )
    address = addresses[0].strip()
    if visible:
        ids = [v.strip() for v in visible.split(",") if v.strip()]
        if address in ids:  # the cluster manager isolated GPUs: CUDA numbers the visible ones from 0
            return f"cuda:{ids.index(address)}"
    if not address.isdigit():
        raise ConfigError(
            f"Spark handed this task GPU address {address!r}, which is not a CUDA device index and not in "
            f"CUDA_VISIBLE_DEVICES ({visible!r}); make the discovery script print device indices",
            TASK_AMOUNT_KEY,
        )
    return f"cuda:{address}"


def current_task_device(placement: Placement) -> str:
    """``task_device`` for the Spark task running in this process (the CPU outside a task)."""
    from pyspark import TaskContext

    ctx = TaskContext.get()
    resources: dict[str, list[str]] = {}
    if ctx is not None:
        resources = {name: list(info.addresses) for name, info in ctx.resources().items()}
    return task_device(placement, resources, os.environ.get("CUDA_VISIBLE_DEVICES"))


def driver_placement(sc: Any) -> Placement:
    """The placement the SparkContext's settings ask for (driver side)."""
    conf = sc.getConf()
    keys = (DEVICE_KEY, TASK_AMOUNT_KEY)
    return placement_from_conf({k: v for k in keys if (v := conf.get(k)) is not None}, str(sc.master))


__all__ = [
    "DEVICE_KEY",
    "TASK_AMOUNT_KEY",
    "Placement",
    "current_task_device",
    "driver_placement",
    "placement_from_conf",
    "task_device",
]
