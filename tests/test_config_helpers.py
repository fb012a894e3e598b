"""The config-helper SQL functions (``ai.loading_column()`` ... ``ai.grant_to()``) and the
validators ``create_vectorizer`` runs on each config section (catalog.md §3, §4, §4.1).

Helpers: the JSON they build is exactly the stored format (defaults, keys, SQL NULLs left out).
Validators: every bad value is rejected with an actionable message, every good config passes.

Everything here only reads, so the module shares one database (with the catalog and the source
tables below); ``conn`` is a fresh connection to it, so session settings do not leak.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from importlib import resources
from typing import Any

import asyncpg
import pytest

from tests.pgserver import PgTestServer, run_sync

HELPER_FILES = [
    "001-chunking.sql",
    "002-formatting.sql",
    "003-scheduling.sql",
    "004-embedding.sql",
    "005-indexing.sql",
    "006-processing.sql",
    "007-grant-to.sql",
    "008-loading.sql",
    "009-parsing.sql",
    "010-destination.sql",
]

DEFAULT_SEPARATORS = ["\n\n", "\n", ".", "?", "!", " ", ""]


# Source tables with every kind of column the validators care about.
SOURCE_DDL = """
    create domain public.document_bytes as bytea;
    create domain public.short_text as varchar(100);
    create table public.docs
    ( id int primary key
    , body text
    , title varchar(100)
    , code char(3)
    , flag "char"
    , summary public.short_text
    , doc bytea
    , attachment public.document_bytes
    , url text
    , n int
    , meta jsonb
    , "Mixed Case" text
    );
    create table public.has_chunk (id int primary key, chunk text);
"""


@pytest.fixture(scope="module")
def shared_db_url(pg_server: PgTestServer, catalog_template: str) -> Iterator[str]:
    name = pg_server.create_database("helpers", template=catalog_template)
    url = pg_server.url(name)

    async def create_sources() -> None:
        connection = await asyncpg.connect(url)
        try:
            await connection.execute(SOURCE_DDL)
        finally:
            await connection.close()

    run_sync(create_sources)
    try:
        yield url
    finally:
        pg_server.drop_database(name)


@pytest.fixture
async def conn(shared_db_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(shared_db_url)
    try:
        yield connection
    finally:
        await connection.close()


async def config(conn: asyncpg.Connection, expression: str) -> Any:
    """The value of a jsonb SQL expression, parsed."""
    return json.loads(await conn.fetchval(f"select {expression}"))


# ------------------------------------------------------------------------------------------
# Signatures: parameter names, types and number of defaults as in catalog.md §4


SIGNATURES = {
    "loading_column": ("column_name name, retries integer", 1),
    "loading_uri": ("column_name name, retries integer, aws_role_arn text", 2),
    "parsing_auto": ("", 0),
    "parsing_none": ("", 0),
    "parsing_pymupdf": ("", 0),
    "parsing_docling": ("", 0),
    "chunking_character_text_splitter": (
        "chunk_size integer, chunk_overlap integer, separator text, is_separator_regex boolean",
        4,
    ),
    "chunking_recursive_character_text_splitter": (
        "chunk_size integer, chunk_overlap integer, separators text[], is_separator_regex boolean",
        4,
    ),
    "chunking_none": ("", 0),
    "formatting_python_template": ("template text", 1),
    "embedding_openai": (
        "model text, dimensions integer, chat_user text, api_key_name text, base_url text",
        3,
    ),
    "embedding_ollama": (
        "model text, dimensions integer, base_url text, options jsonb, keep_alive text",
        3,
    ),
    "embedding_voyageai": ("model text, dimensions integer, input_type text, api_key_name text", 2),
    "embedding_litellm": (
        "model text, dimensions integer, api_key_name text, extra_options jsonb",
        2,
    ),
    "embedding_sentence_transformers": ("model text, dimensions integer", 2),
    "indexing_none": ("", 0),
    "indexing_default": ("", 0),
    "indexing_diskann": (
        "min_rows integer, storage_layout text, num_neighbors integer, search_list_size integer, "
        "max_alpha double precision, num_dimensions integer, num_bits_per_dimension integer, "
        "create_when_queue_empty boolean",
        8,
    ),
    "indexing_hnsw": (
        "min_rows integer, opclass text, m integer, ef_construction integer, "
        "create_when_queue_empty boolean",
        5,
    ),
    "scheduling_none": ("", 0),
    "scheduling_default": ("", 0),
    "scheduling_timescaledb": (
        "schedule_interval interval, initial_start timestamp with time zone, "
        "fixed_schedule boolean, timezone text",
        4,
    ),
    "processing_default": ("batch_size integer, concurrency integer", 2),
    "destination_table": (
        "destination name, target_schema name, target_table name, view_schema name, view_name name",
        5,
    ),
    "destination_column": ("embedding_column name", 0),
}

VALIDATOR_SIGNATURES = {
    "_validate_loading": "config jsonb, source_schema name, source_table name",
    "_validate_parsing": "parsing jsonb, loading jsonb, source_schema name, source_table name",
    "_validate_destination": "destination jsonb, chunking jsonb",
    "_validate_embedding": "config jsonb",
    "_validate_chunking": "config jsonb",
    "_validate_indexing": "config jsonb",
    "_validate_scheduling": "config jsonb",
    "_validate_formatting": "config jsonb, source_schema name, source_table name",
    "_validate_processing": "config jsonb",
}

FUNCTION_QUERY = """
    select pg_catalog.pg_get_function_identity_arguments(p.oid) as arguments,
           p.pronargdefaults as defaults,
           pg_catalog.pg_get_function_result(p.oid) as result,
           p.provolatile::text as volatility,
           p.proconfig as config
    from pg_catalog.pg_proc p
    where p.pronamespace = 'ai'::regnamespace and p.proname = $1
