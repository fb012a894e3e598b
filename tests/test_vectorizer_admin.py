"""Administering vectorizers from SQL (catalog.md §2.2-§2.4, §4.4): dropping them, pending
counts, the status and errors views, enabling and disabling, scheduling, the functions that
need the ai extension, grant_vectorizer_usage and the worker-tracking functions."""

from __future__ import annotations

import datetime
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest
from asyncpg import exceptions as pgerr

from tests.pgserver import PgTestServer
from tests.sql_helpers import (
    columns,
    count,
    create_blog,
    create_vectorizer,
    failed_queue_table,
    function_exists,
    queue_table,
    relation_exists,
    rolled_back_connection,
    shared_database,
    snapshot,
    temporary_roles,
    trigger_names,
    vectorizer_row,
)

MAX_INT8 = 9223372036854775807


@pytest.fixture(scope="module")
def module_db_url(pg_server: PgTestServer, catalog_template: str) -> Iterator[str]:
    yield from shared_database(pg_server, catalog_template)


@pytest.fixture
async def conn(module_db_url: str) -> AsyncIterator[asyncpg.Connection]:
    """This module's connection: its test runs in a transaction that is rolled back."""
    async with rolled_back_connection(module_db_url) as connection:
        yield connection


@pytest.fixture
async def make_role(conn: asyncpg.Connection) -> AsyncIterator[Any]:
    async with temporary_roles(conn) as make:
        yield make


@pytest.fixture
async def blog(conn: asyncpg.Connection) -> int:
    """A table-destination vectorizer named ``blog_search`` on ``blog`` (empty queue)."""
    await create_blog(conn)
    return await create_vectorizer(conn, "blog", name="'blog_search'")


@pytest.fixture
async def blog_column(conn: asyncpg.Connection) -> int:
    """A column-destination vectorizer on ``blog``, writing into ``blog.emb``."""
    await create_blog(conn)
    return await create_vectorizer(
        conn, "blog", destination="ai.destination_column('emb')", chunking="ai.chunking_none()"
    )


async def raises(
    conn: asyncpg.Connection, sql: str, error: type[asyncpg.PostgresError], *args: Any
) -> asyncpg.PostgresError:
    """Run ``sql`` in a savepoint and return the ``error`` it raised."""
    with pytest.raises(error) as info:
        async with conn.transaction():
            await conn.execute(sql, *args)
    return info.value


async def enqueue(conn: asyncpg.Connection, vectorizer_id: int, rows: int) -> None:
    """``rows`` queue rows for ``vectorizer_id`` (keys 1..rows), as the trigger writes them."""
    queue = await queue_table(conn, vectorizer_id)
    await conn.execute(f"INSERT INTO {queue} (id) SELECT g FROM generate_series(1, $1) g", rows)


# ------------------------------------------------------------------------------------------
# drop_vectorizer


async def test_drop_by_id_removes_both_triggers(conn: asyncpg.Connection, blog: int) -> None:
    await conn.execute("SELECT ai.drop_vectorizer($1::int4)", blog)
    assert await trigger_names(conn, "blog") == []


async def test_drop_by_id_removes_the_trigger_function(conn: asyncpg.Connection, blog: int) -> None:
    await conn.execute("SELECT ai.drop_vectorizer($1::int4)", blog)
    assert not await function_exists(conn, f"ai._vectorizer_src_trg_{blog}()")


async def test_drop_by_id_removes_queue_and_failed_queue(
    conn: asyncpg.Connection, blog: int
) -> None:
    queue, failed = await queue_table(conn, blog), await failed_queue_table(conn, blog)
    await conn.execute("SELECT ai.drop_vectorizer($1::int4)", blog)
    assert not await relation_exists(conn, queue)
    assert not await relation_exists(conn, failed)


async def test_drop_by_id_removes_the_vectorizer_row(conn: asyncpg.Connection, blog: int) -> None:
    await conn.execute("SELECT ai.drop_vectorizer($1::int4)", blog)
    assert await count(conn, "ai.vectorizer") == 0


