"""ai.create_vectorizer against a real database (catalog.md §2.1, §3, §4, §4.1, §4.2).

What the call stores in ai.vectorizer, which objects it creates and how they look, how the
options change that, and every argument it refuses (with nothing left behind).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest
from asyncpg import exceptions as pgerr

from tests.pgserver import PgTestServer
from tests.sql_helpers import (
    VECTOR_LITERAL,
    assert_fails_leaving_nothing,
    captured_messages,
    columns,
    constraint_columns,
    count,
    create_blog,
    create_vectorizer,
    create_vectorizer_sql,
    function_exists,
    index_columns,
    relation_exists,
    rolled_back_connection,
    shared_database,
    snapshot,
    temporary_roles,
    trigger_names,
    vectorizer_row,
)

# The stored config of a vectorizer created with defaults on website.blog (catalog.md §3,
# verified against pgai 0.12.1).
SPEC_DEFAULT_CONFIG = {
    "version": "0.12.1",
    "loading": {
        "implementation": "column",
        "config_type": "loading",
        "column_name": "body",
        "retries": 6,
    },
    "parsing": {"implementation": "auto", "config_type": "parsing"},
    "chunking": {
        "implementation": "recursive_character_text_splitter",
        "config_type": "chunking",
        "chunk_size": 800,
        "chunk_overlap": 400,
        "separators": ["\n\n", "\n", ".", "?", "!", " ", ""],
        "is_separator_regex": False,
    },
    "indexing": {"implementation": "none", "config_type": "indexing"},
    "embedding": {
        "implementation": "openai",
        "config_type": "embedding",
        "model": "text-embedding-3-small",
        "dimensions": 4,
        "api_key_name": "OPENAI_API_KEY",
    },
    "formatting": {
        "implementation": "python_template",
        "config_type": "formatting",
        "template": "$chunk",
    },
    "processing": {"implementation": "default", "config_type": "processing"},
    "scheduling": {"implementation": "none", "config_type": "scheduling"},
    "destination": {
        "implementation": "table",
        "config_type": "destination",
        "target_schema": "website",
        "target_table": "blog_embedding_store",
        "view_schema": "website",
        "view_name": "blog_embedding",
    },
}

# A composite key of mixed types whose key order (unit, sensor, taken_at, site) differs from
# the table order (sensor, site, taken_at, unit), with non-key columns in between.
READING_TABLE = """
CREATE TABLE reading
( sensor int
, note text
, site text
, taken_at timestamptz
, unit varchar(3)
, body text
, PRIMARY KEY (unit, sensor, taken_at, site)
)
"""
READING_KEY_COLUMNS = [
    ("sensor", "integer", True),
    ("site", "text", True),
    ("taken_at", "timestamp with time zone", True),
    ("unit", "character varying(3)", True),
]
READING_KEY_ORDER = ["unit", "sensor", "taken_at", "site"]


@pytest.fixture(scope="module")
def module_db_url(pg_server: PgTestServer, catalog_template: str) -> Iterator[str]:
    yield from shared_database(pg_server, catalog_template)


@pytest.fixture
async def conn(module_db_url: str) -> AsyncIterator[asyncpg.Connection]:
    """This module's connection: its test runs in a transaction that is rolled back."""
    async with rolled_back_connection(module_db_url) as connection:
        yield connection


@pytest.fixture
async def reading(conn: asyncpg.Connection) -> int:
    """A vectorizer (id returned) on the composite-key table ``reading``."""
    await conn.execute(READING_TABLE)
    return await create_vectorizer(conn, "reading")


@pytest.fixture
async def blog(conn: asyncpg.Connection) -> int:
    """A vectorizer (id returned) with every default on ``public.blog``."""
    await create_blog(conn)
    return await create_vectorizer(conn, "blog")


@pytest.fixture
async def make_role(conn: asyncpg.Connection) -> AsyncIterator[Any]:
    async with temporary_roles(conn) as make:
        yield make


async def function_info(conn: asyncpg.Connection, signature: str) -> asyncpg.Record:
    return await conn.fetchrow(
        """
        SELECT l.lanname, p.prosecdef, p.proconfig, p.provolatile::text, p.proparallel::text
        FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
        WHERE p.oid = to_regprocedure($1)
        """,
        signature,
    )


async def column_default(conn: asyncpg.Connection, relation: str, column: str) -> str | None:
    return await conn.fetchval(
        """
        SELECT pg_get_expr(d.adbin, d.adrelid)
        FROM pg_attrdef d JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
        WHERE d.adrelid = $1::regclass AND a.attname = $2
        """,
        relation,
        column,
    )


async def storage(conn: asyncpg.Connection, relation: str, column: str) -> str:
    return await conn.fetchval(
        "SELECT attstorage::text FROM pg_attribute WHERE attrelid = $1::regclass AND attname = $2",
        relation,
        column,
    )


# ------------------------------------------------------------------------------------------
# The ai.vectorizer row


async def test_returns_the_id_of_the_vectorizer_row(conn: asyncpg.Connection) -> None:
    await create_blog(conn)
    vectorizer_id = await create_vectorizer(conn, "blog")
    assert await conn.fetchval("SELECT array_agg(id) FROM ai.vectorizer") == [vectorizer_id]


async def test_row_names_source_trigger_and_queues_after_the_id(
    conn: asyncpg.Connection, blog: int
) -> None:
    row = await vectorizer_row(conn, blog)
    assert {k: v for k, v in row.items() if k not in ("config", "source_pk")} == {
        "id": blog,
        "source_schema": "public",
        "source_table": "blog",
        "trigger_name": f"_vectorizer_src_trg_{blog}",
        "queue_schema": "ai",
        "queue_table": f"_vectorizer_q_{blog}",
        "queue_failed_table": f"_vectorizer_q_failed_{blog}",
        "disabled": False,
        "name": "public_blog_embedding_store",
    }