"""


@pytest.mark.parametrize(("name", "signature"), SIGNATURES.items(), ids=list(SIGNATURES))
async def test_helper_has_the_spec_signature(
    conn: asyncpg.Connection, name: str, signature: tuple[str, int]
) -> None:
    rows = await conn.fetch(FUNCTION_QUERY, name)
    assert len(rows) == 1
    row = rows[0]
    assert (row["arguments"], row["defaults"]) == signature
    assert row["result"] == "jsonb"
    assert row["volatility"] == "i"


@pytest.mark.parametrize(
    ("name", "arguments"), VALIDATOR_SIGNATURES.items(), ids=list(VALIDATOR_SIGNATURES)
)
async def test_validator_has_the_agreed_signature(
    conn: asyncpg.Connection, name: str, arguments: str
) -> None:
    rows = await conn.fetch(FUNCTION_QUERY, name)
    assert [(r["arguments"], r["result"]) for r in rows] == [(arguments, "void")]


@pytest.mark.parametrize("name", ["_resolve_indexing_default", "_resolve_scheduling_default"])
async def test_default_resolvers_take_nothing_and_return_jsonb(
    conn: asyncpg.Connection, name: str
) -> None:
    rows = await conn.fetch(FUNCTION_QUERY, name)
    assert [(r["arguments"], r["result"]) for r in rows] == [("", "jsonb")]


async def test_grant_to_has_a_variadic_and_a_no_argument_variant(
    conn: asyncpg.Connection,
) -> None:
    rows = await conn.fetch(FUNCTION_QUERY + " order by 1", "grant_to")
    assert [(r["arguments"], r["result"]) for r in rows] == [
        ("", "name[]"),
        ("VARIADIC grantees name[]", "name[]"),
    ]


async def test_every_function_pins_its_search_path(conn: asyncpg.Connection) -> None:
    names = [*SIGNATURES, *VALIDATOR_SIGNATURES, "grant_to"]
    names += ["_resolve_indexing_default", "_resolve_scheduling_default"]
    rows = await conn.fetch(
        "select p.proname, p.proconfig from pg_catalog.pg_proc p "
        "where p.pronamespace = 'ai'::regnamespace and p.proname = any($1::text[])",
        names,
    )
    assert {r["proname"] for r in rows} == set(names)
    for row in rows:
        assert row["proconfig"] == ["search_path=pg_catalog, pg_temp"], row["proname"]


async def test_helper_files_can_be_run_again(conn: asyncpg.Connection) -> None:
    folder = resources.files("pgai.catalog") / "sql" / "idempotent"
    transaction = conn.transaction()
    await transaction.start()
    try:
        await conn.execute("set local search_path to pg_catalog, pg_temp")
        for name in HELPER_FILES:
            await conn.execute((folder / name).read_text(encoding="utf-8"))
        assert await config(conn, "ai.chunking_none()") == {
            "implementation": "none",
            "config_type": "chunking",
        }
    finally:
        await transaction.rollback()


# ------------------------------------------------------------------------------------------
# Helpers: the JSON with all defaults (catalog.md §3)

DEFAULT_CONFIGS = {
    "ai.loading_column('body')": {
        "implementation": "column",
        "config_type": "loading",
        "column_name": "body",
        "retries": 6,
    },
    "ai.loading_uri('url')": {
        "implementation": "uri",
        "config_type": "loading",
        "column_name": "url",
        "retries": 6,
    },
    "ai.parsing_auto()": {"implementation": "auto", "config_type": "parsing"},
    "ai.parsing_none()": {"implementation": "none", "config_type": "parsing"},
    "ai.parsing_pymupdf()": {"implementation": "pymupdf", "config_type": "parsing"},
    "ai.parsing_docling()": {"implementation": "docling", "config_type": "parsing"},
    "ai.chunking_character_text_splitter()": {
        "implementation": "character_text_splitter",
        "config_type": "chunking",
        "chunk_size": 800,
        "chunk_overlap": 400,
        "separator": "\n\n",
        "is_separator_regex": False,
    },
    "ai.chunking_recursive_character_text_splitter()": {
        "implementation": "recursive_character_text_splitter",
        "config_type": "chunking",
        "chunk_size": 800,
        "chunk_overlap": 400,
        "separators": DEFAULT_SEPARATORS,
        "is_separator_regex": False,
    },
    "ai.chunking_none()": {"implementation": "none", "config_type": "chunking"},
    "ai.formatting_python_template()": {
        "implementation": "python_template",
        "config_type": "formatting",
        "template": "$chunk",
    },
    "ai.embedding_openai('text-embedding-3-small', 1536)": {
        "implementation": "openai",
        "config_type": "embedding",
        "model": "text-embedding-3-small",
        "dimensions": 1536,
        "api_key_name": "OPENAI_API_KEY",
    },
    "ai.embedding_ollama('nomic-embed-text', 768)": {
        "implementation": "ollama",
        "config_type": "embedding",
        "model": "nomic-embed-text",
        "dimensions": 768,
    },
    "ai.embedding_voyageai('voyage-3.5', 1024)": {
        "implementation": "voyageai",
        "config_type": "embedding",
        "model": "voyage-3.5",
        "dimensions": 1024,
        "input_type": "document",
        "api_key_name": "VOYAGE_API_KEY",
    },
    "ai.embedding_litellm('cohere/embed-english-v3.0', 1024)": {
        "implementation": "litellm",
        "config_type": "embedding",
        "model": "cohere/embed-english-v3.0",
        "dimensions": 1024,
    },
    "ai.embedding_sentence_transformers()": {
        "implementation": "sentence_transformers",
        "config_type": "embedding",
        "model": "nomic-ai/nomic-embed-text-v1.5",
        "dimensions": 768,
    },
    "ai.indexing_none()": {"implementation": "none", "config_type": "indexing"},
    "ai.indexing_default()": {"implementation": "default", "config_type": "indexing"},
    "ai.indexing_diskann()": {
        "implementation": "diskann",
        "config_type": "indexing",
        "min_rows": 100000,
        "create_when_queue_empty": True,
    },
    "ai.indexing_hnsw()": {
        "implementation": "hnsw",
        "config_type": "indexing",
        "min_rows": 100000,
        "opclass": "vector_cosine_ops",
        "create_when_queue_empty": True,
    },
    "ai.scheduling_none()": {"implementation": "none", "config_type": "scheduling"},
    "ai.scheduling_default()": {"implementation": "default", "config_type": "scheduling"},
    "ai.scheduling_timescaledb()": {
        "implementation": "timescaledb",
        "config_type": "scheduling",
        "schedule_interval": "00:05:00",
    },
    "ai.processing_default()": {"implementation": "default", "config_type": "processing"},
    "ai.destination_table()": {"implementation": "table", "config_type": "destination"},
    "ai.destination_column('embedding')": {
        "implementation": "column",
        "config_type": "destination",
        "embedding_column": "embedding",
    },
}


@pytest.mark.parametrize(
    ("expression", "expected"), DEFAULT_CONFIGS.items(), ids=list(DEFAULT_CONFIGS)
)
async def test_helper_defaults(conn: asyncpg.Connection, expression: str, expected: Any) -> None:
    assert await config(conn, expression) == expected


async def test_helpers_build_the_sections_of_the_spec_example_config(
    conn: asyncpg.Connection,
) -> None:
    # catalog.md §3: the config stored by create_vectorizer with default arguments
    stored = {
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
            "separators": DEFAULT_SEPARATORS,
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
    }
    built = await config(
        conn,
        """pg_catalog.jsonb_build_object(
            'loading', ai.loading_column('body'),
            'parsing', ai.parsing_auto(),
            'chunking', ai.chunking_recursive_character_text_splitter(),
            'indexing', ai.indexing_none(),
            'embedding', ai.embedding_openai('text-embedding-3-small', 4),
            'formatting', ai.formatting_python_template(),
            'processing', ai.processing_default(),
            'scheduling', ai.scheduling_none())""",
    )
    assert built == stored


# ------------------------------------------------------------------------------------------
# Helpers: every parameter lands under its key

ALL_PARAMETERS = {
    "ai.loading_column('content', 0)": {
        "implementation": "column",
        "config_type": "loading",
        "column_name": "content",
        "retries": 0,
    },
    "ai.loading_uri('url', 2, 'arn:aws:iam::123456789012:role/reader')": {
        "implementation": "uri",
        "config_type": "loading",
        "column_name": "url",
        "retries": 2,
        "aws_role_arn": "arn:aws:iam::123456789012:role/reader",
    },
    "ai.chunking_character_text_splitter(100, 5, ' ', true)": {
        "implementation": "character_text_splitter",
        "config_type": "chunking",
        "chunk_size": 100,
        "chunk_overlap": 5,
        "separator": " ",
        "is_separator_regex": True,
    },
    "ai.chunking_recursive_character_text_splitter(300, 30, array['.', ' '], true)": {
        "implementation": "recursive_character_text_splitter",
        "config_type": "chunking",
        "chunk_size": 300,
        "chunk_overlap": 30,
        "separators": [".", " "],
        "is_separator_regex": True,
    },
    "ai.formatting_python_template('$title: $chunk')": {
        "implementation": "python_template",
        "config_type": "formatting",
        "template": "$title: $chunk",
    },
    "ai.embedding_openai('m', 8, chat_user => 'u', api_key_name => 'K', base_url => 'http://x')": {
        "implementation": "openai",
        "config_type": "embedding",
        "model": "m",
        "dimensions": 8,
        "user": "u",
        "api_key_name": "K",
        "base_url": "http://x",
    },
    """ai.embedding_ollama('m', 3, 'http://o:11434', '{"num_ctx": 1024}', '10m')""": {
        "implementation": "ollama",
        "config_type": "embedding",
        "model": "m",
        "dimensions": 3,
        "base_url": "http://o:11434",
        "options": {"num_ctx": 1024},
        "keep_alive": "10m",
    },
    "ai.embedding_voyageai('voyage-3-lite', 512, 'query', 'V')": {
        "implementation": "voyageai",
        "config_type": "embedding",
        "model": "voyage-3-lite",
        "dimensions": 512,
        "input_type": "query",
        "api_key_name": "V",
    },
    """ai.embedding_litellm('m', 3, 'K', '{"a": [1, null]}')""": {
        "implementation": "litellm",
        "config_type": "embedding",
        "model": "m",
        "dimensions": 3,
        "api_key_name": "K",
        "extra_options": {"a": [1, None]},
    },
    "ai.embedding_sentence_transformers('all-MiniLM-L6-v2', 384)": {
        "implementation": "sentence_transformers",
        "config_type": "embedding",
        "model": "all-MiniLM-L6-v2",
        "dimensions": 384,
    },
    "ai.indexing_diskann(10, 'plain', 50, 100, 1.2, 256, 2, false)": {
        "implementation": "diskann",
        "config_type": "indexing",
        "min_rows": 10,
        "storage_layout": "plain",
        "num_neighbors": 50,
        "search_list_size": 100,
        "max_alpha": 1.2,
        "num_dimensions": 256,
        "num_bits_per_dimension": 2,
        "create_when_queue_empty": False,
    },
    "ai.indexing_hnsw(5, 'vector_l1_ops', 16, 64, false)": {
        "implementation": "hnsw",
        "config_type": "indexing",
        "min_rows": 5,
        "opclass": "vector_l1_ops",
        "m": 16,
        "ef_construction": 64,
        "create_when_queue_empty": False,
    },
    "ai.scheduling_timescaledb('10m', '2050-01-06 00:00+00', true, 'UTC')": {
        "implementation": "timescaledb",
        "config_type": "scheduling",
        "schedule_interval": "00:10:00",
        "initial_start": "2050-01-06T00:00:00+00:00",
        "fixed_schedule": True,
        "timezone": "UTC",
    },
    "ai.processing_default(10, 2)": {
        "implementation": "default",
        "config_type": "processing",
        "batch_size": 10,
        "concurrency": 2,
    },
    "ai.destination_table('d', 's', 't', 'v', 'w')": {
        "implementation": "table",
        "config_type": "destination",
        "destination": "d",
        "target_schema": "s",
        "target_table": "t",
        "view_schema": "v",
        "view_name": "w",
    },
}


@pytest.mark.parametrize(
    ("expression", "expected"), ALL_PARAMETERS.items(), ids=list(ALL_PARAMETERS)
)
async def test_helper_parameters_land_under_their_keys(
    conn: asyncpg.Connection, expression: str, expected: Any
) -> None:
    await conn.execute("set timezone to 'UTC'")
    assert await config(conn, expression) == expected


# ------------------------------------------------------------------------------------------
# Helpers: keys whose value is SQL NULL are left out

NULL_STRIPPED = {
    "ai.loading_uri('url', retries => null)": "retries",
    "ai.chunking_character_text_splitter(chunk_size => null)": "chunk_size",
    "ai.chunking_character_text_splitter(separator => null)": "separator",
    "ai.chunking_recursive_character_text_splitter(chunk_overlap => null)": "chunk_overlap",
    "ai.chunking_recursive_character_text_splitter(separators => null)": "separators",
    "ai.chunking_recursive_character_text_splitter(is_separator_regex => null)": (
        "is_separator_regex"
    ),
    "ai.formatting_python_template(null)": "template",
    "ai.embedding_openai('m', 8, api_key_name => null)": "api_key_name",
    "ai.embedding_openai('m', null)": "dimensions",
    "ai.embedding_ollama(null, 8)": "model",
    "ai.embedding_voyageai('m', 8, input_type => null)": "input_type",
    "ai.embedding_voyageai('m', 8, api_key_name => null)": "api_key_name",
    "ai.embedding_sentence_transformers(dimensions => null)": "dimensions",
    "ai.indexing_diskann(min_rows => null)": "min_rows",
    "ai.indexing_diskann(create_when_queue_empty => null)": "create_when_queue_empty",
    "ai.indexing_hnsw(opclass => null)": "opclass",
    "ai.scheduling_timescaledb(schedule_interval => null)": "schedule_interval",
    "ai.destination_column(null)": "embedding_column",
}


@pytest.mark.parametrize(("expression", "key"), NULL_STRIPPED.items(), ids=list(NULL_STRIPPED))
async def test_helper_leaves_out_keys_passed_as_null(
    conn: asyncpg.Connection, expression: str, key: str
) -> None:
    built = await config(conn, expression)
    assert key not in built
    assert {"implementation", "config_type"} <= built.keys()


async def test_null_stripping_does_not_reach_inside_nested_options(
    conn: asyncpg.Connection,
) -> None:
    built = await config(conn, """ai.embedding_ollama('m', 3, options => '{"stop": null}')""")
    assert built["options"] == {"stop": None}


async def test_loading_column_keeps_its_keys_even_when_null(conn: asyncpg.Connection) -> None:
    assert await config(conn, "ai.loading_column(null, null)") == {
        "implementation": "column",
        "config_type": "loading",
        "column_name": None,
        "retries": None,
    }


@pytest.mark.parametrize("input_type", ["search", "Document", ""])
async def test_embedding_voyageai_rejects_an_unknown_input_type(
    conn: asyncpg.Connection, input_type: str
) -> None:
    with pytest.raises(asyncpg.InvalidParameterValueError, match="invalid input_type"):
        await conn.fetchval("select ai.embedding_voyageai('m', 8, input_type => $1)", input_type)


# ------------------------------------------------------------------------------------------
# Defaults resolved from GUCs at create time


@pytest.mark.parametrize(
    ("setting", "implementation"),
    [
        (None, "none"),
        ("indexing_diskann", "diskann"),
        ("indexing_hnsw", "hnsw"),
        ("indexing_none", "none"),
        ("something_else", "none"),
    ],
)
async def test_indexing_default_follows_the_ai_indexing_default_setting(
    conn: asyncpg.Connection, setting: str | None, implementation: str
) -> None:
    if setting is not None:
        await conn.execute(
            "select pg_catalog.set_config('ai.indexing_default', $1, false)", setting
        )
    resolved = await config(conn, "ai._resolve_indexing_default()")
    expected = {"indexing_diskann": "ai.indexing_diskann()", "indexing_hnsw": "ai.indexing_hnsw()"}
    assert resolved == await config(conn, expected.get(setting or "", "ai.indexing_none()"))
    assert resolved["implementation"] == implementation


@pytest.mark.parametrize(
    ("setting", "implementation"),
    [
        (None, "none"),
        ("scheduling_timescaledb", "timescaledb"),
        ("scheduling_none", "none"),
        ("something_else", "none"),
    ],
)
async def test_scheduling_default_follows_the_ai_scheduling_default_setting(
    conn: asyncpg.Connection, setting: str | None, implementation: str
) -> None:
    if setting is not None:
        await conn.execute(
            "select pg_catalog.set_config('ai.scheduling_default', $1, false)", setting
        )
    resolved = await config(conn, "ai._resolve_scheduling_default()")
    expected = "ai.scheduling_timescaledb()" if implementation == "timescaledb" else None
    assert resolved == await config(conn, expected or "ai.scheduling_none()")


# ------------------------------------------------------------------------------------------
# grant_to


async def test_grant_to_without_default_setting_is_the_given_roles_sorted_and_distinct(
    conn: asyncpg.Connection,
) -> None:
    assert await conn.fetchval("select ai.grant_to('bob', 'alice', 'bob')") == ["alice", "bob"]


async def test_grant_to_without_anything_is_empty(conn: asyncpg.Connection) -> None:
    assert await conn.fetchval("select ai.grant_to()") == []


async def test_grant_to_adds_the_roles_of_ai_grant_to_default(conn: asyncpg.Connection) -> None:
    await conn.execute("set ai.grant_to_default = ' carol , bob,,'")
    assert await conn.fetchval("select ai.grant_to()") == ["bob", "carol"]
    assert await conn.fetchval("select ai.grant_to('alice', 'bob')") == ["alice", "bob", "carol"]


async def test_grant_to_ignores_null_roles(conn: asyncpg.Connection) -> None:
    assert await conn.fetchval("select ai.grant_to('alice', null)") == ["alice"]


async def rejects(
    conn: asyncpg.Connection,
    call: str,
    message: str,
    error: type[asyncpg.PostgresError] = asyncpg.InvalidParameterValueError,
) -> None:
    with pytest.raises(error) as raised:
        await conn.execute(f"select {call}")
    assert message in str(raised.value)


async def accepts(conn: asyncpg.Connection, call: str) -> None:
    await conn.execute(f"select {call}")


def chunking(body: str) -> str:
    return (
        f"""'{{"implementation": "character_text_splitter", "config_type": "chunking", {body}}}'"""
    )


INVALID_CHUNKING = {
    "null": ("null", "chunking configuration is required"),
    "not an object": ("'[800]'", "chunking config must be a json object"),
    "another section": (
        "ai.embedding_openai('m', 3)",
        'chunking config has config_type "embedding", expected "chunking"',
    ),
    "unknown implementation": (
        """'{"implementation": "semantic", "config_type": "chunking"}'""",
        'invalid chunking implementation "semantic"',
    ),
    "no chunk_size": (
        "ai.chunking_character_text_splitter(chunk_size => null)",
        "chunk_size must be a positive integer: pass chunk_size => N",
    ),
    "zero chunk_size": (
        "ai.chunking_recursive_character_text_splitter(0, 0)",
        "chunk_size must be a positive integer",
    ),
    "fractional chunk_size": (
        chunking('"chunk_size": 10.5, "chunk_overlap": 1'),
        "chunk_size must be a positive integer",
    ),
    "chunk_size as text": (
        chunking('"chunk_size": "800", "chunk_overlap": 1'),
        "chunk_size must be a positive integer: pass chunk_size => N, the maximum length of "
        'a chunk in characters (got "800")',
    ),
    "no chunk_overlap": (
        "ai.chunking_character_text_splitter(chunk_overlap => null)",
        "chunk_overlap must be an integer >= 0",
    ),
    "negative chunk_overlap": (
        "ai.chunking_character_text_splitter(300, -1)",
        "chunk_overlap must be an integer >= 0: pass chunk_overlap => N",
    ),
    "overlap larger than size": (
        "ai.chunking_character_text_splitter(300, 400)",
        "chunk_overlap (400) must be smaller than chunk_size (300): lower chunk_overlap or "
        "raise chunk_size",
    ),
    "overlap equal to size": (
        "ai.chunking_recursive_character_text_splitter(300, 300)",
        "chunk_overlap (300) must be smaller than chunk_size (300)",
    ),
    "the default overlap with a small size": (
        "ai.chunking_recursive_character_text_splitter(chunk_size => 200)",
        "chunk_overlap (400) must be smaller than chunk_size (200)",
    ),
    "is_separator_regex as text": (
        chunking('"chunk_size": 10, "chunk_overlap": 1, "is_separator_regex": "yes"'),
        "is_separator_regex must be true or false",
    ),
    "separator not a string": (
        chunking('"chunk_size": 10, "chunk_overlap": 1, "separator": 1'),
        "separator must be a string",
    ),
    "separators not all strings": (
        """'{"implementation": "recursive_character_text_splitter", "config_type": "chunking",
             "chunk_size": 10, "chunk_overlap": 1, "separators": ["\\n", 1]}'""",
        "separators must be an array of strings",
    ),
}


