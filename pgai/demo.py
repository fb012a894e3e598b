"""``pgai demo`` (``make demo``): the whole job on a laptop, with nothing but Python.

It starts an embedded PostgreSQL 18 + pgvector under ``./.pgai-demo/``, installs the catalog,
loads a corpus that needs no download (the help topics and docstrings that ship with Python
itself), defines a vectorizer with a local model (or OpenAI when ``OPENAI_API_KEY`` is set),
runs the worker with a live progress line, and answers a few questions with pgvector. Run twice,
it reuses what exists.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import anyio
import asyncpg
import httpx

from pgai.catalog.installer import ainstall
from pgai.database import connect
from pgai.vectorizer.config import parse_vectorizer
from pgai.vectorizer.embedders.factory import make_embedder
from pgai.vectorizer.worker import Worker

#: Standard-library modules whose docstrings make the corpus, besides the help topics.
CORPUS_MODULES = (
    "builtins", "os", "os.path", "pathlib", "shutil", "io", "json", "csv", "re", "string",
    "textwrap", "itertools", "functools", "collections", "heapq", "bisect", "math",
    "statistics", "random", "datetime", "time", "calendar", "subprocess", "threading",
    "asyncio", "socket", "urllib.parse", "http.client", "sqlite3", "logging", "argparse",
    "unittest", "tempfile", "glob", "hashlib", "base64", "zipfile", "gzip", "pickle",
    "copy", "dataclasses", "enum", "typing", "contextlib", "operator", "decimal", "fractions",
)  # fmt: skip

QUESTIONS = (
    "How do I read a file line by line?",
    "sort a list in descending order",
    "run a shell command and capture its output",
    "what happens when an exception is raised inside a with block?",
)

TABLE = "python_docs"


@dataclass(frozen=True)
class Document:
    id: int
    title: str
    body: str


def python_corpus(limit: int | None = None) -> list[Document]:
    """Help topics and docstrings of the running Python: real text, no download."""
    docs: list[Document] = []
    seen: set[str] = set()

    def add(title: str, body: str | None) -> None:
        if not body or title in seen or len(body.strip()) < 40:
            return
        seen.add(title)
        docs.append(Document(len(docs) + 1, title, inspect.cleandoc(body)))

    try:
        from pydoc_data import topics as help_topics

        topics: dict[str, str] = dict(help_topics.topics)
    except ImportError:  # pragma: no cover - some distributions strip pydoc_data
        topics = {}
    for name in sorted(topics):
        add(f"help topic {name}", topics[name])
    for module_name in CORPUS_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:  # pragma: no cover - optional modules (sqlite3 on minimal builds)
            continue
        add(f"module {module_name}", module.__doc__)
        for name, member in _public_members(module):
            add(f"{module_name}.{name}", inspect.getdoc(member))
    return docs[:limit] if limit else docs


def _public_members(module: object) -> Iterator[tuple[str, object]]:
    for name in sorted(dir(module)):
        if name.startswith("_"):
            continue
        try:
            member = getattr(module, name)
        except AttributeError:  # pragma: no cover - lazy attributes
            continue
        if inspect.isroutine(member) or inspect.isclass(member):
            yield name, member


class Progress:
    """A live progress line: rows, chunks, rate and ETA (a line every few seconds off a TTY)."""

    def __init__(self, total: int, out: TextIO) -> None:
        self.total = total
        self.out = out
        self.started = time.monotonic()
        self.tty = out.isatty()
        self._last_line = 0.0

    def show(self, done: int, chunks: int, tokens: int, final: bool = False) -> None:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = done / elapsed
        remaining = (self.total - done) / rate if rate > 0 else float("inf")
        eta = "--" if remaining == float("inf") else f"{remaining:4.0f}s"
        width = 30
        filled = int(width * done / self.total) if self.total else width
        bar = "#" * filled + "-" * (width - filled)
        line = (
            f"  [{bar}] {done}/{self.total} rows  {chunks} chunks  ~{tokens} tokens  "
            f"{rate:6.1f} rows/s  ETA {eta}"
        )
        if self.tty:
            self.out.write("\r" + line + ("\n" if final else ""))
            self.out.flush()
        elif final or time.monotonic() - self._last_line >= 2:
            self.out.write(line + "\n")
            self._last_line = time.monotonic()


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


async def run_demo(data_dir: Path, rows: int | None, concurrency: int) -> int:
    say(f"starting an embedded PostgreSQL 18 + pgvector in {data_dir}/ (reused on the next run)")
    from pgai.embedded import start_embedded_postgres

    server = await anyio.to_thread.run_sync(start_embedded_postgres, data_dir / "data")
    db_url = server.url("postgres")
    try:
        say("installing the ai catalog (pgai install)")
        changed = await ainstall(db_url)
        print("    installed" if changed else "    already installed, nothing to do")

        conn = await connect(db_url)
        try:
            vectorizer_id, total = await _prepare(conn, rows)
        finally:
            await conn.close()

        say(f"running the vectorizer worker on {total} rows (pgai vectorizer worker --once)")
        worker = Worker(db_url, once=True, concurrency=concurrency, vectorizer_ids=[vectorizer_id])
        progress = Progress(total, sys.stdout)
        embedded_before = await _embedded_rows(db_url)
        async with anyio.create_task_group() as tg:
            result: list[Exception | None] = []

            async def work() -> None:
                result.append(await worker.run())
                tg.cancel_scope.cancel()

            tg.start_soon(work)
            while True:
                stats = worker.stats
                progress.show(embedded_before + stats.rows, stats.chunks, stats.tokens)
                await anyio.sleep(0.25)
        stats = worker.stats
        progress.show(await _embedded_rows(db_url), stats.chunks, stats.tokens, final=True)
        if result and result[0] is not None:
            say(f"the worker stopped with an error: {result[0]}")
            return 1

        say("asking questions (semantic search with pgvector)")
        await _search(db_url, vectorizer_id)
        say("done. Next, on your own database:")
        print(
            "    pgai install -d postgres://user:password@host:5432/db\n"
            "    psql ... -c \"SELECT ai.create_vectorizer('my_table'::regclass, "
            "loading => ai.loading_column('body'), "
            "embedding => ai.embedding_openai('text-embedding-3-small', 768))\"\n"
            "    OPENAI_API_KEY=... pgai vectorizer worker -d postgres://user:password@host:5432/db"
        )
        print(f"    This demo's database stays in {data_dir}/; psql URL: {db_url}")
        return 0
    finally:
        await anyio.to_thread.run_sync(server.stop)


def _embedding_sql() -> tuple[str, str]:
    if os.environ.get("OPENAI_API_KEY"):
        return "ai.embedding_openai('text-embedding-3-small', 768)", "OpenAI text-embedding-3-small"
    return (
        "ai.embedding_sentence_transformers('all-MiniLM-L6-v2', 384)",
        "the local model all-MiniLM-L6-v2 (no API key needed)",
    )


async def _prepare(conn: asyncpg.Connection, rows: int | None) -> tuple[int, int]:
    await conn.execute("CREATE SCHEMA IF NOT EXISTS demo")
    exists = await conn.fetchval("SELECT to_regclass('demo.python_docs') IS NOT NULL")
    if not exists:
        corpus = python_corpus(rows)
        say(f"loading {len(corpus)} documents: Python's help topics and docstrings")
        await conn.execute(
            "CREATE TABLE demo.python_docs (id int PRIMARY KEY, title text NOT NULL, body text)"
        )
        await conn.copy_records_to_table(
            TABLE, schema_name="demo", records=[(d.id, d.title, d.body) for d in corpus]
        )
    else:
        say("the documents are loaded already (demo.python_docs)")
    total = int(await conn.fetchval("SELECT count(*) FROM demo.python_docs"))
    embedding, described = _embedding_sql()
    vectorizer_id = await conn.fetchval("SELECT id FROM ai.vectorizer WHERE name = 'python_docs'")
    if vectorizer_id is None:
        say(f"creating a vectorizer with {described}")
        vectorizer_id = await conn.fetchval(
            f"""
            SELECT ai.create_vectorizer('demo.python_docs'::regclass,
                name => 'python_docs',
                loading => ai.loading_column('body'),
                embedding => {embedding},
                chunking => ai.chunking_recursive_character_text_splitter(800, 100),
                formatting => ai.formatting_python_template('$title: $chunk'),
                processing => ai.processing_default(batch_size => 8))
            """
        )
    else:
        say("the vectorizer python_docs exists already")
    return int(vectorizer_id), total


async def _embedded_rows(db_url: str) -> int:
    conn = await connect(db_url)
    try:
        return int(
            await conn.fetchval("SELECT count(DISTINCT id) FROM demo.python_docs_embedding_store")
        )
    finally:
        await conn.close()


async def _search(db_url: str, vectorizer_id: int) -> None:
    conn = await connect(db_url)
    try:
        row = await conn.fetchval(
            "SELECT to_jsonb(v) FROM ai.vectorizer v WHERE id = $1", vectorizer_id
        )
        import json

        vectorizer = parse_vectorizer(json.loads(row) if isinstance(row, str) else row)
        async with httpx.AsyncClient(timeout=60) as client:
            embedder = make_embedder(vectorizer, client=client)
            await embedder.setup()
            vectors = await embedder.embed(list(QUESTIONS))
        for question, vector in zip(QUESTIONS, vectors, strict=True):
            hits = await conn.fetch(
                """
                SELECT title, chunk, embedding <=> $1::text::vector AS distance
                FROM demo.python_docs_embedding
                ORDER BY distance LIMIT 3
                """,
                "[" + ",".join(str(x) for x in vector) + "]",
            )
            print(f"\n  Q: {question}")
            for hit in hits:
                snippet = " ".join(hit["chunk"].split())[:120]
                print(f"    {hit['distance']:.3f}  {snippet}")
        print()
    finally:
        await conn.close()


def main(data_dir: str = ".pgai-demo", rows: int | None = None, concurrency: int = 2) -> int:
    """Run the demo; returns the process exit code."""
    return anyio.run(run_demo, Path(data_dir).resolve(), rows, concurrency)