async def test_source_pk_describes_each_key_column_in_key_order(
    conn: asyncpg.Connection, reading: int
) -> None:
    row = await vectorizer_row(conn, reading)
    assert row["source_pk"] == [
        {"attnum": 5, "pknum": 1, "attname": "unit", "typname": "character varying(3)"},
        {"attnum": 1, "pknum": 2, "attname": "sensor", "typname": "integer"},
        {"attnum": 4, "pknum": 3, "attname": "taken_at", "typname": "timestamp with time zone"},
        {"attnum": 3, "pknum": 4, "attname": "site", "typname": "text"},
    ]


async def test_config_has_version_and_every_section_with_resolved_defaults(
    conn: asyncpg.Connection,
) -> None:
    await conn.execute("CREATE SCHEMA website")
    await create_blog(conn, "website.blog")
    vectorizer_id = await create_vectorizer(conn, "website.blog")
    assert (await vectorizer_row(conn, vectorizer_id))["config"] == SPEC_DEFAULT_CONFIG


async def test_indexing_default_follows_the_indexing_default_setting(
    conn: asyncpg.Connection,
) -> None:
    # ai.indexing_default() resolves to hnsw, which scheduling none (the default) refuses
    await create_blog(conn)
    await conn.execute("SET ai.indexing_default = 'indexing_hnsw'")
    await assert_fails_leaving_nothing(
        conn,
        create_vectorizer_sql("blog"),
        pgerr.InvalidParameterValueError,
        mentions=("indexing", "scheduling"),
        hint=("indexing_none",),
    )


async def test_processing_batch_size_and_concurrency_are_stored(conn: asyncpg.Connection) -> None:
    await create_blog(conn)
    vectorizer_id = await create_vectorizer(
        conn, "blog", processing="ai.processing_default(batch_size => 10, concurrency => 2)"
    )
    assert (await vectorizer_row(conn, vectorizer_id))["config"]["processing"] == {
        "implementation": "default",
        "config_type": "processing",
        "batch_size": 10,
        "concurrency": 2,
    }


async def test_sentence_transformers_embedding_is_accepted(conn: asyncpg.Connection) -> None:
    await create_blog(conn)
    vectorizer_id = await create_vectorizer(
        conn, "blog", embedding="ai.embedding_sentence_transformers()"
    )
    assert (await vectorizer_row(conn, vectorizer_id))["config"]["embedding"] == {
        "implementation": "sentence_transformers",
        "config_type": "embedding",
        "model": "nomic-ai/nomic-embed-text-v1.5",
        "dimensions": 768,
    }
    assert ("embedding", "vector(768)", True) in await columns(conn, "blog_embedding_store")


# ------------------------------------------------------------------------------------------
# The target table


async def test_target_table_has_uuid_then_key_columns_then_chunk_and_embedding(
    conn: asyncpg.Connection, reading: int
) -> None:
    assert await columns(conn, "reading_embedding_store") == [
        ("embedding_uuid", "uuid", True),
        *READING_KEY_COLUMNS,
        ("chunk_seq", "integer", True),
        ("chunk", "text", True),
        ("embedding", "vector(4)", True),
    ]


async def test_target_table_key_is_a_random_embedding_uuid(
    conn: asyncpg.Connection, reading: int
) -> None:
    assert await constraint_columns(conn, "reading_embedding_store", "p") == [["embedding_uuid"]]
    assert await column_default(conn, "reading_embedding_store", "embedding_uuid") == (
        "gen_random_uuid()"
    )


async def test_target_table_is_unique_on_key_columns_in_key_order_and_chunk_seq(
    conn: asyncpg.Connection, reading: int
) -> None:
    assert await constraint_columns(conn, "reading_embedding_store", "u") == [
        [*READING_KEY_ORDER, "chunk_seq"]
    ]


async def test_target_table_has_no_foreign_key_to_the_source(
    conn: asyncpg.Connection, reading: int
) -> None:
    assert await constraint_columns(conn, "reading_embedding_store", "f") == []


async def test_target_embedding_column_has_storage_main(
    conn: asyncpg.Connection, reading: int
) -> None:
    assert await storage(conn, "reading_embedding_store", "embedding") == "m"


# ------------------------------------------------------------------------------------------
# The view


async def test_view_has_chunk_columns_then_every_source_column_in_table_order(
    conn: asyncpg.Connection, reading: int
) -> None:
    names = [name for name, _, _ in await columns(conn, "reading_embedding")]
    assert names == [
        "embedding_uuid",
        "chunk_seq",
        "chunk",
        "embedding",
        "sensor",
        "note",
        "site",
        "taken_at",
        "unit",
        "body",
    ]


async def test_view_joins_each_chunk_to_its_source_row(
    conn: asyncpg.Connection, reading: int
) -> None:
    await conn.execute(
        "INSERT INTO reading VALUES (7, 'a note', 'north', '2025-01-02 03:04:05+00', 'kg', 'text')"
    )
    await conn.execute(
        f"INSERT INTO reading_embedding_store (sensor, site, taken_at, unit, chunk_seq, chunk, "
        f"embedding) VALUES (7, 'north', '2025-01-02 03:04:05+00', 'kg', 0, 'text', "
        f"{VECTOR_LITERAL})"
    )
    row = await conn.fetchrow("SELECT chunk, sensor, note, unit, body FROM reading_embedding")
    assert tuple(row) == ("text", 7, "a note", "kg", "text")


