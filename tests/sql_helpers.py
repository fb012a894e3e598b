"""Helpers shared by the integration tests of the vectorizer SQL API.

They build ``ai.create_vectorizer`` calls, read back what the database holds (columns,
constraints, privileges, queue rows) and take snapshots that show whether a failed call left
anything behind.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import asyncpg

from tests.pgserver import PgTestServer


def shared_database(pg_server: PgTestServer, catalog_template: str) -> Iterator[str]:
    """A database with the catalog, shared by the tests of one module (each runs in a
    transaction that is rolled back: see ``rolled_back_connection``)."""
    name = pg_server.create_database("sqlapi", template=catalog_template)
    try:
        yield pg_server.url(name)
    finally:
        pg_server.drop_database(name)


@asynccontextmanager
async def rolled_back_connection(url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection inside a transaction that is rolled back afterwards, so that a test sees
    the catalog as installed and leaves nothing behind (roles included) without paying for a
    database of its own. Sequences are not transactional: ids keep growing across tests."""
    connection = await asyncpg.connect(url)
    transaction = connection.transaction()
    await transaction.start()
    try:
        yield connection
    finally:
        await transaction.rollback()
        await connection.close()


EMBEDDING = "ai.embedding_openai('text-embedding-3-small', 4)"
LOADING = "ai.loading_column('body')"

# A zero vector of the default size, for chunks written into a target table by hand.
VECTOR_LITERAL = "'[0,0,0,0]'"


