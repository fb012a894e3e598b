"""``pgai vectorizer status``: pending and failed rows, last success and error, live workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from typing import Any

import anyio
import asyncpg
import pytest

from pgai.vectorizer.status import read_status
from tests.fake_provider import FakeProvider
from tests.worker_support import DIMS, make_worker


@pytest.fixture(autouse=True)
def api_key(openai_key: str) -> None:
    """Every test here has an API key."""


async def create_vectorizer(
    conn: asyncpg.Connection, provider: FakeProvider, table: str, retries: int = 6
) -> int:
    await conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, body text)")
    return int(
        await conn.fetchval(
            f"""
            SELECT ai.create_vectorizer('{table}'::regclass,
                loading => ai.loading_column('body', retries => $3),
                embedding => ai.embedding_openai('text-embedding-3-small', $1, base_url => $2),
                chunking => ai.chunking_none(),
                processing => ai.processing_default(batch_size => 4))
            """,
            DIMS,
            provider.url,
            retries,
        )
    )


async def status_cli(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the command in a thread, so a worker of this test's event loop keeps beating."""
    return await anyio.to_thread.run_sync(
        lambda: subprocess.run(
            [sys.executable, "-m", "pgai", "vectorizer", "status", *args],
            capture_output=True,
            text=True,
            env={**os.environ, "VECTORIZER_DB_URL": db_url},
            timeout=60,
        )
    )


async def status_json(db_url: str) -> dict[str, Any]:
    result = await status_cli(db_url, "--json")
    assert result.returncode == 0, result.stderr
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


async def test_status_shows_pending_rows_before_any_worker_ran(
    db_url: str, conn: asyncpg.Connection, provider: FakeProvider
) -> None:
    blog = await create_vectorizer(conn, provider, "blog")
    notes = await create_vectorizer(conn, provider, "notes")
    await conn.execute("INSERT INTO blog SELECT i, 'text ' || i FROM generate_series(1, 7) i")
    await conn.execute("SELECT ai.disable_vectorizer_schedule($1::int4)", notes)
    status = await status_json(db_url)
    by_id = {v["id"]: v for v in status["vectorizers"]}
    assert by_id[blog] == {
        "id": blog,
        "name": "public_blog_embedding_store",
        "source": "public.blog",
        "pending": 7,
        "failed": 0,
        "last_error": None,
        "last_error_at": None,
        "last_success_at": None,
        "disabled": False,
    }
    assert by_id[notes]["pending"] == 0
    assert by_id[notes]["disabled"] is True
    assert status["live_workers"] == []


async def test_status_shows_failed_rows_last_error_and_last_success_after_a_run(
    db_url: str, conn: asyncpg.Connection, provider: FakeProvider
) -> None:
    vid = await create_vectorizer(conn, provider, "doc", retries=0)
    await conn.execute(
        "INSERT INTO doc SELECT i, CASE WHEN i = 3 THEN 'POISON' ELSE 'ok ' || i END "
        "FROM generate_series(1, 6) i"
    )
    provider.fail_inputs_containing["POISON"] = 400
    await make_worker(db_url, exit_on_error=False).run()
    (status,) = (await read_status(db_url)).vectorizers
    assert status.id == vid
    assert status.pending == 0
    assert status.failed == 1  # no retries left: straight to the failed queue
    assert status.last_success_at is not None
    assert status.last_error is not None and "400" in status.last_error
    assert status.last_error_at is not None


async def test_status_counts_only_live_workers(
    db_url: str, conn: asyncpg.Connection, provider: FakeProvider
) -> None:
    await create_vectorizer(conn, provider, "doc")
    # a worker that stopped beating an hour ago, having promised a beat a minute
    await conn.execute(
        "INSERT INTO ai.vectorizer_worker_process (version, expected_heartbeat_interval, "
        "started, last_heartbeat) VALUES ('0.12.1', '1 minute', now() - interval '2 hours', "
        "now() - interval '1 hour')"
    )
    worker = make_worker(db_url, once=False, poll_interval=timedelta(seconds=30))
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.run)
        with anyio.fail_after(20):
            while worker.tracking is None or not worker.tracking.enabled:
                await anyio.sleep(0.02)
        status = await status_json(db_url)
        text = await status_cli(db_url)
        worker.request_shutdown()
    assert [w["id"] for w in status["live_workers"]] == [worker.tracking.worker_id]
    live = status["live_workers"][0]
    assert live["expected_heartbeat_interval"] == 30.0
    assert text.returncode == 0, text.stderr
    assert "live workers: 1" in text.stdout
    assert worker.tracking.worker_id in text.stdout


async def test_status_table_lists_every_vectorizer(
    db_url: str, conn: asyncpg.Connection, provider: FakeProvider
) -> None:
    vid = await create_vectorizer(conn, provider, "doc")
    await conn.execute("INSERT INTO doc SELECT i, 'text ' || i FROM generate_series(1, 3) i")
    result = await status_cli(db_url)
    assert result.returncode == 0, result.stderr
    header, row, *_rest = result.stdout.splitlines()
    assert header.split() == [
        *("id", "name", "source", "pending", "failed", "last", "success", "last", "error"),
        "disabled",
    ]
    assert row.split() == [
        *(str(vid), "public_doc_embedding_store", "public.doc", "3", "0"),
        *("-", "-", "no"),
    ]
    assert "live workers: 0" in result.stdout


async def test_status_without_the_catalog_says_to_install_it(empty_db_url: str) -> None:
    result = await status_cli(empty_db_url)
    assert result.returncode == 1
    assert "pgai install" in result.stderr
