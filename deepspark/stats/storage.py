"""Where stats records go: in memory, or an SQLite file (the embedded default) that a UI reads while training writes.

SQLite runs in WAL mode, so one writer and any number of readers (the UI server, a report, another
process) work on the same file at once; the schema carries a version, and a file of another version is
refused with a message rather than misread.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from deepspark.errors import StorageError
from deepspark.stats.records import SCHEMA_VERSION, Kind, StatsRecord


@dataclass(frozen=True)
class SessionInfo:
    """One training session as listed by a storage: ids seen, time span and record count."""

    session_id: str
    types: tuple[str, ...]
    workers: tuple[str, ...]
    start: float
    end: float
    records: int


class StatsStorage:
    """What every sink implements: ``put`` records, list sessions, query records by session/type/worker/time."""

    def put(self, records: Sequence[StatsRecord]) -> None:
        """Store records (all or none)."""
        raise NotImplementedError

    def query(
        self,
        session_id: str,
        *,
        type_id: str | None = None,
        worker_id: str | None = None,
        kind: Kind | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> list[StatsRecord]:
        """Records of a session ordered by (timestamp, insertion), filtered; ``since <= timestamp < until``."""
        raise NotImplementedError

    def sessions(self) -> list[SessionInfo]:
        """Every session stored, oldest first."""
        raise NotImplementedError

    def count(self, session_id: str | None = None) -> int:
        """How many records are stored (in one session, or in all)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release files and threads; the storage is not used afterwards."""

    def types(self, session_id: str) -> list[str]:
        """The type ids recorded in a session."""
        return [t for s in self.sessions() if s.session_id == session_id for t in s.types]

    def workers(self, session_id: str) -> list[str]:
        """The worker ids recorded in a session."""
        return [w for s in self.sessions() if s.session_id == session_id for w in s.workers]

    def __enter__(self) -> StatsStorage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _matches(
    r: StatsRecord,
    type_id: str | None,
    worker_id: str | None,
    kind: str | None,
    since: float | None,
    until: float | None,
) -> bool:
    return (
        (type_id is None or r.type_id == type_id)
        and (worker_id is None or r.worker_id == worker_id)
        and (kind is None or r.kind == kind)
        and (since is None or r.timestamp >= since)
        and (until is None or r.timestamp < until)
    )


class InMemoryStatsStorage(StatsStorage):
    """Records in a list (tests, notebooks, short runs); thread-safe.

    Example:
        >>> storage = InMemoryStatsStorage()
        >>> storage.put([StatsRecord("s", "model", "driver", payload={"score": 1.0})])
        >>> storage.count()
        1
    """

    def __init__(self) -> None:
        self._records: list[StatsRecord] = []
        self._lock = threading.Lock()

    def put(self, records: Sequence[StatsRecord]) -> None:
        with self._lock:
            self._records.extend(records)

    def query(
        self,
        session_id: str,
        *,
        type_id: str | None = None,
        worker_id: str | None = None,
        kind: Kind | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> list[StatsRecord]:
        with self._lock:
            found = [
                r
                for r in self._records
                if r.session_id == session_id and _matches(r, type_id, worker_id, kind, since, until)
            ]
        return sorted(found, key=lambda r: r.timestamp)

    def sessions(self) -> list[SessionInfo]:
        with self._lock:
            records = list(self._records)
        by_session: dict[str, list[StatsRecord]] = {}
        for r in records:
            by_session.setdefault(r.session_id, []).append(r)
        infos = [
            SessionInfo(
                sid,
                tuple(sorted({r.type_id for r in rs})),
                tuple(sorted({r.worker_id for r in rs})),
                min(r.timestamp for r in rs),
                max(r.timestamp for r in rs),
                len(rs),
            )
            for sid, rs in by_session.items()
        ]
        return sorted(infos, key=lambda s: s.start)

    def count(self, session_id: str | None = None) -> int:
        with self._lock:
            return sum(1 for r in self._records if session_id is None or r.session_id == session_id)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL,
    type_id TEXT NOT NULL,
    worker_id TEXT NOT NULL,
    timestamp REAL NOT NULL,
    iteration INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('static', 'update')),
    payload TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS records_by_session_time ON records (session_id, timestamp);
"""


