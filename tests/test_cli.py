"""The worker's command line: option spellings, values and errors, as documented."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
import pytest

import pgai
from pgai.cli import _normalise_argv
from pgai.vectorizer import parse_duration
from tests.fake_provider import FakeProvider
from tests.worker_support import run_pgai


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5m", 300),
        ("1h", 3600),
        ("45m", 2700),
        ("900", 900),
        ("30s", 30),
        ("1h30m", 5400),
        ("1.5h", 5400),
        ("10 sec", 10),
        ("5 minutes", 300),
        ("2 days", 172800),
        ("1:30", 90),
        ("0.1s", 0.1),
    ],
)
def test_poll_interval_spellings(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("text", "message"),
    [("-5", "time duration can't be negative"), ("soon", "'soon' is not a valid duration")],
)
def test_bad_poll_interval_is_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_duration(text)
    result = run_pgai("vectorizer", "worker", "--once", f"--poll-interval={text}")
    assert result.returncode == 2
    assert message in result.stderr


def test_dash_id_and_bare_exit_on_error_are_accepted_spellings() -> None:
    assert _normalise_argv(["-id", "42", "--exit-on-error"]) == [
        "--vectorizer-id",
        "42",
        "--exit-on-error",
        "true",
    ]
    assert _normalise_argv(["--exit-on-error", "false", "--once"]) == [
        "--exit-on-error",
        "false",
        "--once",
    ]


def test_version_of_the_groups_and_of_the_worker() -> None:
    for args in ([], ["vectorizer"], ["vectorizer", "worker"]):
        result = run_pgai(*args, "--version")
        assert result.returncode == 0
        assert result.stdout.strip() == f"pgai, version {pgai.__version__}"


def test_unknown_log_level_is_rejected() -> None:
    result = run_pgai("vectorizer", "worker", "--log-level", "LOUD")
    assert result.returncode == 2
    assert "'LOUD' is not one of DEBUG, INFO, WARN" in result.stderr


async def test_exit_on_error_false_keeps_once_at_exit_zero_and_debug_logs_batches(
    db_url: str, conn: asyncpg.Connection, provider: FakeProvider
) -> None:
    await conn.execute("CREATE TABLE doc (id int PRIMARY KEY, body text)")
    await conn.execute("INSERT INTO doc SELECT i, 'text ' || i FROM generate_series(1, 3) i")
    await conn.fetchval(
        """
        SELECT ai.create_vectorizer('doc'::regclass, loading => ai.loading_column('body'),
            embedding => ai.embedding_openai('text-embedding-3-small', 8, base_url => $1))
        """,
        provider.url,
    )
    provider.fail_next(401, times=1000)
    env = {"OPENAI_API_KEY": "sk-x", "VECTORIZER_DB_URL": db_url}
    tolerant = run_pgai("vectorizer", "worker", "--once", "--exit-on-error", "false", env=env)
    assert tolerant.returncode == 0, tolerant.stdout
    # the failed rows are held back for a while: make them claimable again
    await conn.execute("UPDATE ai._vectorizer_q_1 SET loading_retry_after = NULL")
    strict = run_pgai("vectorizer", "worker", "--once", "--exit-on-error", "true", env=env)
    assert strict.returncode == 1
    provider.script.clear()
    await conn.execute("UPDATE ai._vectorizer_q_1 SET loading_retry_after = NULL")
    verbose = run_pgai("vectorizer", "worker", "--once", "--log-level", "debug", env=env)
    assert verbose.returncode == 0, verbose.stdout
    assert "Items pulled from queue: 3" in verbose.stdout
    assert await conn.fetchval("SELECT count(*) FROM doc_embedding_store") == 3