@pytest.mark.parametrize(
    ("config_sql", "message"), INVALID_CHUNKING.values(), ids=list(INVALID_CHUNKING)
)
async def test_validate_chunking_rejects(
    conn: asyncpg.Connection, config_sql: str, message: str
) -> None:
    await rejects(conn, f"ai._validate_chunking({config_sql})", message)


@pytest.mark.parametrize(
    "config_sql",
    [
        "ai.chunking_character_text_splitter()",
        "ai.chunking_recursive_character_text_splitter()",
        "ai.chunking_none()",
        "ai.chunking_recursive_character_text_splitter(1, 0)",
        "ai.chunking_character_text_splitter(300, 299, ' ', true)",
        "ai.chunking_recursive_character_text_splitter(separators => null)",
    ],
)
async def test_validate_chunking_accepts(conn: asyncpg.Connection, config_sql: str) -> None:
    await accepts(conn, f"ai._validate_chunking({config_sql})")


INVALID_EMBEDDING = {
    "null": ("null", "embedding configuration is required"),
    "not an object": ("'\"openai\"'", "embedding config must be a json object"),
    "another section": (
        "ai.chunking_none()",
        'embedding config has config_type "chunking", expected "embedding"',
    ),
    "unknown implementation": (
        """'{"implementation": "cohere", "config_type": "embedding", "model": "m",
             "dimensions": 3}'""",
        'invalid embedding implementation "cohere"',
    ),
    "no model": ("ai.embedding_openai(null, 3)", "embedding model is required"),
    "empty model": ("ai.embedding_ollama('', 3)", "embedding model is required"),
    "no dimensions": (
        "ai.embedding_openai('m', null)",
        "embedding dimensions must be a positive integer: pass dimensions => N, the size of "
        "the model's vectors",
    ),
    "zero dimensions": (
        "ai.embedding_voyageai('m', 0)",
        "embedding dimensions must be a positive integer",
    ),
    "negative dimensions": (
        "ai.embedding_litellm('m', -5)",
        "embedding dimensions must be a positive integer",
    ),
    "dimensions as text": (
        """'{"implementation": "openai", "config_type": "embedding", "model": "m",
             "dimensions": "768"}'""",
        "embedding dimensions must be a positive integer",
    ),
    "fractional dimensions": (
        """'{"implementation": "openai", "config_type": "embedding", "model": "m",
             "dimensions": 7.5}'""",
        "embedding dimensions must be a positive integer",
    ),
    "empty api_key_name": (
        "ai.embedding_openai('m', 3, api_key_name => '')",
        "api_key_name must be the name of an environment variable or secret",
    ),
    "unknown voyageai input_type": (
        """'{"implementation": "voyageai", "config_type": "embedding", "model": "m",
             "dimensions": 3, "input_type": "search"}'""",
        "invalid input_type",
    ),
    "ollama options not an object": (
        "ai.embedding_ollama('m', 3, options => '[1]')",
        "ollama options must be a json object",
    ),
    "litellm extra_options not an object": (
        "ai.embedding_litellm('m', 3, extra_options => '\"x\"')",
        "litellm extra_options must be a json object",
    ),
}


