"""The training UI server (Starlette + uvicorn), run as its own process by ``deepspark ui``.

It owns one SQLite stats file: pages and ``/api/view`` read it, ``POST /api/records`` appends to it.
Every posted record is validated before any is written (a batch is stored whole or not at all), bodies
are size-limited, and a server bound beyond loopback refuses to start without a token. ``guard.py``
checks the Host header and, with a token, guards every route but ``/api/health``.
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import json
import logging
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from deepspark.errors import ConfigError, StorageError
from deepspark.stats.records import RecordError, records_from_json
from deepspark.stats.router import IDEMPOTENCY_HEADER
from deepspark.stats.storage import SQLiteStatsStorage
from deepspark.ui.guard import Guard, allowed_hosts, is_wildcard, log_disconnect
from deepspark.ui.page import PAGES, render_page
from deepspark.ui.view import session_view, sessions_json

log = logging.getLogger("deepspark")

STATIC_DIR = Path(__file__).parent / "static"
MAX_BODY_BYTES = 8 * 1024 * 1024
MAX_RECORDS_PER_REQUEST = 1000


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _error(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=status)


def create_app(
    storage: SQLiteStatsStorage,
    *,
    token: str | None = None,
    host: str = "127.0.0.1",
    allowed_host: Sequence[str] = (),
    max_body: int = MAX_BODY_BYTES,
) -> Starlette:
    """The ASGI app over an open storage.

    ``token`` (when set) is required on every route but ``/api/health``; requests must name the server by a
    loopback name, ``host`` (the bind address) or one of ``allowed_host`` in their Host header.
    """

    batches = _Batches()

    async def post_records(request: Request) -> Response:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return _error(415, "expected Content-Type: application/json")
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > max_body):
            return _error(413, f"body of {declared} bytes is over the limit of {max_body} bytes; send smaller batches")
        body = bytearray()
        try:
            async for chunk in request.stream():
                body += chunk
                if len(body) > max_body:
                    return _error(413, f"body is over the limit of {max_body} bytes; send smaller batches")
        except ClientDisconnect:
            log_disconnect(request)
            return Response(status_code=400)  # nobody reads it
        try:
            data = json.loads(body, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as e:
            return _error(400, f"body is not valid JSON: {e}")
        try:
            records = records_from_json(data, MAX_RECORDS_PER_REQUEST)
        except RecordError as e:
            return _error(422, str(e))
        except RecursionError:
            return _error(422, "body: nested too deeply")
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if key is not None and (len(key) > 128 or not key.isascii()):
            return _error(400, f"{IDEMPOTENCY_HEADER}: expected at most 128 ASCII characters")
        if key is not None and await batches.seen(key):  # a retry of a batch already stored
            return JSONResponse({"stored": 0, "duplicate": True})
        stored = False
        try:
            await run_in_threadpool(storage.put, records)
            stored = True
        except StorageError as e:
            log.error("storing records failed: %s", e)
            return _error(503, f"the server could not store the records ({e}); retry later")
        finally:
            batches.settle(key, stored)  # whatever happened, a retry waiting on this request goes on
        return JSONResponse({"stored": len(records)})

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True, "schema_version": 1, "token_required": token is not None})

    async def sessions(request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(sessions_json, storage))

    async def view(request: Request) -> Response:
        session = request.query_params.get("session") or None
        worker = request.query_params.get("worker") or None
        try:
            data = await run_in_threadpool(session_view, storage, session, worker)
        except StorageError as e:
            return _error(404, str(e))
        return JSONResponse(data)

    async def page(request: Request) -> Response:
        name = request.path_params["page"]
        if name not in PAGES:
            return _error(404, f"no page {name!r}; pages: {list(PAGES)}")
        return HTMLResponse(render_page(name))

    async def index(request: Request) -> Response:
        query = f"?{request.url.query}" if request.url.query else ""
        return RedirectResponse(f"/overview{query}", status_code=307)

    return Starlette(
        routes=[
            Route("/", index),
            Route("/favicon.ico", lambda request: Response(status_code=204)),
            Route("/api/health", health),
            Route("/api/sessions", sessions),
            Route("/api/view", view),
            Route("/api/records", post_records, methods=["POST"]),
            Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
            Route("/{page}", page),
        ],
        middleware=[Middleware(Guard, token=token, hosts=allowed_hosts(host, allowed_host))],
    )


class _Batches:
    """Idempotency keys of posted batches: a retry of a stored batch (its first request timed out at the client
    after the server stored it) is acknowledged, not stored again. Keeps the newest ``keep`` keys; runs on the
    server's one event loop, so check-and-claim needs no lock."""

    def __init__(self, keep: int = 100_000) -> None:
        self.keep = keep
        self._keys: collections.OrderedDict[str, asyncio.Future[bool]] = collections.OrderedDict()

    async def seen(self, key: str) -> bool:
        """True when ``key``'s batch is stored (waiting for a request still storing it); else claims ``key``."""
        while key in self._keys:
            outcome = self._keys[key]
            if await asyncio.shield(outcome):
                return True
            if self._keys.get(key) is outcome:  # that attempt failed and nobody re-claimed the key yet
                break
        self._keys[key] = asyncio.get_running_loop().create_future()
        self._keys.move_to_end(key)
        while len(self._keys) > self.keep:
            self._keys.popitem(last=False)
        return False

    def settle(self, key: str | None, ok: bool) -> None:
        """Record whether the request that claimed ``key`` stored its batch."""
        outcome = self._keys.get(key) if key is not None else None
        if outcome is not None and not outcome.done():
            outcome.set_result(ok)


def _log_to_stderr() -> None:
    """One line per message on stderr for the server's own warnings (unless logging is set up already)."""
    if not log.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("deepspark ui: %(levelname)s: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows; send null for a missing value")


def serve(
    storage_path: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 9000,
    token: str | None = None,
    allowed_host: Sequence[str] = (),
) -> None:
    """Open the storage, bind, print the URL and serve until interrupted (``deepspark ui``).

    ``allowed_host`` adds names clients may reach the server by (the Host header check refuses others).
    """
    import uvicorn

    if not is_loopback(host) and not token:
        raise ConfigError(
            f"binding {host} lets other machines read and post stats: pass --token T (and give the router the same"
            " token)",
            "--host",
        )
    storage = SQLiteStatsStorage(storage_path)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise StorageError(f"cannot listen on {host}:{port}: {e}; pick another --port") from e
    actual = sock.getsockname()[1]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    print(f"deepspark ui: http://{shown}:{actual}/ (storage {storage_path})", flush=True)
    _log_to_stderr()
    if is_wildcard(host) and not allowed_host:
        log.warning(
            "only requests naming %s in their Host header are served: add --allowed-host NAME for each name or "
            "address clients use to reach this machine",
            sorted(allowed_hosts(host)),
        )
    app = create_app(storage, token=token, host=host, allowed_host=allowed_host)
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=2)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
        storage.close()
