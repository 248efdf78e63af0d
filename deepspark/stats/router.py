"""``RemoteStatsRouter``: sends stats records to a UI server over HTTP without ever slowing or failing training.

``put`` only appends to a bounded queue; a background thread posts batches. When the server is down,
slow or refuses records, the thread backs off and retries a few times, then drops the batch; when the
queue is full, new records are dropped. Either way training goes on, and ``dropped`` says what was lost.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence

from deepspark.errors import ConfigError
from deepspark.stats.records import StatsRecord
from deepspark.stats.storage import SessionInfo, StatsStorage

log = logging.getLogger("deepspark")

RECORDS_PATH = "/api/records"
IDEMPOTENCY_HEADER = "Idempotency-Key"
"""Names a batch; a server that stored a key's batch acknowledges its retries without storing it again."""


class RemoteStatsRouter(StatsStorage):
    """A write-only stats sink that batches records to ``deepspark ui`` at ``url``.

    Args:
        url: the UI server, e.g. ``http://127.0.0.1:9000``.
        token: sent as ``Authorization: Bearer <token>`` (the server's ``--token``).
        queue_size: records held while the server is slow; past it new records are dropped and counted.
        batch_size: records per request.
        timeout: seconds one request may take (sending runs in the background, so a slow server never slows
            training; 10 s rides out a busy machine, where 2 s timed out POSTs that the server then stored).
        max_retries: attempts per batch before it is dropped.

    Example:
        >>> router = RemoteStatsRouter("http://127.0.0.1:9000")             # doctest: +SKIP
        >>> net.add_listeners(StatsListener(router)); net.fit(x, y)           # doctest: +SKIP
        >>> router.close(); router.dropped                                    # doctest: +SKIP
        0
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        queue_size: int = 10_000,
        batch_size: int = 100,
        timeout: float = 10.0,
        max_retries: int = 3,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"expected an http:// or https:// URL, got {url!r}", "url")
        for name, value in (("queue_size", queue_size), ("batch_size", batch_size), ("max_retries", max_retries)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"expected a positive int, got {value!r}", name)
        if not timeout > 0:
            raise ConfigError(f"expected a positive number of seconds, got {timeout!r}", "timeout")
        self.url = url.rstrip("/") + RECORDS_PATH
        self.token = token
        self.queue_size = queue_size
        self.batch_size = batch_size
        self.timeout = timeout
        self.max_retries = max_retries
        self.sent = 0
        self.dropped = 0
        self.failed_requests = 0
        self.last_error: str | None = None
        self._queue: collections.deque[StatsRecord] = collections.deque()
        self._cond = threading.Condition()
        self._closing = False
        self._in_flight = 0
        self._thread = threading.Thread(target=self._run, name="deepspark-stats-router", daemon=True)
        self._thread.start()

    def put(self, records: Sequence[StatsRecord]) -> None:
        """Queue records for sending; never blocks on the network, never raises because of it."""
        with self._cond:
            if self._closing:
                self.dropped += len(records)
                return
            room = self.queue_size - len(self._queue)
            self._queue.extend(records[: max(room, 0)])
            if len(records) > room:
                self.dropped += len(records) - max(room, 0)
            self._cond.notify()

    def _next_batch(self) -> list[StatsRecord] | None:
        with self._cond:
            while not self._queue and not self._closing:
                self._cond.wait()
            if not self._queue:
                return None
            n = min(self.batch_size, len(self._queue))
            self._in_flight = n
            return [self._queue.popleft() for _ in range(n)]

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._send(batch)
            with self._cond:
                self._in_flight = 0
                self._cond.notify_all()

    def _send(self, batch: list[StatsRecord]) -> None:
        """Post one batch with backoff; a batch the server refuses (4xx) or that keeps failing is dropped.

        Every attempt carries the batch's ``Idempotency-Key``: when a request timed out after the server
        stored it, the retry is acknowledged without storing the batch twice."""
        body = json.dumps({"records": [r.to_dict() for r in batch]}).encode()
        key = uuid.uuid4().hex
        delay = 0.05
        for attempt in range(self.max_retries):
            error = self._post(body, key)
            if error is None:
                with self._cond:
                    self.sent += len(batch)
                return
            self.failed_requests += 1
            self.last_error = error
            if error.startswith("HTTP 4") or attempt == self.max_retries - 1:  # retrying a refusal cannot help
                break
            with self._cond:  # back off, but wake at once when closing
                if not self._closing:
                    self._cond.wait(delay)
            delay = min(delay * 4, 2.0)
        with self._cond:
            self.dropped += len(batch)

    def _post(self, body: bytes, key: str | None = None) -> str | None:
        """POST one batch (``key``: its idempotency key); returns None on success, else a short reason."""
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers[IDEMPOTENCY_HEADER] = key
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
            return None
        except urllib.error.HTTPError as e:
            reason = e.read()[:200].decode("utf-8", "replace")
            return f"HTTP {e.code}: {reason}"
        except (OSError, ValueError) as e:  # refused, reset, timed out, bad URL
            return f"{type(e).__name__}: {e}"

    @property
    def pending(self) -> int:
        """Records queued and not yet sent."""
        with self._cond:
            return len(self._queue)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait up to ``timeout`` seconds for the queue to drain; True when it did."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Send what is queued (up to ``timeout`` seconds), stop the thread; what was not sent counts as dropped."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)
        with self._cond:
            self.dropped += len(self._queue)
            self._queue.clear()
        if self.dropped:
            log.warning(
                "stats router: %d records sent, %d dropped (server %s; last error: %s)",
                self.sent,
                self.dropped,
                self.url,
                self.last_error,
            )

    def query(self, session_id: str, **filters: object) -> list[StatsRecord]:  # type: ignore[override]
        raise NotImplementedError("RemoteStatsRouter only sends records; read them from the UI server's storage")

    def sessions(self) -> list[SessionInfo]:
        raise NotImplementedError("RemoteStatsRouter only sends records; read them from the UI server's storage")

    def count(self, session_id: str | None = None) -> int:
        return self.sent
