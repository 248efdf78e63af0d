"""``deepspark report`` and ``deepspark stats export-tensorboard`` on a real Spark run's stats file."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from deepspark.cli.main import main


def _events(logdir: Path) -> list[object]:
    """Events from TFRecord-framed event files (length, crc, data, crc), parsed with tensorboardX's protos."""
    from tensorboardX.proto.event_pb2 import Event

    out: list[object] = []
    for path in logdir.rglob("events.out.tfevents.*"):
        data = path.read_bytes()
        pos = 0
        while pos < len(data):
            (length,) = struct.unpack_from("<Q", data, pos)
            event = Event()
            event.ParseFromString(data[pos + 12 : pos + 12 + length])
            out.append(event)
            pos += 12 + length + 4
    return out


def test_export_tensorboard_writes_scalars_and_histograms(spark_run_db: Path, tmp_path: Path) -> None:
    assert main(["stats", "export-tensorboard", str(spark_run_db), str(tmp_path / "tb")]) == 0
    tags: dict[str, int] = {}
    histograms = 0
    for event in _events(tmp_path / "tb" / "spark-run"):
        for value in event.summary.value:  # type: ignore[attr-defined]
            tags[value.tag] = tags.get(value.tag, 0) + 1
            histograms += value.HasField("histo")
    assert tags.get("train/score", 0) >= 3
    assert any(t.startswith("update_param_ratio_log10/layer0.weight") for t in tags)
    assert any(t.startswith("system/worker-1/") for t in tags)
    assert histograms > 0


def test_report_and_export_missing_file_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path / "nope.db")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["stats", "export-tensorboard", str(tmp_path / "nope.db"), str(tmp_path / "tb")]) == 2


def test_spark_run_records_workers_phases_and_advice(spark_run_db: Path) -> None:
    from deepspark.stats import SQLiteStatsStorage

    with SQLiteStatsStorage(spark_run_db, read_only=True) as storage:
        (static,) = storage.query("spark-run", kind="static")
        assert static.payload["training"] == "spark" and static.payload["worker_ids"] == ["worker-0", "worker-1"]
        assert static.payload["master"]["averaging_frequency"] == 4
        assert storage.workers("spark-run") == ["driver", "worker-0", "worker-1"]
        models = storage.query("spark-run", type_id="model", kind="update")
        iterations = [r.iteration for r in models]
        assert iterations == sorted(iterations) and len(iterations) >= 3
        later = models[-1].payload
        assert later["updates"] and all(v is not None for v in later["ratios"].values())
        for worker in ("worker-0", "worker-1"):
            w = storage.query("spark-run", type_id="worker", worker_id=worker)
            assert len(w) == len(models) and w[-1].payload["examples"] > 0 and w[-1].payload["process"]["rss_bytes"] > 0
        spark = [r.payload for r in storage.query("spark-run", type_id="spark")]
        phases = {row[1] for p in spark for row in p.get("events", [])}
        assert {"broadcast", "fit", "average"} <= phases  # collective averaging: no Spark job per round
        assert any("phase_totals" in p for p in spark)


def test_demo_ui_starts_the_server_process_and_streams_stats(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import os
    import re
    import signal
    import sqlite3

    code = main(["demo", "--ui", "--no-spark", "--epochs", "1", "--output", str(tmp_path)])
    out = capsys.readouterr().out
    started = re.search(r"training UI: (http://127\.0\.0\.1:\d+/) \(server pid (\d+);", out)
    assert started is not None, out
    os.kill(int(started.group(2)), signal.SIGKILL)
    assert code == 0
    sent = re.search(r"\((\d+) stats records sent, (\d+) dropped\)", out)
    assert sent is not None and int(sent.group(1)) > 5 and sent.group(2) == "0", out
    db = sqlite3.connect(tmp_path / "runs.db")
    assert db.execute("SELECT COUNT(*) FROM records").fetchone()[0] == int(sent.group(1))
    db.close()