@pytest.mark.parametrize(
    ("config_sql", "message"), INVALID_EMBEDDING.values(), ids=list(INVALID_EMBEDDING)
)
async def test_validate_embedding_rejects(
    conn: asyncpg.Connection, config_sql: str, message: str
) -> None:
    await rejects(conn, f"ai._validate_embedding({config_sql})", message)


@pytest.mark.parametrize(
    "config_sql",
    [
        "ai.embedding_openai('text-embedding-3-small', 1536)",
        "ai.embedding_openai('m', 1, chat_user => 'u', base_url => 'http://x')",
        "ai.embedding_ollama('nomic-embed-text', 768, options => '{\"num_ctx\": 1}')",
        "ai.embedding_voyageai('voyage-3.5', 1024)",
        "ai.embedding_voyageai('voyage-3.5', 1024, input_type => null)",
        "ai.embedding_litellm('cohere/embed-english-v3.0', 1024, 'COHERE_API_KEY')",
        "ai.embedding_sentence_transformers()",
    ],
)
async def test_validate_embedding_accepts(conn: asyncpg.Connection, config_sql: str) -> None:
    await accepts(conn, f"ai._validate_embedding({config_sql})")


INVALID_INDEXING = {
    "null": ("null", "indexing configuration is required"),
    "not an object": ("'1'", "indexing config must be a json object"),
    "another section": (
        "ai.scheduling_none()",
        'indexing config has config_type "scheduling", expected "indexing"',
    ),
    "unresolved default": ("ai.indexing_default()", 'invalid indexing implementation "default"'),
    "unknown implementation": (
        """'{"implementation": "ivfflat", "config_type": "indexing"}'""",
        'invalid indexing implementation "ivfflat"',
    ),
    "unknown storage_layout": (
        "ai.indexing_diskann(storage_layout => 'compact')",
        "invalid diskann storage_layout \"compact\": pass storage_layout => 'memory_optimized' "
        "or 'plain'",
    ),
    "unsupported hnsw opclass": (
        "ai.indexing_hnsw(opclass => 'vector_l2_ops')",
        'invalid hnsw opclass "vector_l2_ops"',
    ),
    "negative min_rows": (
        "ai.indexing_hnsw(min_rows => -1)",
        "min_rows of hnsw indexing must be an integer >= 0",
    ),
    "zero m": ("ai.indexing_hnsw(m => 0)", "m of hnsw indexing must be an integer >= 1"),
    "zero num_neighbors": (
        "ai.indexing_diskann(num_neighbors => 0)",
        "num_neighbors of diskann indexing must be an integer >= 1",
    ),
    "search_list_size as text": (
        """'{"implementation": "diskann", "config_type": "indexing",
             "search_list_size": "100"}'""",
        "search_list_size of diskann indexing must be an integer",
    ),
    "non-positive max_alpha": (
        "ai.indexing_diskann(max_alpha => 0)",
        "max_alpha of diskann indexing must be a positive number",
    ),
    "create_when_queue_empty as text": (
        """'{"implementation": "hnsw", "config_type": "indexing",
             "create_when_queue_empty": "true"}'""",
        "create_when_queue_empty must be true or false",
    ),
}


