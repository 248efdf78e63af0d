"""HTTP API of a real ``deepspark ui`` process: good batches are stored, bad ones get a 4xx with a reason."""

from __future__ import annotations

import http.client
import json
import sqlite3
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from deepspark.cli.main import main
from deepspark.stats import StatsRecord

from .conftest import UiServer


def _post(
    url: str, body: bytes, token: str | None = None, content_type: str = "application/json", key: str | None = None
) -> tuple[int, Any]:
    headers = {"Content-Type": content_type}
    if key is not None:
        headers["Idempotency-Key"] = key
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url + "api/records", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _batch(n: int = 2, **change: Any) -> bytes:
    records = [
        {**StatsRecord("api", "model", "driver", iteration=i, payload={"score": 0.5}).to_dict(), **change}
        for i in range(n)
    ]
    return json.dumps({"records": records}).encode()


def _count(path: Path) -> int:
    return int(sqlite3.connect(path).execute("SELECT COUNT(*) FROM records").fetchone()[0])


def test_api_stores_a_valid_batch_and_lists_the_session(ui_server: UiServer, tmp_path: Path) -> None:
    _, url = ui_server()
    assert _post(url, _batch(3)) == (200, {"stored": 3})
    assert _count(tmp_path / "runs.db") == 3
    with urllib.request.urlopen(url + "api/sessions", timeout=10) as r:
        sessions = json.loads(r.read())
    assert [s["session_id"] for s in sessions] == ["api"] and sessions[0]["records"] == 3


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b'{"records": [{"score": NaN}]}', 400, "NaN"),
        (b"[]", 422, "body"),
        (_batch(iteration="7"), 422, "records[0].iteration"),
        (_batch(timestamp=None), 422, "records[0].timestamp"),
        (_batch(payload={"score": [1, {"x": "y" * 70_000}]}), 422, "records[0].payload.score[1].x"),
        (_batch(worker_id="../etc"), 200, ""),  # ids may hold / and . : they are data, never paths
    ],
)
def test_api_bad_records_get_4xx_with_reason_and_nothing_written(
    ui_server: UiServer, tmp_path: Path, body: bytes, status: int, reason: str
) -> None:
    _, url = ui_server()
    code, answer = _post(url, body)
    assert code == status, answer
    if status != 200:
        assert reason in answer["error"]
        assert _count(tmp_path / "runs.db") == 0


def test_api_partly_bad_batch_writes_nothing(ui_server: UiServer, tmp_path: Path) -> None:
    _, url = ui_server()
    good = json.loads(_batch(2))["records"]
    body = json.dumps({"records": [*good, {**good[0], "kind": "nope"}]}).encode()
    code, answer = _post(url, body)
    assert code == 422 and "records[2].kind" in answer["error"]
    assert _count(tmp_path / "runs.db") == 0


def test_api_oversize_body_and_wrong_content_type_are_refused(ui_server: UiServer) -> None:
    _, url = ui_server()
    host, port = url.split("//")[1].rstrip("/").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.putrequest("POST", "/api/records")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(9 * 1024 * 1024))
    conn.endheaders()  # the server answers from the declared length, before any body is sent
    response = conn.getresponse()
    assert response.status == 413 and "limit" in json.loads(response.read())["error"]
    conn.close()
    conn = http.client.HTTPConnection(host, int(port), timeout=10)  # undeclared (chunked) length: counted while read
    conn.putrequest("POST", "/api/records")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    chunk = b"x" * (1 << 20)
    try:
        for _ in range(9):
            conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        conn.send(b"0\r\n\r\n")
    except OSError:
        pass  # the server may stop reading once it has refused the body
    response = conn.getresponse()
    assert response.status == 413 and "limit" in json.loads(response.read())["error"]
    conn.close()
    code, answer = _post(url, _batch(), content_type="text/plain")
    assert code == 415 and "application/json" in answer["error"]


def test_api_token_required_when_set(ui_server: UiServer, tmp_path: Path) -> None:
    _, url = ui_server(token="s3cret")
    code, answer = _post(url, _batch())
    assert code == 401 and "token" in answer["error"]
    assert _post(url, _batch(), token="wrong")[0] == 401
    assert _post(url, _batch(), token="s3cret") == (200, {"stored": 2})


def test_ui_beyond_loopback_without_token_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ui", "--storage", str(tmp_path / "r.db"), "--host", "0.0.0.0", "--port", "0"]) == 2
    assert "--token" in capsys.readouterr().err


def test_pages_and_view_serve_the_stored_session(ui_server: UiServer) -> None:
    _, url = ui_server()
    _post(url, _batch(2))
    for page in ("overview", "model", "system", "spark"):
        with urllib.request.urlopen(url + page, timeout=10) as r:
            html = r.read().decode()
        assert f'data-page="{page}"' in html and "/static/chart.umd.min.js" in html
    with urllib.request.urlopen(url + "api/view?session=api", timeout=10) as r:
        view = json.loads(r.read())
    assert view["overview"]["score"] == [0.5, 0.5]
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(url + "api/view?session=missing", timeout=10)
    assert e.value.code == 404


def test_api_retried_batch_with_the_same_idempotency_key_is_stored_once(ui_server: UiServer, tmp_path: Path) -> None:
    _, url = ui_server()
    body = _batch(3)
    assert _post(url, body, key="batch-1") == (200, {"stored": 3})
    assert _post(url, body, key="batch-1") == (200, {"stored": 0, "duplicate": True})  # the client's retry
    assert _post(url, body, key="batch-2") == (200, {"stored": 3})
    assert _post(url, body) == (200, {"stored": 3})  # no key: every request stores
    assert _count(tmp_path / "runs.db") == 9


def test_api_concurrent_retries_of_one_batch_store_it_once(ui_server: UiServer, tmp_path: Path) -> None:
    _, url = ui_server()
    body = _batch(50)
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: _post(url, body, key="same"), range(8)))
    assert sorted(a[1]["stored"] for a in answers) == [0] * 7 + [50]
    assert all(status == 200 for status, _ in answers)
    assert _count(tmp_path / "runs.db") == 50


def test_api_idempotency_key_too_long_is_a_400(ui_server: UiServer) -> None:
    _, url = ui_server()
    status, answer = _post(url, _batch(1), key="k" * 129)
    assert status == 400 and "Idempotency-Key: expected at most 128 ASCII characters" in answer["error"]