def _check_writable(path: Path) -> None:
    """Refuse a database that cannot be written (its file, or its folder: WAL mode creates ``<name>-wal`` and
    ``<name>-shm`` beside it) before SQLite fails later with "attempt to write a readonly database"."""
    folder = path.parent if str(path.parent) else Path(".")
    reader = "SQLiteStatsStorage(path, read_only=True) only reads it"
    if path.exists() and not os.access(path, os.W_OK):
        raise StorageError(
            f"stats database {path} is read-only for this user: make it writable (chmod u+w {path}) or copy it to a "
            f"writable folder; {reader}"
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise StorageError(
            f"stats database {path}: folder {folder} is not writable for this user, and SQLite must create "
            f"{path.name}-wal and {path.name}-shm there: make the folder writable or choose a path in a writable "
            f"folder; {reader}"
        )


class SQLiteStatsStorage(StatsStorage):
    """Records in an SQLite file: WAL mode (one writer, concurrent readers), versioned schema.

    Payloads are stored as JSON text and validated again when read, so a hand-edited or foreign file
    yields a ``StorageError`` naming the row, never arbitrary objects.

    Example:
        >>> storage = SQLiteStatsStorage("runs.db")                   # doctest: +SKIP
        >>> net.add_listeners(StatsListener(storage))                 # doctest: +SKIP
    """

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            if read_only:
                if not self.path.exists():
                    raise StorageError(f"stats database {self.path} does not exist; train with a StatsListener first")
                uri = f"file:{self.path.resolve()}?mode=ro"
                self._db = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=30)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                _check_writable(self.path)
                self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
            self._check_schema(read_only)
        except sqlite3.Error as e:
            raise StorageError(f"cannot open stats database {self.path}: {e}") from e

    def _check_schema(self, read_only: bool) -> None:
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        tables = {row[0] for row in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if version == 0 and not tables and not read_only:
            with self._db:
                self._db.executescript(_SCHEMA)
                self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            return
        if version != SCHEMA_VERSION or "records" not in tables:
            raise StorageError(
                f"{self.path} is not a deepspark stats database of schema version {SCHEMA_VERSION} "
                f"(found version {version}, tables {sorted(tables)}); use a new file"
            )

    def put(self, records: Sequence[StatsRecord]) -> None:
        rows = [
            (r.session_id, r.type_id, r.worker_id, r.timestamp, r.iteration, r.kind, json.dumps(r.payload))
            for r in records
        ]
        try:
            with self._lock, self._db:  # one transaction: all records or none
                self._db.executemany(
                    "INSERT INTO records (session_id, type_id, worker_id, timestamp, iteration, kind, payload) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
        except sqlite3.Error as e:
            raise StorageError(f"writing {len(rows)} stats records to {self.path} failed: {e}") from e

    def query(
        self,
        session_id: str,
        *,
        type_id: str | None = None,
        worker_id: str | None = None,
        kind: Kind | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> list[StatsRecord]:
        sql = (
            "SELECT id, session_id, type_id, worker_id, timestamp, iteration, kind, payload FROM records "
            "WHERE session_id = ?"
        )
        args: list[object] = [session_id]
        for column, value, op in (
            ("type_id", type_id, "="),
            ("worker_id", worker_id, "="),
            ("kind", kind, "="),
            ("timestamp", since, ">="),
            ("timestamp", until, "<"),
        ):
            if value is not None:
                sql += f" AND {column} {op} ?"
                args.append(value)
        sql += " ORDER BY timestamp, id"
        return list(self._rows(sql, args))

    def _rows(self, sql: str, args: Sequence[object]) -> Iterable[StatsRecord]:
        try:
            with self._lock:
                rows = self._db.execute(sql, args).fetchall()
        except sqlite3.Error as e:
            raise StorageError(f"reading {self.path} failed: {e}") from e
        for row_id, sid, tid, wid, ts, it, kind, payload in rows:
            try:
                yield StatsRecord.from_dict(
                    {
                        "session_id": sid,
                        "type_id": tid,
                        "worker_id": wid,
                        "timestamp": ts,
                        "iteration": it,
                        "kind": kind,
                        "payload": json.loads(payload),
                    }
                )
            except (ValueError, StorageError) as e:
                raise StorageError(f"{self.path}: row {row_id} is not a valid stats record: {e}") from e

    def sessions(self) -> list[SessionInfo]:
        sql = (
            "SELECT session_id, GROUP_CONCAT(DISTINCT type_id), GROUP_CONCAT(DISTINCT worker_id), "
            "MIN(timestamp), MAX(timestamp), COUNT(*) FROM records GROUP BY session_id ORDER BY MIN(timestamp)"
        )
        try:
            with self._lock:
                rows = self._db.execute(sql).fetchall()
        except sqlite3.Error as e:
            raise StorageError(f"reading {self.path} failed: {e}") from e
        return [
            SessionInfo(sid, tuple(sorted(types.split(","))), tuple(sorted(workers.split(","))), start, end, n)
            for sid, types, workers, start, end, n in rows
        ]

    def count(self, session_id: str | None = None) -> int:
        with self._lock:
            if session_id is None:
                return int(self._db.execute("SELECT COUNT(*) FROM records").fetchone()[0])
            return int(
                self._db.execute("SELECT COUNT(*) FROM records WHERE session_id = ?", (session_id,)).fetchone()[0]
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()
