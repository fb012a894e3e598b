"""How the worker moves batches: the next batch is embedded while the previous one commits, a
failure at commit time loses nothing, and no reference cycle keeps a batch's vectors alive."""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import random
import socket
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from pgai.vectorizer.pipeline import PreparedChunk
from pgai.vectorizer.worker import SEND_BUFFER_BYTES, init_connection
from pgai.vectorizer.writer import EmbeddedChunk
from tests.fake_provider import FakeProvider, RecordedRequest, fake_vector
from tests.worker_support import DIMS, make_worker


@pytest.fixture(autouse=True)
def api_key(openai_key: str) -> None:
    """Every test here has an API key."""


@pytest.fixture
async def notes(conn: asyncpg.Connection, provider: FakeProvider) -> AsyncIterator[int]:
    """Eight one-chunk rows, one row a batch, one worker coroutine; yields the vectorizer id."""
    await conn.execute("CREATE TABLE notes (id int PRIMARY KEY, body text)")
    await conn.execute(
        "INSERT INTO notes SELECT i, 'note number ' || i FROM generate_series(1, 8) i"
    )
    vid = await conn.fetchval(
        """
        SELECT ai.create_vectorizer('notes'::regclass,
            loading => ai.loading_column('body'),
            embedding => ai.embedding_openai('text-embedding-3-small', $1, base_url => $2),
            chunking => ai.chunking_none(),
            processing => ai.processing_default(batch_size => 1, concurrency => 1))
        """,
        DIMS,
        provider.url,
    )
    yield vid


async def stored(conn: asyncpg.Connection, table: str = "notes") -> dict[int, list[str]]:
    """Each row's chunks in order, checking on the way that chunk_seq has no gap and that each
    chunk has the vector of its own text."""
    rows = await conn.fetch(
        f"SELECT id, chunk_seq, chunk, embedding::text AS e FROM {table}_embedding_store "
        "ORDER BY id, chunk_seq"
    )
    found: dict[int, list[str]] = {}
    for r in rows:
        assert r["chunk_seq"] == len(found.setdefault(r["id"], []))
        found[r["id"]].append(r["chunk"])
        vector = [float(x) for x in r["e"].strip("[]").split(",")]
        assert vector == pytest.approx(fake_vector(r["chunk"], DIMS), rel=1e-6)
    return found


async def test_the_next_batch_is_embedded_while_the_previous_one_commits(
    db_url: str, conn: asyncpg.Connection, notes: int, provider: FakeProvider
) -> None:
    # Writing a chunk takes 0.4 s here; the time it is written is kept with it.
    await conn.execute(
        "ALTER TABLE notes_embedding_store ADD COLUMN written_at timestamptz;"
        "CREATE FUNCTION slow_write() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "PERFORM pg_sleep(0.4); NEW.written_at := clock_timestamp(); RETURN NEW; END $$;"
        "CREATE TRIGGER slow BEFORE INSERT ON notes_embedding_store "
        "FOR EACH ROW EXECUTE FUNCTION slow_write()"
    )
    asked_at: dict[str, float] = {}

    def record(request: RecordedRequest) -> None:
        for text in request.body["input"]:
            asked_at.setdefault(text, time.time())

    provider.on_request = record
    await make_worker(db_url).run()
    rows = await conn.fetch(
        "SELECT id, extract(epoch FROM written_at)::float8 AS t FROM notes_embedding_store"
    )
    written_at = {r["id"]: r["t"] for r in rows}
    assert sorted(written_at) == list(range(1, 9))
    order = sorted(written_at, key=written_at.__getitem__)
    # with one coroutine, each batch was sent to the provider before the batch before it had
    # finished writing: its claim and request overlapped the previous commit
    overlapped = [
        later
        for earlier, later in itertools.pairwise(order)
        if asked_at[f"note number {later}"] < written_at[earlier]
    ]
    assert len(overlapped) == 7
    assert await conn.fetchval("SELECT count(*) FROM ai._vectorizer_q_1") == 0


