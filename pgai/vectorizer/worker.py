"""The vectorizer worker: a Supervisor, one runner per vectorizer, N worker coroutines each.

::

    Worker.run()                 owns one asyncpg pool, one httpx.AsyncClient, the poll loop
    ├── VectorizerRunner (id 1)  re-reads its config every cycle, owns its embedder and SQL
    │   └── N worker coroutines  claim → chunk → embed → write → commit, until the queue is empty
    │       └── a batch's tail   its last write and commit, while the coroutine claims the next
    └── VectorizerRunner (id 2)  ... all vectorizers run at the same time

Everything runs in anyio task groups: no task outlives ``run()``. A graceful shutdown stops
claiming, lets in-flight batches finish within the grace period, then cancels them; a cancelled
batch's transaction rolls back, so its rows are claimable again and nothing is lost.
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import anyio
import anyio.abc
import asyncpg
import httpx

from pgai.database import DbConnection, connect, redact_url
from pgai.errors import CatalogError, ConfigurationError, DatabaseError
from pgai.vectorizer.config import DEFAULT_CONCURRENCY, Vectorizer, parse_vectorizer
from pgai.vectorizer.embedders.base import Embedder, ProviderError, RetryPolicy
from pgai.vectorizer.embedders.factory import make_embedder
from pgai.vectorizer.errors import (
    CONFIGURATION_ERROR,
    EMBEDDING_PROVIDER_FAILED,
    LOADING_FAILED,
    MAX_KEYS_IN_DETAILS,
    UNEXPECTED_ERROR,
    jsonable_keys,
    record_error,
)
from pgai.vectorizer.pipeline import ChunkStream, ItemFailure, PreparedChunk
from pgai.vectorizer.queue import ClaimedRow, QueueStatements
from pgai.vectorizer.tracking import WorkerTracking
from pgai.vectorizer.writer import (
    EmbeddedChunk,
    EmbeddingWriter,
    pack_vector,
    register_vector_type,
)

log = logging.getLogger("pgai.vectorizer")

#: Errors that mean the connection (not the statement) failed: reconnect and carry on.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    # a connection that broke mid-protocol (e.g. the server going down) can leave asyncpg
    # in an inconsistent state; the connection is discarded like a lost one
    asyncpg.InternalClientError,
)

#: Fresh chunks embedded and written at a time within a batch: bounds the memory of batches of
#: long documents (a few MB of vectors) while still filling large provider requests.
GROUP_CHUNKS = 1024

#: Batches with more text than this are chunked in a worker thread (a few ms of CPU).
CHUNK_IN_THREAD_CHARS = 200_000

#: Settings of a batch's transaction (SET LOCAL, sent with its BEGIN: no extra round trip, and
#: the same on a pool the application lends and behind PgBouncer, which refuses unknown startup
#: parameters). Every statement of a batch looks rows up by key (queue, source, target by
#: primary key). A backfill grows the target table from empty to millions of rows faster than
#: autovacuum refreshes its statistics, so the planner, believing it small, picks sequential
#: scans to find a batch's old chunks, and every batch gets slower than the last (measured: 34 s
#: of database CPU instead of 5 s on a 20,000-row backfill). Key lookups it is, planned for each
#: execution's parameters.
#:
#: A batch's commit does not wait for its WAL to reach disk (synchronous_commit off): were the
#: server to crash within that instant, the batch would be lost whole, its claim included, so
#: its rows would still be queued and be embedded again. Nothing is lost or half-written, and
#: a backfill stops spending a disk flush per batch.
BATCH_SETTINGS = {
    "plan_cache_mode": "force_custom_plan",
    "enable_seqscan": "off",
    "synchronous_commit": "off",
}
_BEGIN_BATCH = "BEGIN; " + " ".join(f"SET LOCAL {k} = {v};" for k, v in BATCH_SETTINGS.items())

#: Upper bound of the worker's connection pool: coroutines beyond it wait for a connection.
MAX_POOL_SIZE = 64

#: Channel the catalog's triggers notify with the trigger name of the vectorizer that got work.
NOTIFY_CHANNEL = "ai_vectorizer_queued"
_TRIGGER_NAME = re.compile(r"_vectorizer_src_trg_(\d+)")

RECORDING_ERRORS: tuple[type[BaseException], ...] = (*CONNECTION_ERRORS, asyncpg.PostgresError)
#: The savepoint a batch's writes sit in, and the one of a long document's parts within it.
_SAVEPOINT = "pgai_batch"
_ROW_SAVEPOINT = "pgai_document"

#: What releasing or rolling back a broken connection may raise.
CLEANUP_ERRORS: tuple[type[BaseException], ...] = (*RECORDING_ERRORS, TimeoutError)


@dataclass
class WorkerStats:
    """Counters of one worker process (exposed for tests, status and metrics)."""

    batches: int = 0
    rows: int = 0
    chunks: int = 0
    #: tokens sent, estimated at four bytes of UTF-8 a token (providers count their own)
    tokens: int = 0
    #: chunks whose text was unchanged, written with the vector already stored
    reused_chunks: int = 0
    failed_batches: int = 0
    failed_rows: int = 0
    moved_to_failed_queue: int = 0
    per_vectorizer_rows: dict[int, int] = field(default_factory=dict)
    per_vectorizer_chunks: dict[int, int] = field(default_factory=dict)
    per_vectorizer_errors: dict[int, int] = field(default_factory=dict)
    #: worker coroutines inside a batch right now (claiming, chunking, embedding; a batch that
    #: is only committing in the background does not count)
    busy: int = 0
    #: worker coroutines running (busy or claiming)
    coroutines: int = 0


async def init_connection(conn: asyncpg.Connection) -> None:
    """Prepare a connection for the worker: pgvector's type, JSON decoded to Python values.
    Pass it as ``init=`` when giving the Worker a pool of your own."""
    await register_vector_type(conn)
    _widen_send_buffer(conn)
    # Formatting renders column values the way pgai (psycopg) does: JSON as Python objects.
    for json_type in ("json", "jsonb"):
        await conn.set_type_codec(
            json_type, schema="pg_catalog", encoder=json.dumps, decoder=json.loads
        )


#: Socket send buffer asked for on the worker's database connections (the kernel caps it at
#: net.core.wmem_max).
SEND_BUFFER_BYTES = 4 << 20


def _widen_send_buffer(conn: asyncpg.Connection) -> None:
    """Let a batch's COPY (hundreds of KB of vectors) go to the kernel in one write. With the
    default buffer (about 200 KB on a Unix socket) asyncpg pauses after each fill until the
    event loop, busy with the next batch's HTTP answer, drains it; the server then waits for
    data. Measured: a CPU-bound backfill 10% faster."""
    transport = getattr(conn, "_transport", None)  # asyncpg has no public accessor
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
    except OSError as exc:
        log.debug("socket send buffer left as it is: %s", exc)


class Worker:
    """Processes the queues of vectorizers until stopped (or, with ``once``, until empty).

    Embedding it in an asyncio application::

        worker = Worker(db_url, poll_interval=timedelta(seconds=30))
        task = asyncio.create_task(worker.run())
        ...
        await worker.request_graceful_shutdown()
        error = await task  # None, or the error that stopped it with exit_on_error
    """

    def __init__(
        self,
        db_url: str,
        poll_interval: timedelta = timedelta(minutes=1),
        once: bool = False,
        vectorizer_ids: Sequence[int] = (),
        exit_on_error: bool | None = None,
        concurrency: int | None = None,
        *,
        grace_period: timedelta = timedelta(seconds=30),
        retry_backoff: timedelta = timedelta(seconds=30),
        max_retry_backoff: timedelta = timedelta(hours=1),
        provider_retry: RetryPolicy | None = None,
        http_client: httpx.AsyncClient | None = None,
        pool: asyncpg.Pool | None = None,
        listen: bool = True,
    ) -> None:
        if concurrency is not None and concurrency < 1:
            raise ConfigurationError("concurrency must be at least 1")
        self.db_url = db_url
        self.poll_interval = poll_interval
        self.once = once
        self.vectorizer_ids = list(vectorizer_ids)
        self.exit_on_error = once if exit_on_error is None else exit_on_error
        self.concurrency = concurrency
        self.grace_period = grace_period
        self.retry_backoff = retry_backoff
        self.max_retry_backoff = max_retry_backoff
        self.provider_retry = provider_retry or RetryPolicy()
        self.stats = WorkerStats()
        self._http_client = http_client
        self._pool = pool
        self.listen = listen
        self._wakeups: dict[int, anyio.Event] = {}
        self._discover_now: anyio.Event | None = None
        self._shutdown_requested = False
        self._stop: anyio.Event | None = None
        self._tracking_stop: anyio.Event | None = None
        self.tracking: WorkerTracking | None = None
        self._fatal: Exception | None = None
        self._invalid_ids_reported = False

    # -- lifecycle ------------------------------------------------------------------------------
    def request_shutdown(self) -> None:
        """Stop claiming new batches; in-flight ones finish within the grace period, then
        ``run()`` returns. Safe to call from any task of the worker's event loop."""
        self._shutdown_requested = True
        if self._stop is not None and not self._stop.is_set():
            log.info("got a graceful shutdown request")
            self._stop.set()

    async def request_graceful_shutdown(self) -> None:
        """pgai's spelling of :meth:`request_shutdown`."""
        self.request_shutdown()

    @property
    def stopping(self) -> bool:
        return self._stop is not None and self._stop.is_set()

    def fail(self, error: Exception) -> None:
        """With exit_on_error, the first error stops the worker and is what run() returns."""
        if self.exit_on_error:
            if self._fatal is None:
                self._fatal = error
                log.error("exiting processor due to error: %s", error)
            if self._stop is not None:
                self._stop.set()

    async def run(self) -> Exception | None:
        """Run until stopped; returns the error that stopped it (exit_on_error), else None."""
        self._stop = anyio.Event()
        if self._shutdown_requested:
            self._stop.set()
        self._fatal = None
        try:
            pool = self._pool or await self._create_pool()
        except DatabaseError as exc:
            log.error("%s", exc)
            return exc
        try:
            client = self._http_client or httpx.AsyncClient(
                timeout=httpx.Timeout(120.0, connect=10.0),
                limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
            )
            try:
                await self._supervise(pool, client)
            finally:
                if self._http_client is None:
                    await client.aclose()
        except CatalogError as exc:
            log.error("%s", exc)
            return exc
        finally:
            if self._pool is None:
                with anyio.CancelScope(shield=True):
                    await pool.close()
        if self.once and not self.stopping:
            log.info("once mode, exiting...")
        log.info("exiting processor.run()")
        return self._fatal

    async def _create_pool(self) -> asyncpg.Pool:
        # Check the URL with one plain connection first: its errors are clear and redacted.
        conn = await connect(self.db_url)
        try:
            coroutines = await self._planned_coroutines(conn)
        finally:
            await conn.close()
        # two connections per worker coroutine (a batch being embedded, the previous one
        # committing), and a few for discovery, tracking and errors
        size = min(max(2 * coroutines + 3, 4), MAX_POOL_SIZE)
        pool = await asyncpg.create_pool(
            self.db_url,
            min_size=1,
            max_size=size,
            init=init_connection,
            reset=_no_reset,
        )
        assert pool is not None
        return pool

    async def _planned_coroutines(self, conn: DbConnection) -> int:
        """Worker coroutines the vectorizers to run ask for (-c, else their own concurrency)."""
        if not await conn.fetchval("SELECT to_regclass('ai.vectorizer') IS NOT NULL"):
            return 1
        concurrency = await conn.fetch(
            "SELECT coalesce((config->'processing'->>'concurrency')::int, $2) AS n "
            "FROM ai.vectorizer WHERE cardinality($1::int4[]) = 0 OR id = any($1::int4[])",
            self.vectorizer_ids,
            DEFAULT_CONCURRENCY,
        )
        return sum(self.concurrency or row["n"] for row in concurrency) or 1

    async def _check_catalog(self, conn: DbConnection) -> None:
        installed = await conn.fetchval(
            "SELECT to_regclass('ai.vectorizer') IS NOT NULL AND "
            "to_regclass('ai._vectorizer_errors') IS NOT NULL"
        )
        if not installed:
            raise CatalogError(
                "pgai is not installed in the database "
                f"{redact_url(self.db_url)}: run `pgai install -d <url>` first"
            )

    async def _supervise(self, pool: asyncpg.Pool, client: httpx.AsyncClient) -> None:
        assert self._stop is not None
        async with pool.acquire() as conn:
            await self._check_catalog(conn)
        from pgai import __version__

        self.tracking = WorkerTracking(
            pool, __version__, min(self.poll_interval, timedelta(minutes=1))
        )
        await self.tracking.start()
        self._tracking_stop = anyio.Event()
        runners: dict[int, anyio.Event] = {}
        async with anyio.create_task_group() as tg:
            tg.start_soon(self.tracking.beat_until, self._tracking_stop)
            if self.listen and not self.once:
                tg.start_soon(self._listen_for_work, self._tracking_stop)
            while not self.stopping:
                self._discover_now = anyio.Event()
                try:
                    ids = await self._discover(pool)
                except CONNECTION_ERRORS as exc:
                    log.error("unable to connect to database: %s", exc)
                    ids = []
                if not ids and not runners:
                    log.warning("no vectorizers found")
                for vectorizer_id in ids:
                    if vectorizer_id in runners and not runners[vectorizer_id].is_set():
                        continue
                    done = anyio.Event()
                    runners[vectorizer_id] = done
                    runner = VectorizerRunner(self, vectorizer_id, pool, client)
                    tg.start_soon(runner.run, done)
                if self.once:
                    break
                with anyio.move_on_after(self.poll_interval.total_seconds()):
                    await wait_any(self._stop, self._discover_now)
            await self._finish(tg, list(runners.values()))

    async def _finish(self, tg: anyio.abc.TaskGroup, runners: list[anyio.Event]) -> None:
        """Wait for the runners: in once mode until they drained (or a stop request), then at
        most the grace period before cancelling what is still in flight."""
        assert self._stop is not None

        async def all_done() -> None:
            for done in runners:
                await done.wait()

        if self.once and not self.stopping:
            async with anyio.create_task_group() as waiters:

                async def until_done() -> None:
                    await all_done()
                    waiters.cancel_scope.cancel()

                async def until_stop() -> None:
                    assert self._stop is not None
                    await self._stop.wait()
                    waiters.cancel_scope.cancel()

                waiters.start_soon(until_done)
                waiters.start_soon(until_stop)
        if self.stopping:
            with anyio.move_on_after(self.grace_period.total_seconds()):
                await all_done()
            tg.cancel_scope.cancel()
        assert self._tracking_stop is not None
        self._tracking_stop.set()

    def wakeup_event(self, vectorizer_id: int) -> anyio.Event:
        """A fresh event that a notification for this vectorizer will set."""
        event = anyio.Event()
        self._wakeups[vectorizer_id] = event
        return event

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        match = _TRIGGER_NAME.fullmatch(str(payload))
        if match is None:
            return
        event = self._wakeups.get(int(match.group(1)))
        if event is not None:
            event.set()
        elif self._discover_now is not None:
            self._discover_now.set()  # a vectorizer this worker does not run yet

    async def _listen_for_work(self, until: anyio.Event) -> None:
        """LISTEN on a dedicated connection so idle runners wake as soon as rows are queued;
        polling stays the fallback (catalogs whose triggers do not notify, lost connections)."""
        delay = 1.0
        while not until.is_set():
            try:
                conn = await connect(self.db_url)
            except DatabaseError as exc:
                log.warning("cannot listen for queued rows (polling instead): %s", exc)
                with anyio.move_on_after(delay):
                    await until.wait()
                delay = min(delay * 2, 60.0)
                continue
            lost = anyio.Event()
            conn.add_termination_listener(lambda _c, lost=lost: lost.set())
            try:
                await conn.add_listener(NOTIFY_CHANNEL, self._notified)
                delay = 1.0
                await wait_any(until, lost)
            except CONNECTION_ERRORS as exc:
                log.warning("listening connection lost: %s", exc)
            finally:
                with anyio.CancelScope(shield=True):
                    await conn.close(timeout=5)

    async def _discover(self, pool: asyncpg.Pool) -> list[int]:
        async with pool.acquire() as conn:
            if self.vectorizer_ids:
                rows = await conn.fetch(
                    "SELECT id FROM ai.vectorizer WHERE id = any($1::int4[])", self.vectorizer_ids
                )
                found = sorted(r["id"] for r in rows)
                if len(found) != len(set(self.vectorizer_ids)):
                    missing = sorted(set(self.vectorizer_ids) - set(found))
                    message = (
                        f"invalid vectorizers, wanted: {sorted(set(self.vectorizer_ids))}, "
                        f"got: {found} (no vectorizer with id {missing})"
                    )
                    if not self._invalid_ids_reported:
                        log.error("%s", message)
                        self._invalid_ids_reported = True
                    self.fail(ConfigurationError(message))
                ids = found
            else:
                ids = [r["id"] for r in await conn.fetch("SELECT id FROM ai.vectorizer")]
        random.shuffle(ids)
        return ids


