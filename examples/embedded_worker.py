"""An asyncio application that runs the vectorizer worker next to its own work.

The app owns the asyncpg pool and the httpx client and lends them to the worker; its own task
(here: reporting how many rows wait in each queue) runs beside the worker's coroutines. Ctrl-C
or SIGTERM stops both: the worker finishes its in-flight batches, then the app closes its pool.

    VECTORIZER_DB_URL=postgres://... OPENAI_API_KEY=... python examples/embedded_worker.py
    python examples/embedded_worker.py --seconds 30    # stop by itself after 30 s
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
from datetime import timedelta

import asyncpg
import httpx

from pgai.vectorizer import Worker, init_connection


async def report_queues(pool: asyncpg.Pool, stop: asyncio.Event) -> None:
    """The application's own work: print the queue depth of every vectorizer every second."""
    while not stop.is_set():
        rows = await pool.fetch("SELECT id, name, pending_items FROM ai.vectorizer_status")
        print(" ".join(f"{r['name']}={r['pending_items']}" for r in rows) or "no vectorizers")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=1.0)


async def main(db_url: str, seconds: float | None) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if seconds is not None:
        loop.call_later(seconds, stop.set)

    # init_connection teaches the pool's connections pgvector's type, which the worker needs.
    async with (
        asyncpg.create_pool(db_url, min_size=1, max_size=8, init=init_connection) as pool,
        httpx.AsyncClient(timeout=60) as client,
    ):
        worker = Worker(
            db_url,
            poll_interval=timedelta(seconds=5),
            concurrency=2,
            pool=pool,
            http_client=client,
        )
        worker_task = asyncio.create_task(worker.run())
        app_task = asyncio.create_task(report_queues(pool, stop))
        await stop.wait()
        worker.request_shutdown()
        error = await worker_task
        await app_task
    if error is not None:
        print(f"worker stopped with an error: {error}")
        return 1
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=None, help="stop after this long")
    args = parser.parse_args()
    url = os.environ.get("VECTORIZER_DB_URL", "postgres://postgres@localhost:5432/postgres")
    raise SystemExit(asyncio.run(main(url, args.seconds)))
