"""The benchmark's PostgreSQL: one embedded server, template databases, identical fresh clones.

Each worker runs on a catalog built by its own installer: ``pgai.ainstall`` for ours, the
reference's ``pgai install`` for the reference. A template per (installer, row count) holds the
catalog and the corpus table; every run gets a ``CREATE DATABASE ... TEMPLATE`` clone, and the
vectorizer is created in the clone by that catalog's own ``ai.create_vectorizer``.
"""

from __future__ import annotations

import asyncio
import importlib
import struct
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

import pgai
from benchmarks.corpus import Document, documents
from benchmarks.reference import Reference
from pgai.embedded import EmbeddedPostgres, start_embedded_postgres

DIMENSIONS = 768
MODEL = "text-embedding-3-small"
CHUNK_SIZE = 800
CHUNK_OVERLAP = 400
TEMPLATE = "$title: $chunk"

SOURCE_TABLE = """
CREATE TABLE docs (
    id int PRIMARY KEY,
    title text NOT NULL,
    body text NOT NULL,
    views int NOT NULL DEFAULT 0    -- a column the vectorizer does not read
)
"""

CREATE_VECTORIZER = """
SELECT ai.create_vectorizer('public.docs'::regclass,
    loading    => ai.loading_column('body'),
    embedding  => ai.embedding_openai($1, $2, base_url => $3),
    chunking   => ai.chunking_recursive_character_text_splitter($4, $5),
    formatting => ai.formatting_python_template($6)
    {processing})
"""


@dataclass(frozen=True)
class Processing:
    """``processing => ai.processing_default(...)``; None everywhere means the worker's defaults."""

    batch_size: int | None = None
    concurrency: int | None = None

    @property
    def is_default(self) -> bool:
        return self.batch_size is None and self.concurrency is None


@dataclass(frozen=True)
class RunDatabase:
    """A fresh clone for one worker run, with its vectorizer created."""

    name: str
    url: str
    vectorizer_id: int
    queue_failed_table: str


class BenchDatabase:
    """The embedded server and the templates of this benchmark run."""

    def __init__(self, reference: Reference | None, log: Any = print) -> None:
        self.reference = reference
        self.log = log
        self.server: EmbeddedPostgres | None = None
        self.templates: dict[tuple[str, int], str] = {}
        self._counter = 0
        self.corpus: list[Document] = []
        self._postmaster: Any = None

    # -- server ---------------------------------------------------------------------------------
    def start(self) -> None:
        folder = Path(tempfile.mkdtemp(prefix="pgai-bench-"))
        self.server = start_embedded_postgres(folder / "data", temporary=True)

    async def find_postmaster(self) -> None:
        """Remember the server's main process, to account the CPU its processes use."""
        try:
            psutil = importlib.import_module("psutil")
        except ImportError:  # psutil comes with embedded-postgres; without it, no DB CPU
            return
        conn = await asyncpg.connect(self.url("postgres"))
        try:
            # The parent of our backend, looked up while the backend is alive.
            backend = await conn.fetchval("SELECT pg_backend_pid()")
            self._postmaster = psutil.Process(backend).parent()
        finally:
            await conn.close()

    def cpu_seconds(self) -> float | None:
        """CPU seconds used so far by the server: the postmaster, its live processes and every
        process it has reaped (backends of closed connections, finished autovacuum workers)."""
        if self._postmaster is None:
            return None
        times = self._postmaster.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        for child in self._postmaster.children():
            try:
                child_times = child.cpu_times()
            except Exception:  # noqa: BLE001 - a backend may exit between listing and reading
                continue
            total += child_times.user + child_times.system
        return float(total)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()

    def url(self, database: str) -> str:
        assert self.server is not None
        return self.server.url(database)

    async def admin(self, sql: str) -> None:
        conn = await asyncpg.connect(self.url("postgres"))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def server_settings(self) -> dict[str, str]:
        conn = await asyncpg.connect(self.url("postgres"))
        try:
            names = ("server_version", "shared_buffers", "max_connections", "synchronous_commit")
            return {name: await conn.fetchval(f"SHOW {name}") for name in names}
        finally:
            await conn.close()

    # -- templates ------------------------------------------------------------------------------
    def ensure_corpus(self, rows: int) -> list[Document]:
        if len(self.corpus) < rows:
            self.corpus = list(documents(rows))
        return self.corpus[:rows]

    async def _catalog_template(self, kind: str) -> str:
        key = (kind, -1)
        if key in self.templates:
            return self.templates[key]
        name = f"bench_{kind}_catalog"
        await self.admin(f'CREATE DATABASE "{name}"')
        url = self.url(name)
        if kind == "ours":
            await pgai.ainstall(url)
        else:
            assert self.reference is not None, "the reference is not installed"
            proc = await asyncio.create_subprocess_exec(
                str(self.reference.pgai),
                "install",
                "-d",
                url,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                cwd=self.reference.venv,
            )
            out, _ = await proc.communicate()
            if proc.returncode != 0:
                raise RuntimeError(f"reference `pgai install` failed:\n{out.decode()}")
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(SOURCE_TABLE)
        finally:
            await conn.close()
        self.templates[key] = name
        return name

    async def template(self, kind: str, rows: int) -> str:
        """A template with ``kind``'s catalog and the first ``rows`` corpus documents."""
        key = (kind, rows)
        if key in self.templates:
            return self.templates[key]
        catalog = await self._catalog_template(kind)
        name = f"bench_{kind}_{rows}"
        await self.admin(f'CREATE DATABASE "{name}" TEMPLATE "{catalog}"')
        if rows:
            await self.load_documents(self.url(name), self.ensure_corpus(rows))
        self.templates[key] = name
        return name

    @staticmethod
    async def load_documents(url: str, docs: Iterable[Document]) -> None:
        conn = await asyncpg.connect(url)
        try:
            records = [(d.id, d.title, d.body) for d in docs]
            await conn.copy_records_to_table(
                "docs", records=records, columns=["id", "title", "body"]
            )
            await conn.execute("VACUUM ANALYZE docs")
        finally:
            await conn.close()

    # -- per-run clones -------------------------------------------------------------------------
    async def clone(
        self,
        kind: str,
        rows: int,
        provider_url: str,
        processing: Processing = Processing(),
        extra_rows: list[Document] | None = None,
    ) -> RunDatabase:
        """A fresh database for one run: the template, more rows if asked, the vectorizer."""
        template = await self.template(kind, rows)
        self._counter += 1
        name = f"run_{self._counter:03d}_{kind}"
        await self.admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        url = self.url(name)
        if extra_rows:
            await self.load_documents(url, extra_rows)
        conn = await asyncpg.connect(url)
        try:
            processing_sql = ""
            args: list[Any] = [MODEL, DIMENSIONS, provider_url, CHUNK_SIZE, CHUNK_OVERLAP, TEMPLATE]
            if not processing.is_default:
                processing_sql = (
                    ", processing => ai.processing_default(batch_size => $7, concurrency => $8)"
                )
                args += [processing.batch_size, processing.concurrency]
            vid = await conn.fetchval(CREATE_VECTORIZER.format(processing=processing_sql), *args)
            failed = await conn.fetchval(
                "SELECT format('%I.%I', queue_schema, queue_failed_table) FROM ai.vectorizer "
                "WHERE id = $1",
                vid,
            )
            await conn.execute("CHECKPOINT")
        finally:
            await conn.close()
        return RunDatabase(name, url, vid, failed)

    async def settle(self, run: RunDatabase) -> None:
        """VACUUM ANALYZE and CHECKPOINT a database kept for later, so that no background work
        on it lands in another run's measurement."""
        conn = await asyncpg.connect(run.url)
        try:
            await conn.execute("VACUUM ANALYZE")
            await conn.execute("CHECKPOINT")
        finally:
            await conn.close()

    async def drop(self, run: RunDatabase) -> None:
        await self.admin(f'DROP DATABASE IF EXISTS "{run.name}" WITH (FORCE)')


