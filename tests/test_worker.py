"""The vectorizer worker end to end: real PostgreSQL, real HTTP to a local OpenAI-wire server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import anyio
import asyncpg
import pytest

import pgai
from pgai.vectorizer.embedders.base import RetryPolicy
from tests.fake_provider import FakeProvider, fake_vector
from tests.worker_support import DIMS, make_worker, run_pgai


@pytest.fixture(autouse=True)
def api_key(openai_key: str) -> None:
    """Every worker test has an API key unless it removes it."""


@pytest.fixture
async def blog(conn: asyncpg.Connection, provider: FakeProvider) -> AsyncIterator[int]:
    """A source table with 20 rows and a vectorizer on it; yields the vectorizer id."""
    await conn.execute("CREATE TABLE blog (id int PRIMARY KEY, title text, body text)")
    await conn.execute(
        "INSERT INTO blog SELECT i, 'title ' || i, repeat('word' || i || ' ', 30) "
        "FROM generate_series(1, 20) i"
    )
    vid = await conn.fetchval(
        """
        SELECT ai.create_vectorizer('blog'::regclass,
            loading => ai.loading_column('body'),
            embedding => ai.embedding_openai('text-embedding-3-small', $1, base_url => $2),
            chunking => ai.chunking_recursive_character_text_splitter(100, 20),
            formatting => ai.formatting_python_template('$title: $chunk'),
            processing => ai.processing_default(batch_size => 7))
        """,
        DIMS,
        provider.url,
    )
    yield vid


async def test_once_embeds_every_queued_row_and_empties_the_queue(
    db_url: str, conn: asyncpg.Connection, blog: int, provider: FakeProvider
) -> None:
    assert await conn.fetchval("SELECT ai.vectorizer_queue_pending($1::int4, true)", blog) == 20
    worker = make_worker(db_url)
    assert await worker.run() is None
    assert await conn.fetchval("SELECT ai.vectorizer_queue_pending($1::int4, true)", blog) == 0
    rows = await conn.fetch(
        "SELECT id, chunk_seq, chunk, embedding::text AS e FROM blog_embedding_store "
        "ORDER BY id, chunk_seq"
    )
    assert {r["id"] for r in rows} == set(range(1, 21))
    for r in rows:
        assert r["chunk"].startswith(f"title {r['id']}: word{r['id']}")
        expected = fake_vector(r["chunk"], DIMS)
        stored = [float(x) for x in r["e"].strip("[]").split(",")]
        assert stored == pytest.approx(expected, rel=1e-6)
    # chunk_seq restarts at 0 per row and has no gaps
    per_row: dict[int, list[int]] = {}
    for r in rows:
        per_row.setdefault(r["id"], []).append(r["chunk_seq"])
    assert all(seqs == list(range(len(seqs))) for seqs in per_row.values())
    assert worker.stats.rows == 20
    # what was sent is exactly what was stored
    assert sorted(provider.embedded_texts()) == sorted(r["chunk"] for r in rows)
    assert provider.requests[0].headers["Authorization"] == "Bearer sk-test-key"
    assert provider.requests[0].body["dimensions"] == DIMS


async def test_update_reembeds_only_the_changed_row_and_delete_removes_chunks(
    db_url: str, conn: asyncpg.Connection, blog: int, provider: FakeProvider
) -> None:
    await make_worker(db_url).run()
    untouched = await conn.fetch(
        "SELECT embedding_uuid FROM blog_embedding_store WHERE id NOT IN (3, 4) ORDER BY 1"
    )
    await conn.execute("UPDATE blog SET body = 'short new text' WHERE id = 3")
    await conn.execute("DELETE FROM blog WHERE id = 4")
    assert await conn.fetchval("SELECT count(*) FROM blog_embedding_store WHERE id = 4") == 0
    provider.requests.clear()
    await make_worker(db_url).run()
    assert provider.embedded_texts() == ["title 3: short new text"]
    assert untouched == await conn.fetch(
        "SELECT embedding_uuid FROM blog_embedding_store WHERE id NOT IN (3, 4) ORDER BY 1"
    )
    chunks = await conn.fetch("SELECT chunk FROM blog_embedding_store WHERE id = 3")
    assert [r["chunk"] for r in chunks] == ["title 3: short new text"]
    view = await conn.fetch("SELECT id, title, chunk FROM blog_embedding WHERE id = 3")
    assert [tuple(r) for r in view] == [(3, "title 3", "title 3: short new text")]


async def test_column_destination_updates_the_embedding_column(
    db_url: str, conn: asyncpg.Connection, provider: FakeProvider
) -> None:
    await conn.execute("CREATE TABLE note (id text PRIMARY KEY, body text)")
    await conn.execute("INSERT INTO note VALUES ('a', 'alpha'), ('b', 'beta'), ('c', NULL)")
    await conn.fetchval(
        """
        SELECT ai.create_vectorizer('note'::regclass,
            loading => ai.loading_column('body'),
            embedding => ai.embedding_openai('text-embedding-3-small', $1, base_url => $2),
            chunking => ai.chunking_none(),
            destination => ai.destination_column('body_embedding'))
        """,
        DIMS,
        provider.url,
    )
    await make_worker(db_url).run()
    rows = {
        r["id"]: r["e"]
        for r in await conn.fetch("SELECT id, body_embedding::text AS e FROM note ORDER BY id")
    }
    assert rows["c"] is None  # NULL text: no chunk, no embedding, no error
    stored = [float(x) for x in rows["a"].strip("[]").split(",")]
    assert stored == pytest.approx(fake_vector("alpha", DIMS), rel=1e-6)
    # the worker's own UPDATE does not queue the row again
    assert await conn.fetchval("SELECT count(*) FROM ai._vectorizer_q_1") == 0


async def test_provider_500_rolls_back_counts_an_attempt_and_records_the_error(
    db_url: str, conn: asyncpg.Connection, blog: int, provider: FakeProvider
) -> None:
    provider.fail_next(500, times=100)
    worker = make_worker(
        db_url,
        exit_on_error=False,
        retry_backoff=timedelta(hours=1),
        max_retry_backoff=timedelta(hours=2),
    )
    assert await worker.run() is None
    # nothing written, nothing lost: every row is still queued, with one failure counted
    assert await conn.fetchval("SELECT count(*) FROM blog_embedding_store") == 0
    queued = await conn.fetch(
        "SELECT id, loading_retries, loading_retry_after FROM ai._vectorizer_q_1"
    )
    assert sorted(r["id"] for r in queued) == list(range(1, 21))
    assert {r["loading_retries"] for r in queued} == {1}
    assert all(r["loading_retry_after"] is not None for r in queued)
    errors = await conn.fetch("SELECT name, message, details FROM ai.vectorizer_errors")
    assert errors, "the failure is recorded"
    import json

    details = json.loads(errors[0]["details"])
    assert errors[0]["message"] == "embedding provider failed"
    assert errors[0]["name"] == "public_blog_embedding_store"
    assert details["http_status"] == 500
    assert details["provider"] == "openai"
    assert details["will_retry"] is True
    assert "sk-test-key" not in errors[0]["details"]


async def test_rows_move_to_the_failed_queue_after_the_configured_attempts(
    db_url: str, conn: asyncpg.Connection, provider: FakeProvider
) -> None:
    await conn.execute("CREATE TABLE doc (id int PRIMARY KEY, body text)")
    await conn.execute("INSERT INTO doc VALUES (1, 'fine'), (2, 'POISON here')")
    await conn.fetchval(
        """
        SELECT ai.create_vectorizer('doc'::regclass,
            loading => ai.loading_column('body', retries => 2),
            embedding => ai.embedding_openai('text-embedding-3-small', $1, base_url => $2),
            processing => ai.processing_default(batch_size => 1))
        """,
        DIMS,
        provider.url,
    )
    provider.fail_inputs_containing["POISON"] = 400
    for _ in range(3):
        await make_worker(db_url, exit_on_error=False).run()
        await anyio.sleep(0.01)
    failed = await conn.fetch("SELECT id, failure_step FROM ai._vectorizer_q_failed_1")
    assert [tuple(r) for r in failed] == [(2, "embedding")]
    assert await conn.fetchval("SELECT count(*) FROM ai._vectorizer_q_1") == 0
    assert await conn.fetchval("SELECT count(*) FROM doc_embedding_store WHERE id = 1") == 1
    # 400 is not retried within a batch: one request per attempt, three attempts in all
    poison_requests = [r for r in provider.requests if "POISON here" in r.body["input"]]
    assert len(poison_requests) == 3


async def test_rate_limiting_is_not_counted_as_a_row_failure(
    db_url: str, conn: asyncpg.Connection, blog: int, provider: FakeProvider
) -> None:
    provider.fail_next(429, times=4, headers={"retry-after": "0"})
    worker = make_worker(db_url, provider_retry=RetryPolicy(attempts=3, base_delay=0.01))
    assert await worker.run() is None
    assert await conn.fetchval("SELECT count(*) FROM ai._vectorizer_q_1") == 0
    assert await conn.fetchval("SELECT count(DISTINCT id) FROM blog_embedding_store") == 20
    assert await conn.fetchval("SELECT count(*) FROM ai._vectorizer_q_failed_1") == 0


async def test_a_row_that_fails_to_parse_does_not_block_its_neighbours(
    db_url: str, conn: asyncpg.Connection, provider: FakeProvider
) -> None:
    await conn.execute("CREATE TABLE file (id int PRIMARY KEY, data bytea)")
    await conn.execute(
        "INSERT INTO file VALUES (1, convert_to('plain text one', 'UTF8')), "
        "(2, '\\x255044462d312e340a'::bytea), (3, convert_to('plain text three', 'UTF8'))"
    )
    await conn.fetchval(
        """
        SELECT ai.create_vectorizer('file'::regclass,
            loading => ai.loading_column('data'),
            parsing => ai.parsing_auto(),
            embedding => ai.embedding_openai('text-embedding-3-small', $1, base_url => $2))
        """,
        DIMS,
        provider.url,
    )
    worker = make_worker(
        db_url,
        exit_on_error=False,
        retry_backoff=timedelta(hours=1),
        max_retry_backoff=timedelta(hours=2),
    )
    await worker.run()
    done = [r["id"] for r in await conn.fetch("SELECT DISTINCT id FROM file_embedding_store")]
    assert sorted(done) == [1, 3]
    requeued = await conn.fetch("SELECT id, loading_retries FROM ai._vectorizer_q_1")
    assert [tuple(r) for r in requeued] == [(2, 1)]
    message = await conn.fetchval("SELECT message FROM ai.vectorizer_errors")
    assert message == "vectorizer failed with unexpected error"


async def test_missing_api_key_is_a_clear_error_naming_the_variable(
    db_url: str, conn: asyncpg.Connection, blog: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    error = await make_worker(db_url).run()
    assert error is not None
    assert "OPENAI_API_KEY" in str(error)
    recorded = await conn.fetchval("SELECT details->>'error_reason' FROM ai.vectorizer_errors")
    assert "OPENAI_API_KEY" in recorded
    assert await conn.fetchval("SELECT count(*) FROM ai._vectorizer_q_1") == 20


async def test_unknown_vectorizer_id_is_a_clear_error(db_url: str, blog: int) -> None:
    error = await make_worker(db_url, vectorizer_ids=[blog, 999]).run()
    assert error is not None
    assert "invalid vectorizers, wanted: [1, 999], got: [1]" in str(error)


async def test_bad_database_url_is_a_clear_error_without_password() -> None:
    error = await make_worker("postgres://u:hunter2@127.0.0.1:1/x").run()
    assert error is not None
    assert "could not connect to postgres://u:***@127.0.0.1:1/x" in str(error)
    assert "hunter2" not in str(error)


async def test_disabled_vectorizers_are_skipped(
    db_url: str, conn: asyncpg.Connection, blog: int
) -> None:
    await conn.execute("SELECT ai.disable_vectorizer_schedule($1::int4)", blog)
    await make_worker(db_url).run()
    assert await conn.fetchval("SELECT count(*) FROM ai._vectorizer_q_1") == 20


async def test_concurrent_workers_process_every_row_exactly_once(
    db_url: str, conn: asyncpg.Connection, blog: int, provider: FakeProvider
) -> None:
    provider.latency = 0.02
    await conn.execute(
        "INSERT INTO blog SELECT i, 't' || i, 'body ' || i FROM generate_series(21, 200) i"
    )
    workers = [make_worker(db_url, concurrency=3) for _ in range(3)]
    async with anyio.create_task_group() as tg:
        for w in workers:
            tg.start_soon(w.run)
    assert await conn.fetchval("SELECT count(*) FROM ai._vectorizer_q_1") == 0
    assert await conn.fetchval("SELECT count(DISTINCT id) FROM blog_embedding_store") == 200
    assert sum(w.stats.rows for w in workers) == 200
    assert sum(1 for w in workers if w.stats.rows) >= 2


async def test_cli_once_processes_the_queue_and_exits_zero(
    db_url: str, conn: asyncpg.Connection, blog: int
) -> None:
    result = run_pgai(
        "vectorizer",
        "worker",
        "--once",
        "-id",
        str(blog),
        "--poll-interval=30s",
        env={"VECTORIZER_DB_URL": db_url},
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert await conn.fetchval("SELECT count(*) FROM ai._vectorizer_q_1") == 0


async def test_cli_once_exits_one_when_a_batch_failed(
    db_url: str, conn: asyncpg.Connection, blog: int, provider: FakeProvider
) -> None:
    provider.fail_next(401, times=100)
    result = run_pgai("vectorizer", "worker", "-d", db_url, "--once")
    assert result.returncode == 1
    assert "check the API key" in result.stdout + result.stderr
    assert "sk-test-key" not in result.stdout + result.stderr
    assert await conn.fetchval("SELECT count(*) FROM ai._vectorizer_q_1") == 20


async def test_sigkill_mid_batch_loses_nothing_and_duplicates_nothing(
    db_url: str, conn: asyncpg.Connection, blog: int, provider: FakeProvider
) -> None:
    provider.latency = 30.0  # the first request hangs: the worker is inside a batch transaction
    proc = subprocess.Popen(
        [sys.executable, "-m", "pgai", "vectorizer", "worker", "-d", db_url, "--once"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while not provider.requests and time.monotonic() < deadline:
        await anyio.sleep(0.05)
    assert provider.requests, "the worker reached the provider"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    provider.latency = 0.0
    # the killed batch rolled back: all 20 rows are queued again, none counted as failed
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if await conn.fetchval("SELECT count(DISTINCT id) FROM ai._vectorizer_q_1") == 20:
            break
        await anyio.sleep(0.1)
    assert await conn.fetchval("SELECT count(DISTINCT id) FROM ai._vectorizer_q_1") == 20
    assert await conn.fetchval("SELECT max(loading_retries) FROM ai._vectorizer_q_1") == 0
    await make_worker(db_url).run()
    assert await conn.fetchval("SELECT count(DISTINCT id) FROM blog_embedding_store") == 20
    dupes = await conn.fetchval(
        "SELECT count(*) FROM (SELECT id, chunk_seq FROM blog_embedding_store "
        "GROUP BY 1, 2 HAVING count(*) > 1) d"
    )
    assert dupes == 0


async def test_sigterm_stops_promptly_with_exit_zero(
    db_url: str, conn: asyncpg.Connection, blog: int, provider: FakeProvider
) -> None:
    provider.latency = 30.0
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pgai",
            "vectorizer",
            "worker",
            "-d",
            db_url,
            "--grace-period",
            "1s",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not provider.requests and time.monotonic() < deadline:
        await anyio.sleep(0.05)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out
    assert time.monotonic() - started < 10
    assert "received SIGTERM" in out
    provider.latency = 0.0
    assert await conn.fetchval("SELECT count(DISTINCT id) FROM ai._vectorizer_q_1") == 20


async def test_worker_tracking_shows_live_workers_and_progress_from_sql(
    db_url: str, conn: asyncpg.Connection, blog: int, provider: FakeProvider
) -> None:
    await make_worker(db_url).run()
    process = await conn.fetchrow("SELECT * FROM ai.vectorizer_worker_process")
    assert process["version"] == pgai.__version__
    assert process["heartbeat_count"] >= 2  # one at start, a last one on the way out
    assert process["success_count"] == 20
    assert process["error_count"] == 0
    progress = await conn.fetchrow(
        "SELECT * FROM ai.vectorizer_worker_progress WHERE vectorizer_id = $1", blog
    )
    assert progress["success_count"] == 20
    assert progress["last_success_process_id"] == process["id"]
    assert progress["last_error_at"] is None

    await conn.execute("UPDATE blog SET body = 'x' WHERE id = 1")
    provider.fail_next(500, times=100)
    await make_worker(db_url, exit_on_error=False).run()
    progress = await conn.fetchrow(
        "SELECT * FROM ai.vectorizer_worker_progress WHERE vectorizer_id = $1", blog
    )
    assert progress["error_count"] >= 1
    assert "500" in progress["last_error_message"]
    latest = await conn.fetchrow(
        "SELECT * FROM ai.vectorizer_worker_process ORDER BY started DESC LIMIT 1"
    )
    assert latest["error_count"] >= 1
    assert "500" in latest["last_error_message"]


async def test_an_idle_worker_embeds_a_new_row_at_once_whatever_the_poll_interval(
    db_url: str, conn: asyncpg.Connection, blog: int
) -> None:
    worker = make_worker(db_url, once=False, poll_interval=timedelta(hours=1))
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.run)
        with anyio.fail_after(15):
            while await conn.fetchval("SELECT count(*) FROM ai._vectorizer_q_1"):
                await anyio.sleep(0.05)
        await anyio.sleep(0.3)  # idle now, with an hour to the next poll
        started = time.monotonic()
        await conn.execute("INSERT INTO blog VALUES (500, 'fresh', 'just written')")
        with anyio.fail_after(10):
            while not await conn.fetchval(
                "SELECT count(*) FROM blog_embedding_store WHERE id = 500"
            ):
                await anyio.sleep(0.02)
        latency = time.monotonic() - started
        worker.request_shutdown()
    assert latency < 5  # woken by NOTIFY, not by the hourly poll


async def test_without_listen_a_new_row_waits_for_the_next_poll(
    db_url: str, conn: asyncpg.Connection, blog: int
) -> None:
    worker = make_worker(db_url, once=False, poll_interval=timedelta(hours=1), listen=False)
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.run)
        with anyio.fail_after(15):
            while await conn.fetchval("SELECT count(*) FROM ai._vectorizer_q_1"):
                await anyio.sleep(0.05)
        await conn.execute("INSERT INTO blog VALUES (500, 'fresh', 'just written')")
        await anyio.sleep(1.0)
        assert await conn.fetchval("SELECT count(*) FROM ai._vectorizer_q_1") == 1
        worker.request_shutdown()


async def test_cli_missing_api_key_and_bad_url_say_so_in_one_line_and_exit_1(
    db_url: str, blog: int
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    missing = subprocess.run(
        [sys.executable, "-m", "pgai", "vectorizer", "worker", "--once", "-d", db_url],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert missing.returncode == 1
    errors = [line for line in missing.stdout.splitlines() if "ERROR" in line]
    assert any("OPENAI_API_KEY" in line for line in errors), missing.stdout
    assert "Traceback" not in missing.stdout + missing.stderr
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "pgai",
            "vectorizer",
            "worker",
            "--once",
            "-d",
            "postgres://me:s3cret@127.0.0.1:1/db",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1
    assert "could not connect to postgres://me:***@127.0.0.1:1/db" in bad.stdout
    assert "s3cret" not in bad.stdout + bad.stderr
    assert "Traceback" not in bad.stdout + bad.stderr


async def test_a_second_signal_exits_at_once(
    db_url: str, conn: asyncpg.Connection, blog: int, provider: FakeProvider
) -> None:
    provider.latency = 30.0
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pgai",
            "vectorizer",
            "worker",
            "-d",
            db_url,
            "--grace-period",
            "60s",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    with anyio.fail_after(30):
        while not provider.requests:
            await anyio.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    await anyio.sleep(0.5)
    assert proc.poll() is None  # waiting for the in-flight batch (grace period 60 s)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=10)
    assert time.monotonic() - started < 5
    assert proc.returncode == 1, out
    assert "exiting now" in out
    provider.latency = 0.0
    assert await conn.fetchval("SELECT count(DISTINCT id) FROM ai._vectorizer_q_1") == 20


async def test_unchanged_chunks_reuse_their_stored_vectors(
    db_url: str, conn: asyncpg.Connection, provider: FakeProvider
) -> None:
    paragraphs = [f"paragraph number {i} says something about topic {i}" for i in range(5)]
    await conn.execute("CREATE TABLE essay (id int PRIMARY KEY, body text, views int)")
    await conn.execute("INSERT INTO essay VALUES (1, $1, 0)", "\n\n".join(paragraphs))
    await conn.fetchval(
        """
        SELECT ai.create_vectorizer('essay'::regclass,
            loading => ai.loading_column('body'),
            embedding => ai.embedding_openai('text-embedding-3-small', $1, base_url => $2),
            chunking => ai.chunking_character_text_splitter(60, 0, E'\\n\\n'))
        """,
        DIMS,
        provider.url,
    )
    await make_worker(db_url).run()
    assert len(provider.embedded_texts()) == 5
    provider.requests.clear()

    paragraphs[2] = "paragraph number 2 was rewritten entirely"
    await conn.execute(
        "UPDATE essay SET body = $1, views = 7 WHERE id = 1", "\n\n".join(paragraphs)
    )
    worker = make_worker(db_url)
    await worker.run()
    assert provider.embedded_texts() == [paragraphs[2]]  # one chunk sent, four reused
    assert worker.stats.reused_chunks == 4
    rows = await conn.fetch(
        "SELECT chunk_seq, chunk, embedding::text AS e FROM essay_embedding_store ORDER BY 1"
    )
    assert [r["chunk"] for r in rows] == paragraphs
    for r in rows:
        stored = [float(x) for x in r["e"].strip("[]").split(",")]
        assert stored == pytest.approx(fake_vector(r["chunk"], DIMS), rel=1e-6)

    # a column the vectorizer does not read queues nothing, so costs nothing
    provider.requests.clear()
    await conn.execute("UPDATE essay SET views = views + 1")
    await make_worker(db_url).run()
    assert provider.requests == []


async def test_long_documents_are_embedded_and_written_a_group_at_a_time(
    db_url: str,
    conn: asyncpg.Connection,
    provider: FakeProvider,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("pgai.vectorizer.worker.GROUP_CHUNKS", 3)
    long_doc = [f"part {i} of the long document" for i in range(10)]
    await conn.execute("CREATE TABLE book (id int PRIMARY KEY, body text)")
    await conn.execute(
        "INSERT INTO book VALUES (1, $1), (2, 'short one\n\nshort two')", "\n\n".join(long_doc)
    )
    await conn.fetchval(
        """
        SELECT ai.create_vectorizer('book'::regclass,
            loading => ai.loading_column('body'),
            embedding => ai.embedding_openai('text-embedding-3-small', $1, base_url => $2),
            chunking => ai.chunking_character_text_splitter(40, 0, E'\\n\\n'))
        """,
        DIMS,
        provider.url,
    )
    await make_worker(db_url).run()
    # 11 chunks in groups of at most 3: at least 4 requests, every chunk stored once
    assert len(provider.requests) >= 4
    rows = await conn.fetch("SELECT id, chunk_seq, chunk FROM book_embedding_store ORDER BY 1, 2")
    assert [r["chunk"] for r in rows if r["id"] == 1] == long_doc
    assert [r["chunk_seq"] for r in rows if r["id"] == 1] == list(range(10))

    # a poison part late in the document fails that document alone, and it keeps its old
    # chunks (and vectors) until its retry
    before = await conn.fetch(
        "SELECT chunk_seq, chunk, embedding::text FROM book_embedding_store WHERE id = 1 "
        "ORDER BY chunk_seq"
    )
    # every part is new (so sent, over several groups); the poison comes after two groups
    long_doc = [f"part {i} revised for the second time" for i in range(10)]
    long_doc[8] = "part 8 POISON"
    provider.fail_inputs_containing["POISON"] = 400
    await conn.execute("UPDATE book SET body = $1 WHERE id = 1", "\n\n".join(long_doc))
    await conn.execute("UPDATE book SET body = 'short one\n\nshort three' WHERE id = 2")
    await make_worker(
        db_url,
        exit_on_error=False,
        retry_backoff=timedelta(hours=1),
        max_retry_backoff=timedelta(hours=1),
    ).run()
    assert [
        tuple(r) for r in await conn.fetch("SELECT id, loading_retries FROM ai._vectorizer_q_1")
    ] == [(1, 1)]
    short = await conn.fetch(
        "SELECT chunk FROM book_embedding_store WHERE id = 2 ORDER BY chunk_seq"
    )
    assert [r["chunk"] for r in short] == ["short one\n\nshort three"]
    after = await conn.fetch(
        "SELECT chunk_seq, chunk, embedding::text FROM book_embedding_store WHERE id = 1 "
        "ORDER BY chunk_seq"
    )
    assert after == before
    assert "part 8 POISON" not in [r["chunk"] for r in after]

    # once the provider takes it, the retry re-embeds the whole document over several groups,
    # each part once, none of the first groups' parts lost when the later ones are written
    provider.fail_inputs_containing.clear()
    await conn.execute("UPDATE ai._vectorizer_q_1 SET loading_retry_after = NULL")
    await make_worker(db_url).run()
    rows = await conn.fetch(
        "SELECT chunk_seq, chunk FROM book_embedding_store WHERE id = 1 ORDER BY chunk_seq"
    )
    assert [(r["chunk_seq"], r["chunk"]) for r in rows] == list(enumerate(long_doc))
