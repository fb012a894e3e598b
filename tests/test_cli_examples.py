"""Every `pgai vectorizer worker` example of the documentation, run as written.

The database gets vectorizers with the documented ids (8, 42, 64); the URL placeholder is
replaced by the test database's URL; examples without --once run until their queues are empty
and are then stopped with SIGTERM, as Kubernetes would, and must exit 0.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys

import anyio
import asyncpg
import pytest

from tests.fake_provider import FakeProvider

EXAMPLES = [
    ("pgai vectorizer worker", [8, 42, 64]),
    ('pgai vectorizer worker -d "postgres://user:password@host:port/dbname"', [8, 42, 64]),
    ("pgai vectorizer worker -i 42", [42]),
    ("pgai vectorizer worker -i 42 -i 64 -i 8", [8, 42, 64]),
    ("pgai vectorizer worker --poll-interval=1h", [8, 42, 64]),
    ("pgai vectorizer worker --poll-interval=45m", [8, 42, 64]),
    ("pgai vectorizer worker --poll-interval=900", [8, 42, 64]),
    ("pgai vectorizer worker --once", [8, 42, 64]),
    ("pgai vectorizer worker -c 3", [8, 42, 64]),
]


async def create_documented_vectorizers(conn: asyncpg.Connection, provider: FakeProvider) -> None:
    for vid in (8, 42, 64):
        await conn.execute(f"CREATE TABLE t{vid} (id int PRIMARY KEY, body text)")
        await conn.execute(
            f"INSERT INTO t{vid} SELECT i, 'row ' || i FROM generate_series(1, 20) i"
        )
        await conn.execute("SELECT setval('ai.vectorizer_id_seq', $1)", vid - 1)
        created = await conn.fetchval(
            f"""
            SELECT ai.create_vectorizer('t{vid}'::regclass,
                loading => ai.loading_column('body'),
                embedding => ai.embedding_openai('text-embedding-3-small', 8, base_url => $1),
                processing => ai.processing_default(batch_size => 4))
            """,
            provider.url,
        )
        assert created == vid


def command(example: str, db_url: str) -> list[str]:
    argv = shlex.split(example.replace("postgres://user:password@host:port/dbname", db_url))
    assert argv[0] == "pgai"
    return [sys.executable, "-m", "pgai", *argv[1:]]


def environment(db_url: str) -> dict[str, str]:
    # export VECTORIZER_DB_URL=...; export OPENAI_API_KEY=...
    return {**os.environ, "VECTORIZER_DB_URL": db_url, "OPENAI_API_KEY": "sk-doc-example"}


async def pending(conn: asyncpg.Connection, vid: int) -> int:
    return int(await conn.fetchval(f"SELECT count(*) FROM ai._vectorizer_q_{vid}"))


async def wait_until_drained(
    conn: asyncpg.Connection, ids: list[int], procs: list[subprocess.Popen[str]]
) -> None:
    with anyio.fail_after(60):
        while True:
            if all([await pending(conn, vid) == 0 for vid in ids]):
                return
            for proc in procs:
                if proc.poll() is not None and "--once" not in proc.args:
                    out = proc.stdout.read() if proc.stdout else ""
                    pytest.fail(f"worker exited early ({proc.returncode}): {out}")
            await anyio.sleep(0.1)


def stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    """--once exits by itself; the others are stopped with SIGTERM."""
    if proc.poll() is None and "--once" not in proc.args:
        proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    return proc.returncode, out


@pytest.mark.parametrize(("example", "processed"), EXAMPLES, ids=[e for e, _ in EXAMPLES])
async def test_documented_example_runs_as_written(
    example: str,
    processed: list[int],
    db_url: str,
    conn: asyncpg.Connection,
    provider: FakeProvider,
) -> None:
    await create_documented_vectorizers(conn, provider)
    proc = subprocess.Popen(
        command(example, db_url),
        env=environment(db_url),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        await wait_until_drained(conn, processed, [proc])
    finally:
        code, out = stop(proc)
    assert code == 0, out
    assert "sk-doc-example" not in out
    for vid in (8, 42, 64):
        expected = 0 if vid in processed else 20
        assert await pending(conn, vid) == expected, (vid, out)
        assert await conn.fetchval(f"SELECT count(DISTINCT id) FROM t{vid}_embedding_store") == (
            20 if vid in processed else 0
        )
    assert {r.headers.get("Authorization") for r in provider.requests} == {"Bearer sk-doc-example"}


async def test_two_workers_started_with_dash_id_share_one_queue(
    db_url: str, conn: asyncpg.Connection, provider: FakeProvider
) -> None:
    await create_documented_vectorizers(conn, provider)
    await conn.execute("INSERT INTO t42 SELECT i, 'row ' || i FROM generate_series(21, 120) i")
    provider.latency = 0.05
    procs = [
        subprocess.Popen(
            command("pgai vectorizer worker -id 42", db_url),
            env=environment(db_url),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        await wait_until_drained(conn, [42], procs)
    finally:
        results = [stop(p) for p in procs]
    assert [code for code, _ in results] == [0, 0], results
    assert await conn.fetchval("SELECT count(DISTINCT id) FROM t42_embedding_store") == 120
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM (SELECT id FROM t42_embedding_store GROUP BY id "
            "HAVING count(*) > 1) d"
        )
        == 0
    )
    assert all("running vectorizer 42" in out for _, out in results)
    assert await pending(conn, 8) == 20 and await pending(conn, 64) == 20