async def test_drop_keeps_target_table_and_view(conn: asyncpg.Connection, blog: int) -> None:
    await conn.execute("SELECT ai.drop_vectorizer($1::int4)", blog)
    assert await relation_exists(conn, "blog_embedding_store")
    assert await relation_exists(conn, "blog_embedding")


async def test_drop_all_also_drops_target_table_and_view(
    conn: asyncpg.Connection, blog: int
) -> None:
    await conn.execute("SELECT ai.drop_vectorizer($1::int4, drop_all => true)", blog)
    assert not await relation_exists(conn, "blog_embedding_store")
    assert not await relation_exists(conn, "blog_embedding")


async def test_source_accepts_writes_after_drop(conn: asyncpg.Connection, blog: int) -> None:
    await conn.execute("SELECT ai.drop_vectorizer($1::int4, drop_all => true)", blog)
    await conn.execute(
        "INSERT INTO blog VALUES (1, 't', 'b'); UPDATE blog SET id = 2; TRUNCATE blog"
    )


async def test_drop_by_name_removes_triggers_function_queues_and_row(
    conn: asyncpg.Connection, blog: int
) -> None:
    queue, failed = await queue_table(conn, blog), await failed_queue_table(conn, blog)
    await conn.execute("SELECT ai.drop_vectorizer('blog_search')")
    assert await trigger_names(conn, "blog") == []
    assert not await function_exists(conn, f"ai._vectorizer_src_trg_{blog}()")
    assert not await relation_exists(conn, queue)
    assert not await relation_exists(conn, failed)
    assert await count(conn, "ai.vectorizer") == 0
    assert await relation_exists(conn, "blog_embedding_store")


async def test_drop_by_name_with_drop_all_drops_target_table_and_view(
    conn: asyncpg.Connection, blog: int
) -> None:
    await conn.execute("SELECT ai.drop_vectorizer('blog_search', drop_all => true)")
    assert not await relation_exists(conn, "blog_embedding_store")
    assert not await relation_exists(conn, "blog_embedding")


@pytest.mark.parametrize("drop_all", [False, True])
async def test_drop_never_drops_the_embedding_column_of_a_column_destination(
    conn: asyncpg.Connection, blog_column: int, drop_all: bool
) -> None:
    await conn.execute("SELECT ai.drop_vectorizer($1::int4, drop_all => $2)", blog_column, drop_all)
    assert ("emb", "vector(4)", False) in await columns(conn, "blog")
    assert await trigger_names(conn, "blog") == []


async def test_drop_of_an_unknown_id_raises(conn: asyncpg.Connection, blog: int) -> None:
    # pgai reads the row with SELECT ... INTO STRICT: no_data_found
    error = await raises(conn, "SELECT ai.drop_vectorizer(424242)", pgerr.NoDataFoundError)
    assert "424242" in error.message


async def test_drop_of_an_unknown_name_does_nothing(conn: asyncpg.Connection, blog: int) -> None:
    before = await snapshot(conn)
    await conn.execute("SELECT ai.drop_vectorizer('no_such_vectorizer', drop_all => true)")
    assert await snapshot(conn) == before


async def test_drop_deletes_the_error_rows_of_the_vectorizer(
    conn: asyncpg.Connection, blog: int
) -> None:
    await conn.execute("INSERT INTO ai._vectorizer_errors (id, message) VALUES ($1, 'boom')", blog)
    await conn.execute("SELECT ai.drop_vectorizer($1::int4)", blog)
    assert await count(conn, "ai._vectorizer_errors") == 0


async def test_drop_deletes_the_progress_row_of_the_vectorizer(
    conn: asyncpg.Connection, blog: int
) -> None:
    worker = await conn.fetchval("SELECT ai._worker_start('1.0', interval '1 minute')")
    await conn.execute("SELECT ai._worker_progress($1, $2, 5, NULL)", worker, blog)
    await conn.execute("SELECT ai.drop_vectorizer($1::int4)", blog)
    assert await count(conn, "ai.vectorizer_worker_progress") == 0


# ------------------------------------------------------------------------------------------
# vectorizer_queue_pending


async def test_exact_pending_counts_every_queue_row_duplicates_included(
    conn: asyncpg.Connection, blog: int
) -> None:
    await enqueue(conn, blog, 3)
    await enqueue(conn, blog, 1)
    assert await conn.fetchval("SELECT ai.vectorizer_queue_pending($1::int4, true)", blog) == 4