@pytest.mark.parametrize(
    ("config_sql", "message"), INVALID_INDEXING.values(), ids=list(INVALID_INDEXING)
)
async def test_validate_indexing_rejects(
    conn: asyncpg.Connection, config_sql: str, message: str
) -> None:
    await rejects(conn, f"ai._validate_indexing({config_sql})", message)


@pytest.mark.parametrize(
    "config_sql",
    [
        "ai.indexing_none()",
        "ai.indexing_diskann()",
        "ai.indexing_diskann(0, 'memory_optimized', 50, 100, 1.2, 0, 2, false)",
        "ai.indexing_diskann(storage_layout => 'plain')",
        "ai.indexing_hnsw()",
        "ai.indexing_hnsw(opclass => 'vector_ip_ops')",
        "ai.indexing_hnsw(10, 'vector_l1_ops', 16, 64, false)",
    ],
)
async def test_validate_indexing_accepts(conn: asyncpg.Connection, config_sql: str) -> None:
    await accepts(conn, f"ai._validate_indexing({config_sql})")


INVALID_SCHEDULING = {
    "null": ("null", "scheduling configuration is required"),
    "not an object": ("'[]'", "scheduling config must be a json object"),
    "another section": (
        "ai.indexing_none()",
        'scheduling config has config_type "indexing", expected "scheduling"',
    ),
    "unresolved default": (
        "ai.scheduling_default()",
        'invalid scheduling implementation "default"',
    ),
    "unknown implementation": (
        """'{"implementation": "cron", "config_type": "scheduling"}'""",
        'invalid scheduling implementation "cron"',
    ),
    "schedule_interval not an interval": (
        """'{"implementation": "timescaledb", "config_type": "scheduling",
             "schedule_interval": "often"}'""",
        'schedule_interval "often" is not a valid interval',
    ),
    "schedule_interval as a number": (
        """'{"implementation": "timescaledb", "config_type": "scheduling",
             "schedule_interval": 300}'""",
        "schedule_interval must be an interval written as a string",
    ),
    "initial_start not a timestamp": (
        """'{"implementation": "timescaledb", "config_type": "scheduling",
             "initial_start": "tomorrow-ish"}'""",
        'initial_start "tomorrow-ish" is not a valid timestamptz',
    ),
    "fixed_schedule as text": (
        """'{"implementation": "timescaledb", "config_type": "scheduling",
             "fixed_schedule": "yes"}'""",
        "fixed_schedule must be true or false",
    ),
    "timezone as a number": (
        """'{"implementation": "timescaledb", "config_type": "scheduling", "timezone": 1}'""",
        "timezone must be a string naming a time zone",
    ),
}


