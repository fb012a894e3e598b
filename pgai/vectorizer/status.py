"""What the catalog says about vectorizers and workers: ``pgai vectorizer status`` and the
queue-depth metrics read it from here.

Per vectorizer: its queue (pending rows) and failed queue, the last error (the newer of
``ai.vectorizer_errors`` and the worker progress row), the last success, whether it is disabled.
Per worker process: the live ones, those whose last heartbeat is within twice the interval they
promised when they started.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from pgai.database import DbConnection, connect, redact_url
from pgai.errors import CatalogError
from pgai.vectorizer.queue import failed_queue_count

#: A queue depth the cheap count reports as "more than this": see :func:`queue_depths`.
CHEAP_COUNT_LIMIT = 10_000

_VECTORIZERS_SQL = """
SELECT v.id,
       v.name,
       format('%I.%I', v.source_schema, v.source_table) AS source,
       v.disabled,
       v.queue_schema,
       v.queue_failed_table,
       CASE WHEN has_table_privilege(
                    to_regclass(format('%I.%I', v.queue_schema, v.queue_table))::oid, 'select')
            THEN ai.vectorizer_queue_pending(v.id, true)
       END AS pending,
       e.message AS error_message,
       e.details ->> 'error_reason' AS error_reason,
       e.recorded AS error_at
FROM ai.vectorizer v
LEFT JOIN LATERAL (
    SELECT x.message, x.details, x.recorded
    FROM ai.vectorizer_errors x
    WHERE x.id = v.id
    ORDER BY x.recorded DESC
    LIMIT 1
) e ON true
ORDER BY v.id
"""

_PROGRESS_SQL = """
SELECT vectorizer_id, last_success_at, last_error_at, last_error_message
FROM ai.vectorizer_worker_progress
"""

_LIVE_WORKERS_SQL = """
SELECT id::text AS id, version, started, last_heartbeat, expected_heartbeat_interval,
       success_count, error_count, last_error_message
FROM ai.vectorizer_worker_process
WHERE last_heartbeat >= clock_timestamp() - 2 * expected_heartbeat_interval
ORDER BY started, id
"""

_QUEUE_DEPTHS_SQL = """
SELECT v.id,
       least(ai.vectorizer_queue_pending(v.id, false), $1::int8 + 1) AS pending
FROM ai.vectorizer v
WHERE has_table_privilege(
          to_regclass(format('%I.%I', v.queue_schema, v.queue_table))::oid, 'select')
ORDER BY v.id
"""


@dataclass(frozen=True)
class VectorizerStatus:
    """One vectorizer as ``pgai vectorizer status`` shows it. Counts are None when the role
    may not read the queue."""

    id: int
    name: str | None
    source: str
    pending: int | None
    failed: int | None
    last_error: str | None
    last_error_at: datetime | None
    last_success_at: datetime | None
    disabled: bool


@dataclass(frozen=True)
class WorkerProcess:
    """A worker process that beat its heart recently."""

    id: str
    version: str
    started: datetime
    last_heartbeat: datetime
    expected_heartbeat_interval: timedelta
    success_count: int
    error_count: int
    last_error_message: str | None


@dataclass(frozen=True)
class CatalogStatus:
    """Every vectorizer and every live worker process of one database."""

    vectorizers: list[VectorizerStatus]
    live_workers: list[WorkerProcess]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: timestamps in ISO 8601, intervals in seconds."""

        def plain(value: Any) -> Any:
            if isinstance(value, datetime):
                return value.isoformat()
            if isinstance(value, timedelta):
                return value.total_seconds()
            return value

        return {
            "vectorizers": [{k: plain(v) for k, v in asdict(s).items()} for s in self.vectorizers],
            "live_workers": [
                {k: plain(v) for k, v in asdict(w).items()} for w in self.live_workers
            ],
        }


