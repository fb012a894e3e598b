"""Our worker on a catalog that Timescale's pgai 0.12.1 installed and whose vectorizers its own
SQL API created: the database needs no change to switch workers."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from pgai.vectorizer import Worker
from pgai.vectorizer.embedders.base import RetryPolicy
from tests.fake_provider import FakeProvider, fake_vector
from tests.test_compat_pgai import one_database, reference_install_ok, reference_pgai

__all__ = ["one_database", "reference_pgai"]  # fixtures used below

pytestmark = pytest.mark.compat


async def test_a_vectorizer_created_by_pgai_is_processed_by_our_worker(
    reference_pgai: Path, one_database: str, provider: FakeProvider, openai_key: str
) -> None:
    await reference_install_ok(reference_pgai, one_database)
    conn = await asyncpg.connect(one_database)
    try:
        assert (
            await conn.fetchval("SELECT version FROM ai.pgai_lib_version WHERE name = 'ai'")
            == "0.12.1"
        )
        await conn.execute(
            "CREATE TABLE post (id int, lang text, title text, body text, PRIMARY KEY (lang, id))"
        )
        await conn.execute(
            "INSERT INTO post SELECT i, 'en', 'title ' || i, repeat('sentence ' || i || '. ', 40) "
            "FROM generate_series(1, 15) i"
        )
        await conn.execute("INSERT INTO post VALUES (99, 'de', 'leer', '')")
        vid = await conn.fetchval(
            """
            SELECT ai.create_vectorizer('post'::regclass,
                loading => ai.loading_column('body'),
                embedding => ai.embedding_openai('text-embedding-3-small', 8, base_url => $1),
                chunking => ai.chunking_recursive_character_text_splitter(200, 50),
                formatting => ai.formatting_python_template('$title ($lang): $chunk'))
            """,
            provider.url,
        )
        worker = Worker(
            one_database,
            once=True,
            provider_retry=RetryPolicy(attempts=2, base_delay=0.01),
            retry_backoff=timedelta(milliseconds=1),
        )
        assert await worker.run() is None
        assert await conn.fetchval(f"SELECT ai.vectorizer_queue_pending({vid}, true)") == 0
        rows = await conn.fetch(
            "SELECT id, lang, chunk_seq, chunk, embedding::text AS e FROM post_embedding_store "
            "ORDER BY lang, id, chunk_seq"
        )
        assert {r["id"] for r in rows} == set(range(1, 16))  # the empty row has no chunk
        for r in rows:
            assert r["chunk"].startswith(f"title {r['id']} (en): ")
            assert f"sentence {r['id']}." in r["chunk"]
            stored = [float(x) for x in r["e"].strip("[]").split(",")]
            assert stored == pytest.approx(fake_vector(r["chunk"], 8), rel=1e-6)
        # pgai's trigger and view keep working with what our worker wrote
        await conn.execute("UPDATE post SET body = 'rewritten' WHERE id = 3")
        assert await conn.fetchval(f"SELECT ai.vectorizer_queue_pending({vid}, true)") == 1
        assert await worker.run() is None
        chunks = await conn.fetch("SELECT chunk FROM post_embedding WHERE id = 3")
        assert [r["chunk"] for r in chunks] == ["title 3 (en): rewritten"]
        # and a failure is recorded in pgai's errors table, readable through its view
        provider.fail_next(500, times=100)
        await conn.execute("UPDATE post SET body = 'again' WHERE id = 4")
        await Worker(
            one_database,
            once=True,
            exit_on_error=False,
            provider_retry=RetryPolicy(attempts=1),
        ).run()
        assert await conn.fetchval("SELECT message FROM ai.vectorizer_errors") == (
            "embedding provider failed"
        )
    finally:
        await conn.close()