class VectorizerRunner:
    """Runs one vectorizer: N worker coroutines per cycle, a cycle per poll interval."""

    def __init__(
        self, worker: Worker, vectorizer_id: int, pool: asyncpg.Pool, client: httpx.AsyncClient
    ) -> None:
        self.worker = worker
        self.vectorizer_id = vectorizer_id
        self.pool = pool
        self.client = client
        self.had_error = False

    async def run(self, done: anyio.Event) -> None:
        try:
            while not self.worker.stopping:
                # registered before draining, so rows queued meanwhile are not missed
                wakeup = self.worker.wakeup_event(self.vectorizer_id)
                try:
                    keep_going = await self._cycle()
                except Exception as exc:  # noqa: BLE001 - one vectorizer's bug must not stop the others
                    keep_going = True
                    await self._unexpected_error(exc)
                if self.worker.once or not keep_going:
                    return
                assert self.worker._stop is not None
                if not wakeup.is_set():
                    with anyio.move_on_after(self.worker.poll_interval.total_seconds()):
                        await wait_any(self.worker._stop, wakeup)
        finally:
            self.worker._wakeups.pop(self.vectorizer_id, None)
            done.set()

    async def _load(self) -> Vectorizer | None:
        async with self.pool.acquire() as conn:
            row = await conn.fetchval(
                "SELECT to_jsonb(v) FROM ai.vectorizer v WHERE id = $1", self.vectorizer_id
            )
        if row is None:
            return None
        return parse_vectorizer(row)

    async def _cycle(self) -> bool:
        """Drain the queue once. Returns False when the vectorizer no longer exists."""
        try:
            vectorizer = await self._load()
        except ConfigurationError as exc:
            await self._config_error(exc)
            return True
        except CONNECTION_ERRORS as exc:
            log.error(
                "unable to connect to database: %s",
                exc,
                extra={"vectorizer_id": self.vectorizer_id},
            )
            return True
        if vectorizer is None:
            log.info("vectorizer %s was dropped", self.vectorizer_id)
            return False
        if vectorizer.disabled:
            log.info("vectorizer %s is disabled, skipping", self.vectorizer_id)
            return True
        try:
            embedder = make_embedder(
                vectorizer, client=self.client, retry=self.worker.provider_retry
            )
            await embedder.setup()
        except (ConfigurationError, ProviderError) as exc:
            await self._config_error(exc)
            return True
        log.info("running vectorizer %s", vectorizer.id)
        batch = BatchProcessor(self, vectorizer, embedder)
        concurrency = self.worker.concurrency or vectorizer.concurrency
        async with anyio.create_task_group() as tg:
            for _ in range(concurrency):
                tg.start_soon(batch.loop)
        log.info(
            "finished processing vectorizer %s: %d rows",
            vectorizer.id,
            batch.rows,
        )
        return True

    async def _unexpected_error(self, exc: Exception) -> None:
        log.exception("unexpected error in vectorizer %s: %s", self.vectorizer_id, exc)
        await self._vectorizer_failed(exc, UNEXPECTED_ERROR, f"unexpected error: {exc}")

    async def _config_error(self, exc: Exception) -> None:
        log.error(
            "error getting vectorizer: %s: %s",
            type(exc).__name__,
            exc,
            extra={"vectorizer_id": self.vectorizer_id},
        )
        await self._vectorizer_failed(exc, CONFIGURATION_ERROR, f"{type(exc).__name__}: {exc}")

    async def _vectorizer_failed(self, exc: Exception, message: str, summary: str) -> None:
        """A failure of the vectorizer, not of a batch: count it, record it (on a connection of
        its own), and stop the worker when it exits on errors."""
        if self.worker.tracking is not None:
            self.worker.tracking.count_error(summary)
        try:
            async with self.pool.acquire() as conn:
                await record_error(
                    conn,
                    self.vectorizer_id,
                    message,
                    {"error_reason": str(exc), "error_type": type(exc).__name__},
                )
        except RECORDING_ERRORS as record_exc:
            log.error("could not record the error: %s", record_exc)
        self.worker.fail(exc)