async def test_pending_leaves_out_the_failed_queue(conn: asyncpg.Connection, blog: int) -> None:
    await enqueue(conn, blog, 2)
    await conn.execute(f"INSERT INTO {await failed_queue_table(conn, blog)} (id) VALUES (9)")
    assert await conn.fetchval("SELECT ai.vectorizer_queue_pending($1::int4, true)", blog) == 2


async def test_approximate_pending_counts_up_to_10000_rows(
    conn: asyncpg.Connection, blog: int
) -> None:
    await enqueue(conn, blog, 10000)
    assert await conn.fetchval("SELECT ai.vectorizer_queue_pending($1::int4)", blog) == 10000


async def test_approximate_pending_is_max_int8_above_10000_rows(
    conn: asyncpg.Connection, blog: int
) -> None:
    await enqueue(conn, blog, 10001)
    assert await conn.fetchval("SELECT ai.vectorizer_queue_pending($1::int4)", blog) == MAX_INT8


async def test_exact_pending_counts_above_10000_rows(conn: asyncpg.Connection, blog: int) -> None:
    await enqueue(conn, blog, 10001)
    assert await conn.fetchval("SELECT ai.vectorizer_queue_pending($1::int4, true)", blog) == 10001


async def test_pending_by_name(conn: asyncpg.Connection, blog: int) -> None:
    await enqueue(conn, blog, 2)
    assert await conn.fetchval("SELECT ai.vectorizer_queue_pending('blog_search')") == 2
    assert await conn.fetchval("SELECT ai.vectorizer_queue_pending('blog_search', true)") == 2


async def test_pending_of_an_unknown_id_raises(conn: asyncpg.Connection, blog: int) -> None:
    error = await raises(
        conn, "SELECT ai.vectorizer_queue_pending(424242)", pgerr.UndefinedObjectError
    )
    assert "424242" in error.message


async def test_pending_of_an_unknown_name_raises(conn: asyncpg.Connection, blog: int) -> None:
    error = await raises(
        conn, "SELECT ai.vectorizer_queue_pending('no_such_vectorizer')", pgerr.UndefinedObjectError
    )
    assert "no_such_vectorizer" in error.message


# ------------------------------------------------------------------------------------------
# vectorizer_status


async def status(conn: asyncpg.Connection, vectorizer_id: int) -> dict[str, Any]:
    row = await conn.fetchrow("SELECT * FROM ai.vectorizer_status WHERE id = $1", vectorizer_id)
    assert row is not None
    return dict(row)


async def test_status_columns(conn: asyncpg.Connection) -> None:
    assert [name for name, _, _ in await columns(conn, "ai.vectorizer_status")] == [
        "id",
        "name",
        "source_table",
        "target_table",
        "view",
        "embedding_column",
        "pending_items",
        "disabled",
    ]


async def test_status_of_a_table_destination(conn: asyncpg.Connection, blog: int) -> None:
    await enqueue(conn, blog, 2)
    assert await status(conn, blog) == {
        "id": blog,
        "name": "blog_search",
        "source_table": "public.blog",
        "target_table": "public.blog_embedding_store",
        "view": "public.blog_embedding",
        "embedding_column": "embedding",
        "pending_items": 2,
        "disabled": False,
    }


async def test_status_of_a_column_destination(conn: asyncpg.Connection, blog_column: int) -> None:
    assert await status(conn, blog_column) == {
        "id": blog_column,
        "name": "public_blog_emb",
        "source_table": "public.blog",
        "target_table": None,
        "view": None,
        "embedding_column": "emb",
        "pending_items": 0,
        "disabled": False,
    }


async def test_status_quotes_names_that_need_it(conn: asyncpg.Connection) -> None:
    await conn.execute('CREATE SCHEMA "my schema"')
    await conn.execute('CREATE TABLE "my schema"."Blog" (id int PRIMARY KEY, body text)')
    vectorizer_id = await create_vectorizer(conn, '"my schema"."Blog"')
    row = await status(conn, vectorizer_id)
    assert (row["source_table"], row["target_table"], row["view"]) == (
        '"my schema"."Blog"',
        '"my schema"."Blog_embedding_store"',
        '"my schema"."Blog_embedding"',
    )


