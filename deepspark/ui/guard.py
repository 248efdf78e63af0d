"""Who may talk to the UI server: the Host header check (against DNS rebinding) and the token.

With a token, every route but ``/api/health`` and the login page needs it, either as
``Authorization: Bearer <token>`` (the stats router, scripts) or as the HttpOnly, SameSite=Strict cookie
that the login page sets after a POST of the right token (browsers). Every response carries headers that
keep the pages out of frames and forbid inline script.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import ipaddress
import logging
from collections.abc import Iterable
from http.cookies import SimpleCookie
from urllib.parse import parse_qs

from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("deepspark")

COOKIE = "deepspark_ui"
LOGIN_PATH = "/login"
OPEN_PATHS = frozenset({"/api/health"})
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
MAX_LOGIN_BYTES = 4096
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
     b"img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]  # fmt: skip


def host_name(header: str) -> str:
    """The name in a Host header without its port or IPv6 brackets, lowercased (``[::1]:9000`` -> ``::1``)."""
    value = header.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    if value.count(":") == 1:
        value = value.split(":", 1)[0]
    return value.rstrip(".")


def allowed_hosts(bound: str, extra: Iterable[str] = ()) -> frozenset[str]:
    """Host names the server answers to: loopback names, the address it is bound to, and ``extra``."""
    names = {*LOCAL_HOSTS, host_name(bound), *(host_name(h) for h in extra)}
    return frozenset(n for n in names if n)


def is_wildcard(bound: str) -> bool:
    """Whether ``bound`` is ``0.0.0.0`` or ``::``: every interface, a name no client uses."""
    try:
        return ipaddress.ip_address(host_name(bound)).is_unspecified
    except ValueError:
        return False


def cookie_value(token: str) -> str:
    """What the login cookie holds: derived from the token, so the cookie never carries the token itself."""
    return hmac.new(token.encode(), b"deepspark-ui-login", hashlib.sha256).hexdigest()


def _safe_next(target: str) -> str:
    """A same-site path to go to after logging in; anything else becomes ``/``."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def login_page(next_path: str, message: str = "", status: int = 401) -> HTMLResponse:
    """The token form (no script, so it works under the pages' Content-Security-Policy)."""
    note = f'<p class="bad">{html.escape(message)}</p>' if message else ""
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>deepspark — log in</title></head>
<body style="font-family:system-ui,sans-serif"><main style="max-width:28rem;margin:4rem auto">
<h2>deepspark training UI</h2>
<p>This server needs its token (the <code>--token</code> it was started with).</p>{note}
<form method="post" action="{LOGIN_PATH}">
<input type="hidden" name="next" value="{html.escape(_safe_next(next_path))}">
<label>token <input type="password" name="token" autocomplete="current-password" autofocus required></label>
<button type="submit">Log in</button>
</form></main></body></html>"""
    return HTMLResponse(body, status_code=status)


class Guard:
    """ASGI middleware in front of the UI app: Host check, then token check, then security headers."""

    def __init__(self, app: ASGIApp, *, token: str | None, hosts: frozenset[str]) -> None:
        self.app = app
        self.token = token
        self.hosts = hosts
        self.cookie = cookie_value(token) if token is not None else ""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        request = Request(scope, receive)
        response = await self._refusal(request)
        if response is not None:
            await response(scope, receive, send_with_headers)
        else:
            await self.app(scope, receive, send_with_headers)

    async def _refusal(self, request: Request) -> Response | None:
        """The response that refuses ``request``, or None to let the app answer it."""
        header = request.headers.get("host", "")
        if host_name(header) not in self.hosts:
            return JSONResponse(
                {
                    "error": f"Host {header!r} is not a name of this server (DNS rebinding protection): open the UI "
                    f"by one of {sorted(self.hosts)}, or start 'deepspark ui' with --allowed-host "
                    f"{host_name(header) or 'NAME'}"
                },
                status_code=403,
            )
        path = request.url.path
        token = self.token
        if token is None or path in OPEN_PATHS:
            return None
        if path == LOGIN_PATH:
            return await self._login(request, token)
        if self._authorized(request, token):
            return None
        if request.method == "GET" and not path.startswith(("/api/", "/static/")):
            target = path + (f"?{request.url.query}" if request.url.query else "")
            return login_page(target)
        return JSONResponse(
            {
                "error": "missing or wrong token: send 'Authorization: Bearer <token>' or log in at /login "
                "(the token is the --token of 'deepspark ui')"
            },
            status_code=401,
        )

    def _authorized(self, request: Request, token: str) -> bool:
        given = request.headers.get("authorization", "")
        if given.startswith("Bearer ") and hmac.compare_digest(given[7:].encode(), token.encode()):
            return True
        cookie = SimpleCookie()
        try:
            cookie.load(request.headers.get("cookie", ""))
        except Exception:  # a malformed Cookie header is no login
            return False
        morsel = cookie.get(COOKIE)
        return morsel is not None and hmac.compare_digest(morsel.value.encode(), self.cookie.encode())

    async def _login(self, request: Request, token: str) -> Response:
        if request.method == "GET":
            return login_page(request.query_params.get("next", "/"), status=200)
        if request.method != "POST":
            return JSONResponse({"error": "use GET or POST on /login"}, status_code=405)
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
            return JSONResponse({"error": "expected a form (application/x-www-form-urlencoded)"}, status_code=415)
        body = bytearray()
        try:
            async for chunk in request.stream():
                body += chunk
                if len(body) > MAX_LOGIN_BYTES:
                    return JSONResponse({"error": f"login form over {MAX_LOGIN_BYTES} bytes"}, status_code=413)
        except ClientDisconnect:
            log_disconnect(request)
            return Response(status_code=400)
        form = parse_qs(body.decode("utf-8", "replace"))
        given = (form.get("token") or [""])[0]
        next_path = _safe_next((form.get("next") or ["/"])[0])
        if not hmac.compare_digest(given.encode(), token.encode()):
            return login_page(next_path, "Wrong token.")
        response = RedirectResponse(next_path, status_code=303)
        response.set_cookie(COOKIE, self.cookie, path="/", httponly=True, samesite="strict")
        return response


def log_disconnect(request: Request) -> None:
    """One line for a client that went away before sending its whole body (no traceback)."""
    client = request.client
    who = f"{client.host}:{client.port}" if client is not None else "unknown client"
    log.warning("client %s disconnected mid-request (%s %s)", who, request.method, request.url.path)