@dataclass
class _Batch:
    """A claimed batch in flight: its connection and transaction, and what became of its rows.

    A batch is embedded by the coroutine that claimed it; its last group's write and its commit
    (the tail) run in the background while the same coroutine claims and embeds the next batch,
    so the database's work on one batch overlaps the provider's and the text pipeline's on the
    next. Both batches hold their own transaction (and connection), and the advisory locks of
    the claim keep their keys apart."""

    conn: DbConnection
    #: (key, failures so far, whether its source row exists) of every claimed key
    keys: list[tuple[tuple[Any, ...], int, bool]]
    #: keys whose target table already has chunks: only these are looked up and deleted
    has_chunks: set[tuple[Any, ...]]
    #: whether the savepoint that the batch's writes sit in was taken
    savepoint: bool = False
    stored: dict[tuple[tuple[Any, ...], str], Sequence[float]] = field(default_factory=dict)
    failures: list[ItemFailure] = field(default_factory=list)
    failed: set[tuple[Any, ...]] = field(default_factory=set)
    #: a long document partly written, in a savepoint of its own (see _write_pending), and
    #: what its written parts added to the counters below
    open_row: tuple[Any, ...] | None = None
    open_row_counts: tuple[int, int, int] = (0, 0, 0)
    #: the last embedded group, not yet written: (its chunks, the fresh ones' vectors)
    pending: tuple[list[PreparedChunk], list[EmbeddedChunk]] | None = None
    processed: list[tuple[Any, ...]] = field(default_factory=list)
    empty: list[tuple[Any, ...]] = field(default_factory=list)
    sent_bytes: int = 0
    fresh_chunks: int = 0
    reused_chunks: int = 0

    @classmethod
    def claimed(cls, conn: DbConnection, rows: Sequence[ClaimedRow]) -> _Batch:
        return cls(
            conn,
            keys=[(c.pk, c.attempts, c.row is not None) for c in rows],
            has_chunks={c.pk for c in rows if c.has_chunks},
        )

    @property
    def attempts(self) -> dict[tuple[Any, ...], int]:
        return {pk: attempts for pk, attempts, _exists in self.keys}

    @property
    def gone(self) -> list[tuple[Any, ...]]:
        """Keys whose source row was deleted after they were queued."""
        return [pk for pk, _attempts, exists in self.keys if not exists]

    def fail(self, failures: Sequence[ItemFailure]) -> None:
        self.failures.extend(failures)
        self.failed.update(f.pk for f in failures)