def literal(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def ident(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def create_vectorizer_sql(source: str, **args: str | None) -> str:
    """``SELECT ai.create_vectorizer(<source>, arg => <sql expression>, ...)``.

    ``source`` is the text cast to regclass (quote it as SQL would: ``'"My Schema"."T"'``).
    ``loading`` and ``embedding`` default to a text column ``body`` and a 4-dimension OpenAI
    model; pass ``None`` to leave an argument out.
    """
    merged: dict[str, str | None] = {"loading": LOADING, "embedding": EMBEDDING, **args}
    rendered = "".join(f", {key} => {value}" for key, value in merged.items() if value is not None)
    return f"SELECT ai.create_vectorizer({literal(source)}::regclass{rendered})"


async def create_vectorizer(conn: asyncpg.Connection, source: str, **args: str | None) -> int:
    """Create a vectorizer and return its id."""
    vectorizer_id = await conn.fetchval(create_vectorizer_sql(source, **args))
    assert isinstance(vectorizer_id, int)
    return vectorizer_id


async def create_blog(conn: asyncpg.Connection, table: str = "blog") -> None:
    """The usual source: ``<table> (id int primary key, title text, body text)``."""
    await conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, title text, body text)")


async def vectorizer_row(conn: asyncpg.Connection, vectorizer_id: int) -> dict[str, Any]:
    """The ``ai.vectorizer`` row, as the worker reads it (``to_jsonb``)."""
    row = await conn.fetchval(
        "SELECT to_jsonb(v) FROM ai.vectorizer v WHERE id = $1", vectorizer_id
    )
    assert row is not None, f"no ai.vectorizer row with id {vectorizer_id}"
    result: dict[str, Any] = json.loads(row)
    return result


async def columns(conn: asyncpg.Connection, relation: str) -> list[tuple[str, str, bool]]:
    """(name, type, not null) of each column of a relation, in table order."""
    rows = await conn.fetch(
        """
        SELECT attname, format_type(atttypid, atttypmod), attnotnull
        FROM pg_attribute
        WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped
        ORDER BY attnum
        """,
        relation,
    )
    return [(r[0], r[1], r[2]) for r in rows]


async def constraint_columns(
    conn: asyncpg.Connection, relation: str, contype: str
) -> list[list[str]]:
    """The column lists (in constraint order) of the constraints of one kind (p, u, f, c)."""
    rows = await conn.fetch(
        """
        SELECT array_agg(a.attname ORDER BY k.ord)
        FROM pg_constraint c
        CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY k(attnum, ord)
        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
        WHERE c.conrelid = $1::regclass AND c.contype::text = $2
        GROUP BY c.oid
        ORDER BY c.conname
        """,
        relation,
        contype,
    )
    return [list(r[0]) for r in rows]


async def index_columns(conn: asyncpg.Connection, relation: str) -> list[tuple[list[str], bool]]:
    """(columns in index order, is unique) of each index of a relation."""
    rows = await conn.fetch(
        """
        SELECT array_agg(a.attname ORDER BY k.ord), i.indisunique
        FROM pg_index i
        CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, ord)
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
        WHERE i.indrelid = $1::regclass
        GROUP BY i.indexrelid, i.indisunique
        ORDER BY 1
        """,
        relation,
    )
    return [(list(r[0]), r[1]) for r in rows]


async def relation_exists(conn: asyncpg.Connection, relation: str) -> bool:
    return await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", relation)


async def function_exists(conn: asyncpg.Connection, signature: str) -> bool:
    return await conn.fetchval("SELECT to_regprocedure($1) IS NOT NULL", signature)


async def trigger_names(conn: asyncpg.Connection, relation: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT tgname FROM pg_trigger WHERE tgrelid = $1::regclass AND NOT tgisinternal "
        "ORDER BY tgname",
        relation,
    )
    return [r[0] for r in rows]


async def count(conn: asyncpg.Connection, relation: str) -> int:
    """Rows in a relation (given as SQL text, e.g. ``ai._vectorizer_q_1``)."""
    value = await conn.fetchval(f"SELECT count(*) FROM {relation}")
    assert isinstance(value, int)
    return value


async def queue_table(conn: asyncpg.Connection, vectorizer_id: int) -> str:
    """The queue of a vectorizer as quoted SQL text."""
    row = await conn.fetchrow(
        "SELECT queue_schema, queue_table FROM ai.vectorizer WHERE id = $1", vectorizer_id
    )
    return f"{ident(row[0])}.{ident(row[1])}"


async def failed_queue_table(conn: asyncpg.Connection, vectorizer_id: int) -> str:
    row = await conn.fetchrow(
        "SELECT queue_schema, queue_failed_table FROM ai.vectorizer WHERE id = $1", vectorizer_id
    )
    return f"{ident(row[0])}.{ident(row[1])}"


async def target_table(conn: asyncpg.Connection, vectorizer_id: int) -> str:
    row = await conn.fetchrow(
        "SELECT config->'destination'->>'target_schema', config->'destination'->>'target_table' "
        "FROM ai.vectorizer WHERE id = $1",
        vectorizer_id,
    )
    return f"{ident(row[0])}.{ident(row[1])}"


async def queued_keys(conn: asyncpg.Connection, vectorizer_id: int) -> list[Any]:
    """The primary keys in the queue of a single-column-key source, sorted (duplicates kept)."""
    queue = await queue_table(conn, vectorizer_id)
    rows = await conn.fetch(f"SELECT * FROM {queue}")
    return sorted(r[0] for r in rows)


async def snapshot(conn: asyncpg.Connection) -> dict[str, Any]:
    """Everything a create_vectorizer call could leave behind: vectorizer rows, relations and
    their columns, functions and triggers outside the system schemas."""
    user_schemas = (
        "n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') "
        "AND n.nspname NOT LIKE 'pg_temp%' AND n.nspname NOT LIKE 'pg_toast_temp%'"
    )
    return {
        "vectorizers": [tuple(r) for r in await conn.fetch("SELECT id, name FROM ai.vectorizer")],
        "relations": sorted(
            tuple(r)
            for r in await conn.fetch(
                f"SELECT n.nspname, c.relname, c.relkind::text FROM pg_class c "
                f"JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {user_schemas}"
            )
        ),
        "columns": sorted(
            tuple(r)
            for r in await conn.fetch(
                f"SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod) "
                f"FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
                f"JOIN pg_namespace n ON n.oid = c.relnamespace "
                f"WHERE {user_schemas} AND a.attnum > 0 AND NOT a.attisdropped"
            )
        ),
        "functions": sorted(
            r[0]
            for r in await conn.fetch(
                f"SELECT p.oid::regprocedure::text FROM pg_proc p "
                f"JOIN pg_namespace n ON n.oid = p.pronamespace WHERE {user_schemas}"
            )
        ),
        "triggers": sorted(
            tuple(r)
            for r in await conn.fetch(
                "SELECT tgrelid::regclass::text, tgname FROM pg_trigger WHERE NOT tgisinternal"
            )
        ),
    }


@contextmanager
def captured_messages(conn: asyncpg.Connection) -> Iterator[list[tuple[str, str]]]:
    """(severity, message) of each NOTICE/WARNING the server sends while the block runs."""
    messages: list[tuple[str, str]] = []

    def listener(_conn: Any, message: Any) -> None:
        messages.append((message.severity, message.message))

    conn.add_log_listener(listener)
    try:
        yield messages
    finally:
        conn.remove_log_listener(listener)


@asynccontextmanager
async def temporary_roles(conn: asyncpg.Connection) -> AsyncIterator[Any]:
    """A factory of uniquely named roles (roles are cluster-wide), all gone afterwards: rolled
    back with the test's transaction, or dropped when the connection is in autocommit."""
    created: list[str] = []

    async def make(*options: str) -> str:
        name = f"pgai_test_{uuid.uuid4().hex[:10]}"
        await conn.execute(f"CREATE ROLE {name} {' '.join(options)}")
        created.append(name)
        return name

    try:
        yield make
    finally:
        if not conn.is_in_transaction():
            await drop_roles(conn, created)


async def drop_roles(conn: asyncpg.Connection, created: list[str]) -> None:
    await conn.execute("RESET ROLE")
    for name in created:
        await conn.execute(f"DROP OWNED BY {name} CASCADE")
        await conn.execute(f"DROP ROLE {name}")


async def assert_fails_leaving_nothing(
    conn: asyncpg.Connection,
    sql: str,
    error: type[asyncpg.PostgresError],
    *,
    mentions: tuple[str, ...],
    hint: tuple[str, ...] = (),
) -> asyncpg.PostgresError:
    """Run ``sql``, expect ``error`` whose message contains every word of ``mentions`` and whose
    HINT contains every word of ``hint``, then check the database is exactly as before."""
    before = await snapshot(conn)
    try:
        async with conn.transaction():  # a savepoint when the test runs in a transaction
            await conn.execute(sql)
    except error as exc:
        raised = exc
    else:
        raise AssertionError(f"expected {error.__name__} from: {sql}")
    message = raised.message
    for word in mentions:
        assert word in message, f"{word!r} not in message {message!r}"
    for word in hint:
        assert word in (raised.hint or ""), f"{word!r} not in hint {raised.hint!r}"
    assert await snapshot(conn) == before
    return raised