async def test_view_keeps_chunks_whose_source_row_is_gone_with_their_key(
    conn: asyncpg.Connection, blog: int
) -> None:
    await conn.execute(
        "INSERT INTO blog_embedding_store (id, chunk_seq, chunk, embedding) "
        f"VALUES (9, 0, 'orphan', {VECTOR_LITERAL})"
    )
    row = await conn.fetchrow("SELECT id, chunk, title, body FROM blog_embedding")
    assert tuple(row) == (9, "orphan", None, None)


# ------------------------------------------------------------------------------------------
# The queue and the failed queue


async def test_queue_table_has_key_columns_then_queued_at_and_retry_columns(
    conn: asyncpg.Connection, reading: int
) -> None:
    queue = f"ai._vectorizer_q_{reading}"
    assert await columns(conn, queue) == [
        *READING_KEY_COLUMNS,
        ("queued_at", "timestamp with time zone", True),
        ("loading_retries", "integer", True),
        ("loading_retry_after", "timestamp with time zone", False),
    ]
    assert await column_default(conn, queue, "queued_at") == "now()"
    assert await column_default(conn, queue, "loading_retries") == "0"


async def test_queue_table_has_a_plain_index_on_the_key_and_no_unique_constraint(
    conn: asyncpg.Connection, reading: int
) -> None:
    queue = f"ai._vectorizer_q_{reading}"
    assert await index_columns(conn, queue) == [(READING_KEY_ORDER, False)]
    assert await constraint_columns(conn, queue, "p") == []
    assert await constraint_columns(conn, queue, "u") == []


async def test_failed_queue_table_has_key_columns_created_at_and_failure_step(
    conn: asyncpg.Connection, reading: int
) -> None:
    failed = f"ai._vectorizer_q_failed_{reading}"
    assert await columns(conn, failed) == [
        *READING_KEY_COLUMNS,
        ("created_at", "timestamp with time zone", True),
        ("failure_step", "text", True),
    ]
    assert await column_default(conn, failed, "created_at") == "now()"
    assert await column_default(conn, failed, "failure_step") == "''::text"
    assert await index_columns(conn, failed) == [(READING_KEY_ORDER, False)]


# ------------------------------------------------------------------------------------------
# The trigger function and the triggers


async def test_trigger_function_is_security_definer_plpgsql_with_a_fixed_search_path(
    conn: asyncpg.Connection, blog: int
) -> None:
    info = await function_info(conn, f"ai._vectorizer_src_trg_{blog}()")
    assert info["lanname"] == "plpgsql"
    assert info["prosecdef"] is True
    assert info["proconfig"] == ["search_path=pg_catalog, pg_temp"]
    assert (info["provolatile"], info["proparallel"]) == ("v", "s")


async def test_trigger_function_is_not_executable_by_public(
    conn: asyncpg.Connection, blog: int
) -> None:
    assert not await conn.fetchval(
        "SELECT has_function_privilege('public', $1::regprocedure, 'EXECUTE')",
        f"ai._vectorizer_src_trg_{blog}()",
    )


async def test_row_trigger_fires_after_insert_update_delete_for_each_row(
    conn: asyncpg.Connection, blog: int
) -> None:
    definition = await conn.fetchval(
        "SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgname = $1",
        f"_vectorizer_src_trg_{blog}",
    )
    assert definition == (
        f"CREATE TRIGGER _vectorizer_src_trg_{blog} AFTER INSERT OR DELETE OR UPDATE ON "
        f"public.blog FOR EACH ROW EXECUTE FUNCTION ai._vectorizer_src_trg_{blog}()"
    )


async def test_truncate_trigger_fires_after_truncate_for_each_statement(
    conn: asyncpg.Connection, blog: int
) -> None:
    definition = await conn.fetchval(
        "SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgname = $1",
        f"_vectorizer_src_trg_{blog}_truncate",
    )
    assert definition == (
        f"CREATE TRIGGER _vectorizer_src_trg_{blog}_truncate AFTER TRUNCATE ON public.blog "
        f"FOR EACH STATEMENT EXECUTE FUNCTION ai._vectorizer_src_trg_{blog}()"
    )


# ------------------------------------------------------------------------------------------
# Column destination


async def test_column_destination_adds_a_vector_column_with_storage_main(
    conn: asyncpg.Connection,
) -> None:
    await create_blog(conn)
    await create_vectorizer(
        conn,
        "blog",
        destination="ai.destination_column('embedding')",
        chunking="ai.chunking_none()",
    )
    assert (await columns(conn, "blog"))[-1] == ("embedding", "vector(4)", False)
    assert await column_default(conn, "blog", "embedding") in (None, "NULL::vector")
    assert await storage(conn, "blog", "embedding") == "m"


async def test_column_destination_stores_only_the_embedding_column(
    conn: asyncpg.Connection,
) -> None:
    await create_blog(conn)
    vectorizer_id = await create_vectorizer(
        conn,
        "blog",
        destination="ai.destination_column('embedding')",
        chunking="ai.chunking_none()",
    )
    assert (await vectorizer_row(conn, vectorizer_id))["config"]["destination"] == {
        "implementation": "column",
        "config_type": "destination",
        "embedding_column": "embedding",
    }