async def test_a_batch_failing_at_commit_time_is_retried_and_nothing_is_lost(
    db_url: str, conn: asyncpg.Connection, notes: int, provider: FakeProvider
) -> None:
    # The first write of note 5 fails (a sequence is not rolled back, so it fails only once).
    await conn.execute(
        "CREATE SEQUENCE boom;"
        "CREATE FUNCTION fail_once() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF NEW.chunk = 'note number 5' AND nextval('boom') = 1 THEN "
        "RAISE EXCEPTION 'disk full (simulated)'; END IF; RETURN NEW; END $$;"
        "CREATE TRIGGER fail_once BEFORE INSERT ON notes_embedding_store "
        "FOR EACH ROW EXECUTE FUNCTION fail_once()"
    )
    hour = timedelta(hours=1)
    worker = make_worker(db_url, exit_on_error=False, retry_backoff=hour, max_retry_backoff=hour)
    assert await worker.run() is None
    # the other seven landed; note 5 is back in the queue with its attempt counted
    assert sorted(await stored(conn)) == [1, 2, 3, 4, 6, 7, 8]
    queued = await conn.fetch("SELECT id, loading_retries FROM ai._vectorizer_q_1")
    assert [tuple(r) for r in queued] == [(5, 1)]
    details = json.loads(await conn.fetchval("SELECT details FROM ai._vectorizer_errors"))
    assert "disk full (simulated)" in details["error_reason"]
    assert details["pks"] == [[5]]

    await conn.execute("UPDATE ai._vectorizer_q_1 SET loading_retry_after = NULL")
    await make_worker(db_url).run()
    chunks = await stored(conn)
    assert chunks == {i: [f"note number {i}"] for i in range(1, 9)}
    assert await conn.fetchval("SELECT count(*) FROM ai._vectorizer_q_1") == 0


