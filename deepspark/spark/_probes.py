"""Cheap readings of the current process (RSS, torch memory, Python GC) for stats, on the driver or a worker.

They live here, below ``deepspark.stats``, because executors call them while fitting a round and send the
readings back with the round result (JSON, never pickle), so no worker has to talk to a UI server.
"""

from __future__ import annotations

import gc
import os
import time
from typing import Any

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int:
    """Resident set size of this process now (Linux ``/proc``), else the peak RSS ``getrusage`` reports."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def torch_bytes() -> int:
    """Bytes held by torch's CUDA caching allocator (0 on CPU-only machines, where torch has no allocator stats)."""
    import torch

    if torch.cuda.is_available():
        return int(torch.cuda.memory_allocated())
    return 0


class GcMonitor:
    """Counts collections per generation and the time spent in them, through ``gc.callbacks``.

    One monitor per process (``gc_monitor()``): installing it costs two ``perf_counter`` calls per collection.
    """

    def __init__(self) -> None:
        self.seconds = 0.0
        self._start = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        elif self._start:
            self.seconds += time.perf_counter() - self._start
            self._start = 0.0

    def reading(self) -> dict[str, Any]:
        """Collections so far per generation (``gc.get_stats``), total GC seconds since the monitor started."""
        return {"collections": [int(s["collections"]) for s in gc.get_stats()], "seconds": self.seconds}


_MONITOR: GcMonitor | None = None


def gc_monitor() -> GcMonitor:
    """The process's GC monitor, installed on first use."""
    global _MONITOR
    if _MONITOR is None:
        _MONITOR = GcMonitor()
    return _MONITOR


def process_reading() -> dict[str, Any]:
    """RSS, torch allocator bytes and GC counters of this process, as JSON-able values."""
    return {"rss_bytes": rss_bytes(), "torch_bytes": torch_bytes(), "gc": gc_monitor().reading()}
