"""Worker heartbeats and per-vectorizer progress, in the catalog's tracking tables.

Each worker process registers a row in ``ai.vectorizer_worker_process`` and beats its heart
there; each batch adds to ``ai.vectorizer_worker_progress``. From SQL one sees which workers are
alive (``last_heartbeat`` within ``expected_heartbeat_interval``) and what every vectorizer did
last. Tracking is bookkeeping: when it fails (old catalog, missing grants) the worker logs it
and carries on embedding.
"""

from __future__ import annotations

import logging
import math
import time
from datetime import timedelta

import anyio
import asyncpg

from pgai.database import DbConnection

log = logging.getLogger("pgai.vectorizer.tracking")

#: Seconds between two writes of a vectorizer's successes to ai.vectorizer_worker_progress.
PROGRESS_INTERVAL = 1.0

_TRACKING_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
)


class WorkerTracking:
    """The tracking rows of one worker process."""

    def __init__(self, pool: asyncpg.Pool, version: str, heartbeat_interval: timedelta) -> None:
        self.pool = pool
        self.version = version
        self.heartbeat_interval = heartbeat_interval
        self.worker_id: str | None = None
        self._successes = 0
        self._errors = 0
        self._last_error: str | None = None
        #: successes per vectorizer not written yet, and when each was last written
        self._pending_progress: dict[int, int] = {}
        self._progress_written: dict[int, float] = {}

    @property
    def enabled(self) -> bool:
        return self.worker_id is not None

    async def start(self) -> None:
        """Register this process, if the catalog tracks workers."""
        try:
            async with self.pool.acquire() as conn:
                if not await conn.fetchval(
                    "SELECT to_regprocedure('ai._worker_start(text, interval)') IS NOT NULL"
                ):
                    return
                worker_id = await conn.fetchval(
                    "SELECT ai._worker_start($1, $2)", self.version, self.heartbeat_interval
                )
            self.worker_id = str(worker_id)
            log.info("worker %s started", self.worker_id)
        except _TRACKING_ERRORS as exc:
            log.warning("worker tracking is off: %s", exc)

    def count_success(self, rows: int) -> None:
        self._successes += rows

    def count_error(self, message: str) -> None:
        self._errors += 1
        self._last_error = message

    async def heartbeat(self) -> None:
        if not self.enabled:
            return
        await self.flush_progress()
        successes, errors, message = self._successes, self._errors, self._last_error
        self._successes, self._errors, self._last_error = 0, 0, None
        try:
            async with self.pool.acquire() as conn:
                await conn.execute(
                    "SELECT ai._worker_heartbeat($1::uuid, $2, $3, $4)",
                    self.worker_id,
                    successes,
                    errors,
                    message,
                )
        except _TRACKING_ERRORS as exc:
            # keep the counts for the next beat
            self._successes += successes
            self._errors += errors
            self._last_error = self._last_error or message
            log.warning("heartbeat failed: %s", exc)

    async def beat_until(self, stop: anyio.Event) -> None:
        """Heartbeat now and every interval until ``stop``; a last beat on the way out."""
        try:
            while not stop.is_set():
                await self.heartbeat()
                with anyio.move_on_after(self.heartbeat_interval.total_seconds()):
                    await stop.wait()
        finally:
            with anyio.CancelScope(shield=True):
                await self.heartbeat()

    async def progress(
        self,
        conn: DbConnection,
        vectorizer_id: int,
        rows: int,
        error_message: str | None = None,
    ) -> None:
        """Record a batch's outcome for its vectorizer. Successes are written at most once per
        PROGRESS_INTERVAL per vectorizer (the rest on the next heartbeat and on the way out),
        after the batch's commit: one row takes every batch's update, and writing it inside
        each batch's transaction made concurrent batches queue for its lock."""
        if error_message is None:
            self.count_success(rows)
            pending = self._pending_progress.get(vectorizer_id, 0) + rows
            now = time.monotonic()
            if now - self._progress_written.get(vectorizer_id, -math.inf) < PROGRESS_INTERVAL:
                self._pending_progress[vectorizer_id] = pending
                return
            self._pending_progress.pop(vectorizer_id, None)
            self._progress_written[vectorizer_id] = now
            rows = pending
        else:
            self.count_error(error_message)
        if not self.enabled:
            return
        await self._write_progress(conn, vectorizer_id, rows, error_message)

    async def flush_progress(self) -> None:
        """Write the successes not written yet."""
        pending, self._pending_progress = self._pending_progress, {}
        if not pending or not self.enabled:
            return
        try:
            async with self.pool.acquire() as conn:
                for vectorizer_id, rows in pending.items():
                    self._progress_written[vectorizer_id] = time.monotonic()
                    await self._write_progress(conn, vectorizer_id, rows, None)
        except _TRACKING_ERRORS as exc:
            log.warning("progress not recorded: %s", exc)

    async def _write_progress(
        self, conn: DbConnection, vectorizer_id: int, rows: int, error_message: str | None
    ) -> None:
        try:
            await conn.execute(
                "SELECT ai._worker_progress($1::uuid, $2, $3, $4)",
                self.worker_id,
                vectorizer_id,
                rows,
                error_message,
            )
        except _TRACKING_ERRORS as exc:
            log.warning("progress of vectorizer %s not recorded: %s", vectorizer_id, exc)
