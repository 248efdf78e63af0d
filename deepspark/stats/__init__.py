"""Training stats: ``StatsListener`` collects them, a storage keeps them, the UI shows them.

Storages: ``InMemoryStatsStorage``, ``SQLiteStatsStorage`` (a file; the embedded default), and
``RemoteStatsRouter`` (HTTP to ``deepspark ui`` running in another process).
"""

from __future__ import annotations

from deepspark.stats.listener import StatsListener
from deepspark.stats.records import SCHEMA_VERSION, RecordError, StatsRecord
from deepspark.stats.router import RemoteStatsRouter
from deepspark.stats.storage import InMemoryStatsStorage, SessionInfo, SQLiteStatsStorage, StatsStorage

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
