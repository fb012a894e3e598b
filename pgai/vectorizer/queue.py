"""Every statement that touches a vectorizer's queue tables.

Claiming follows the protocol pgai's worker uses, so both can run against one catalog: queue
rows are taken with ``FOR UPDATE SKIP LOCKED`` and each distinct key with a transaction-scoped
advisory lock ``(vectorizer id, hashtext('col|value|...'))``; all queue rows of a locked key are
deleted in the claiming transaction. Rolling that transaction back (a failure, a killed worker)
puts every row back.

Unlike pgai, a failed batch is *remembered*: its rows go back to the queue, in the claiming
transaction, with an attempt count and a back-off time (the queue's ``loading_retries`` /
``loading_retry_after`` columns), and rows that keep failing move to the failed-queue table
instead of being retried forever.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from typing import Any

from pgai.database import DbConnection, quote_ident, quote_qualified
from pgai.vectorizer.config import TableDestination, Vectorizer

#: Queue columns (pgai's names): failures so far, and the earliest time of the next claim.
ATTEMPTS_COLUMN = "loading_retries"
RETRY_AFTER_COLUMN = "loading_retry_after"


@dataclass(frozen=True)
class ClaimedRow:
    """A claimed queue entry: its key, how often it failed before, and its source row
    (None when the source row was deleted after it was queued)."""

    pk: tuple[Any, ...]
    attempts: int
    row: dict[str, Any] | None
    #: whether the target table holds chunks of this key (always False for a column
    #: destination): rows embedded for the first time need no lookup or deletion of old chunks
    has_chunks: bool = False


class QueueStatements:
    """The SQL of one vectorizer's queue, built once from its catalog row."""

    def __init__(self, vectorizer: Vectorizer) -> None:
        self.vectorizer = vectorizer
        self.queue = quote_qualified(vectorizer.queue_schema, vectorizer.queue_table)
        self.failed_queue = (
            quote_qualified(vectorizer.queue_schema, vectorizer.queue_failed_table)
            if vectorizer.queue_failed_table
            else None
        )
        self.source = quote_qualified(vectorizer.source_schema, vectorizer.source_table)
        self.pk = vectorizer.pk_names
        self.pk_cols = ", ".join(quote_ident(c) for c in self.pk)

    def _match(self, left: str, right: str) -> str:
        return " AND ".join(f"{left}.{quote_ident(c)} = {right}.{quote_ident(c)}" for c in self.pk)

    @cached_property
    def claim_sql(self) -> str:
        lock_key = ", ".join(
            f"{_literal(c)}, {quote_ident(c)}" for c in self.vectorizer.pk_names_key_order
        )
        order = ", ".join(f"l.{quote_ident(c)}" for c in self.pk)
        destination = self.vectorizer.config.destination
        if isinstance(destination, TableDestination):
            target = quote_qualified(destination.target_schema, destination.target_table)
            has_chunks = f"EXISTS (SELECT FROM {target} t WHERE {self._match('t', 'l')})"
        else:
            has_chunks = "false"
        # Duplicate queue rows of one key are grouped (not DISTINCT on the attempt count too,
        # which would let one key be processed twice in a batch).
        return f"""
        WITH selected_rows AS (
            SELECT {self.pk_cols}, {ATTEMPTS_COLUMN}
            FROM {self.queue}
            WHERE {RETRY_AFTER_COLUMN} IS NULL OR {RETRY_AFTER_COLUMN} <= now()
            LIMIT $1
            FOR UPDATE SKIP LOCKED
        ), locked_items AS (
            SELECT {self.pk_cols}, max({ATTEMPTS_COLUMN}) AS {ATTEMPTS_COLUMN},
                   pg_try_advisory_xact_lock($2::int4,
                       hashtext(concat_ws('|', {lock_key}))::int4) AS locked
            FROM selected_rows
            GROUP BY {self.pk_cols}
        ), deleted_rows AS (
            DELETE FROM {self.queue} q
            USING locked_items l
            WHERE l.locked AND {self._match("q", "l")}
        )
        SELECT {", ".join(f"l.{quote_ident(c)} AS {quote_ident('__pk_' + c)}" for c in self.pk)},
               l.{ATTEMPTS_COLUMN} AS "__attempts", {has_chunks} AS "__has_chunks", s.*
        FROM locked_items l
        LEFT JOIN LATERAL (
            SELECT * FROM {self.source} s WHERE {self._match("s", "l")} LIMIT 1
        ) s ON true
        WHERE l.locked
        ORDER BY {order}
        """

    async def claim(self, conn: DbConnection, batch_size: int) -> list[ClaimedRow]:
        """Claim up to ``batch_size`` keys; must run inside the batch's transaction."""
        records = await conn.fetch(self.claim_sql, batch_size, self.vectorizer.id)
        claimed = []
        for record in records:
            values = dict(record.items())
            pk = tuple(values.pop("__pk_" + c) for c in self.pk)
            attempts = int(values.pop("__attempts"))
            has_chunks = bool(values.pop("__has_chunks"))
            exists = values.get(self.pk[0]) is not None
            claimed.append(ClaimedRow(pk, attempts, values if exists else None, has_chunks))
        return claimed

    @cached_property
    def _pk_array_types(self) -> list[str]:
        by_name = {c.attname: c.typname for c in self.vectorizer.source_pk}
        return [by_name[c] for c in self.pk]

    def _keys_predicate(self, first_param: int) -> str:
        """``(pk1, pk2) IN (SELECT * FROM unnest($n::t1[], $n+1::t2[]))``: one parameter per key
        column, whatever the batch size."""
        arrays = ", ".join(f"${first_param + i}::{t}[]" for i, t in enumerate(self._pk_array_types))
        return f"({self.pk_cols}) IN (SELECT * FROM unnest({arrays}))"

    @staticmethod
    def _key_columns(pks: Sequence[tuple[Any, ...]]) -> list[list[Any]]:
        return [list(col) for col in zip(*pks, strict=True)] if pks else []

    @staticmethod
    def _backoff_sql(base_param: int, earlier_failures: str) -> str:
        """now() + base * 2^(earlier failures), capped at the next parameter: per row, in SQL."""
        return (
            f"now() + least(${base_param}::interval * power(2, {earlier_failures}), "
            f"${base_param + 1}::interval)"
        )

    async def requeue(
        self,
        conn: DbConnection,
        items: Sequence[tuple[tuple[Any, ...], int]],
        *,
        max_attempts: int,
        backoff: timedelta,
        max_backoff: timedelta,
        failure_step: str,
    ) -> tuple[int, int]:
        """Inside a batch: put back rows that failed on their own (the claim deleted their queue
        rows) with one more attempt, or into the failed queue once they reached ``max_attempts``.
        ``items`` are (key, failures so far). Returns (requeued, moved to the failed queue)."""
        retry = [(pk, attempts) for pk, attempts in items if attempts + 1 < max_attempts]
        failed = [pk for pk, attempts in items if attempts + 1 >= max_attempts]
        if self.failed_queue is None:
            retry, failed = [*retry, *((pk, max_attempts - 2) for pk in failed)], []
        if retry:
            keys = self._key_columns([pk for pk, _ in retry])
            n = len(keys)
            arrays = ", ".join(f"${i + 1}::{t}[]" for i, t in enumerate(self._pk_array_types))
            await conn.execute(
                f"""
                INSERT INTO {self.queue}
                    ({self.pk_cols}, {ATTEMPTS_COLUMN}, {RETRY_AFTER_COLUMN})
                SELECT t.*,
                       {self._backoff_sql(n + 2, f"t.{ATTEMPTS_COLUMN} - 1")}
                FROM unnest({arrays}, ${n + 1}::int4[]) AS t({self.pk_cols}, {ATTEMPTS_COLUMN})
                """,
                *keys,
                [attempts + 1 for _, attempts in retry],
                backoff,
                max_backoff,
            )
        if failed and self.failed_queue is not None:
            keys = self._key_columns(failed)
            n = len(keys)
            arrays = ", ".join(f"${i + 1}::{t}[]" for i, t in enumerate(self._pk_array_types))
            await conn.execute(
                f"""
                INSERT INTO {self.failed_queue} ({self.pk_cols}, failure_step)
                SELECT *, ${n + 1} FROM unnest({arrays})
                """,
                *keys,
                failure_step,
            )
        return (len(retry), len(failed))

    async def put_back(
        self, conn: DbConnection, items: Sequence[tuple[tuple[Any, ...], int]]
    ) -> None:
        """Inside a batch: return claimed rows to the queue as they were (same failure count,
        claimable at once), e.g. when the provider only asked us to slow down."""
        if not items:
            return
        keys = self._key_columns([pk for pk, _ in items])
        n = len(keys)
        arrays = ", ".join(f"${i + 1}::{t}[]" for i, t in enumerate(self._pk_array_types))
        await conn.execute(
            f"""
            INSERT INTO {self.queue} ({self.pk_cols}, {ATTEMPTS_COLUMN})
            SELECT * FROM unnest({arrays}, ${n + 1}::int4[])
            """,
            *keys,
            [attempts for _, attempts in items],
        )

    async def retry_failed(self, conn: DbConnection) -> int:
        """Move every row of the failed queue back into the queue with a fresh attempt count."""
        if self.failed_queue is None:
            return 0
        async with conn.transaction():
            rows = await conn.fetch(
                f"""
                WITH moved AS (DELETE FROM {self.failed_queue} RETURNING {self.pk_cols})
                INSERT INTO {self.queue} ({self.pk_cols})
                SELECT DISTINCT {self.pk_cols} FROM moved
                RETURNING 1
                """
            )
        return len(rows)

    async def claimable_count(self, conn: DbConnection) -> int:
        """Rows that a claim could take now (not held back by a retry delay)."""
        return int(
            await conn.fetchval(
                f"SELECT count(*) FROM {self.queue} "
                f"WHERE {RETRY_AFTER_COLUMN} IS NULL OR {RETRY_AFTER_COLUMN} <= now()"
            )
        )


async def failed_queue_count(
    conn: DbConnection, schema: str | None, table: str | None
) -> int | None:
    """Rows in a failed queue; None when there is none or the role may not read it."""
    if schema is None or table is None:
        return None
    qualified = quote_qualified(schema, table)
    # has_table_privilege on the oid is NULL (not an error) for a table that does not exist
    readable = await conn.fetchval(
        "SELECT has_table_privilege(to_regclass($1)::oid, 'select')", qualified
    )
    if not readable:
        return None
    return int(await conn.fetchval(f"SELECT count(*) FROM {qualified}"))


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