@pytest.mark.parametrize(
    ("config_sql", "message"), INVALID_SCHEDULING.values(), ids=list(INVALID_SCHEDULING)
)
async def test_validate_scheduling_rejects(
    conn: asyncpg.Connection, config_sql: str, message: str
) -> None:
    await rejects(conn, f"ai._validate_scheduling({config_sql})", message)


@pytest.mark.parametrize(
    "config_sql",
    [
        "ai.scheduling_none()",
        "ai.scheduling_timescaledb()",
        "ai.scheduling_timescaledb('1 hour', '2050-01-06 00:00+00', true, 'Europe/Berlin')",
    ],
)
async def test_validate_scheduling_accepts(conn: asyncpg.Connection, config_sql: str) -> None:
    await accepts(conn, f"ai._validate_scheduling({config_sql})")


INVALID_PROCESSING = {
    "null": ("null", "processing configuration is required"),
    "not an object": ("'\"fast\"'", "processing config must be a json object"),
    "another section": (
        "ai.indexing_none()",
        'processing config has config_type "indexing", expected "processing"',
    ),
    "unknown implementation": (
        """'{"implementation": "fast", "config_type": "processing"}'""",
        'invalid processing implementation "fast"',
    ),
    "zero batch_size": (
        "ai.processing_default(batch_size => 0)",
        "batch_size must be an integer between 1 and 2048: pass batch_size => N",
    ),
    "batch_size above 2048": (
        "ai.processing_default(batch_size => 2049)",
        "batch_size must be an integer between 1 and 2048",
    ),
    "batch_size as text": (
        """'{"implementation": "default", "config_type": "processing", "batch_size": "10"}'""",
        "batch_size must be an integer between 1 and 2048",
    ),
    "zero concurrency": (
        "ai.processing_default(concurrency => 0)",
        "concurrency must be an integer between 1 and 50: pass concurrency => N",
    ),
    "concurrency above 50": (
        "ai.processing_default(concurrency => 51)",
        "concurrency must be an integer between 1 and 50",
    ),
    "fractional concurrency": (
        """'{"implementation": "default", "config_type": "processing", "concurrency": 1.5}'""",
        "concurrency must be an integer between 1 and 50",
    ),
}