class BatchProcessor:
    """The worker coroutines of one vectorizer cycle share this: the SQL, writer, embedder."""

    def __init__(self, runner: VectorizerRunner, vectorizer: Vectorizer, embedder: Embedder):
        self.runner = runner
        self.worker = runner.worker
        self.vectorizer = vectorizer
        self.embedder = embedder
        self.queue = QueueStatements(vectorizer)
        self.writer = EmbeddingWriter(vectorizer)
        self.max_attempts = vectorizer.config.loading.retries + 1
        self.rows = 0
        self.pause_for = 1.0

    async def loop(self) -> None:
        """Claim and process batches until the queue has nothing claimable or we stop."""
        self.worker.stats.coroutines += 1
        try:
            await self._loop()
        finally:
            self.worker.stats.coroutines -= 1

    async def _loop(self) -> None:
        reconnect_delay = 1.0
        # set when this coroutine's previous batch has committed: one tail at a time
        tail_done = anyio.Event()
        tail_done.set()
        async with anyio.create_task_group() as tails:
            while not self.worker.stopping:
                try:
                    outcome, tail_done = await self._next_batch(tails, tail_done)
                except CONNECTION_ERRORS as exc:
                    log.error(
                        "unable to connect to database: %s; retrying in %.0fs",
                        exc,
                        reconnect_delay,
                        extra={"vectorizer_id": self.vectorizer.id},
                    )
                    await self._pause(reconnect_delay)
                    reconnect_delay = min(reconnect_delay * 2, 60.0)
                    continue
                reconnect_delay = 1.0
                if outcome == "empty":
                    return
                if outcome == "paused":
                    await self._pause(self.pause_for)

    async def _next_batch(
        self, tails: anyio.abc.TaskGroup, tail_done: anyio.Event
    ) -> tuple[str, anyio.Event]:
        """Claim and embed a batch on a connection of its own, then hand its tail (last write,
        commit, release) to ``tails`` once the previous tail is done. Returns the outcome and
        the event of the tail now in flight."""
        conn = await self.runner.pool.acquire()
        stats = self.worker.stats
        stats.busy += 1
        handed_off = False
        try:
            outcome, batch = await self._head(conn)
            if batch is not None:
                try:
                    await tail_done.wait()
                except BaseException:  # cancelled: the batch was never handed over
                    await _rollback_or_drop(conn)
                    raise
                tail_done = anyio.Event()
                tails.start_soon(self._tail, batch, tail_done)
                handed_off = True
        finally:
            stats.busy -= 1
            if not handed_off:
                await self._release(conn)
        return outcome, tail_done

    async def _release(self, conn: DbConnection) -> None:
        with anyio.CancelScope(shield=True):
            try:
                assert isinstance(conn, asyncpg.pool.PoolConnectionProxy)
                await self.runner.pool.release(conn)
            except CLEANUP_ERRORS as exc:
                log.debug("dropped a broken connection: %s", exc)

    async def _pause(self, seconds: float) -> None:
        assert self.worker._stop is not None
        with anyio.move_on_after(seconds):
            await self.worker._stop.wait()

    async def _head(self, conn: DbConnection) -> tuple[str, _Batch | None]:
        """Claim a batch and embed it, writing all but its last group. Returns the outcome and,
        when there is a tail to run, the batch; a failed batch is settled here."""
        # Transactions are plain BEGIN/SAVEPOINT/COMMIT statements, not asyncpg's objects, so
        # that statements share round trips: a batch costs five (BEGIN + settings, claim,
        # SAVEPOINT, COPY, RELEASE + COMMIT), and round trips, not statements, bound a busy
        # database.
        await conn.execute(_BEGIN_BATCH)
        try:
            claimed = await self.queue.claim(conn, self.vectorizer.batch_size)
            if not claimed:
                await conn.execute("ROLLBACK")
                return "empty", None
            log.debug(
                "Items pulled from queue: %d (vectorizer %s)", len(claimed), self.vectorizer.id
            )
            batch = _Batch.claimed(conn, claimed)
            try:
                await self._embed(batch, claimed)
            except ProviderError as exc:
                return await self._fail_batch(batch, exc, EMBEDDING_PROVIDER_FAILED), None
            except CONNECTION_ERRORS:
                raise
            except (asyncpg.PostgresError, ValueError, TypeError, ConfigurationError) as exc:
                return await self._fail_batch(batch, exc, UNEXPECTED_ERROR), None
            return "done", batch
        except BaseException:
            await _rollback_or_drop(conn)
            raise

    @staticmethod
    async def _savepoint(batch: _Batch) -> None:
        """Before the batch's first statement after its claim: its writes sit in a savepoint.
        When they fail, the claim (which took the rows off the queue) stays, and the rows go
        back with their attempt counted in this same transaction, so no other worker can retry
        them in between."""
        if not batch.savepoint:
            await batch.conn.execute(f"SAVEPOINT {_SAVEPOINT}")
            batch.savepoint = True

    async def _embed(self, batch: _Batch, claimed: list[ClaimedRow]) -> None:
        """Chunk, embed and write the batch a group at a time (at most GROUP_CHUNKS chunks to
        embed; a long document is spread over several groups), so that memory holds a group's
        texts and vectors, not the batch's. A group is written once the next one is embedded;
        the last one is left pending for the tail.

        A chunk whose formatted text the row already has keeps its stored vector: same text,
        same vectorizer, hence same model and dimensions."""
        stream = ChunkStream(self.vectorizer, claimed)  # takes the rows over
        # the stream's own lists, filled as it goes
        batch.processed, batch.empty = stream.processed, stream.empty
        gone = set(batch.gone)
        lookup = sorted((pk for pk in batch.has_chunks if pk not in gone), key=repr)
        if lookup:
            await self._savepoint(batch)
            batch.stored = await self.writer.stored_embeddings(batch.conn, lookup)
        # Chunking a large batch is CPU work for a worker thread (the event loop keeps serving
        # the other batches' I/O); a small one takes less time than the hand-over to a thread.
        in_thread = stream.text_chars > CHUNK_IN_THREAD_CHARS
        while not stream.exhausted:
            if in_thread:
                group = await anyio.to_thread.run_sync(
                    stream.next_group, GROUP_CHUNKS, batch.stored
                )
            else:
                group = stream.next_group(GROUP_CHUNKS, batch.stored)
            batch.fail(group.failures)
            fresh = [
                c
                for c in group.chunks
                if (c.pk, c.text) not in batch.stored and c.pk not in batch.failed
            ]
            embedded, failures = await self._embed_isolating_poison_rows(fresh, batch.attempts)
            batch.fail(failures)
            if batch.pending is not None:
                await self._write_pending(batch, following=group.chunks[0].pk)
            batch.pending = (group.chunks, embedded)

    async def _write_pending(self, batch: _Batch, following: tuple[Any, ...] | None = None) -> None:
        """Write the pending group; ``following`` is the row of the next group's first chunk. A
        row's old chunks are deleted just before its new ones are written, so a row that fails
        keeps its old chunks.

        A long document spread over several groups is written in a savepoint of its own: it is
        the last row of the group where it starts, the only row of the groups in between and
        the first of the group where it ends, so nothing else is written inside that savepoint.
        When a later part fails, rolling back to it undoes that document's writes alone, and
        its old chunks are back until its retry."""
        assert batch.pending is not None
        chunks, embedded = batch.pending
        batch.pending = None
        conn, failed = batch.conn, batch.failed
        await self._savepoint(batch)
        if batch.open_row is not None and batch.open_row in failed:
            await conn.execute(
                f"ROLLBACK TO SAVEPOINT {_ROW_SAVEPOINT}; RELEASE SAVEPOINT {_ROW_SAVEPOINT}"
            )
            sent, fresh, reused = batch.open_row_counts
            batch.sent_bytes -= sent
            batch.fresh_chunks -= fresh
            batch.reused_chunks -= reused
            batch.open_row = None
        vectors = {(c.pk, c.chunk_seq): c for c in embedded}
        by_row: dict[tuple[Any, ...], list[EmbeddedChunk]] = {}
        for chunk in chunks:
            if chunk.pk in failed:
                continue
            out = vectors.get((chunk.pk, chunk.chunk_seq))
            if out is None:  # not sent: its vector is the one stored for the same text
                out = EmbeddedChunk(
                    chunk.pk, chunk.chunk_seq, chunk.text, batch.stored[(chunk.pk, chunk.text)]
                )
            by_row.setdefault(chunk.pk, []).append(out)
        rows = list(by_row)
        # the group's last row goes on in the next group
        continuing = rows[-1] if rows and rows[-1] == following else None
        open_row = batch.open_row
        if open_row is not None and open_row in by_row:
            # the next part of the open document (first in the group)
            await self._write_rows(batch, by_row.pop(open_row), open_row=True)
            if open_row != continuing:
                await conn.execute(f"RELEASE SAVEPOINT {_ROW_SAVEPOINT}")
                batch.open_row = None
        if continuing is not None and continuing != open_row:
            starting = by_row.pop(continuing)
        else:
            starting = []
        complete = list(by_row)
        await self.writer.delete_old_chunks(conn, [pk for pk in complete if pk in batch.has_chunks])
        await self._write_rows(batch, [c for pk in complete for c in by_row[pk]])
        if starting:
            assert continuing is not None
            await conn.execute(f"SAVEPOINT {_ROW_SAVEPOINT}")
            batch.open_row, batch.open_row_counts = continuing, (0, 0, 0)
            if continuing in batch.has_chunks:
                await self.writer.delete_old_chunks(conn, [continuing])
            await self._write_rows(batch, starting, open_row=True)

    async def _write_rows(
        self, batch: _Batch, chunks: list[EmbeddedChunk], open_row: bool = False
    ) -> None:
        """Write chunks and count them (for an open document, apart too: a rollback of its
        savepoint takes its counts back)."""
        await self.writer.write(batch.conn, chunks)
        fresh = [c for c in chunks if (c.pk, c.chunk) not in batch.stored]
        sent = sum(len(c.chunk.encode("utf-8")) for c in fresh)
        reused = len(chunks) - len(fresh)
        batch.sent_bytes += sent
        batch.fresh_chunks += len(fresh)
        batch.reused_chunks += reused
        if open_row:
            sent_before, fresh_before, reused_before = batch.open_row_counts
            batch.open_row_counts = (
                sent_before + sent,
                fresh_before + len(fresh),
                reused_before + reused,
            )

    async def _tail(self, batch: _Batch, done: anyio.Event) -> None:
        """Finish a batch in the background: its last write, the bookkeeping, the commit."""
        try:
            try:
                await self._finish(batch)
            except CONNECTION_ERRORS:
                raise
            except (asyncpg.PostgresError, ValueError, TypeError, ConfigurationError) as exc:
                await self._fail_batch(batch, exc, UNEXPECTED_ERROR)
        except CONNECTION_ERRORS as exc:
            # the transaction is gone with its connection: the rows are in the queue again
            log.error(
                "unable to connect to database: %s; the batch will be claimed again",
                exc,
                extra={"vectorizer_id": self.vectorizer.id},
            )
        except BaseException:
            await _rollback_or_drop(batch.conn)
            raise
        finally:
            await self._release(batch.conn)
            done.set()

    async def _finish(self, batch: _Batch) -> None:
        conn = batch.conn
        if batch.pending is not None:
            await self._write_pending(batch)
        # rows that now make no chunk, and rows deleted since they were queued (the trigger of
        # a pgai catalog or a disabled trigger may have left chunks), lose their old chunks
        deleted = [pk for pk in [*batch.gone, *batch.empty] if pk in batch.has_chunks]
        if deleted or batch.failures:
            await self._savepoint(batch)
        await self.writer.delete_old_chunks(conn, deleted)
        if batch.failures:
            await self._requeue_failed_rows(conn, batch.failures)
        release = f"RELEASE SAVEPOINT {_SAVEPOINT}; " if batch.savepoint else ""
        await conn.execute(release + "COMMIT")
        done = [pk for pk in batch.processed if pk not in batch.failed]
        vid = self.vectorizer.id
        self.rows += len(done)
        stats = self.worker.stats
        stats.batches += 1
        stats.rows += len(done)
        chunks = batch.fresh_chunks + batch.reused_chunks
        stats.chunks += chunks
        stats.reused_chunks += batch.reused_chunks
        stats.tokens += batch.sent_bytes // 4
        stats.per_vectorizer_rows[vid] = stats.per_vectorizer_rows.get(vid, 0) + len(done)
        stats.per_vectorizer_chunks[vid] = stats.per_vectorizer_chunks.get(vid, 0) + chunks
        log.debug(
            "vectorizer %s: batch of %d rows, %d chunks embedded, %d reused",
            vid,
            len(done),
            batch.fresh_chunks,
            batch.reused_chunks,
        )
        if self.worker.tracking is not None:
            await self.worker.tracking.progress(conn, vid, len(done))

    async def _fail_batch(self, batch: _Batch, exc: Exception, message: str) -> str:
        """Undo the batch's writes (back to the savepoint), settle its rows, commit."""
        conn = batch.conn
        if not conn.is_in_transaction():
            # COMMIT itself failed (a deferred constraint): the claim rolled back with it and
            # the rows are in the queue again, without an attempt counted
            log.error("vectorizer %s: batch failed at commit: %s", self.vectorizer.id, exc)
            await record_error(
                conn,
                self.vectorizer.id,
                message,
                {"error_reason": str(exc), "error_type": type(exc).__name__},
            )
            self.worker.fail(exc)
            return "failed"
        if batch.savepoint:
            await conn.execute(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}")
        outcome = await self._batch_failed(conn, batch.keys, exc, message)
        await conn.execute("COMMIT")
        # after the commit: a failure to record progress must not undo the rows' requeueing
        if self.worker.tracking is not None and outcome != "paused":
            await self.worker.tracking.progress(conn, self.vectorizer.id, 0, f"{message}: {exc}")
        return outcome

    async def _embed_isolating_poison_rows(
        self, chunks_to_embed: Sequence[PreparedChunk], attempts: dict[tuple[Any, ...], int]
    ) -> tuple[list[EmbeddedChunk], list[ItemFailure]]:
        """Embed the batch's chunks. When the provider rejects a request for something in its
        input (400, 413, 422, a malformed answer), split the rows in halves until the rows it
        rejects are isolated: they fail alone and their neighbours are embedded. If every row
        fails on its own, the fault is not in the rows: the error fails the whole batch."""
        by_row: dict[tuple[Any, ...], list[PreparedChunk]] = {}
        for chunk in chunks_to_embed:
            by_row.setdefault(chunk.pk, []).append(chunk)
        embedded: list[EmbeddedChunk] = []
        failed: list[ItemFailure] = []
        first_error: ProviderError | None = None
        # A stack of row sets to embed, not a recursive closure: a nested function that calls
        # itself is a reference cycle, which kept every group's vectors alive until the
        # garbage collector's next full pass (85 MB of a 20,000-row backfill).
        to_embed = [list(by_row)] if by_row else []
        while to_embed:
            rows = to_embed.pop()
            chunks = [c for pk in rows for c in by_row[pk]]
            try:
                vectors = await self.embedder.embed_packed([c.text for c in chunks], pack_vector)
            except ProviderError as exc:
                if not _blames_the_input(exc):
                    raise
                first_error = first_error or exc.with_traceback(None)  # no cycle via frames
                if len(rows) == 1:
                    failed.append(ItemFailure(rows[0], attempts.get(rows[0], 0), "embedding", exc))
                    continue
                middle = len(rows) // 2
                to_embed += [rows[middle:], rows[:middle]]  # the first half first
                continue
            embedded.extend(
                EmbeddedChunk(c.pk, c.chunk_seq, c.text, v)
                for c, v in zip(chunks, vectors, strict=True)
            )
        if failed and len(failed) == len(by_row) and len(by_row) > 1:
            assert first_error is not None
            raise first_error
        return embedded, failed

    async def _requeue_failed_rows(
        self, conn: DbConnection, failures: Sequence[ItemFailure]
    ) -> None:
        by_step: dict[str, list[ItemFailure]] = {}
        for failure in failures:
            by_step.setdefault(failure.step, []).append(failure)
        for step, group in by_step.items():
            _requeued, moved = await self.queue.requeue(
                conn,
                [(f.pk, f.attempts) for f in group],
                max_attempts=self.max_attempts,
                backoff=self.worker.retry_backoff,
                max_backoff=self.worker.max_retry_backoff,
                failure_step=step,
            )
            self.worker.stats.moved_to_failed_queue += moved
        self.worker.stats.failed_rows += len(failures)
        for failure in failures:
            log.error(
                "vectorizer %s: row %s failed at %s: %s",
                self.vectorizer.id,
                failure.pk,
                failure.step,
                failure.error,
            )
            details: dict[str, Any] = {
                "step": failure.step,
                "error_reason": f"{type(failure.error).__name__}: {failure.error}",
                "pk": jsonable_keys([failure.pk])[0],
                "attempt": failure.attempts + 1,
                "is_retryable": failure.attempts + 1 < self.max_attempts,
            }
            if isinstance(failure.error, ProviderError):
                message = EMBEDDING_PROVIDER_FAILED
                details["provider"] = failure.error.provider
                details["http_status"] = failure.error.status
            elif failure.step == "loading":
                message = LOADING_FAILED
                details["loader"] = self.vectorizer.config.loading.implementation
            else:
                message = UNEXPECTED_ERROR
            await record_error(conn, self.vectorizer.id, message, details)

    async def _batch_failed(
        self,
        conn: DbConnection,
        claimed: Sequence[tuple[tuple[Any, ...], int, bool]],
        exc: Exception,
        message: str,
    ) -> str:
        """The batch's writes rolled back to their savepoint: put its rows back in the queue,
        with one more attempt and a back-off (or into the failed queue), unless the provider
        only paced us (429), which costs no attempt. ``claimed`` holds (key, failures so far,
        whether the source row exists)."""
        vid = self.vectorizer.id
        rate_limited = isinstance(exc, ProviderError) and exc.rate_limited
        status = exc.status if isinstance(exc, ProviderError) else None
        log.log(
            logging.WARNING if rate_limited else logging.ERROR,
            "vectorizer %s: batch of %d rows failed: %s",
            vid,
            len(claimed),
            exc,
        )
        rows = [(pk, attempts) for pk, attempts, exists in claimed if exists]
        if rate_limited:
            await self.queue.put_back(conn, rows)
            held, moved = len(rows), 0
        else:
            held, moved = await self.queue.requeue(
                conn,
                rows,
                max_attempts=self.max_attempts,
                backoff=self.worker.retry_backoff,
                max_backoff=self.worker.max_retry_backoff,
                failure_step="embedding" if isinstance(exc, ProviderError) else "processing",
            )
        claimed_pks = [pk for pk, _attempts, _exists in claimed]
        self.worker.stats.failed_batches += 1
        errors = self.worker.stats.per_vectorizer_errors
        errors[vid] = errors.get(vid, 0) + 1
        self.worker.stats.moved_to_failed_queue += moved
        details: dict[str, Any] = {
            "error_reason": str(exc),
            "error_type": type(exc).__name__,
            "pks": jsonable_keys(claimed_pks[:MAX_KEYS_IN_DETAILS]),
            "rows": len(claimed_pks),
            "will_retry": rate_limited or held > 0,
            "moved_to_failed_queue": moved,
        }
        if isinstance(exc, ProviderError):
            details["provider"] = exc.provider
            details["http_status"] = status
            details["rate_limited"] = rate_limited
        await record_error(conn, vid, message, details)
        if rate_limited:
            # The provider is pacing us: not a failure of these rows, nor of the worker.
            assert isinstance(exc, ProviderError)
            self.pause_for = exc.retry_after or 1.0
            return "paused"
        self.worker.fail(exc)
        return "failed"