async def test_column_destination_creates_queues_and_trigger_but_no_target_or_view(
    conn: asyncpg.Connection,
) -> None:
    await create_blog(conn)
    before = await snapshot(conn)
    vectorizer_id = await create_vectorizer(
        conn,
        "blog",
        destination="ai.destination_column('embedding')",
        chunking="ai.chunking_none()",
    )
    after = await snapshot(conn)
    new_tables = {
        (schema, name) for schema, name, kind in after["relations"] if kind in ("r", "v")
    } - {(schema, name) for schema, name, kind in before["relations"] if kind in ("r", "v")}
    assert new_tables == {
        ("ai", f"_vectorizer_q_{vectorizer_id}"),
        ("ai", f"_vectorizer_q_failed_{vectorizer_id}"),
    }
    assert await trigger_names(conn, "blog") == [
        f"_vectorizer_src_trg_{vectorizer_id}",
        f"_vectorizer_src_trg_{vectorizer_id}_truncate",
    ]


async def test_column_destination_reuses_an_existing_vector_column_of_that_size(
    conn: asyncpg.Connection,
) -> None:
    await conn.execute("CREATE TABLE blog (id int PRIMARY KEY, body text, emb vector(4))")
    await conn.execute("INSERT INTO blog VALUES (1, 'hello', '[1,2,3,4]')")
    await create_vectorizer(
        conn, "blog", destination="ai.destination_column('emb')", chunking="ai.chunking_none()"
    )
    assert await columns(conn, "blog") == [
        ("id", "integer", True),
        ("body", "text", False),
        ("emb", "vector(4)", False),
    ]
    assert await conn.fetchval("SELECT emb::text FROM blog") == "[1,2,3,4]"


@pytest.mark.parametrize("existing_type", ["text", "vector(8)"])
async def test_column_destination_refuses_an_existing_column_of_another_type(
    conn: asyncpg.Connection, existing_type: str
) -> None:
    await conn.execute(f"CREATE TABLE blog (id int PRIMARY KEY, body text, emb {existing_type})")
    await assert_fails_leaving_nothing(
        conn,
        create_vectorizer_sql(
            "blog", destination="ai.destination_column('emb')", chunking="ai.chunking_none()"
        ),
        pgerr.DuplicateColumnError,
        mentions=("emb", existing_type),
        hint=("destination_column",),
    )


# ------------------------------------------------------------------------------------------
# destination_table options


async def stored_destination(conn: asyncpg.Connection, vectorizer_id: int) -> dict[str, Any]:
    destination: dict[str, Any] = (await vectorizer_row(conn, vectorizer_id))["config"][
        "destination"
    ]
    return destination


async def test_destination_names_the_view_and_the_target_table_with_store_suffix(
    conn: asyncpg.Connection,
) -> None:
    await create_blog(conn)
    vectorizer_id = await create_vectorizer(
        conn, "blog", destination="ai.destination_table('posts')"
    )
    assert await relation_exists(conn, "public.posts_store")
    assert await relation_exists(conn, "public.posts")
    assert await stored_destination(conn, vectorizer_id) == {
        "implementation": "table",
        "config_type": "destination",
        "target_schema": "public",
        "target_table": "posts_store",
        "view_schema": "public",
        "view_name": "posts",
    }


async def test_target_schema_moves_the_target_table_but_not_the_view(
    conn: asyncpg.Connection,
) -> None:
    await conn.execute("CREATE SCHEMA store")
    await create_blog(conn)
    vectorizer_id = await create_vectorizer(
        conn, "blog", destination="ai.destination_table(target_schema => 'store')"
    )
    assert await relation_exists(conn, "store.blog_embedding_store")
    assert await relation_exists(conn, "public.blog_embedding")
    destination = await stored_destination(conn, vectorizer_id)
    assert (destination["target_schema"], destination["view_schema"]) == ("store", "public")


async def test_target_table_and_view_name_are_used_as_given(conn: asyncpg.Connection) -> None:
    await create_blog(conn)
    vectorizer_id = await create_vectorizer(
        conn,
        "blog",
        destination="ai.destination_table(target_table => 'chunks', view_name => 'chunks_v')",
    )
    assert await relation_exists(conn, "public.chunks")
    assert await relation_exists(conn, "public.chunks_v")
    destination = await stored_destination(conn, vectorizer_id)
    assert (destination["target_table"], destination["view_name"]) == ("chunks", "chunks_v")


async def test_view_schema_puts_the_view_there(conn: asyncpg.Connection) -> None:
    # pgai 0.12.1 ignores view_schema (features.md quirks); we honour it
    await conn.execute("CREATE SCHEMA views")
    await create_blog(conn)
    vectorizer_id = await create_vectorizer(
        conn, "blog", destination="ai.destination_table(view_schema => 'views')"
    )
    assert await relation_exists(conn, "views.blog_embedding")
    assert not await relation_exists(conn, "public.blog_embedding")
    assert (await stored_destination(conn, vectorizer_id))["view_schema"] == "views"


# ------------------------------------------------------------------------------------------
# Identifiers that need quotes


QUOTED_SOURCE = '"my schema"."BlogPost"'


@pytest.fixture
async def quoted(conn: asyncpg.Connection) -> int:
    """A vectorizer on a mixed-case table with key "Id" in a schema with a space."""
    await conn.execute('CREATE SCHEMA "my schema"')
    await conn.execute(f'CREATE TABLE {QUOTED_SOURCE} ("Id" int PRIMARY KEY, "Body" text)')
    return await create_vectorizer(conn, QUOTED_SOURCE, loading="ai.loading_column('Body')")


