"""Every embedding provider the catalog can name, end to end through ``Worker(once=True)``:
real PostgreSQL, real HTTP to a local server speaking the provider's wire format (or the local
model in-process)."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from collections.abc import Iterator
from datetime import timedelta

import asyncpg
import pytest

from pgai.vectorizer import Worker
from pgai.vectorizer.embedders.base import RetryPolicy
from pgai.vectorizer.embedders.ratelimit import reset_rate_limiters
from pgai.vectorizer.tokens import encoding_for_model
from tests.fake_provider import FakeProvider, fake_vector

DIMS = 8
BODIES = {
    1: "The cat sat on the mat.",
    2: "Stock markets fell sharply on Monday.",
    3: "日本語のテキストも埋め込みます。",
    4: "",
}


@pytest.fixture(autouse=True)
def fresh_limiters() -> Iterator[None]:
    reset_rate_limiters()
    yield
    reset_rate_limiters()


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    with FakeProvider(dimensions=DIMS) as p:
        yield p


def make_worker(db_url: str) -> Worker:
    return Worker(
        db_url,
        once=True,
        provider_retry=RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.05),
        retry_backoff=timedelta(milliseconds=1),
        max_retry_backoff=timedelta(milliseconds=2),
    )


async def create_doc_vectorizer(conn: asyncpg.Connection, embedding_sql: str, *args: object) -> int:
    await conn.execute("CREATE TABLE doc (id int PRIMARY KEY, body text)")
    await conn.executemany("INSERT INTO doc VALUES ($1, $2)", list(BODIES.items()))
    return int(
        await conn.fetchval(
            f"""
            SELECT ai.create_vectorizer('doc'::regclass,
                loading => ai.loading_column('body'),
                embedding => {embedding_sql},
                chunking => ai.chunking_none(),
                processing => ai.processing_default(batch_size => 2))
            """,
            *args,
        )
    )


async def stored_vectors(conn: asyncpg.Connection) -> dict[int, tuple[str, list[float]]]:
    rows = await conn.fetch(
        "SELECT id, chunk, embedding::text AS e FROM doc_embedding_store ORDER BY id, chunk_seq"
    )
    return {r["id"]: (r["chunk"], [float(x) for x in r["e"].strip("[]").split(",")]) for r in rows}


async def assert_drained(conn: asyncpg.Connection) -> None:
    assert await conn.fetchval("SELECT count(*) FROM ai._vectorizer_q_1") == 0
    assert await conn.fetchval("SELECT count(*) FROM ai._vectorizer_q_failed_1") == 0
    assert await conn.fetchval("SELECT count(*) FROM ai.vectorizer_errors") == 0


def assert_fake_vectors(stored: dict[int, tuple[str, list[float]]]) -> None:
    # the empty body produces no chunk; every other row is its one chunk's fake vector
    assert sorted(stored) == [1, 2, 3]
    for pk, (chunk, vector) in stored.items():
        assert chunk == BODIES[pk]
        assert vector == pytest.approx(fake_vector(BODIES[pk], DIMS), rel=1e-6)


async def test_openai_end_to_end(
    db_url: str, conn: asyncpg.Connection, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-e2e")
    await create_doc_vectorizer(
        conn,
        "ai.embedding_openai('text-embedding-3-small', $1, chat_user => 'u1', base_url => $2)",
        DIMS,
        provider.url,
    )
    assert await make_worker(db_url).run() is None
    await assert_drained(conn)
    assert_fake_vectors(await stored_vectors(conn))
    request = provider.embedding_requests()[0]
    assert request.headers["Authorization"] == "Bearer sk-e2e"
    assert request.body["user"] == "u1"
    assert request.body["dimensions"] == DIMS


async def test_openai_truncates_what_it_sends_and_stores_the_full_chunk(
    db_url: str, conn: asyncpg.Connection, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-e2e")
    long_text = " ".join(f"word{i}" for i in range(6000))
    encoding = encoding_for_model("text-embedding-3-small")
    assert encoding is not None
    tokens = encoding.encode(long_text)
    assert len(tokens) > 8191
    await conn.execute("CREATE TABLE doc (id int PRIMARY KEY, body text)")
    await conn.execute("INSERT INTO doc VALUES (1, $1)", long_text)
    await conn.fetchval(
        """
        SELECT ai.create_vectorizer('doc'::regclass,
            loading => ai.loading_column('body'),
            embedding => ai.embedding_openai('text-embedding-3-small', $1, base_url => $2),
            chunking => ai.chunking_none())
        """,
        DIMS,
        provider.url,
    )
    assert await make_worker(db_url).run() is None
    [sent] = provider.embedded_texts()
    assert sent == encoding.decode(tokens[:8191])
    stored = await stored_vectors(conn)
    chunk, vector = stored[1]
    assert chunk == long_text
    assert vector == pytest.approx(fake_vector(sent, DIMS), rel=1e-6)


async def test_ollama_end_to_end_pulls_the_model_and_forwards_options(
    db_url: str, conn: asyncpg.Connection, provider: FakeProvider
) -> None:
    await create_doc_vectorizer(
        conn,
        "ai.embedding_ollama('nomic-embed-text', $1, base_url => $2, "
        "options => '{\"num_ctx\": 512}', keep_alive => '10m')",
        DIMS,
        provider.base,
    )
    assert await make_worker(db_url).run() is None
    await assert_drained(conn)
    assert_fake_vectors(await stored_vectors(conn))
    assert provider.ollama_pulls == ["nomic-embed-text"]
    embeds = provider.embedding_requests()
    assert {r.path for r in embeds} == {"/api/embed"}
    assert all(r.body["options"] == {"num_ctx": 512} for r in embeds)
    assert all(r.body["keep_alive"] == "10m" for r in embeds)


async def test_ollama_host_from_the_environment(
    db_url: str,
    conn: asyncpg.Connection,
    provider: FakeProvider,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OLLAMA_HOST", provider.base.removeprefix("http://"))
    provider.ollama_models.add("all-minilm")
    await create_doc_vectorizer(conn, "ai.embedding_ollama('all-minilm', $1)", DIMS)
    assert await make_worker(db_url).run() is None
    await assert_drained(conn)
    assert_fake_vectors(await stored_vectors(conn))
    assert provider.ollama_pulls == []


async def test_voyage_end_to_end(
    db_url: str, conn: asyncpg.Connection, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOYAGE_API_KEY", "pa-e2e")
    monkeypatch.setenv("VOYAGE_API_BASE", provider.url)
    provider.voyage_base64 = True  # the parser takes base64 as well as floats
    await create_doc_vectorizer(conn, "ai.embedding_voyageai('voyage-3.5', $1)", DIMS)
    assert await make_worker(db_url).run() is None
    await assert_drained(conn)
    assert_fake_vectors(await stored_vectors(conn))
    request = provider.embedding_requests()[0]
    assert request.headers["Authorization"] == "Bearer pa-e2e"
    assert request.body["input_type"] == "document"
    assert request.body["truncation"] is True


async def test_litellm_without_its_package_is_a_clear_error_and_loses_nothing(
    db_url: str, conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "litellm", None)
    await create_doc_vectorizer(conn, "ai.embedding_litellm('cohere/embed-english-v3.0', $1)", DIMS)
    error = await make_worker(db_url).run()
    assert error is not None
    assert "pip install 'pgai[litellm]'" in str(error)
    details = json.loads(await conn.fetchval("SELECT details FROM ai.vectorizer_errors"))
    assert "pip install 'pgai[litellm]'" in details["error_reason"]
    assert await conn.fetchval("SELECT count(*) FROM ai._vectorizer_q_1") == len(BODIES)
    assert await conn.fetchval("SELECT count(*) FROM doc_embedding_store") == 0


async def test_litellm_end_to_end_through_an_openai_compatible_server(
    db_url: str, conn: asyncpg.Connection, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    if importlib.util.find_spec("litellm") is None:
        pytest.skip("the litellm extra is not installed")
    monkeypatch.setenv("MY_LITELLM_KEY", "sk-litellm")
    await create_doc_vectorizer(
        conn,
        "ai.embedding_litellm('openai/text-embedding-3-small', $1,"
        " api_key_name => 'MY_LITELLM_KEY', extra_options => $2::jsonb)",
        DIMS,
        json.dumps({"api_base": provider.url}),
    )
    assert await make_worker(db_url).run() is None
    await assert_drained(conn)
    assert_fake_vectors(await stored_vectors(conn))
    request = provider.embedding_requests()[0]
    headers = {name.lower(): value for name, value in request.headers.items()}
    assert headers["authorization"] == "Bearer sk-litellm"
    assert request.body["model"] == "text-embedding-3-small"


async def test_local_model_end_to_end(db_url: str, conn: asyncpg.Connection) -> None:
    pytest.importorskip(
        "sentence_transformers",
        reason="the local extra is not installed (pip install torch==2.13.0 'pgai[local]')",
    )
    await create_doc_vectorizer(conn, "ai.embedding_sentence_transformers('all-MiniLM-L6-v2', 384)")
    await conn.execute("INSERT INTO doc VALUES (5, 'A kitten rests on a rug.')")
    assert await make_worker(db_url).run() is None
    await assert_drained(conn)
    stored = await stored_vectors(conn)
    assert sorted(stored) == [1, 2, 3, 5]
    vectors = {pk: vector for pk, (_chunk, vector) in stored.items()}
    for vector in vectors.values():
        assert len(vector) == 384
        assert math.sqrt(sum(x * x for x in vector)) == pytest.approx(1.0, abs=1e-4)
    distance = await conn.fetch(
        "SELECT b.id, a.embedding <=> b.embedding AS d FROM doc_embedding_store a, "
        "doc_embedding_store b WHERE a.id = 1 AND b.id <> 1 ORDER BY d"
    )
    # the cat on the mat is nearest to the kitten on the rug
    assert distance[0]["id"] == 5
