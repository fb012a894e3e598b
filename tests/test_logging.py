"""Log output: text for people, JSON lines for collectors, the vectorizer id as a field, and no
secret in either."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator

import asyncpg
import pytest

from pgai.logs import LogFormat, make_handler, redact_secrets
from tests.fake_provider import FakeProvider
from tests.worker_support import DIMS

Captured = tuple[logging.Logger, dict[LogFormat, io.StringIO]]


@pytest.fixture
def capture() -> Iterator[Captured]:
    """A logger writing through a text and a JSON handler; their outputs by format."""
    logger = logging.getLogger("pgai.test_logging")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    outputs: dict[LogFormat, io.StringIO] = {"text": io.StringIO(), "json": io.StringIO()}
    handlers = [make_handler(fmt, stream) for fmt, stream in outputs.items()]
    for handler in handlers:
        logger.addHandler(handler)
    try:
        yield logger, outputs
    finally:
        for handler in handlers:
            logger.removeHandler(handler)


def json_lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_level_logger_message_and_time(capture: Captured) -> None:
    logger, out = capture
    logger.warning("queue of %d rows", 12)
    (entry,) = json_lines(out["json"])
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "pgai.test_logging"
    assert entry["message"] == "queue of 12 rows"
    assert str(entry["time"]).endswith("+00:00")
    assert "vectorizer_id" not in entry


def test_json_lines_carry_the_vectorizer_id_from_extra(capture: Captured) -> None:
    logger, out = capture
    logger.error("unable to connect to database: %s", "refused", extra={"vectorizer_id": 7})
    (entry,) = json_lines(out["json"])
    assert entry["vectorizer_id"] == 7
    assert out["text"].getvalue().rstrip().endswith("refused [vectorizer 7]")


def test_json_lines_carry_the_vectorizer_id_named_in_the_format_string(capture: Captured) -> None:
    logger, out = capture
    logger.info("vectorizer %s: batch of %d rows, %d chunks embedded", 4, 10, 12)
    logger.debug("Items pulled from queue: %d (vectorizer %s)", 10, 5)
    first, second = json_lines(out["json"])
    assert (first["vectorizer_id"], second["vectorizer_id"]) == (4, 5)
    # the text line already names it: not repeated
    assert "[vectorizer" not in out["text"].getvalue()


def test_exceptions_are_one_json_line_with_the_traceback(capture: Captured) -> None:
    logger, out = capture
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("batch failed")
    (entry,) = json_lines(out["json"])
    assert "ValueError: boom" in str(entry["exception"])


SECRETS = [
    ("could not connect to postgres://alice:hunter2@db:5432/app", "hunter2"),
    ("postgresql://app:p%40ss@db/app?sslmode=require", "p%40ss"),
    ("sent Authorization: Bearer sk-proj-abcdef123456", "abcdef123456"),
    ("api key sk-live0123456789 rejected", "live0123456789"),
    ("host=db password=hunter2 dbname=app", "hunter2"),
    ('{"api_key": "secret-value-1"}', "secret-value-1"),
]


@pytest.mark.parametrize(("message", "secret"), SECRETS)
def test_secrets_are_redacted(message: str, secret: str) -> None:
    assert secret not in redact_secrets(message)


def test_redaction_keeps_what_is_not_secret() -> None:
    message = "vectorizer 3: 12 rows, max_tokens=8191 at http://localhost:8080/v1 (basic usage)"
    assert redact_secrets(message) == message
    assert redact_secrets("postgres://alice:pw@db/app") == "postgres://alice:***@db/app"


def test_a_secret_in_a_log_message_or_traceback_never_reaches_the_output(capture: Captured) -> None:
    logger, out = capture
    logger.error("connecting to %s for vectorizer %s", "postgres://u:topsecret@db/x", 2)
    try:
        raise RuntimeError("Authorization: Bearer sk-topsecret999")
    except RuntimeError:
        logger.exception("request failed")
    for stream in out.values():
        assert "topsecret" not in stream.getvalue()
    first, _second = json_lines(out["json"])
    assert first["message"] == "connecting to postgres://u:***@db/x for vectorizer 2"
    assert first["vectorizer_id"] == 2


async def test_worker_log_format_json_writes_json_lines_naming_the_vectorizer(
    db_url: str, conn: asyncpg.Connection, provider: FakeProvider, openai_key: str
) -> None:
    await conn.execute("CREATE TABLE doc (id int PRIMARY KEY, body text)")
    vid = await conn.fetchval(
        """
        SELECT ai.create_vectorizer('doc'::regclass,
            loading => ai.loading_column('body'),
            embedding => ai.embedding_openai('text-embedding-3-small', $1, base_url => $2),
            chunking => ai.chunking_none())
        """,
        DIMS,
        provider.url,
    )
    await conn.execute("INSERT INTO doc SELECT i, 'text ' || i FROM generate_series(1, 3) i")
    result = subprocess.run(
        [sys.executable, "-m", "pgai", "vectorizer", "worker", "--once", "--log-level", "DEBUG"],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "VECTORIZER_DB_URL": db_url,
            "PGAI_VECTORIZER_WORKER_LOG_FORMAT": "json",
        },
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    entries = [json.loads(line) for line in result.stdout.splitlines()]
    assert entries, "the worker logged"
    about_the_vectorizer = [e for e in entries if f"vectorizer {vid}" in str(e["message"])]
    assert about_the_vectorizer
    assert all(e["vectorizer_id"] == vid for e in about_the_vectorizer)
    assert openai_key not in result.stdout + result.stderr


def test_worker_rejects_an_unknown_log_format() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pgai", "vectorizer", "worker", "--log-format", "xml"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "'xml' is not one of text, json" in result.stderr
