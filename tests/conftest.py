"""Fixtures shared by the whole suite: one PostgreSQL server per session, one database per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

import pgai
from tests.fake_provider import FakeProvider
from tests.pgserver import PgTestServer, start_test_server


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgTestServer]:
    server = start_test_server()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def catalog_template(pg_server: PgTestServer) -> str:
    """A database with the catalog installed, cloned by every test that needs one."""
    name = pg_server.create_database("template")
    pgai.install(pg_server.url(name))
    return name


@pytest.fixture
def empty_db_url(pg_server: PgTestServer) -> Iterator[str]:
    """A fresh database without the catalog (installer tests)."""
    name = pg_server.create_database("empty")
    try:
        yield pg_server.url(name)
    finally:
        pg_server.drop_database(name)


@pytest.fixture
def db_url(pg_server: PgTestServer, catalog_template: str) -> Iterator[str]:
    """A fresh database of this test's own, with the catalog installed."""
    name = pg_server.create_database("db", template=catalog_template)
    try:
        yield pg_server.url(name)
    finally:
        pg_server.drop_database(name)


@pytest.fixture
async def conn(db_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(db_url)
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    """A local HTTP server speaking the providers' wire formats, 8-dimensional vectors."""
    with FakeProvider(dimensions=8) as p:
        yield p


@pytest.fixture
def openai_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key")
    return "sk-test-key"