@pytest.mark.parametrize(
    ("config_sql", "message"), INVALID_PROCESSING.values(), ids=list(INVALID_PROCESSING)
)
async def test_validate_processing_rejects(
    conn: asyncpg.Connection, config_sql: str, message: str
) -> None:
    await rejects(conn, f"ai._validate_processing({config_sql})", message)


@pytest.mark.parametrize(
    "config_sql",
    [
        "ai.processing_default()",
        "ai.processing_default(1, 1)",
        "ai.processing_default(2048, 50)",
        "ai.processing_default(concurrency => 10)",
    ],
)
async def test_validate_processing_accepts(conn: asyncpg.Connection, config_sql: str) -> None:
    await accepts(conn, f"ai._validate_processing({config_sql})")


INVALID_DESTINATION = {
    "null": ("null", "ai.chunking_none()", "destination configuration is required"),
    "not an object": ("'[]'", "ai.chunking_none()", "destination config must be a json object"),
    "another section": (
        "ai.loading_column('body')",
        "ai.chunking_none()",
        'destination config has config_type "loading", expected "destination"',
    ),
    "unknown implementation": (
        """'{"implementation": "view", "config_type": "destination"}'""",
        "ai.chunking_none()",
        'invalid destination implementation "view"',
    ),
    "table key not a name": (
        "ai.destination_table() || '{\"target_table\": 3}'",
        "ai.chunking_recursive_character_text_splitter()",
        "destination target_table must be a name",
    ),
    "column without embedding_column": (
        "ai.destination_column(null)",
        "ai.chunking_none()",
        "destination embedding_column is required",
    ),
    "column with chunking": (
        "ai.destination_column('embedding')",
        "ai.chunking_recursive_character_text_splitter()",
        "destination_column stores one embedding per row, so it needs chunking => "
        "ai.chunking_none()",
    ),
}


@pytest.mark.parametrize(
    ("destination_sql", "chunking_sql", "message"),
    INVALID_DESTINATION.values(),
    ids=list(INVALID_DESTINATION),
)
async def test_validate_destination_rejects(
    conn: asyncpg.Connection, destination_sql: str, chunking_sql: str, message: str
) -> None:
    await rejects(conn, f"ai._validate_destination({destination_sql}, {chunking_sql})", message)


@pytest.mark.parametrize(
    ("destination_sql", "chunking_sql"),
    [
        ("ai.destination_table()", "ai.chunking_recursive_character_text_splitter()"),
        ("ai.destination_table('d', 's', 't', 'v', 'w')", "ai.chunking_none()"),
        ("ai.destination_column('embedding')", "ai.chunking_none()"),
    ],
)
async def test_validate_destination_accepts(
    conn: asyncpg.Connection, destination_sql: str, chunking_sql: str
) -> None:
    await accepts(conn, f"ai._validate_destination({destination_sql}, {chunking_sql})")


INVALID_FORMATTING = {
    "null": ("null", "docs", "formatting configuration is required"),
    "not an object": ("'\"$chunk\"'", "docs", "formatting config must be a json object"),
    "another section": (
        "ai.parsing_auto()",
        "docs",
        'formatting config has config_type "parsing", expected "formatting"',
    ),
    "legacy chunk_value": (
        """'{"implementation": "chunk_value", "config_type": "formatting"}'""",
        "docs",
        'invalid formatting implementation "chunk_value": only "python_template" is supported',
    ),
    "no template": (
        "ai.formatting_python_template(null)",
        "docs",
        "formatting template must be a string",
    ),
    "template without $chunk": (
        "ai.formatting_python_template('$title')",
        "docs",
        'formatting template "$title" does not contain $chunk: add $chunk',
    ),
    "template with only a longer placeholder": (
        "ai.formatting_python_template('$chunk_id')",
        "docs",
        "does not contain $chunk",
    ),
    "source column named chunk": (
        "ai.formatting_python_template()",
        "has_chunk",
        'the source table public.has_chunk has a column named "chunk"',
    ),
}


@pytest.mark.parametrize(
    ("config_sql", "table", "message"), INVALID_FORMATTING.values(), ids=list(INVALID_FORMATTING)
)
async def test_validate_formatting_rejects(
    conn: asyncpg.Connection, config_sql: str, table: str, message: str
) -> None:
    await rejects(conn, f"ai._validate_formatting({config_sql}, 'public', '{table}')", message)


async def test_validate_formatting_reports_a_missing_source_table(
    conn: asyncpg.Connection,
) -> None:
    await rejects(
        conn,
        "ai._validate_formatting(ai.formatting_python_template(), 'public', 'nope')",
        "source table public.nope does not exist",
        asyncpg.UndefinedTableError,
    )


@pytest.mark.parametrize("template", ["$chunk", "${chunk}", "$title: $chunk.", "$chunk_id $chunk"])
async def test_validate_formatting_accepts(conn: asyncpg.Connection, template: str) -> None:
    await conn.execute(
        "select ai._validate_formatting(ai.formatting_python_template($1), 'public', 'docs')",
        template,
    )


