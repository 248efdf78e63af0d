"""Training stats: ``StatsListener`` collects them, a storage keeps them, the UI shows them.

Storages: ``InMemoryStatsStorage``, ``SQLiteStatsStorage`` (a file; the embedded default), and
``RemoteStatsRouter`` (HTTP to ``deepspark ui`` running in another process).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from deepspark.stats.records import SCHEMA_VERSION, RecordError, StatsRecord
from deepspark.stats.router import RemoteStatsRouter
from deepspark.stats.storage import InMemoryStatsStorage, SessionInfo, SQLiteStatsStorage, StatsStorage

if TYPE_CHECKING:
    from deepspark.stats.listener import StatsListener


def __getattr__(name: str) -> Any:
    # StatsListener needs torch; the UI server imports this package's storages and must start fast without it.
    if name == "StatsListener":
        from deepspark.stats.listener import StatsListener

        return StatsListener
    raise AttributeError(f"module 'deepspark.stats' has no attribute {name!r}")


__all__ = [
    "SCHEMA_VERSION",
    "InMemoryStatsStorage",
    "RecordError",
    "RemoteStatsRouter",
    "SQLiteStatsStorage",
    "SessionInfo",
    "StatsListener",
    "StatsRecord",
    "StatsStorage",
]