async def test_no_reference_cycle_keeps_a_batch_alive(
    db_url: str,
    conn: asyncpg.Connection,
    provider: FakeProvider,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the cycle collector off, everything a run made is freed as soon as it ends: the
    vectors of a batch must not wait for a full collection (they once held 85 MB of a
    20,000-row backfill). The run takes the paths that keep errors (a poison row isolated by
    halving its batch) and spreads documents over several groups."""
    monkeypatch.setattr("pgai.vectorizer.worker.GROUP_CHUNKS", 3)
    await conn.execute("CREATE TABLE essay (id int PRIMARY KEY, title text, body text)")
    await conn.execute(
        "INSERT INTO essay SELECT i, 'essay ' || i, repeat('paragraph of essay ' || i || "
        "E'\\n\\n', 1 + i % 5) FROM generate_series(1, 30) i"
    )
    await conn.execute("UPDATE essay SET body = body || 'POISON' WHERE id = 7")
    await conn.fetchval(
        """
        SELECT ai.create_vectorizer('essay'::regclass,
            loading => ai.loading_column('body'),
            embedding => ai.embedding_openai('text-embedding-3-small', $1, base_url => $2),
            chunking => ai.chunking_character_text_splitter(30, 0, E'\\n\\n'),
            formatting => ai.formatting_python_template('$title: $chunk'),
            processing => ai.processing_default(batch_size => 10))
        """,
        DIMS,
        provider.url,
    )
    provider.fail_inputs_containing["POISON"] = 400

    def alive() -> int:
        return sum(isinstance(o, EmbeddedChunk | PreparedChunk) for o in gc.get_objects())

    gc.collect()
    gc.disable()
    try:
        before = alive()
        worker = make_worker(db_url, exit_on_error=False, retry_backoff=timedelta(hours=1))
        await worker.run()
        assert worker.stats.chunks > 30
        assert worker.stats.failed_rows == 1  # the poison row
        assert alive() == before
    finally:
        gc.enable()
    ids = await conn.fetch("SELECT DISTINCT id FROM essay_embedding_store ORDER BY id")
    assert [r["id"] for r in ids] == [i for i in range(1, 31) if i != 7]


async def test_re_embedding_documents_spread_over_groups_keeps_every_chunk_right(
    db_url: str,
    conn: asyncpg.Connection,
    provider: FakeProvider,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Documents of 1 to 8 parts, in groups of 3 chunks to embed, batches of 5 rows: after
    edits that keep some parts and change others, every row holds exactly its new chunks,
    each with the vector of its own text (sent or reused)."""
    monkeypatch.setattr("pgai.vectorizer.worker.GROUP_CHUNKS", 3)

    def body(doc: int, version: int) -> str:
        parts = [
            f"document {doc} part {i} " + ("edited" if version and (i + doc) % 3 == 0 else "kept")
            for i in range(1 + doc % 8)
        ]
        return "\n\n".join(parts)

    await conn.execute("CREATE TABLE doc (id int PRIMARY KEY, body text)")
    await conn.executemany("INSERT INTO doc VALUES ($1, $2)", [(d, body(d, 0)) for d in range(20)])
    await conn.fetchval(
        """
        SELECT ai.create_vectorizer('doc'::regclass,
            loading => ai.loading_column('body'),
            embedding => ai.embedding_openai('text-embedding-3-small', $1, base_url => $2),
            chunking => ai.chunking_character_text_splitter(20, 0, E'\\n\\n'),
            processing => ai.processing_default(batch_size => 5, concurrency => 2))
        """,
        DIMS,
        provider.url,
    )

    async def check(expected: dict[int, str]) -> None:
        found = await stored(conn, "doc")
        assert found == {d: text.split("\n\n") for d, text in expected.items() if text}

    await make_worker(db_url).run()
    await check({d: body(d, 0) for d in range(20)})

    provider.requests.clear()
    await conn.executemany(
        "UPDATE doc SET body = $2 WHERE id = $1", [(d, body(d, 1)) for d in range(20)]
    )
    await conn.execute("UPDATE doc SET body = '' WHERE id = 7")
    await conn.execute("DELETE FROM doc WHERE id = 15")
    worker = make_worker(db_url)
    await worker.run()
    expected = {d: body(d, 1) for d in range(20) if d != 15}
    expected[7] = ""
    await check(expected)
    edited = [p for d, text in expected.items() for p in text.split("\n\n") if "edited" in p]
    assert sorted(provider.embedded_texts()) == sorted(edited)  # only the edited parts sent
    assert worker.stats.reused_chunks > 0


async def test_a_batch_failing_after_some_groups_were_written_keeps_every_old_chunk(
    db_url: str,
    conn: asyncpg.Connection,
    provider: FakeProvider,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The provider fails (500, retries exhausted) on a late group of a long document, after
    its first groups and a short row were written: the whole batch rolls back to its savepoint,
    every row keeps its old chunks and goes back to the queue with an attempt counted."""
    monkeypatch.setattr("pgai.vectorizer.worker.GROUP_CHUNKS", 3)
    await conn.execute("CREATE TABLE book (id int PRIMARY KEY, body text)")
    parts = [f"part {i} of the first edition" for i in range(10)]
    await conn.execute("INSERT INTO book VALUES (1, 'a short row'), (2, $1)", "\n\n".join(parts))
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
    snapshot = (
        "SELECT id, chunk_seq, chunk, embedding::text FROM book_embedding_store ORDER BY 1, 2"
    )
    before = await conn.fetch(snapshot)
    assert len(before) == 11

    revised = [f"part {i} of the second edition" for i in range(10)]
    revised[7] += " SERVERFAIL"
    provider.fail_inputs_containing["SERVERFAIL"] = 500
    await conn.execute("UPDATE book SET body = 'a short row, revised' WHERE id = 1")
    await conn.execute("UPDATE book SET body = $1 WHERE id = 2", "\n\n".join(revised))
    hour = timedelta(hours=1)
    worker = make_worker(db_url, exit_on_error=False, retry_backoff=hour, max_retry_backoff=hour)
    await worker.run()
    assert len(provider.embedding_requests()) > 3  # groups were embedded before the failure
    assert await conn.fetch(snapshot) == before
    queued = await conn.fetch("SELECT id, loading_retries FROM ai._vectorizer_q_1 ORDER BY id")
    assert [tuple(r) for r in queued] == [(1, 1), (2, 1)]
    details = json.loads(await conn.fetchval("SELECT details FROM ai._vectorizer_errors"))
    assert details["http_status"] == 500

    provider.fail_inputs_containing.clear()
    await conn.execute("UPDATE ai._vectorizer_q_1 SET loading_retry_after = NULL")
    await make_worker(db_url).run()
    rows = await conn.fetch(snapshot)
    assert [r["chunk"] for r in rows] == ["a short row, revised", *revised]


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_random_edits_leave_every_row_with_exactly_its_old_or_its_new_chunks(
    db_url: str,
    conn: asyncpg.Connection,
    provider: FakeProvider,
    monkeypatch: pytest.MonkeyPatch,
    seed: int,
) -> None:
    """Random documents, group sizes, batch sizes and edits (kept, changed, longer, shorter,
    emptied, deleted, poisoned parts the provider rejects). After a run, a row holds exactly
    its old chunks or exactly its new ones, never a mix or a gap; poisoned rows their old ones.
    Once the poison is accepted, every row holds its new chunks."""
    rng = random.Random(seed)
    monkeypatch.setattr("pgai.vectorizer.worker.GROUP_CHUNKS", rng.choice([1, 2, 3, 5]))
    words = ["alpha", "beta", "gamma", "delta", "omega"]

    def document(doc: int) -> list[str]:
        return [f"d{doc} {rng.choice(words)} {i}" for i in range(rng.randint(1, 9))]

    old = {d: document(d) for d in range(1, 16)}
    await conn.execute("CREATE TABLE doc (id int PRIMARY KEY, body text)")
    await conn.executemany(
        "INSERT INTO doc VALUES ($1, $2)", [(d, "\n\n".join(p)) for d, p in old.items()]
    )
    await conn.fetchval(
        f"""
        SELECT ai.create_vectorizer('doc'::regclass,
            loading => ai.loading_column('body'),
            embedding => ai.embedding_openai('text-embedding-3-small', $1, base_url => $2),
            chunking => ai.chunking_character_text_splitter(12, 0, E'\\n\\n'),
            processing => ai.processing_default(
                batch_size => {rng.choice([1, 3, 7])}, concurrency => {rng.choice([1, 2])}))
        """,
        DIMS,
        provider.url,
    )

    async def chunks() -> dict[int, list[str]]:
        return await stored(conn, "doc")

    await make_worker(db_url).run()
    assert await chunks() == old

    new: dict[int, list[str]] = {}
    poisoned: set[int] = set()
    for d, parts in old.items():
        action = rng.choice(["keep", "change", "longer", "shorter", "empty", "delete", "poison"])
        edited = list(parts)
        if action == "change":
            edited[rng.randrange(len(edited))] = f"d{d} changed"
        elif action == "longer":
            edited += [f"d{d} extra {i}" for i in range(rng.randint(1, 6))]
        elif action == "shorter":
            edited = edited[: rng.randint(0, len(edited) - 1)] or [f"d{d} only"]
        elif action == "empty":
            edited = []
        elif action == "poison":
            edited += [f"d{d} extra {i}" for i in range(rng.randint(0, 4))]
            edited[rng.randrange(len(edited))] = f"d{d} POISON"
            poisoned.add(d)
        if action == "delete":
            await conn.execute("DELETE FROM doc WHERE id = $1", d)
            continue
        new[d] = edited
        if action != "keep":
            await conn.execute("UPDATE doc SET body = $2 WHERE id = $1", d, "\n\n".join(edited))
    provider.fail_inputs_containing["POISON"] = 400
    hour = timedelta(hours=1)
    await make_worker(db_url, exit_on_error=False, retry_backoff=hour, max_retry_backoff=hour).run()
    found = await chunks()
    for d in old:
        if d not in new:
            assert d not in found, f"deleted row {d} kept chunks"
        elif d in poisoned:
            assert found.get(d) == old[d], f"poisoned row {d} lost its old chunks"
        else:
            assert found.get(d, []) in (old[d], new[d]), f"row {d} is half-written"

    provider.fail_inputs_containing.clear()
    await conn.execute("UPDATE ai._vectorizer_q_1 SET loading_retry_after = NULL")
    await make_worker(db_url).run()
    assert await chunks() == {d: parts for d, parts in new.items() if parts}


async def test_a_batch_runs_with_its_settings_on_a_pool_the_application_lends(
    db_url: str, conn: asyncpg.Connection, notes: int
) -> None:
    """The batch settings (key lookups, commits without a disk flush) come with the batch's
    BEGIN, not with the connection: a lent pool gets them, and no startup parameter is needed
    (PgBouncer refuses the ones it does not know)."""
    await conn.execute(
        "ALTER TABLE notes_embedding_store ADD COLUMN settings text;"
        "CREATE FUNCTION record_settings() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "NEW.settings := concat_ws(' ', current_setting('synchronous_commit'), "
        "current_setting('enable_seqscan'), current_setting('plan_cache_mode')); "
        "RETURN NEW; END $$;"
        "CREATE TRIGGER record BEFORE INSERT ON notes_embedding_store "
        "FOR EACH ROW EXECUTE FUNCTION record_settings()"
    )
    async with asyncpg.create_pool(db_url, min_size=1, max_size=4, init=init_connection) as pool:
        await make_worker(db_url, pool=pool).run()
        async with pool.acquire() as lent:
            # outside a batch, the application's sessions keep their own settings
            assert await lent.fetchval("SHOW synchronous_commit") == "on"
    settings = await conn.fetch("SELECT DISTINCT settings FROM notes_embedding_store")
    assert [r["settings"] for r in settings] == ["off off force_custom_plan"]
    assert await conn.fetchval("SELECT count(*) FROM notes_embedding_store") == 8


async def test_a_commit_that_fails_puts_the_batch_back_with_a_clear_error(
    db_url: str, conn: asyncpg.Connection, notes: int
) -> None:
    """A deferred constraint on the target fails at COMMIT itself (after the savepoint is
    released): the whole transaction, claim included, rolls back, so the rows are queued again;
    the error is recorded and the worker carries on."""
    await conn.execute(
        "CREATE SEQUENCE late;"
        "CREATE FUNCTION fail_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF NEW.chunk = 'note number 3' AND nextval('late') = 1 THEN "
        "RAISE EXCEPTION 'checked at commit (simulated)'; END IF; RETURN NULL; END $$;"
        "CREATE CONSTRAINT TRIGGER at_commit AFTER INSERT ON notes_embedding_store "
        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION fail_at_commit()"
    )
    worker = make_worker(db_url, exit_on_error=False)
    assert await worker.run() is None
    details = json.loads(await conn.fetchval("SELECT details FROM ai._vectorizer_errors"))
    assert "checked at commit (simulated)" in details["error_reason"]
    # in the same run or the next, note 3 is embedded once; nothing is lost or doubled
    await make_worker(db_url).run()
    assert await stored(conn) == {i: [f"note number {i}"] for i in range(1, 9)}
    assert await conn.fetchval("SELECT count(*) FROM ai._vectorizer_q_1") == 0


def test_worker_connections_ask_for_a_large_send_buffer(db_url: str) -> None:
    async def check() -> int:
        connection = await asyncpg.connect(db_url)
        try:
            await init_connection(connection)
            sock = connection._transport.get_extra_info("socket")  # type: ignore[attr-defined]
            return int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF))
        finally:
            await connection.close()

    granted = asyncio.run(check())
    # Linux doubles what it grants, up to net.core.wmem_max
    wmem_max = int(Path("/proc/sys/net/core/wmem_max").read_text())
    assert granted >= min(SEND_BUFFER_BYTES, wmem_max)
