"""The worker's health and metrics endpoints, served by the worker process itself.

``pgai vectorizer worker --health-port 8080`` serves, on a small HTTP/1.1 server running in the
worker's own event loop (so an answer proves the loop is serving)::

    GET /healthz   200 while the process is alive and its event loop responsive; 503 when the
                   loop is or just was blocked for ``stall_after`` seconds (a liveness probe)
    GET /readyz    200 when the database answers and the ai catalog is installed; 503 otherwise,
                   and while the worker shuts down (a readiness probe)
    GET /metrics   Prometheus text format (see :mod:`pgai.metrics`)

The server has one database connection of its own, used with a short timeout for ``/readyz``
and the queue depths of ``/metrics``; it never borrows from the worker's pool, so probes keep
answering when every worker coroutine is busy.

Embedding the worker in an application of your own::

    health = HealthServer(worker, port=8080)
    async with anyio.create_task_group() as tg:
        await tg.start(health.serve)
        await worker.run()
        tg.cancel_scope.cancel()
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.abc
import asyncpg

from pgai.database import connect
from pgai.errors import DatabaseError
from pgai.metrics import CONTENT_TYPE, WorkerMetrics
from pgai.vectorizer.status import queue_depths

if TYPE_CHECKING:
    from pgai.vectorizer.worker import Worker

log = logging.getLogger("pgai.health")

T = TypeVar("T")

#: The paths the server answers; the deployment files' probes must use these.
HEALTHZ_PATH = "/healthz"
READYZ_PATH = "/readyz"
METRICS_PATH = "/metrics"

#: How often the event-loop watchdog wakes, in seconds.
_TICK = 0.5

#: Enough for any request line and headers a probe or Prometheus sends.
_MAX_REQUEST_HEAD = 16 * 1024

_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    503: "Service Unavailable",
}

_DB_ERRORS: tuple[type[BaseException], ...] = (
    DatabaseError,
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)


class HealthServer:
    """Serves ``/healthz``, ``/readyz`` and ``/metrics`` for one :class:`Worker`."""

    def __init__(
        self,
        worker: Worker,
        port: int,
        host: str = "0.0.0.0",
        *,
        db_timeout: float = 2.0,
        stall_after: float = 10.0,
    ) -> None:
        self.worker = worker
        self.host = host
        #: The port asked for; after :meth:`listen`, the port bound (useful with port 0).
        self.port = port
        self.db_timeout = db_timeout
        self.stall_after = stall_after
        self.metrics = WorkerMetrics(lambda: worker.stats)
        self._conn: asyncpg.Connection | None = None
        self._db_lock = anyio.Lock()
        self._last_tick = time.monotonic()
        self._last_stall = (-math.inf, 0.0)
        self._started = time.monotonic()

    async def listen(self) -> anyio.abc.Listener[anyio.abc.SocketStream]:
        """Bind the port (an OSError says why not) and return the listener for :meth:`serve`."""
        listener = await anyio.create_tcp_listener(local_host=self.host, local_port=self.port)
        self.port = listener.extra(anyio.abc.SocketAttribute.local_port)
        return listener

    async def serve(
        self,
        listener: anyio.abc.Listener[anyio.abc.SocketStream] | None = None,
        *,
        task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve until cancelled; reports the bound port to ``task_group.start``."""
        if listener is None:
            listener = await self.listen()
        log.info("health and metrics on http://%s:%d", self.host, self.port)
        self._last_tick = time.monotonic()
        try:
            async with listener, anyio.create_task_group() as tg:
                tg.start_soon(self._tick)
                task_status.started(self.port)
                await listener.serve(self._handle, task_group=tg)
        finally:
            with anyio.CancelScope(shield=True):
                await self._close_connection()

    async def _tick(self) -> None:
        """Wakes every half second; waking late means the event loop was blocked that long."""
        while True:
            await anyio.sleep(_TICK)
            now = time.monotonic()
            lag = now - self._last_tick - _TICK
            if lag >= self.stall_after:
                self._last_stall = (now, lag)
            self._last_tick = now

    # -- HTTP ------------------------------------------------------------------------------------
    async def _handle(self, stream: anyio.abc.SocketStream) -> None:
        async with stream:
            try:
                with anyio.fail_after(10):
                    method, path = await _read_request_line(stream)
                    status, content_type, body = await self._respond(method, path)
                    head = (
                        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
                        f"Content-Type: {content_type}\r\n"
                        f"Content-Length: {len(body)}\r\n"
                        "Cache-Control: no-store\r\n"
                        "Connection: close\r\n\r\n"
                    ).encode("latin-1")
                    await stream.send(head if method == "HEAD" else head + body)
            except _BadRequest:
                await _send_quietly(
                    stream, b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n"
                )
            except (TimeoutError, OSError, anyio.EndOfStream, anyio.BrokenResourceError):
                pass  # the client went away or was too slow: nothing to answer

    async def _respond(self, method: str, path: str) -> tuple[int, str, bytes]:
        if method not in ("GET", "HEAD"):
            return _json(405, {"error": "only GET and HEAD"})
        route = path.split("?", 1)[0]
        if route == HEALTHZ_PATH:
            return self._healthz()
        if route == READYZ_PATH:
            return await self._readyz()
        if route == METRICS_PATH:
            return 200, CONTENT_TYPE, await self._metrics()
        return _json(
            404, {"error": f"no such path; try {HEALTHZ_PATH}, {READYZ_PATH}, {METRICS_PATH}"}
        )

    def _healthz(self) -> tuple[int, str, bytes]:
        # Answering shows the loop runs now. Unhealthy: it was blocked (a CPU-bound step on the
        # loop) for stall_after seconds or more, just now or within the last stall_after
        # seconds; so one long stall fails one probe, and repeated stalls fail them all.
        now = time.monotonic()
        lag = max(0.0, now - self._last_tick - _TICK)
        stall_ended, stall = self._last_stall
        if now - stall_ended < self.stall_after:
            lag = max(lag, stall)
        healthy = lag < self.stall_after
        body = {
            "status": "ok" if healthy else "event loop stalled",
            "event_loop_stalled_seconds": round(lag, 3),
            "uptime_seconds": round(now - self._started, 1),
        }
        return _json(200 if healthy else 503, body)

    async def _readyz(self) -> tuple[int, str, bytes]:
        if self.worker.stopping:
            return _json(503, {"status": "shutting down"})
        try:
            installed = await self._query(
                lambda conn: conn.fetchval("SELECT to_regclass('ai.vectorizer') IS NOT NULL")
            )
        except _DB_ERRORS as exc:
            return _json(503, {"status": "database unreachable", "error": _describe(exc)})
        if not installed:
            return _json(503, {"status": "catalog not installed: run `pgai install`"})
        return _json(200, {"status": "ready"})

    async def _metrics(self) -> bytes:
        depths: dict[int, int] | None
        try:
            depths = await self._query(queue_depths)
        except _DB_ERRORS as exc:
            log.debug("queue depths not read: %s", exc)
            depths = None
        return self.metrics.render(depths)

    # -- the server's own database connection ---------------------------------------------------
    async def _query(self, statement: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """Run ``statement`` on the server's connection (opened on demand); waiting for the
        connection included, within the timeout. A failure drops the connection, so the next
        request starts afresh."""
        with anyio.fail_after(self.db_timeout):
            async with self._db_lock:
                try:
                    if self._conn is None or self._conn.is_closed():
                        self._conn = await connect(
                            self.worker.db_url,
                            timeout=self.db_timeout,
                            server_settings={"application_name": "pgai-health"},
                        )
                    return await statement(self._conn)
                except BaseException:
                    if self._conn is not None:
                        self._conn.terminate()
                        self._conn = None
                    raise

    async def _close_connection(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                with anyio.fail_after(2):
                    await conn.close()
            except _DB_ERRORS:
                conn.terminate()


class _BadRequest(Exception):
    pass


async def _read_request_line(stream: anyio.abc.SocketStream) -> tuple[str, str]:
    """Read the request head (up to the blank line) and return its method and path."""
    buffer = b""
    while b"\r\n\r\n" not in buffer and b"\n\n" not in buffer:
        if len(buffer) > _MAX_REQUEST_HEAD:
            raise _BadRequest
        buffer += await stream.receive(4096)
    request_line = buffer.split(b"\n", 1)[0].decode("latin-1").strip()
    parts = request_line.split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        raise _BadRequest
    return parts[0].upper(), parts[1]


async def _send_quietly(stream: anyio.abc.SocketStream, data: bytes) -> None:
    with contextlib.suppress(OSError, anyio.BrokenResourceError):
        await stream.send(data)


def _json(status: int, body: dict[str, Any]) -> tuple[int, str, bytes]:
    return status, "application/json", (json.dumps(body) + "\n").encode("utf-8")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer within the timeout"
    return str(exc) or type(exc).__name__
