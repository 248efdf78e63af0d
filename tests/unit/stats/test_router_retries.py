"""RemoteStatsRouter retries: a batch whose request timed out is re-sent with the same Idempotency-Key, so a
server that stored the first request can acknowledge the retry instead of storing the batch twice."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from deepspark.stats import RemoteStatsRouter, StatsRecord
from deepspark.stats.router import IDEMPOTENCY_HEADER


class _SlowFirstServer(ThreadingHTTPServer):
    """Answers every POST with 200, except that the first one is held until ``release`` is set."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.keys: list[str | None] = []
        self.release = threading.Event()
        self.lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    server: _SlowFirstServer

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with self.server.lock:
            first = not self.server.keys
            self.server.keys.append(self.headers.get(IDEMPOTENCY_HEADER))
        if first:  # the client times out on this one and retries
            self.server.release.wait(timeout=60)
        body = b'{"stored": 1}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def slow_first_server() -> Iterator[_SlowFirstServer]:
    server = _SlowFirstServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()


def test_router_retry_after_timeout_resends_the_same_idempotency_key(slow_first_server: _SlowFirstServer) -> None:
    url = f"http://127.0.0.1:{slow_first_server.server_address[1]}"
    router = RemoteStatsRouter(url, batch_size=1, timeout=2.0, max_retries=3)
    router.put([StatsRecord("s", "model", "driver", iteration=0)])
    assert router.flush(timeout=60)
    first_batch = list(slow_first_server.keys)
    router.put([StatsRecord("s", "model", "driver", iteration=1)])
    assert router.flush(timeout=60)
    slow_first_server.release.set()
    router.close(timeout=10)

    assert router.sent == 2 and router.dropped == 0 and router.failed_requests >= 1
    assert len(first_batch) >= 2, "the first request was held past the timeout, so the batch was re-sent"
    assert all(k is not None and len(k) == 32 for k in slow_first_server.keys)
    assert len(set(first_batch)) == 1, f"every attempt of one batch must carry its key, got {first_batch}"
    second_batch = slow_first_server.keys[len(first_batch) :]
    assert second_batch and set(second_batch).isdisjoint(first_batch), "another batch gets another key"
