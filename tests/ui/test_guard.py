"""Who may talk to a real ``deepspark ui`` process: the token on every route (header or login cookie), the Host
header check against DNS rebinding, and one log line (no traceback) for a client that leaves mid-request."""

from __future__ import annotations

import http.client
import json
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from deepspark.stats import StatsRecord

from .conftest import UiServer

TOKEN = "s3cret-token"
RECORDS = json.dumps({"records": [StatsRecord("guarded", "model", "driver", payload={"score": 0.5}).to_dict()]})
# (method, path, status when authorized); "/" redirects to /overview, the favicon is empty
ROUTES = [
    ("GET", "/", 307),
    ("GET", "/overview", 200),
    ("GET", "/model", 200),
    ("GET", "/system", 200),
    ("GET", "/spark", 200),
    ("GET", "/search", 200),
    ("GET", "/favicon.ico", 204),
    ("GET", "/api/sessions", 200),
    ("GET", "/api/view", 200),
    ("GET", "/static/app.js", 200),
    ("POST", "/api/records", 200),
]


def _address(url: str) -> tuple[str, int]:
    host, port = url.split("//")[1].rstrip("/").rsplit(":", 1)
    return host, int(port)


def _request(
    url: str, method: str, path: str, headers: dict[str, str] | None = None, body: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request on a fresh connection (no redirects followed); Host is sent only when given."""
    host, port = _address(url)
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        headers = dict(headers or {})
        headers.setdefault("Host", f"{host}:{port}")
        if body is not None:
            headers.setdefault("Content-Type", "application/json")
            headers["Content-Length"] = str(len(body.encode()))
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.endheaders(body.encode() if body is not None else None)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def _route(url: str, method: str, path: str, headers: dict[str, str] | None = None) -> int:
    return _request(url, method, path, headers, RECORDS if method == "POST" else None)[0]


def _login(url: str, token: str) -> tuple[int, dict[str, str], bytes]:
    form = urlencode({"token": token, "next": "/model"})
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    return _request(url, "POST", "/login", headers, form)


@pytest.fixture
def guarded(ui_server: UiServer) -> str:
    return ui_server(token=TOKEN)[1]


@pytest.fixture
def login_cookie(guarded: str) -> str:
    """The cookie the login page sets for the right token, as ``name=value``."""
    status, headers, _ = _login(guarded, TOKEN)
    assert status == 303 and headers["location"] == "/model"
    cookie = SimpleCookie(headers["set-cookie"])
    (name,) = cookie
    return f"{name}={cookie[name].value}"


@pytest.mark.parametrize(("method", "path", "ok"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
def test_guard_every_route_needs_the_token_by_header_or_cookie(
    guarded: str, login_cookie: str, method: str, path: str, ok: int
) -> None:
    assert _route(guarded, method, path) == 401
    assert _route(guarded, method, path, {"Authorization": "Bearer wrong"}) == 401
    assert _route(guarded, method, path, {"Authorization": TOKEN}) == 401  # the scheme is required
    assert _route(guarded, method, path, {"Cookie": login_cookie[:-1] + "x"}) == 401
    assert _route(guarded, method, path, {"Cookie": f"deepspark_ui={TOKEN}"}) == 401  # the token is not the cookie
    assert _route(guarded, method, path, {"Authorization": f"Bearer {TOKEN}"}) == ok
    assert _route(guarded, method, path, {"Cookie": login_cookie}) == ok


def test_guard_health_is_open_and_says_a_token_is_required(guarded: str) -> None:
    status, _, body = _request(guarded, "GET", "/api/health")
    assert status == 200 and json.loads(body)["token_required"] is True


def test_guard_without_cookie_pages_show_the_login_form_and_api_says_how(guarded: str) -> None:
    status, headers, body = _request(guarded, "GET", "/spark?session=a&x=<b>")
    page = body.decode()
    assert status == 401 and headers["content-type"].startswith("text/html")
    assert '<form method="post" action="/login">' in page and 'name="token"' in page
    assert 'name="next" value="/spark?session=a&amp;x=&lt;b&gt;"' in page  # escaped, brings the user back
    status, _, body = _request(guarded, "GET", "/api/view")
    assert status == 401 and "Authorization: Bearer" in json.loads(body)["error"]


def test_guard_login_sets_an_httponly_strict_cookie_only_for_the_right_token(guarded: str) -> None:
    status, headers, body = _login(guarded, "wrong")
    assert status == 401 and "set-cookie" not in headers and "Wrong token." in body.decode()
    status, headers, _ = _login(guarded, TOKEN)
    assert status == 303
    cookie = headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    assert TOKEN.lower() not in cookie
    status, headers, _ = _request(guarded, "POST", "/login", {"Content-Type": "application/x-www-form-urlencoded"},
                                  urlencode({"token": TOKEN, "next": "//evil.example/"}))  # fmt: skip
    assert status == 303 and headers["location"] == "/"  # no open redirect


def test_guard_browser_logs_in_with_the_form_and_sees_the_pages(browser: Any, guarded: str) -> None:
    assert _route(guarded, "POST", "/api/records", {"Authorization": f"Bearer {TOKEN}"}) == 200
    page = browser.new_page()
    page.goto(guarded + "model")
    page.fill("input[name=token]", "wrong")
    page.click("button[type=submit]")
    assert "Wrong token." in page.content()
    page.fill("input[name=token]", TOKEN)
    page.click("button[type=submit]")
    page.wait_for_selector("body[data-rendered]", timeout=30_000)
    assert page.url == guarded + "model"
    assert page.evaluate("() => document.body.dataset.rendered") == "1"  # /api/view answered with the cookie
    assert page.evaluate("() => document.cookie") == ""  # HttpOnly: script cannot read it
    page.close()


def test_guard_without_token_reads_are_open(ui_server: UiServer) -> None:
    _, url = ui_server()
    assert _route(url, "GET", "/api/view") == 200
    assert _route(url, "GET", "/login") == 404  # no login page without a token: /login is just an unknown page


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:{port}", "127.0.0.1.nip.io:{port}", "localhost.evil.example", "", "[::2]"]
)
def test_guard_foreign_host_header_is_refused_on_every_route(ui_server: UiServer, host: str) -> None:
    _, url = ui_server()
    header = host.format(port=_address(url)[1])
    for method, path, _ in [*ROUTES, ("GET", "/api/health", 200)]:
        status, _, body = _request(url, method, path, {"Host": header}, RECORDS if method == "POST" else None)
        assert status == 403, f"{method} {path} with Host {header!r}: {status}"
        assert "--allowed-host" in json.loads(body)["error"]


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]", "LOCALHOST."])
def test_guard_loopback_host_headers_are_served(ui_server: UiServer, host: str) -> None:
    _, url = ui_server()
    assert _route(url, "GET", "/api/view", {"Host": f"{host}:{_address(url)[1]}"}) == 200
    assert _route(url, "GET", "/api/view", {"Host": host}) == 200


def test_guard_allowed_host_option_adds_names(ui_server: UiServer) -> None:
    _, url = ui_server(allowed_host=("ui.example", "10.1.2.3"))
    port = _address(url)[1]
    for host in ("ui.example", f"UI.example:{port}", f"10.1.2.3:{port}"):
        assert _route(url, "GET", "/api/view", {"Host": host}) == 200, host
    assert _route(url, "GET", "/api/view", {"Host": f"other.example:{port}"}) == 403


@contextmanager
def _server(args: list[str], log: Path) -> Iterator[str]:
    """A UI server process started with ``args`` (stderr to ``log``), its URL once /api/health answers."""
    from deepspark.cli.ui_commands import launch_ui

    proc, url = launch_ui(args, log)
    try:
        yield url
    finally:
        proc.kill()
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()


def test_guard_deepspark_ui_command_takes_allowed_host(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "deepspark.cli", "ui", "--storage", str(tmp_path / "r.db"), "--create"]
    cmd += ["--port", "0", "--allowed-host", "ui.example", "--allowed-host", "b.example"]
    with _server(cmd, tmp_path / "ui.log") as url:
        assert _route(url, "GET", "/api/health", {"Host": "b.example"}) == 200
        assert _route(url, "GET", "/api/health", {"Host": "ui.example"}) == 200
        assert _route(url, "GET", "/api/health", {"Host": "c.example"}) == 403


def test_guard_the_bound_address_is_an_allowed_host(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "deepspark.ui", "--storage", str(tmp_path / "r.db"), "--port", "0"]
    with _server([*cmd, "--host", "127.0.0.2"], tmp_path / "a.log") as url:
        assert url.startswith("http://127.0.0.2:")
        assert _route(url, "GET", "/api/view") == 200  # Host: 127.0.0.2:port
    with _server(cmd, tmp_path / "b.log") as url:  # bound to 127.0.0.1: 127.0.0.2 is not its name
        assert _route(url, "GET", "/api/view", {"Host": "127.0.0.2"}) == 403


def test_guard_wildcard_bind_without_allowed_host_warns_once(tmp_path: Path) -> None:
    log = tmp_path / "ui.log"
    cmd = [sys.executable, "-m", "deepspark.ui", "--storage", str(tmp_path / "r.db"), "--port", "0"]
    with _server([*cmd, "--host", "0.0.0.0", "--token", TOKEN], log) as url:
        port = _address(url)[1]
        local = f"http://127.0.0.1:{port}/"
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        assert _route(local, "GET", "/api/view", bearer) == 200
        assert _route(local, "GET", "/api/view", {**bearer, "Host": f"0.0.0.0:{port}"}) == 200
        assert _route(local, "GET", "/api/view", {**bearer, "Host": f"driver.example:{port}"}) == 403
    (line,) = log.read_text().splitlines()
    assert line.startswith("deepspark ui: WARNING: only requests naming") and "--allowed-host NAME" in line


def _log_lines(path: Path, needle: str, deadline: float) -> list[str]:
    """The lines of ``path`` holding ``needle``, polled until one appears or the deadline passes."""
    while True:
        lines = [line for line in path.read_text().splitlines() if needle in line]
        if lines or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


@pytest.mark.parametrize("path", ["/api/records", "/login"])
def test_guard_client_gone_mid_body_logs_one_line_without_traceback(
    ui_server: UiServer, tmp_path: Path, path: str
) -> None:
    db = tmp_path / "runs.db"
    _, url = ui_server(db, token=TOKEN if path == "/login" else None)
    host, port = _address(url)
    kind = "application/json" if path == "/api/records" else "application/x-www-form-urlencoded"
    sock = socket.create_connection((host, port), timeout=10)
    client_port = sock.getsockname()[1]
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {kind}\r\nContent-Length: 1000\r\n\r\n".encode()
        + b"0123456789"
    )
    sock.close()
    log = Path(f"{db}.ui.log")
    lines = _log_lines(log, "disconnected mid-request", time.monotonic() + 30)
    assert len(lines) == 1, log.read_text()
    assert f"client 127.0.0.1:{client_port} disconnected mid-request (POST {path})" in lines[0]
    assert _route(url, "GET", "/api/health") == 200  # still serving; anything it logged for the request is out
    text = log.read_text()
    assert "Traceback" not in text and "Exception" not in text, text
    assert len(text.strip().splitlines()) == 1, text


def test_guard_pages_forbid_inline_script_and_framing(ui_server: UiServer) -> None:
    _, url = ui_server()
    _, headers, _ = _request(url, "GET", "/overview")
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"