@dataclass
class Outcome:
    """What a run left in its database."""

    rows_embedded: int
    chunks: int
    pending: int
    failed_rows: int
    error_rows: int
    error_messages: list[str]


async def outcome(run: RunDatabase) -> Outcome:
    conn = await asyncpg.connect(run.url)
    try:
        counts = await conn.fetchrow(
            "SELECT count(DISTINCT id) AS rows, count(*) AS chunks FROM docs_embedding_store"
        )
        assert counts is not None
        pending = await conn.fetchval(
            "SELECT ai.vectorizer_queue_pending($1::int, true)", run.vectorizer_id
        )
        failed = await conn.fetchval(f"SELECT count(DISTINCT id) FROM {run.queue_failed_table}")
        errors = await conn.fetch(
            "SELECT message FROM ai.vectorizer_errors WHERE id = $1", run.vectorizer_id
        )
        return Outcome(
            rows_embedded=counts["rows"],
            chunks=counts["chunks"],
            pending=pending,
            failed_rows=failed,
            error_rows=len(errors),
            error_messages=sorted({r["message"] for r in errors}),
        )
    finally:
        await conn.close()


def _vector_binary(values: list[float]) -> bytes:
    """pgvector's binary wire format: dimensions, unused, float4 values."""
    return struct.pack(f"!hh{len(values)}f", len(values), 0, *values)


async def database_floor(run: RunDatabase, chunks: list[tuple[int, int, str]]) -> float:
    """Seconds to COPY ``chunks`` (id, chunk_seq, chunk) with precomputed vectors into the
    vectorizer's target table of ``run``: the least time any worker needs to store them."""
    import random

    rng = random.Random(7)
    pool = []
    for _ in range(256):
        values = [rng.uniform(-0.05, 0.05) for _ in range(DIMENSIONS)]
        pool.append(_vector_binary(values))
    records = [
        (doc_id, seq, text, pool[i % len(pool)]) for i, (doc_id, seq, text) in enumerate(chunks)
    ]
    conn = await asyncpg.connect(run.url)
    try:
        await conn.set_type_codec(
            "vector",
            schema=await conn.fetchval(
                "SELECT n.nspname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
                "WHERE t.typname = 'vector'"
            ),
            encoder=lambda value: value,
            decoder=lambda value: value,
            format="binary",
        )
        started = time.perf_counter()
        async with conn.transaction():
            await conn.copy_records_to_table(
                "docs_embedding_store",
                records=records,
                columns=["id", "chunk_seq", "chunk", "embedding"],
            )
        return time.perf_counter() - started
    finally:
        await conn.close()


async def stored_chunks(run: RunDatabase) -> list[tuple[int, int, str]]:
    """The chunks a worker stored, in key order (input for the database floor)."""
    conn = await asyncpg.connect(run.url)
    try:
        rows = await conn.fetch(
            "SELECT id, chunk_seq, chunk FROM docs_embedding_store ORDER BY id, chunk_seq"
        )
        return [(r[0], r[1], r[2]) for r in rows]
    finally:
        await conn.close()