async def _no_reset(conn: asyncpg.Connection) -> None:
    """What our pool does to a released connection: nothing beyond asyncpg's own clean-up
    (which rolls back an open transaction). The default reset (unlock advisory locks, close
    cursors, UNLISTEN, RESET ALL) is a round trip per batch for state the worker never
    leaves behind: its locks are transaction-scoped and it sets nothing."""


async def _rollback_or_drop(conn: DbConnection) -> None:
    """Roll a batch's transaction back on the way out of an error or a cancellation; a
    connection that cannot (broken, or cancelled mid-statement) is closed, which rolls back
    just the same, server-side."""
    with anyio.CancelScope(shield=True):
        try:
            if conn.is_in_transaction():
                await conn.execute("ROLLBACK")
        except CLEANUP_ERRORS:
            conn.terminate()


async def wait_any(*events: anyio.Event) -> None:
    """Return as soon as one of the events is set."""
    async with anyio.create_task_group() as tg:

        async def wait(event: anyio.Event) -> None:
            await event.wait()
            tg.cancel_scope.cancel()

        for event in events:
            tg.start_soon(wait, event)


def _blames_the_input(error: ProviderError) -> bool:
    """Errors a different input could avoid: bad request, too large, unprocessable, or an answer
    that does not fit the input (wrong count or size). Auth, quota and server errors are not."""
    if error.retryable or error.rate_limited:
        return False
    return error.status in (None, 400, 413, 422)