async def test_status_pending_items_is_approximate(conn: asyncpg.Connection, blog: int) -> None:
    await enqueue(conn, blog, 10001)
    assert (await status(conn, blog))["pending_items"] == MAX_INT8


async def test_status_pending_items_is_null_for_a_role_that_cannot_read_the_queue(
    conn: asyncpg.Connection, blog: int, make_role: Any
) -> None:
    await enqueue(conn, blog, 2)
    reader = await make_role()
    await conn.execute(f"GRANT USAGE ON SCHEMA ai TO {reader}")
    await conn.execute(f"GRANT SELECT ON ai.vectorizer_status TO {reader}")
    await conn.execute(f"SET ROLE {reader}")
    row = await status(conn, blog)
    assert (row["name"], row["pending_items"]) == ("blog_search", None)


# ------------------------------------------------------------------------------------------
# disable / enable


async def disabled(conn: asyncpg.Connection, vectorizer_id: int) -> bool:
    return await conn.fetchval("SELECT disabled FROM ai.vectorizer WHERE id = $1", vectorizer_id)


@pytest.mark.parametrize("target", ["$1::int4", "'blog_search'"], ids=["by_id", "by_name"])
async def test_disable_vectorizer_schedule_sets_disabled(
    conn: asyncpg.Connection, blog: int, target: str
) -> None:
    await conn.execute(
        f"SELECT ai.disable_vectorizer_schedule({target})", *([blog] if "$1" in target else [])
    )
    assert await disabled(conn, blog) is True


@pytest.mark.parametrize("target", ["$1::int4", "'blog_search'"], ids=["by_id", "by_name"])
async def test_enable_vectorizer_schedule_clears_disabled(
    conn: asyncpg.Connection, blog: int, target: str
) -> None:
    await conn.execute("UPDATE ai.vectorizer SET disabled = true")
    await conn.execute(
        f"SELECT ai.enable_vectorizer_schedule({target})", *([blog] if "$1" in target else [])
    )
    assert await disabled(conn, blog) is False


async def test_disabled_shows_in_the_status(conn: asyncpg.Connection, blog: int) -> None:
    await conn.execute("SELECT ai.disable_vectorizer_schedule('blog_search')")
    assert (await status(conn, blog))["disabled"] is True


# ------------------------------------------------------------------------------------------
# vectorizer_errors


async def test_errors_view_shows_error_rows_with_the_vectorizer_name(
    conn: asyncpg.Connection, blog: int
) -> None:
    await conn.execute(
        "INSERT INTO ai._vectorizer_errors (id, message, details) "
        """VALUES ($1, 'embedding provider failed', '{"provider": "openai"}')""",
        blog,
    )
    rows = await conn.fetch("SELECT id, message, details::text, name FROM ai.vectorizer_errors")
    assert [tuple(r) for r in rows] == [
        (blog, "embedding provider failed", '{"provider": "openai"}', "blog_search")
    ]


async def test_errors_view_has_the_table_columns_then_name(conn: asyncpg.Connection) -> None:
    assert [name for name, _, _ in await columns(conn, "ai.vectorizer_errors")] == [
        "id",
        "message",
        "details",
        "recorded",
        "name",
    ]


# ------------------------------------------------------------------------------------------
# set_scheduling


async def scheduled_on_cloud(conn: asyncpg.Connection, vectorizer_id: int) -> None:
    """Make the stored config look like one created with timescaledb scheduling and hnsw
    indexing (which this database, without timescaledb, cannot create)."""
    await conn.execute(
        """
        UPDATE ai.vectorizer SET config = config || jsonb_build_object
        ('scheduling', '{"implementation": "timescaledb", "config_type": "scheduling",
                         "schedule_interval": "00:05:00"}'::jsonb,
         'indexing', ai.indexing_hnsw())
        WHERE id = $1
        """,
        vectorizer_id,
    )


SET_NONE = "SELECT ai.set_scheduling($1, ai.scheduling_none(), ai.indexing_none())"


