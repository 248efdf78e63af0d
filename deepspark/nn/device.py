"""Where a network computes: device strings parsed and checked, and the precision each device can run.

``Network(conf, device=...)`` takes ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (CUDA when torch sees a
device, else the CPU). Everything is checked before a buffer is allocated: asking for CUDA on a machine without
it, or fp16 on the CPU, raises ``ConfigError`` naming the field and a setting that works.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from deepspark.errors import ConfigError

DEVICE_KINDS = ("auto", "cpu", "cuda", "cuda:N")
"""What ``device`` accepts (N: a CUDA device index)."""

_DEVICE = re.compile(r"^(auto|cpu|meta|cuda)(?::(\d+))?$")


@dataclass(frozen=True, slots=True)
class CudaInfo:
    """What torch sees of CUDA in this process (a parameter of the checks, so tests can describe any machine)."""

    count: int
    bf16: bool = True

    @staticmethod
    def probe() -> CudaInfo:
        """This process's CUDA devices; asks the driver only when torch was built with CUDA."""
        if not torch.cuda.is_available():
            return CudaInfo(0, False)
        return CudaInfo(torch.cuda.device_count(), bool(torch.cuda.is_bf16_supported()))


def parse_device(spec: object, field: str = "device") -> str:
    """``spec`` checked and normalised (``"CUDA:1 "`` -> ``"cuda:1"``); a bad one raises ``ConfigError``.

    ``"meta"`` (shapes only, no data) is accepted for tests and planning; it cannot train.
    """
    text = str(spec).strip().lower() if isinstance(spec, (str, torch.device)) else ""
    match = _DEVICE.match(text)
    if match is None or (match.group(2) is not None and match.group(1) != "cuda"):
        raise ConfigError(f"expected one of {', '.join(DEVICE_KINDS)}, got {spec!r}", field)
    return text


def resolve_device(spec: object, cuda: CudaInfo | None = None, field: str = "device") -> torch.device:
    """The torch device ``spec`` means here: ``auto`` picks CUDA (device 0 of those visible) when there is one.

    Raises:
        ConfigError: CUDA asked for where torch sees none, or an index past the visible devices.
    """
    text = parse_device(spec, field)
    info = cuda if cuda is not None else (CudaInfo(0, False) if text in ("cpu", "meta") else CudaInfo.probe())
    if text == "auto":
        return torch.device("cuda", 0) if info.count > 0 else torch.device("cpu")
    device = torch.device(text)
    if device.type != "cuda":
        return device
    if info.count == 0:
        raise ConfigError(
            f"{text!r} asked for, but torch sees no CUDA device here (torch {torch.__version__}, CUDA build: "
            f"{torch.version.cuda is not None}); use device='auto' (CUDA when present, else the CPU) or 'cpu'",
            field,
        )
    index = 0 if device.index is None else device.index
    if index >= info.count:
        raise ConfigError(
            f"{text!r} asked for, but torch sees {info.count} CUDA device(s) (cuda:0 .. cuda:{info.count - 1}); "
            "check CUDA_VISIBLE_DEVICES, or use device='auto'",
            field,
        )
    return torch.device("cuda", index)


def check_precision(precision: str, device: torch.device, cuda: CudaInfo | None = None) -> None:
    """Refuse a precision the device cannot run, before any work: fp16 needs CUDA; bf16 on CUDA needs Ampere+."""
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError(
            f"fp16 mixed precision needs a CUDA device, and this network computes on {device.type!r}; "
            "use precision='bf16' (runs on CPUs) or 'fp32', or device='cuda'",
            "precision",
        )
    if precision == "bf16" and device.type == "cuda":
        info = cuda if cuda is not None else CudaInfo.probe()
        if not info.bf16:
            raise ConfigError(
                "bf16 needs a GPU with bfloat16 support (Ampere or newer); use precision='fp16' on this GPU",
                "precision",
            )


__all__ = ["DEVICE_KINDS", "CudaInfo", "check_precision", "parse_device", "resolve_device"]