def parse_duration(value: str) -> timedelta:
    """``1h``, ``45m``, ``30s``, ``1h30m``, ``1.5h``, ``2 days``, ``1:30``, or plain seconds."""
    text = value.strip().lower()
    if not text:
        raise ValueError("empty duration")
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if seconds < 0:
            raise ValueError("time duration can't be negative")
        if not math.isfinite(seconds):
            raise ValueError(f"'{value}' is not a valid duration string or integer")
        return timedelta(seconds=seconds)
    if ":" in text:
        parts = text.split(":")
        try:
            numbers = [float(p) for p in parts]
        except ValueError as exc:
            raise ValueError(f"'{value}' is not a valid duration string or integer") from exc
        total = 0.0
        for number in numbers:
            total = total * 60 + number
        return timedelta(seconds=total)
    units = {
        "w": 604800, "week": 604800, "weeks": 604800,
        "d": 86400, "day": 86400, "days": 86400,
        "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
        "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
        "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
        "ms": 0.001,
    }  # fmt: skip
    import re

    matches = list(re.finditer(r"(\d+(?:\.\d+)?)\s*([a-z]+)\s*,?\s*", text))
    if not matches or "".join(m.group(0) for m in matches) != text:
        raise ValueError(f"'{value}' is not a valid duration string or integer")
    total = 0.0
    for match in matches:
        unit = match.group(2)
        if unit not in units:
            raise ValueError(f"'{value}' is not a valid duration string or integer")
        total += float(match.group(1)) * units[unit]
    return timedelta(seconds=total)