async def test_quoted_names_get_a_target_table_and_a_joining_view(
    conn: asyncpg.Connection, quoted: int
) -> None:
    await conn.execute(f"INSERT INTO {QUOTED_SOURCE} VALUES (1, 'hello')")
    await conn.execute(
        'INSERT INTO "my schema"."BlogPost_embedding_store" ("Id", chunk_seq, chunk, embedding) '
        f"VALUES (1, 0, 'hello', {VECTOR_LITERAL})"
    )
    row = await conn.fetchrow('SELECT "Id", "Body", chunk FROM "my schema"."BlogPost_embedding"')
    assert tuple(row) == (1, "hello", "hello")


async def test_quoted_names_get_working_triggers(conn: asyncpg.Connection, quoted: int) -> None:
    await conn.execute(f"INSERT INTO {QUOTED_SOURCE} VALUES (1, 'hello')")
    await conn.execute(
        'INSERT INTO "my schema"."BlogPost_embedding_store" ("Id", chunk_seq, chunk, embedding) '
        f"VALUES (1, 0, 'hello', {VECTOR_LITERAL})"
    )
    await conn.execute(f'UPDATE {QUOTED_SOURCE} SET "Id" = 2')
    assert await count(conn, '"my schema"."BlogPost_embedding_store"') == 0
    keys = await conn.fetch(f'SELECT "Id" FROM ai._vectorizer_q_{quoted} ORDER BY 1')
    assert [r[0] for r in keys] == [1, 2]


async def test_quoted_names_are_dropped_with_drop_all(
    conn: asyncpg.Connection, quoted: int
) -> None:
    await conn.execute("SELECT ai.drop_vectorizer($1::int4, drop_all => true)", quoted)
    assert not await relation_exists(conn, '"my schema"."BlogPost_embedding_store"')
    assert not await relation_exists(conn, '"my schema"."BlogPost_embedding"')
    assert await trigger_names(conn, QUOTED_SOURCE) == []


async def test_default_name_of_a_mixed_case_table_is_a_valid_lower_case_name(
    conn: asyncpg.Connection,
) -> None:
    # pgai 0.12.1 derives "public_BlogPost_embedding_store", which its own name check rejects
    await conn.execute('CREATE TABLE "BlogPost" (id int PRIMARY KEY, body text)')
    vectorizer_id = await create_vectorizer(conn, '"BlogPost"')
    assert (await vectorizer_row(conn, vectorizer_id))["name"] == "public_blogpost_embedding_store"


# ------------------------------------------------------------------------------------------
# Names


async def test_given_name_is_stored(conn: asyncpg.Connection) -> None:
    await create_blog(conn)
    vectorizer_id = await create_vectorizer(conn, "blog", name="'blog_search'")
    assert (await vectorizer_row(conn, vectorizer_id))["name"] == "blog_search"


async def test_default_name_is_target_schema_and_target_table(conn: asyncpg.Connection) -> None:
    await conn.execute("CREATE SCHEMA store")
    await create_blog(conn)
    vectorizer_id = await create_vectorizer(
        conn,
        "blog",
        destination="ai.destination_table(target_schema => 'store', target_table => 'chunks')",
    )
    assert (await vectorizer_row(conn, vectorizer_id))["name"] == "store_chunks"


async def test_default_name_of_a_column_destination_is_schema_table_and_column(
    conn: asyncpg.Connection,
) -> None:
    await create_blog(conn)
    vectorizer_id = await create_vectorizer(
        conn, "blog", destination="ai.destination_column('emb')", chunking="ai.chunking_none()"
    )
    assert (await vectorizer_row(conn, vectorizer_id))["name"] == "public_blog_emb"


async def test_if_not_exists_returns_the_id_of_the_vectorizer_of_that_name(
    conn: asyncpg.Connection, blog: int
) -> None:
    with captured_messages(conn) as messages:
        again = await create_vectorizer(conn, "blog", if_not_exists="true")
    assert again == blog
    assert any(
        severity == "NOTICE" and "public_blog_embedding_store" in text
        for severity, text in messages
    )


async def test_if_not_exists_creates_nothing_when_the_name_exists(
    conn: asyncpg.Connection, blog: int
) -> None:
    before = await snapshot(conn)
    await create_vectorizer(
        conn,
        "blog",
        destination="ai.destination_table('other')",
        name="'public_blog_embedding_store'",
        if_not_exists="true",
    )
    assert await snapshot(conn) == before


# ------------------------------------------------------------------------------------------
# Queue options and the initial enqueue


async def test_enqueue_existing_queues_every_source_row(conn: asyncpg.Connection) -> None:
    await create_blog(conn)
    await conn.execute("INSERT INTO blog SELECT g, 't', 'b' FROM generate_series(1, 3) g")
    vectorizer_id = await create_vectorizer(conn, "blog")
    keys = await conn.fetch(f"SELECT id FROM ai._vectorizer_q_{vectorizer_id} ORDER BY id")
    assert [r[0] for r in keys] == [1, 2, 3]


async def test_enqueue_existing_false_leaves_the_queue_empty(conn: asyncpg.Connection) -> None:
    await create_blog(conn)
    await conn.execute("INSERT INTO blog SELECT g, 't', 'b' FROM generate_series(1, 3) g")
    vectorizer_id = await create_vectorizer(conn, "blog", enqueue_existing="false")
    assert await count(conn, f"ai._vectorizer_q_{vectorizer_id}") == 0