async def _has_relation(conn: DbConnection, name: str) -> bool:
    return bool(await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", name))


async def fetch_status(conn: DbConnection) -> CatalogStatus:
    """Read the status of every vectorizer and the live workers (exact queue counts)."""
    if not await _has_relation(conn, "ai.vectorizer"):
        raise CatalogError("pgai is not installed in this database: run `pgai install` first")
    rows = await conn.fetch(_VECTORIZERS_SQL)
    progress: dict[int, Any] = {}
    if await _has_relation(conn, "ai.vectorizer_worker_progress"):
        progress = {r["vectorizer_id"]: r for r in await conn.fetch(_PROGRESS_SQL)}
    vectorizers = []
    for row in rows:
        last_error, last_error_at = _newest_error(row, progress.get(row["id"]))
        success = progress.get(row["id"])
        vectorizers.append(
            VectorizerStatus(
                id=row["id"],
                name=row["name"],
                source=row["source"],
                pending=row["pending"],
                failed=await failed_queue_count(
                    conn, row["queue_schema"], row["queue_failed_table"]
                ),
                last_error=last_error,
                last_error_at=last_error_at,
                last_success_at=success["last_success_at"] if success is not None else None,
                disabled=bool(row["disabled"]),
            )
        )
    workers: list[WorkerProcess] = []
    if await _has_relation(conn, "ai.vectorizer_worker_process"):
        workers = [WorkerProcess(**dict(r)) for r in await conn.fetch(_LIVE_WORKERS_SQL)]
    return CatalogStatus(vectorizers, workers)


def _newest_error(row: Any, progress: Any) -> tuple[str | None, datetime | None]:
    """The newer of the last ``ai.vectorizer_errors`` row and the progress row's last error."""
    candidates: list[tuple[datetime, str]] = []
    if row["error_at"] is not None:
        message = row["error_message"] or "error"
        if row["error_reason"]:
            message = f"{message}: {row['error_reason']}"
        candidates.append((row["error_at"], message))
    if progress is not None and progress["last_error_at"] is not None:
        candidates.append((progress["last_error_at"], progress["last_error_message"] or "error"))
    if not candidates:
        return None, None
    at, message = max(candidates, key=lambda c: c[0])
    return message, at


async def read_status(db_url: str) -> CatalogStatus:
    """Connect, read :func:`fetch_status`, disconnect."""
    conn = await connect(db_url)
    try:
        try:
            return await fetch_status(conn)
        except CatalogError as exc:
            raise CatalogError(f"{exc} (database {redact_url(db_url)})") from exc
    finally:
        await conn.close()


async def queue_depths(conn: DbConnection) -> dict[int, int]:
    """Pending rows per vectorizer, counted cheaply: a queue with more than
    :data:`CHEAP_COUNT_LIMIT` rows reports ``CHEAP_COUNT_LIMIT + 1``."""
    rows = await conn.fetch(_QUEUE_DEPTHS_SQL, CHEAP_COUNT_LIMIT)
    return {r["id"]: int(r["pending"]) for r in rows}


def render_table(status: CatalogStatus, now: datetime | None = None) -> str:
    """The status as a plain-text table for people, then the live workers."""
    headers = ["id", "name", "source", "pending", "failed", "last success", "last error"]
    headers.append("disabled")
    lines: list[list[str]] = []
    for v in status.vectorizers:
        lines.append(
            [
                str(v.id),
                v.name or "-",
                v.source,
                _count(v.pending),
                _count(v.failed),
                _when(v.last_success_at, now),
                _error(v.last_error, v.last_error_at, now),
                "yes" if v.disabled else "no",
            ]
        )
    out: list[str] = []
    if lines:
        widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(headers)]
        numeric = {0, 3, 4}
        for cells in [headers, *lines]:
            padded = [
                c.rjust(widths[i]) if i in numeric else c.ljust(widths[i])
                for i, c in enumerate(cells)
            ]
            out.append("  ".join(padded).rstrip())
    else:
        out.append("no vectorizers")
    out.append("")
    out.append(f"live workers: {len(status.live_workers)}")
    for w in status.live_workers:
        out.append(
            f"  {w.id}  version {w.version}, started {_when(w.started, now)}, "
            f"last heartbeat {_when(w.last_heartbeat, now)}, "
            f"rows: {w.success_count}, errors: {w.error_count}"
        )
    return "\n".join(out)


def _count(value: int | None) -> str:
    return "?" if value is None else str(value)


def _when(at: datetime | None, now: datetime | None) -> str:
    if at is None:
        return "-"
    reference = now or datetime.now(at.tzinfo)
    seconds = max(0, int((reference - at).total_seconds()))
    if seconds < 120:
        return f"{seconds}s ago"
    if seconds < 7200:
        return f"{seconds // 60}m ago"
    if seconds < 172800:
        return f"{seconds // 3600}h ago"
    return f"{seconds // 86400}d ago"


def _error(message: str | None, at: datetime | None, now: datetime | None) -> str:
    if message is None:
        return "-"
    one_line = " ".join(message.split())
    if len(one_line) > 60:
        one_line = one_line[:57] + "..."
    return f"{_when(at, now)}: {one_line}"