async def test_set_scheduling_returns_the_config_with_new_scheduling_and_indexing(
    conn: asyncpg.Connection, blog: int
) -> None:
    original = (await vectorizer_row(conn, blog))["config"]
    await scheduled_on_cloud(conn, blog)
    returned = await conn.fetchval(SET_NONE, blog)
    assert json.loads(returned) == {
        **original,
        "scheduling": {"implementation": "none", "config_type": "scheduling"},
        "indexing": {"implementation": "none", "config_type": "indexing"},
    }


async def test_set_scheduling_stores_the_config_it_returns(
    conn: asyncpg.Connection, blog: int
) -> None:
    await scheduled_on_cloud(conn, blog)
    returned = await conn.fetchval(SET_NONE, blog)
    stored = await conn.fetchval("SELECT config::text FROM ai.vectorizer WHERE id = $1", blog)
    assert returned == stored


async def test_set_scheduling_refuses_indexing_without_scheduling(
    conn: asyncpg.Connection, blog: int
) -> None:
    error = await raises(
        conn,
        "SELECT ai.set_scheduling($1, ai.scheduling_none(), ai.indexing_hnsw())",
        pgerr.InvalidParameterValueError,
        blog,
    )
    assert "indexing" in error.message
    assert "indexing_none" in (error.hint or "")


# ------------------------------------------------------------------------------------------
# Functions that need the ai extension (Timescale Cloud)


@pytest.mark.parametrize(
    "call",
    [
        "ai.execute_vectorizer('blog_search')",
        "ai.vectorizer_embed(ai.embedding_openai('text-embedding-3-small', 4), 'hello')",
        "ai.vectorizer_embed($1::int4, 'hello')",
        "ai.vectorizer_embed('blog_search', 'hello')",
    ],
    ids=["execute_vectorizer", "embed_by_config", "embed_by_id", "embed_by_name"],
)
async def test_needs_the_ai_extension(conn: asyncpg.Connection, blog: int, call: str) -> None:
    args = [blog] if "$1" in call else []
    error = await raises(conn, f"SELECT {call}", pgerr.FeatureNotSupportedError, *args)
    assert "needs the ai extension" in error.message
    assert "worker" in (error.hint or "")


# ------------------------------------------------------------------------------------------
# grant_vectorizer_usage


@pytest.fixture
async def user(conn: asyncpg.Connection, make_role: Any) -> str:
    """A role given ai.grant_vectorizer_usage and a schema of its own."""
    role = await make_role()
    await conn.execute(f"SELECT ai.grant_vectorizer_usage('{role}')")
    await conn.execute(f"CREATE SCHEMA app AUTHORIZATION {role}")
    return role


async def test_grant_vectorizer_usage_lets_the_role_read_the_status(
    conn: asyncpg.Connection, blog: int, user: str
) -> None:
    await conn.execute(f"SET ROLE {user}")
    rows = await conn.fetch("SELECT name FROM ai.vectorizer_status")
    assert [r[0] for r in rows] == ["blog_search"]


async def test_grant_vectorizer_usage_lets_the_role_vectorize_its_own_table(
    conn: asyncpg.Connection, user: str
) -> None:
    await conn.execute(f"SET ROLE {user}")
    await create_blog(conn, "app.blog")
    vectorizer_id = await create_vectorizer(conn, "app.blog")
    await conn.execute("INSERT INTO app.blog VALUES (1, 't', 'b')")
    assert await conn.fetchval("SELECT ai.vectorizer_queue_pending($1::int4)", vectorizer_id) == 1


# ------------------------------------------------------------------------------------------
# Worker tracking


async def process_row(conn: asyncpg.Connection, worker: Any) -> dict[str, Any]:
    row = await conn.fetchrow("SELECT * FROM ai.vectorizer_worker_process WHERE id = $1", worker)
    assert row is not None
    return dict(row)


async def progress_row(conn: asyncpg.Connection, vectorizer_id: int) -> dict[str, Any]:
    row = await conn.fetchrow(
        "SELECT * FROM ai.vectorizer_worker_progress WHERE vectorizer_id = $1", vectorizer_id
    )
    assert row is not None
    return dict(row)