async def test_queue_schema_and_queue_table_place_queues_and_trigger_function(
    conn: asyncpg.Connection,
) -> None:
    await conn.execute("CREATE SCHEMA q")
    await create_blog(conn)
    vectorizer_id = await create_vectorizer(
        conn, "blog", queue_schema="'q'", queue_table="'blog_queue'"
    )
    row = await vectorizer_row(conn, vectorizer_id)
    assert (row["queue_schema"], row["queue_table"], row["queue_failed_table"]) == (
        "q",
        "blog_queue",
        f"_vectorizer_q_failed_{vectorizer_id}",
    )
    assert await relation_exists(conn, "q.blog_queue")
    assert await relation_exists(conn, f"q._vectorizer_q_failed_{vectorizer_id}")
    assert await function_exists(conn, f"q._vectorizer_src_trg_{vectorizer_id}()")
    await conn.execute("INSERT INTO blog VALUES (1, 't', 'b')")
    assert await count(conn, "q.blog_queue") == 1


# ------------------------------------------------------------------------------------------
# grant_to


async def privileges(conn: asyncpg.Connection, role: str, relation: str) -> set[str]:
    held = await conn.fetchval(
        """
        SELECT array_agg(p) FROM unnest(array['SELECT', 'INSERT', 'UPDATE', 'DELETE']) p
        WHERE has_table_privilege($1, $2::regclass, p)
        """,
        role,
        relation,
    )
    return set(held or [])


async def has_schema_usage(conn: asyncpg.Connection, role: str, schema: str) -> bool:
    return await conn.fetchval("SELECT has_schema_privilege($1, $2, 'USAGE')", role, schema)


@pytest.fixture
async def granted(conn: asyncpg.Connection, make_role: Any) -> tuple[str, int]:
    """A role and a vectorizer created with grant_to => that role; source and target in
    schemas of their own so that each USAGE grant is visible."""
    role = await make_role()
    await conn.execute("CREATE SCHEMA src; CREATE SCHEMA dst; CREATE SCHEMA vw; CREATE SCHEMA q")
    await create_blog(conn, "src.blog")
    vectorizer_id = await create_vectorizer(
        conn,
        "src.blog",
        destination="ai.destination_table(target_schema => 'dst', view_schema => 'vw')",
        queue_schema="'q'",
        grant_to=f"ai.grant_to('{role}')",
    )
    return role, vectorizer_id


async def test_grant_to_gives_usage_and_select_on_the_source(
    conn: asyncpg.Connection, granted: tuple[str, int]
) -> None:
    role, _ = granted
    assert await has_schema_usage(conn, role, "src")
    assert await privileges(conn, role, "src.blog") == {"SELECT"}


async def test_grant_to_gives_usage_and_select_insert_update_on_the_target(
    conn: asyncpg.Connection, granted: tuple[str, int]
) -> None:
    role, _ = granted
    assert await has_schema_usage(conn, role, "dst")
    assert {"SELECT", "INSERT", "UPDATE"} <= await privileges(
        conn, role, "dst.blog_embedding_store"
    )


async def test_grant_to_lets_the_worker_role_replace_chunks_in_the_target(
    conn: asyncpg.Connection, granted: tuple[str, int]
) -> None:
    # pgai 0.12.1 grants SELECT/INSERT/UPDATE only, so a worker running as a grant_to role
    # cannot delete the old chunks of an updated row. We also grant DELETE (a deliberate fix).
    role, _ = granted
    assert await privileges(conn, role, "dst.blog_embedding_store") == {
        "SELECT",
        "INSERT",
        "UPDATE",
        "DELETE",
    }


async def test_grant_to_gives_select_on_the_view(
    conn: asyncpg.Connection, granted: tuple[str, int]
) -> None:
    role, _ = granted
    assert await has_schema_usage(conn, role, "vw")
    assert await privileges(conn, role, "vw.blog_embedding") == {"SELECT"}


async def test_grant_to_gives_usage_and_all_row_privileges_on_both_queues(
    conn: asyncpg.Connection, granted: tuple[str, int]
) -> None:
    role, vectorizer_id = granted
    everything = {"SELECT", "INSERT", "UPDATE", "DELETE"}
    assert await has_schema_usage(conn, role, "q")
    assert await privileges(conn, role, f"q._vectorizer_q_{vectorizer_id}") == everything
    assert await privileges(conn, role, f"q._vectorizer_q_failed_{vectorizer_id}") == everything


async def test_grant_to_gives_usage_on_ai_and_select_on_the_vectorizer_table(
    conn: asyncpg.Connection, granted: tuple[str, int]
) -> None:
    role, _ = granted
    assert await has_schema_usage(conn, role, "ai")
    assert await privileges(conn, role, "ai.vectorizer") == {"SELECT"}


async def test_grant_to_skips_a_role_that_does_not_exist_with_a_warning(
    conn: asyncpg.Connection, make_role: Any
) -> None:
    role = await make_role()
    await create_blog(conn)
    with captured_messages(conn) as messages:
        await create_vectorizer(conn, "blog", grant_to=f"ai.grant_to('{role}', 'no_such_role')")
    assert any(severity == "WARNING" and "no_such_role" in text for severity, text in messages), (
        messages
    )
    assert await privileges(conn, role, "blog_embedding") == {"SELECT"}


async def test_grant_to_default_setting_names_roles_to_grant_to(
    conn: asyncpg.Connection, make_role: Any
) -> None:
    role = await make_role()
    await create_blog(conn)
    await conn.execute(f"SET ai.grant_to_default = '{role}'")
    await create_vectorizer(conn, "blog")
    assert await privileges(conn, role, "blog_embedding") == {"SELECT"}


async def test_without_grant_to_no_role_gets_privileges(
    conn: asyncpg.Connection, make_role: Any
) -> None:
    role = await make_role()
    await create_blog(conn)
    await create_vectorizer(conn, "blog")
    assert await privileges(conn, role, "blog_embedding") == set()