INVALID_LOADING = {
    "null": ("null", "loading configuration is required"),
    "not an object": ("'\"body\"'", "loading config must be a json object"),
    "another section": (
        "ai.parsing_auto()",
        'loading config has config_type "parsing", expected "loading"',
    ),
    "unknown implementation": (
        """'{"implementation": "file", "config_type": "loading", "column_name": "body"}'""",
        'invalid loading implementation "file"',
    ),
    "no column_name": ("ai.loading_column(null)", "loading column_name is required"),
    "negative retries": (
        "ai.loading_column('body', -1)",
        "loading retries must be an integer >= 0: pass retries => N",
    ),
    "retries as text": (
        """'{"implementation": "column", "config_type": "loading", "column_name": "body",
             "retries": "6"}'""",
        "loading retries must be an integer >= 0",
    ),
    "malformed aws_role_arn": (
        "ai.loading_uri('url', aws_role_arn => 'reader')",
        'invalid aws_role_arn "reader": pass the ARN of an IAM role',
    ),
    "aws_role_arn with column loading": (
        """ai.loading_column('body') || '{"aws_role_arn": "arn:aws:iam::1:role/r"}'""",
        "aws_role_arn only applies to uri loading",
    ),
    "integer column": (
        "ai.loading_column('n')",
        "loading column n has type integer, but must be text, varchar, char or bytea",
    ),
    "jsonb column": ("ai.loading_column('meta')", "loading column meta has type jsonb"),
    "uri from a bytea column": (
        "ai.loading_uri('doc')",
        "loading_uri needs a text column holding the URI, but doc is bytea",
    ),
    "uri from a bytea domain": ("ai.loading_uri('attachment')", "but attachment is bytea"),
}


@pytest.mark.parametrize(
    ("config_sql", "message"), INVALID_LOADING.values(), ids=list(INVALID_LOADING)
)
async def test_validate_loading_rejects(
    conn: asyncpg.Connection, config_sql: str, message: str
) -> None:
    await rejects(conn, f"ai._validate_loading({config_sql}, 'public', 'docs')", message)


@pytest.mark.parametrize(
    ("config_sql", "table", "error", "message"),
    [
        (
            "ai.loading_column('nope')",
            "docs",
            asyncpg.UndefinedColumnError,
            "loading column nope does not exist in the source table public.docs",
        ),
        (
            "ai.loading_column('mixed case')",
            "docs",
            asyncpg.UndefinedColumnError,
            'loading column "mixed case" does not exist',
        ),
        (
            "ai.loading_column('body')",
            "nope",
            asyncpg.UndefinedTableError,
            "source table public.nope does not exist",
        ),
    ],
    ids=["missing column", "column name is case sensitive", "missing table"],
)
async def test_validate_loading_reports_missing_objects(
    conn: asyncpg.Connection,
    config_sql: str,
    table: str,
    error: type[asyncpg.PostgresError],
    message: str,
) -> None:
    await rejects(conn, f"ai._validate_loading({config_sql}, 'public', '{table}')", message, error)


@pytest.mark.parametrize(
    "config_sql",
    [
        "ai.loading_column('body')",
        "ai.loading_column('title', 0)",
        "ai.loading_column('code')",
        "ai.loading_column('flag')",
        "ai.loading_column('summary')",
        "ai.loading_column('doc')",
        "ai.loading_column('attachment')",
        "ai.loading_column('Mixed Case')",
        "ai.loading_uri('url')",
        "ai.loading_uri('title', 1, 'arn:aws:iam::123456789012:role/reader')",
        "ai.loading_uri('url', retries => null)",
    ],
)
async def test_validate_loading_accepts(conn: asyncpg.Connection, config_sql: str) -> None:
    await accepts(conn, f"ai._validate_loading({config_sql}, 'public', 'docs')")


INVALID_PARSING = {
    "null": ("null", "ai.loading_column('body')", "parsing configuration is required"),
    "not an object": (
        "'\"auto\"'",
        "ai.loading_column('body')",
        "parsing config must be a json object",
    ),
    "another section": (
        "ai.chunking_none()",
        "ai.loading_column('body')",
        'parsing config has config_type "chunking", expected "parsing"',
    ),
    "unknown implementation": (
        """'{"implementation": "tika", "config_type": "parsing"}'""",
        "ai.loading_column('body')",
        'invalid parsing implementation "tika"',
    ),
    "none on a bytea column": (
        "ai.parsing_none()",
        "ai.loading_column('doc')",
        "parsing_none cannot read the bytea column doc",
    ),
    "none on a bytea domain column": (
        "ai.parsing_none()",
        "ai.loading_column('attachment')",
        "parsing_none cannot read the bytea column attachment",
    ),
    "pymupdf on a text column": (
        "ai.parsing_pymupdf()",
        "ai.loading_column('body')",
        "parsing_pymupdf parses document bytes, but the loaded column body is not bytea",
    ),
    "docling on a text column": (
        "ai.parsing_docling()",
        "ai.loading_column('title')",
        "parsing_docling parses document bytes, but the loaded column title is not bytea",
    ),
}


@pytest.mark.parametrize(
    ("parsing_sql", "loading_sql", "message"),
    INVALID_PARSING.values(),
    ids=list(INVALID_PARSING),
)
async def test_validate_parsing_rejects(
    conn: asyncpg.Connection, parsing_sql: str, loading_sql: str, message: str
) -> None:
    await rejects(
        conn, f"ai._validate_parsing({parsing_sql}, {loading_sql}, 'public', 'docs')", message
    )


@pytest.mark.parametrize(
    ("parsing_sql", "loading_sql"),
    [
        ("ai.parsing_auto()", "ai.loading_column('body')"),
        ("ai.parsing_auto()", "ai.loading_column('doc')"),
        ("ai.parsing_auto()", "ai.loading_uri('url')"),
        ("ai.parsing_none()", "ai.loading_column('body')"),
        ("ai.parsing_none()", "ai.loading_uri('url')"),
        ("ai.parsing_pymupdf()", "ai.loading_column('doc')"),
        ("ai.parsing_pymupdf()", "ai.loading_column('attachment')"),
        ("ai.parsing_pymupdf()", "ai.loading_uri('url')"),
        ("ai.parsing_docling()", "ai.loading_column('doc')"),
        ("ai.parsing_docling()", "ai.loading_uri('url')"),
    ],
)
async def test_validate_parsing_accepts(
    conn: asyncpg.Connection, parsing_sql: str, loading_sql: str
) -> None:
    await accepts(conn, f"ai._validate_parsing({parsing_sql}, {loading_sql}, 'public', 'docs')")