@pytest.fixture
async def worker(conn: asyncpg.Connection) -> Any:
    """The id of a worker process that announced itself."""
    return await conn.fetchval("SELECT ai._worker_start('9.9.9', interval '30 seconds')")


async def test_worker_start_records_the_process_and_returns_its_id(
    conn: asyncpg.Connection, worker: Any
) -> None:
    row = await process_row(conn, worker)
    now = await conn.fetchval("SELECT now()")
    assert row == {
        "id": worker,
        "version": "9.9.9",
        "started": now,
        "expected_heartbeat_interval": datetime.timedelta(seconds=30),
        "last_heartbeat": now,
        "heartbeat_count": 0,
        "error_count": 0,
        "success_count": 0,
        "last_error_at": None,
        "last_error_message": None,
    }


async def test_heartbeat_counts_and_adds_successes_and_errors(
    conn: asyncpg.Connection, worker: Any
) -> None:
    await conn.execute("SELECT ai._worker_heartbeat($1, 3, 1, NULL)", worker)
    await conn.execute("SELECT ai._worker_heartbeat($1, 2, 0, NULL)", worker)
    row = await process_row(conn, worker)
    assert (row["heartbeat_count"], row["success_count"], row["error_count"]) == (2, 5, 1)


async def test_heartbeat_moves_last_heartbeat_to_the_clock(
    conn: asyncpg.Connection, worker: Any
) -> None:
    await conn.execute("SELECT ai._worker_heartbeat($1, 0, 0, NULL)", worker)
    row = await process_row(conn, worker)
    assert row["last_heartbeat"] > row["started"]


async def test_heartbeat_with_an_error_message_records_it(
    conn: asyncpg.Connection, worker: Any
) -> None:
    await conn.execute("SELECT ai._worker_heartbeat($1, 0, 1, 'boom')", worker)
    row = await process_row(conn, worker)
    assert row["last_error_message"] == "boom"
    assert row["last_error_at"] is not None


async def test_heartbeat_without_an_error_message_keeps_the_last_error(
    conn: asyncpg.Connection, worker: Any
) -> None:
    await conn.execute("SELECT ai._worker_heartbeat($1, 0, 1, 'boom')", worker)
    first = await process_row(conn, worker)
    await conn.execute("SELECT ai._worker_heartbeat($1, 1, 0, NULL)", worker)
    row = await process_row(conn, worker)
    assert (row["last_error_message"], row["last_error_at"]) == ("boom", first["last_error_at"])


async def test_progress_of_a_success_records_count_time_and_process(
    conn: asyncpg.Connection, worker: Any, blog: int
) -> None:
    await conn.execute("SELECT ai._worker_progress($1, $2, 5, NULL)", worker, blog)
    row = await progress_row(conn, blog)
    assert row["success_count"] == 5
    assert row["last_success_process_id"] == worker
    assert row["last_success_at"] is not None
    assert (row["error_count"], row["last_error_at"], row["last_error_message"]) == (0, None, None)


async def test_progress_of_an_error_records_message_time_process_and_counts_it(
    conn: asyncpg.Connection, worker: Any, blog: int
) -> None:
    await conn.execute("SELECT ai._worker_progress($1, $2, 2, 'boom')", worker, blog)
    row = await progress_row(conn, blog)
    assert (row["error_count"], row["success_count"]) == (1, 2)
    assert (row["last_error_message"], row["last_error_process_id"]) == ("boom", worker)
    assert row["last_error_at"] is not None
    assert (row["last_success_at"], row["last_success_process_id"]) == (None, None)


async def test_progress_accumulates_over_calls(
    conn: asyncpg.Connection, worker: Any, blog: int
) -> None:
    await conn.execute("SELECT ai._worker_progress($1, $2, 5, NULL)", worker, blog)
    await conn.execute("SELECT ai._worker_progress($1, $2, 1, 'boom')", worker, blog)
    await conn.execute("SELECT ai._worker_progress($1, $2, 3, NULL)", worker, blog)
    row = await progress_row(conn, blog)
    assert (row["success_count"], row["error_count"]) == (9, 1)
