"""The triggers create_vectorizer puts on the source table (catalog.md §4.3).

Table destination: inserts and relevant updates queue the key, a key change or a delete
removes the old chunks at once, truncate empties target and queue. Column destination: inserts
and relevant updates queue the key; deletes and truncates touch nothing. An update is relevant
when a column other than an embedding column of a column-destination vectorizer changed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from tests.pgserver import PgTestServer
from tests.sql_helpers import (
    VECTOR_LITERAL,
    count,
    create_blog,
    create_vectorizer,
    failed_queue_table,
    queue_table,
    queued_keys,
    rolled_back_connection,
    shared_database,
    temporary_roles,
)


@pytest.fixture(scope="module")
def module_db_url(pg_server: PgTestServer, catalog_template: str) -> Iterator[str]:
    yield from shared_database(pg_server, catalog_template)


@pytest.fixture
async def conn(module_db_url: str) -> AsyncIterator[asyncpg.Connection]:
    """This module's connection: its test runs in a transaction that is rolled back."""
    async with rolled_back_connection(module_db_url) as connection:
        yield connection


DESTINATIONS: dict[str, dict[str, str | None]] = {
    "table": {},
    "column": {
        "destination": "ai.destination_column('embedding')",
        "chunking": "ai.chunking_none()",
    },
}


async def blog_vectorizer(conn: asyncpg.Connection, destination: str) -> int:
    """``blog`` holding rows 1 and 2, a vectorizer on it, and an empty queue."""
    await create_blog(conn)
    await conn.execute("INSERT INTO blog VALUES (1, 'one', 'first'), (2, 'two', 'second')")
    return await create_vectorizer(
        conn, "blog", enqueue_existing="false", **DESTINATIONS[destination]
    )


@pytest.fixture(params=list(DESTINATIONS))
async def any_destination(conn: asyncpg.Connection, request: pytest.FixtureRequest) -> int:
    return await blog_vectorizer(conn, request.param)


@pytest.fixture
async def table_destination(conn: asyncpg.Connection) -> int:
    return await blog_vectorizer(conn, "table")


@pytest.fixture
async def column_destination(conn: asyncpg.Connection) -> int:
    return await blog_vectorizer(conn, "column")


async def add_chunk(conn: asyncpg.Connection, key: int, seq: int = 0) -> None:
    """A chunk of source row ``key`` in blog's target table, as a worker would write it."""
    await conn.execute(
        "INSERT INTO blog_embedding_store (id, chunk_seq, chunk, embedding) "
        f"VALUES ($1, $2, 'chunk', {VECTOR_LITERAL})",
        key,
        seq,
    )


async def chunk_keys(conn: asyncpg.Connection) -> list[int]:
    rows = await conn.fetch("SELECT id FROM blog_embedding_store ORDER BY id, chunk_seq")
    return [r[0] for r in rows]


# ------------------------------------------------------------------------------------------
# Both destinations


async def test_insert_enqueues_the_new_key(conn: asyncpg.Connection, any_destination: int) -> None:
    await conn.execute("INSERT INTO blog VALUES (3, 'three', 'third')")
    assert await queued_keys(conn, any_destination) == [3]


async def test_update_of_the_loaded_column_enqueues_the_key(
    conn: asyncpg.Connection, any_destination: int
) -> None:
    await conn.execute("UPDATE blog SET body = 'uno' WHERE id = 1")
    assert await queued_keys(conn, any_destination) == [1]


async def test_update_of_a_column_the_vectorizer_does_not_read_enqueues_nothing(
    conn: asyncpg.Connection, any_destination: int
) -> None:
    # pgai re-embeds on any column change (its issue #878); we watch only what is read
    await conn.execute("ALTER TABLE blog ADD COLUMN views int")
    await conn.execute("UPDATE blog SET views = 10, title = 'new title' WHERE id = 2")
    assert await queued_keys(conn, any_destination) == []


async def test_update_of_a_column_the_template_names_enqueues_the_key(
    conn: asyncpg.Connection,
) -> None:
    await create_blog(conn)
    await conn.execute("INSERT INTO blog VALUES (1, 'one', 'first')")
    vectorizer_id = await create_vectorizer(
        conn,
        "blog",
        enqueue_existing="false",
        formatting="ai.formatting_python_template('${title}: $chunk')",
    )
    await conn.execute("UPDATE blog SET title = 'uno' WHERE id = 1")
    assert await queued_keys(conn, vectorizer_id) == [1]


async def test_update_setting_a_column_to_its_own_value_enqueues_nothing(
    conn: asyncpg.Connection, any_destination: int
) -> None:
    await conn.execute("UPDATE blog SET body = body")
    assert await queued_keys(conn, any_destination) == []


async def test_every_relevant_update_enqueues_again(
    conn: asyncpg.Connection, any_destination: int
) -> None:
    await conn.execute("UPDATE blog SET body = 'uno' WHERE id = 1")
    await conn.execute("UPDATE blog SET body = 'eins' WHERE id = 1")
    assert await queued_keys(conn, any_destination) == [1, 1]


async def test_trigger_enqueues_for_a_writer_without_rights_on_the_queue(
    conn: asyncpg.Connection, any_destination: int
) -> None:
    # the trigger function is security definer: writers of the source need no queue rights
    async with temporary_roles(conn) as make_role:
        writer = await make_role()
        await conn.execute(f"GRANT INSERT ON blog TO {writer}")
        await conn.execute(f"SET ROLE {writer}")
        await conn.execute("INSERT INTO blog VALUES (3, 'three', 'third')")
        await conn.execute("RESET ROLE")
    assert await queued_keys(conn, any_destination) == [3]


# ------------------------------------------------------------------------------------------
# Table destination