# ------------------------------------------------------------------------------------------
# Refused arguments: each error names the offending argument and leaves nothing behind


@pytest.fixture
async def sources(conn: asyncpg.Connection) -> None:
    """Sources for the error cases: a table, a view of it, a table without a primary key and
    a table with a column named chunk."""
    await conn.execute(
        """
        CREATE TABLE blog (id int PRIMARY KEY, title text, body text, doc bytea);
        CREATE VIEW blog_view AS SELECT * FROM blog;
        CREATE TABLE no_pk (id int, body text);
        CREATE TABLE with_chunk (id int PRIMARY KEY, body text, chunk text);
        """
    )


def json_literal(value: dict[str, Any]) -> str:
    return "'" + json.dumps(value) + "'::jsonb"


INVALID = pgerr.InvalidParameterValueError

# id: (source, create_vectorizer arguments, error, words of the message, words of the hint)
Refusal = tuple[
    str, dict[str, str | None], type[asyncpg.PostgresError], tuple[str, ...], tuple[str, ...]
]
REFUSED: dict[str, Refusal] = {
    "unknown_source_table": ("nope", {}, pgerr.UndefinedTableError, ("nope",), ()),
    "view_as_source": ("blog_view", {}, pgerr.WrongObjectTypeError, ("blog_view",), ("table",)),
    "source_without_primary_key": (
        "no_pk",
        {},
        pgerr.InvalidTableDefinitionError,
        ("no_pk", "primary key"),
        ("ADD PRIMARY KEY",),
    ),
    "embedding_null": ("blog", {"embedding": "NULL"}, INVALID, ("embedding",), ("embedding =>",)),
    "loading_null": ("blog", {"loading": "NULL"}, INVALID, ("loading",), ("loading =>",)),
    "dimensions_missing": (
        "blog",
        {"embedding": "ai.embedding_openai('text-embedding-3-small', NULL)"},
        INVALID,
        ("dimensions",),
        (),
    ),
    "dimensions_zero": (
        "blog",
        {"embedding": "ai.embedding_openai('text-embedding-3-small', 0)"},
        INVALID,
        ("dimensions",),
        (),
    ),
    "dimensions_negative": (
        "blog",
        {"embedding": "ai.embedding_openai('text-embedding-3-small', -4)"},
        INVALID,
        ("dimensions",),
        (),
    ),
    "embedding_unknown_implementation": (
        "blog",
        {
            "embedding": json_literal(
                {
                    "implementation": "magic",
                    "config_type": "embedding",
                    "model": "m",
                    "dimensions": 4,
                }
            )
        },
        INVALID,
        ("embedding", "magic"),
        (),
    ),
    "loading_unknown_column": (
        "blog",
        {"loading": "ai.loading_column('nope')"},
        pgerr.UndefinedColumnError,
        ("loading", "nope"),
        (),
    ),
    "loading_column_not_text": (
        "blog",
        {"loading": "ai.loading_column('id')"},
        INVALID,
        ("loading", "id", "integer"),
        (),
    ),
    "loading_uri_on_bytea_column": (
        "blog",
        {"loading": "ai.loading_uri('doc')"},
        INVALID,
        ("loading_uri", "doc"),
        (),
    ),
    "loading_negative_retries": (
        "blog",
        {"loading": "ai.loading_column('body', retries => -1)"},
        INVALID,
        ("retries",),
        (),
    ),
    "loading_aws_role_arn_not_an_arn": (
        "blog",
        {"loading": "ai.loading_uri('body', aws_role_arn => 'my-role')"},
        INVALID,
        ("aws_role_arn", "my-role"),
        (),
    ),
    "loading_unknown_implementation": (
        "blog",
        {
            "loading": json_literal(
                {"implementation": "magic", "config_type": "loading", "column_name": "body"}
            )
        },
        INVALID,
        ("loading", "magic"),
        (),
    ),
    "loading_of_another_config_type": (
        "blog",
        {"loading": "ai.chunking_none()"},
        INVALID,
        ("loading", "config_type"),
        (),
    ),
    "loading_without_column_name": (
        "blog",
        {"loading": json_literal({"implementation": "column", "config_type": "loading"})},
        INVALID,
        ("column_name",),
        (),
    ),
    "parsing_unknown_implementation": (
        "blog",
        {"parsing": json_literal({"implementation": "magic", "config_type": "parsing"})},
        INVALID,
        ("parsing", "magic"),
        (),
    ),
    "parsing_none_on_bytea_column": (
        "blog",
        {"loading": "ai.loading_column('doc')", "parsing": "ai.parsing_none()"},
        INVALID,
        ("parsing_none", "doc"),
        (),
    ),
    "parsing_pymupdf_on_text_column": (
        "blog",
        {"parsing": "ai.parsing_pymupdf()"},
        INVALID,
        ("pymupdf", "body"),
        (),
    ),
    "parsing_docling_on_text_column": (
        "blog",
        {"parsing": "ai.parsing_docling()"},
        INVALID,
        ("docling", "body"),
        (),
    ),
    "chunking_unknown_implementation": (
        "blog",
        {"chunking": json_literal({"implementation": "magic", "config_type": "chunking"})},
        INVALID,
        ("chunking", "magic"),
        (),
    ),
    "chunk_overlap_equal_to_chunk_size": (
        "blog",
        {"chunking": "ai.chunking_recursive_character_text_splitter(100, 100)"},
        INVALID,
        ("chunk_overlap", "chunk_size"),
        (),
    ),
    "chunk_overlap_above_chunk_size": (
        "blog",
        {"chunking": "ai.chunking_character_text_splitter(100, 200)"},
        INVALID,
        ("chunk_overlap", "chunk_size"),
        (),
    ),
    "column_destination_with_a_chunker": (
        "blog",
        {"destination": "ai.destination_column('emb')"},
        INVALID,
        ("destination_column", "chunking"),
        (),
    ),
    "indexing_unknown_implementation": (
        "blog",
        {"indexing": json_literal({"implementation": "magic", "config_type": "indexing"})},
        INVALID,
        ("indexing", "magic"),
        (),
    ),
    "diskann_unknown_storage_layout": (
        "blog",
        {"indexing": "ai.indexing_diskann(storage_layout => 'fast')"},
        INVALID,
        ("storage_layout", "fast"),
        (),
    ),
    "hnsw_unknown_opclass": (
        "blog",
        {"indexing": "ai.indexing_hnsw(opclass => 'vector_l2_ops')"},
        INVALID,
        ("opclass", "vector_l2_ops"),
        (),
    ),
    "indexing_without_scheduling": (
        "blog",
        {"indexing": "ai.indexing_hnsw()", "scheduling": "ai.scheduling_none()"},
        INVALID,
        ("indexing", "scheduling"),
        ("indexing_none",),
    ),
    "formatting_chunk_value": (
        "blog",
        {
            "formatting": json_literal(
                {"implementation": "chunk_value", "config_type": "formatting"}
            )
        },
        INVALID,
        ("formatting", "chunk_value"),
        (),
    ),
    "template_without_chunk": (
        "blog",
        {"formatting": "ai.formatting_python_template('$title')"},
        INVALID,
        ("template", "$chunk"),
        (),
    ),
    "source_column_named_chunk": ("with_chunk", {}, INVALID, ('"chunk"', "with_chunk"), ()),
    "scheduling_unknown_implementation": (
        "blog",
        {"scheduling": json_literal({"implementation": "magic", "config_type": "scheduling"})},
        INVALID,
        ("scheduling", "magic"),
        (),
    ),
    "batch_size_zero": (
        "blog",
        {"processing": "ai.processing_default(batch_size => 0)"},
        INVALID,
        ("batch_size",),
        (),
    ),
    "batch_size_above_2048": (
        "blog",
        {"processing": "ai.processing_default(batch_size => 2049)"},
        INVALID,
        ("batch_size",),
        (),
    ),
    "concurrency_zero": (
        "blog",
        {"processing": "ai.processing_default(concurrency => 0)"},
        INVALID,
        ("concurrency",),
        (),
    ),
    "concurrency_above_50": (
        "blog",
        {"processing": "ai.processing_default(concurrency => 51)"},
        INVALID,
        ("concurrency",),
        (),
    ),
    "name_not_matching_the_name_rule": (
        "blog",
        {"name": "'Blog Search'"},
        INVALID,
        ("Blog Search",),
        ("lowercase",),
    ),
}


