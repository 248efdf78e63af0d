"""Stats records and storages: strict validation, SQLite round trip, queries, concurrent reads while writing."""

from __future__ import annotations

import math
import os
import sqlite3
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from deepspark.errors import StorageError
from deepspark.stats import InMemoryStatsStorage, RecordError, SQLiteStatsStorage, StatsRecord
from deepspark.stats.records import records_from_json
from deepspark.stats.storage import StatsStorage


def _record(i: int, session: str = "s1", worker: str = "driver", kind: str = "update") -> StatsRecord:
    payload = {"score": 1.0 / (i + 1), "hist": {"counts": [i, 2, 3]}, "name": "x", "none": None}
    return StatsRecord(session, "model", worker, timestamp=1000.0 + i, iteration=i, kind=kind, payload=payload)  # type: ignore[arg-type]


@pytest.fixture(params=["memory", "sqlite"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> StatsStorage:
    if request.param == "memory":
        return InMemoryStatsStorage()
    return SQLiteStatsStorage(tmp_path / "runs.db")


def test_storage_round_trip_sessions_workers_and_time_range(storage: StatsStorage) -> None:
    records = [_record(i) for i in range(10)] + [_record(i, worker="worker-1") for i in range(3)]
    records.append(_record(0, session="s2", kind="static"))
    storage.put(records)
    assert storage.query("s1", worker_id="driver") == records[:10]
    assert [s.session_id for s in storage.sessions()] == ["s1", "s2"]
    assert storage.workers("s1") == ["driver", "worker-1"] and storage.types("s1") == ["model"]
    assert [r.iteration for r in storage.query("s1", worker_id="driver", since=1003.0, until=1006.0)] == [3, 4, 5]
    assert storage.count() == 14 and storage.count("s2") == 1
    assert storage.query("s2", kind="static")[0].kind == "static"
    storage.close()


def test_sqlite_reopened_file_keeps_records_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    with SQLiteStatsStorage(path) as s:
        s.put([_record(i) for i in range(5)])
    with SQLiteStatsStorage(path, read_only=True) as s:
        assert [r.payload["score"] for r in s.query("s1")] == [1.0 / (i + 1) for i in range(5)]
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_sqlite_concurrent_reader_sees_growing_consistent_counts(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    writer = SQLiteStatsStorage(path)
    writer.put([_record(0)])
    reader = SQLiteStatsStorage(path, read_only=True)
    done = threading.Event()

    def write() -> None:
        for batch in range(50):
            writer.put([_record(batch * 10 + i) for i in range(10)])
        done.set()

    thread = threading.Thread(target=write)
    thread.start()
    seen: list[int] = []
    while not done.is_set() or len(seen) < 2:
        n = len(reader.query("s1"))
        assert (n - 1) % 10 == 0, f"a reader saw a partial batch: {n} records"
        seen.append(n)
    thread.join()
    assert seen == sorted(seen) and reader.count() == 501
    writer.close()
    reader.close()


def test_sqlite_refuses_a_foreign_database(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t (x)")
    db.execute("PRAGMA user_version=7")
    db.commit()
    db.close()
    with pytest.raises(StorageError, match="schema version 1"):
        SQLiteStatsStorage(path)
    with pytest.raises(StorageError, match="does not exist"):
        SQLiteStatsStorage(tmp_path / "missing.db", read_only=True)


def test_sqlite_tampered_row_raises_storage_error_naming_the_row(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    with SQLiteStatsStorage(path) as s:
        s.put([_record(0)])
    db = sqlite3.connect(path)
    db.execute("UPDATE records SET payload = '{\"score\": NaN}'")
    db.commit()
    db.close()
    with SQLiteStatsStorage(path, read_only=True) as s, pytest.raises(StorageError, match="row 1"):
        s.query("s1")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"session_id": ""}, "session_id"),
        ({"worker_id": "a b"}, "worker_id"),
        ({"timestamp": math.inf}, "timestamp"),
        ({"iteration": -1}, "iteration"),
        ({"iteration": True}, "iteration"),
        ({"kind": "other"}, "kind"),
        ({"payload": []}, "payload"),
        ({"payload": {"score": math.nan}}, "payload.score"),
        ({"payload": {"a": {"b": [1, "x", {"c": math.inf}]}}}, "payload.a.b[2].c"),
        ({"payload": {"big": "x" * 70_000}}, "payload.big"),
        ({"extra": 1}, "unknown field"),
    ],
)
def test_record_validation_names_the_bad_field(change: dict[str, object], field: str) -> None:
    data = {**_record(0).to_dict(), **change}
    with pytest.raises(RecordError, match=field.replace("[", r"\[").replace("]", r"\]")):
        StatsRecord.from_dict(data)


def test_records_from_json_rejects_batches_whole() -> None:
    good = _record(0).to_dict()
    assert len(records_from_json({"records": [good, good]}, limit=5)) == 2
    with pytest.raises(RecordError, match=r"records\[1\]\.kind"):
        records_from_json({"records": [good, {**good, "kind": 3}]}, limit=5)
    with pytest.raises(RecordError, match="1 to 5 records"):
        records_from_json({"records": [good] * 6}, limit=5)
    with pytest.raises(RecordError, match="body"):
        records_from_json([good], limit=5)


def _as_unprivileged_user(fn: Callable[[], object]) -> str:
    """Run ``fn`` in a forked child that drops root (uid/gid 65534, "nobody") when the tests run as root, since
    root writes through any permission bits; returns ``"ok"`` or the child's ``ExceptionType: message``."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns to pytest
        code = 0
        try:
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            fn()
            outcome = "ok"
        except BaseException as e:
            outcome = f"{type(e).__name__}: {e}"
        try:
            os.write(write_end, outcome.encode())
        except BaseException:
            code = 1
        os._exit(code)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 65536):
        chunks.append(chunk)
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return b"".join(chunks).decode()


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder the unprivileged child can reach (pytest's own tmp folders are private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="deepspark-ro-"))
    folder.chmod(0o755)
    yield folder
    for path in sorted(folder.rglob("*"), reverse=True):
        path.parent.chmod(0o755)
        path.unlink() if path.is_file() else path.rmdir()
    folder.rmdir()


def test_sqlite_storage_read_only_folder_raises_storage_error_naming_path(shared_dir: Path) -> None:
    folder = shared_dir / "runs"
    folder.mkdir()
    folder.chmod(0o555)
    outcome = _as_unprivileged_user(lambda: SQLiteStatsStorage(folder / "stats.db"))
    assert outcome.startswith("StorageError: "), outcome
    assert f"folder {folder} is not writable" in outcome
    assert "stats.db-wal" in outcome and "choose a path in a writable folder" in outcome
    assert "readonly database" not in outcome


def test_sqlite_storage_read_only_file_raises_storage_error_and_reads_read_only(shared_dir: Path) -> None:
    path = shared_dir / "stats.db"
    with SQLiteStatsStorage(path) as s:
        s.put([StatsRecord("s", "model", "driver", payload={"score": 1.0})])
    path.chmod(0o444)
    shared_dir.chmod(0o777)  # the folder is writable: only the file is not

    outcome = _as_unprivileged_user(lambda: SQLiteStatsStorage(path))
    assert outcome.startswith("StorageError: "), outcome
    assert f"stats database {path} is read-only for this user" in outcome and "chmod u+w" in outcome

    def count_read_only() -> None:
        with SQLiteStatsStorage(path, read_only=True) as s:
            assert s.count() == 1

    assert _as_unprivileged_user(count_read_only) == "ok"