async def test_key_change_deletes_the_old_chunks_at_once(
    conn: asyncpg.Connection, table_destination: int
) -> None:
    await add_chunk(conn, 1, 0)
    await add_chunk(conn, 1, 1)
    await add_chunk(conn, 2, 0)
    await conn.execute("UPDATE blog SET id = 3 WHERE id = 1")
    assert await chunk_keys(conn) == [2]


async def test_key_change_enqueues_the_new_key(
    conn: asyncpg.Connection, table_destination: int
) -> None:
    await conn.execute("UPDATE blog SET id = 3 WHERE id = 1")
    assert await queued_keys(conn, table_destination) == [3]


async def test_key_change_leaves_the_old_key_queued(
    conn: asyncpg.Connection, table_destination: int
) -> None:
    await conn.execute("UPDATE blog SET body = 'uno' WHERE id = 1")
    await conn.execute("UPDATE blog SET id = 3 WHERE id = 1")
    assert await queued_keys(conn, table_destination) == [1, 3]


async def test_change_of_one_column_of_a_composite_key_deletes_the_old_chunks(
    conn: asyncpg.Connection,
) -> None:
    await conn.execute(
        "CREATE TABLE doc (lang text, num int, body text, PRIMARY KEY (lang, num));"
        "INSERT INTO doc VALUES ('en', 1, 'a'), ('en', 2, 'b')"
    )
    vectorizer_id = await create_vectorizer(conn, "doc", enqueue_existing="false")
    await conn.execute(
        "INSERT INTO doc_embedding_store (lang, num, chunk_seq, chunk, embedding) "
        f"VALUES ('en', 1, 0, 'a', {VECTOR_LITERAL}), ('en', 2, 0, 'b', {VECTOR_LITERAL})"
    )
    await conn.execute("UPDATE doc SET lang = 'de' WHERE num = 1")
    chunks = await conn.fetch("SELECT lang, num FROM doc_embedding_store")
    assert [tuple(r) for r in chunks] == [("en", 2)]
    queued = await conn.fetch(f"SELECT lang, num FROM {await queue_table(conn, vectorizer_id)}")
    assert [tuple(r) for r in queued] == [("de", 1)]


async def test_delete_removes_the_chunks_of_the_row(
    conn: asyncpg.Connection, table_destination: int
) -> None:
    await add_chunk(conn, 1)
    await add_chunk(conn, 2)
    await conn.execute("DELETE FROM blog WHERE id = 1")
    assert await chunk_keys(conn) == [2]


async def test_delete_enqueues_nothing(conn: asyncpg.Connection, table_destination: int) -> None:
    await conn.execute("DELETE FROM blog WHERE id = 1")
    assert await queued_keys(conn, table_destination) == []


async def test_truncate_empties_the_target_table_and_the_queue(
    conn: asyncpg.Connection, table_destination: int
) -> None:
    await add_chunk(conn, 1)
    await conn.execute("UPDATE blog SET title = 'uno'")
    await conn.execute("TRUNCATE blog")
    assert await chunk_keys(conn) == []
    assert await queued_keys(conn, table_destination) == []


async def test_truncate_keeps_the_failed_queue(
    conn: asyncpg.Connection, table_destination: int
) -> None:
    failed = await failed_queue_table(conn, table_destination)
    await conn.execute(f"INSERT INTO {failed} (id, failure_step) VALUES (1, 'loading')")
    await conn.execute("TRUNCATE blog")
    assert await count(conn, failed) == 1


async def test_update_of_another_vectorizers_embedding_column_enqueues_nothing(
    conn: asyncpg.Connection, table_destination: int
) -> None:
    # a column-destination vectorizer on the same table: its worker's writes are not changes
    column_vectorizer = await create_vectorizer(
        conn,
        "blog",
        enqueue_existing="false",
        **DESTINATIONS["column"],
    )
    await conn.execute(f"UPDATE blog SET embedding = {VECTOR_LITERAL} WHERE id = 1")
    assert await queued_keys(conn, table_destination) == []
    assert await queued_keys(conn, column_vectorizer) == []


# ------------------------------------------------------------------------------------------
# Column destination


async def test_update_of_only_the_embedding_column_enqueues_nothing(
    conn: asyncpg.Connection, column_destination: int
) -> None:
    await conn.execute(f"UPDATE blog SET embedding = {VECTOR_LITERAL} WHERE id = 1")
    assert await queued_keys(conn, column_destination) == []


async def test_update_of_the_embedding_column_and_another_column_enqueues_the_key(
    conn: asyncpg.Connection, column_destination: int
) -> None:
    await conn.execute(f"UPDATE blog SET embedding = {VECTOR_LITERAL}, body = 'x' WHERE id = 1")
    assert await queued_keys(conn, column_destination) == [1]


async def test_key_change_of_a_column_destination_enqueues_the_new_key(
    conn: asyncpg.Connection, column_destination: int
) -> None:
    await conn.execute("UPDATE blog SET id = 3 WHERE id = 1")
    assert await queued_keys(conn, column_destination) == [3]


async def test_delete_with_a_column_destination_leaves_the_queue_alone(
    conn: asyncpg.Connection, column_destination: int
) -> None:
    await conn.execute("UPDATE blog SET body = 'uno' WHERE id = 1")
    await conn.execute("DELETE FROM blog WHERE id = 1")
    assert await queued_keys(conn, column_destination) == [1]


async def test_truncate_with_a_column_destination_leaves_the_queue_alone(
    conn: asyncpg.Connection, column_destination: int
) -> None:
    await conn.execute("UPDATE blog SET body = 'uno' WHERE id = 1")
    await conn.execute("TRUNCATE blog")
    assert await queued_keys(conn, column_destination) == [1]