@pytest.mark.parametrize("case", list(REFUSED), ids=list(REFUSED))
async def test_refuses(conn: asyncpg.Connection, sources: None, case: str) -> None:
    source, args, error, mentions, hint = REFUSED[case]
    await assert_fails_leaving_nothing(
        conn, create_vectorizer_sql(source, **args), error, mentions=mentions, hint=hint
    )


async def test_refuses_an_existing_destination_table(
    conn: asyncpg.Connection, sources: None
) -> None:
    await conn.execute("CREATE TABLE blog_embedding_store (x int)")
    await assert_fails_leaving_nothing(
        conn,
        create_vectorizer_sql("blog"),
        pgerr.DuplicateObjectError,
        mentions=("blog_embedding_store",),
        hint=("target_table",),
    )


async def test_refuses_an_existing_view(conn: asyncpg.Connection, sources: None) -> None:
    await conn.execute("CREATE VIEW blog_embedding AS SELECT 1 AS x")
    await assert_fails_leaving_nothing(
        conn,
        create_vectorizer_sql("blog"),
        pgerr.DuplicateObjectError,
        mentions=("blog_embedding",),
        hint=("view_name",),
    )


async def test_refuses_an_existing_queue_table(conn: asyncpg.Connection, sources: None) -> None:
    await conn.execute("CREATE TABLE ai.blog_queue (x int)")
    await assert_fails_leaving_nothing(
        conn,
        create_vectorizer_sql("blog", queue_table="'blog_queue'"),
        pgerr.DuplicateObjectError,
        mentions=("blog_queue",),
        hint=("queue_table",),
    )


async def test_refuses_a_name_already_taken(conn: asyncpg.Connection, sources: None) -> None:
    await create_vectorizer(conn, "blog", name="'search'")
    await assert_fails_leaving_nothing(
        conn,
        create_vectorizer_sql("blog", name="'search'", destination="ai.destination_table('other')"),
        pgerr.DuplicateObjectError,
        mentions=("search",),
        hint=("if_not_exists",),
    )


async def test_refuses_a_source_table_the_caller_does_not_own(
    conn: asyncpg.Connection, sources: None, make_role: Any
) -> None:
    other = await make_role()
    await conn.execute(f"GRANT USAGE ON SCHEMA ai TO {other}")
    await conn.execute(f"GRANT SELECT ON ai.vectorizer TO {other}")
    await conn.execute(f"SET ROLE {other}")
    await assert_fails_leaving_nothing(
        conn,
        create_vectorizer_sql("blog"),
        pgerr.InsufficientPrivilegeError,
        mentions=("blog", "owner"),
        hint=("owner",),
    )
