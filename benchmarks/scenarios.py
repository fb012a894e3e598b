"""The six scenarios of issue 5, each comparing the workers side by side in one run.

Every worker run gets a fresh clone of the same template (its own installer's catalog and the
same corpus), the provider's counters are reset before it, and the workers alternate: the
reference first in one scenario, ours first in the next, so a slow patch of a shared machine
does not always land on the same worker.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from benchmarks import corpus
from benchmarks.database import (
    CHUNK_OVERLAP,
    CHUNK_SIZE,
    TEMPLATE,
    BenchDatabase,
    Outcome,
    Processing,
    RunDatabase,
    database_floor,
    outcome,
    stored_chunks,
)
from benchmarks.provider import ProviderClient, estimate_tokens, replay
from benchmarks.workers import Measured, RunningWorker, WorkerCommand, run_once
from pgai.vectorizer.config import RecursiveCharacterTextSplitter
from pgai.vectorizer.formatting import compile_template
from pgai.vectorizer.pipeline import make_splitter

#: Database-floor measurements per run; the fastest is the floor.
FLOOR_TRIES = 3

SCENARIOS = ("cpu", "latency", "ratelimit", "freshness", "memory", "cost")
OURS, REFERENCE = "ours", "reference"

#: The equal settings of the CPU-bound comparison: pgai's own defaults, written down.
PINNED = Processing(batch_size=50, concurrency=1)


@dataclass
class Settings:
    """Sizes of one benchmark run (``--quick`` shrinks them)."""

    rows: int = 20_000
    latency_rows: int = 5_000
    ratelimit_rows: int = 1_000
    tokens_per_minute: int = 1_800_000
    ratelimit_concurrency: int = 4
    latency_concurrency: int = 4
    huge_rows: int = 3
    huge_megabytes: float = 10.0
    freshness_samples: int = 20
    freshness_timeout: float = 10.0
    run_timeout: float = 900.0


@dataclass
class Run:
    """One measured worker run (or a floor) and what it left behind."""

    scenario: str
    worker: str
    settings: str
    rows: int
    measured: Measured | None = None
    outcome: Outcome | None = None
    provider: dict[str, Any] = field(default_factory=dict)
    seconds: float | None = None
    note: str = ""
    #: False when ``rows`` is the work done (re-embedding, inserts), not the rows stored.
    rows_from_outcome: bool = True
    #: CPU seconds the PostgreSQL server used during the run.
    db_cpu_seconds: float | None = None

    @property
    def wall(self) -> float:
        if self.seconds is not None:
            return self.seconds
        assert self.measured is not None
        return self.measured.wall_seconds

    @property
    def first_request_after(self) -> float | None:
        """Seconds from the process start to its first provider request (start-up cost)."""
        first = self.provider.get("first_request")
        if self.measured is None or first is None:
            return None
        return float(first) - self.measured.started_monotonic

    @property
    def rows_done(self) -> int:
        if self.outcome is not None and self.rows_from_outcome:
            return self.outcome.rows_embedded
        return self.rows

    @property
    def rows_per_second(self) -> float:
        return self.rows_done / self.wall if self.wall > 0 else 0.0

    @property
    def chunks(self) -> int:
        if self.outcome is not None:
            return self.outcome.chunks
        return int(self.provider.get("inputs", 0))

    @property
    def chunks_per_second(self) -> float:
        return self.chunks / self.wall if self.wall > 0 else 0.0

    @property
    def ok(self) -> bool:
        if self.measured is None:
            return True
        return (
            self.measured.exit_code == 0
            and self.outcome is not None
            and (self.outcome.rows_embedded == self.rows or not self.rows_from_outcome)
            and self.outcome.pending == 0
        )


@dataclass
class Comparison:
    """One line of the summary: a measure for both workers, their ratio and the target."""

    scenario: str
    measure: str
    ours: str
    reference: str
    ratio: str
    target: str
    met: bool | None


def _least_tokens(
    docs: dict[int, corpus.Document], ids: Sequence[int], edit: Callable[[str, int], str]
) -> int:
    """Tokens of the chunk texts that ``edit`` gives the rows ``ids`` and they did not have."""
    split = make_splitter(
        RecursiveCharacterTextSplitter(
            implementation="recursive_character_text_splitter",
            chunk_size=CHUNK_SIZE,
            chunk_overlap=CHUNK_OVERLAP,
        )
    )
    fmt = compile_template(TEMPLATE)
    total = 0
    for doc_id in ids:
        doc = docs[doc_id]
        row = fmt({"id": doc.id, "title": doc.title})
        before = {row(c) for c in split(doc.body)}
        total += estimate_tokens(
            [t for t in (row(c) for c in split(edit(doc.body, doc_id))) if t not in before]
        )
    return total


def cpu_seconds(run: Run | None) -> float | None:
    return run.measured.cpu_seconds if run is not None and run.measured is not None else None


async def _chunks_of(conn: asyncpg.Connection, ids: list[int]) -> dict[int, set[str]]:
    rows = await conn.fetch(
        "SELECT id, chunk FROM docs_embedding_store WHERE id = ANY($1::int[])", ids
    )
    chunks: dict[int, set[str]] = {}
    for row in rows:
        chunks.setdefault(row["id"], set()).add(row["chunk"])
    return chunks


class Bench:
    """Runs the selected scenarios and collects :class:`Run` and :class:`Comparison` rows."""

    def __init__(
        self,
        settings: Settings,
        db: BenchDatabase,
        provider: ProviderClient,
        workers: dict[str, WorkerCommand],
        logs: Path,
        log: Callable[[str], None] = print,
    ) -> None:
        self.settings = settings
        self.db = db
        self.provider = provider
        self.workers = workers
        self.logs = logs
        self.log = log
        self.runs: list[Run] = []
        self.comparisons: list[Comparison] = []
        self.notes: list[str] = []
        self._backfills: dict[tuple[str, str], tuple[Run, RunDatabase]] = {}
        self._log_counter = 0
        self._order_flip = False

    # -- helpers --------------------------------------------------------------------------------
    def order(self) -> list[str]:
        """The workers of this scenario, alternating which one goes first."""
        names = [REFERENCE, OURS] if not self._order_flip else [OURS, REFERENCE]
        self._order_flip = not self._order_flip
        return [name for name in names if name in self.workers]

    def _log_path(self, scenario: str, worker: str) -> Path:
        self._log_counter += 1
        return self.logs / f"{self._log_counter:02d}-{scenario}-{worker}.log"

    async def backfill(
        self,
        scenario: str,
        worker: str,
        rows: int,
        processing: Processing,
        options: Sequence[str] = (),
        latency_ms: float = 0,
        tokens_per_minute: int | None = None,
        record: bool = False,
        settings_label: str = "",
        extra_rows: list[corpus.Document] | None = None,
        keep: bool = False,
    ) -> tuple[Run, RunDatabase]:
        """A fresh database with ``rows`` queued rows, and ``worker --once`` draining it."""
        run_db = await self.db.clone(
            worker, rows, self.provider.url, processing, extra_rows=extra_rows
        )
        total_rows = rows + len(extra_rows or [])
        await self.provider.configure(
            latency_ms=latency_ms, tokens_per_minute=tokens_per_minute, record=record
        )
        self.log(f"  {scenario}: {worker} ({settings_label}), {total_rows} rows ...")
        db_cpu = self.db.cpu_seconds()
        measured = await run_once(
            self.workers[worker],
            run_db.url,
            list(options),
            self._log_path(scenario, worker),
            self.settings.run_timeout,
        )
        db_cpu = self._cpu_delta(db_cpu)
        run = Run(
            scenario=scenario,
            worker=worker,
            settings=settings_label,
            rows=total_rows,
            measured=measured,
            outcome=await outcome(run_db),
            provider=await self.provider.stats(),
            db_cpu_seconds=db_cpu,
        )
        self.runs.append(run)
        self.log(
            f"    {run.wall:.1f} s, {run.rows_per_second:.0f} rows/s, exit {measured.exit_code}, "
            f"CPU {measured.cpu_seconds:.1f} s (database {db_cpu or 0:.1f} s), "
            f"peak RSS {measured.peak_rss_mb:.0f} MB"
        )
        if not run.ok:
            self.log(f"    ! incomplete run; log tail:\n{measured.log_tail()}")
        if keep:
            # Otherwise autovacuum would tidy this database up during the next worker's run.
            await self.db.settle(run_db)
        else:
            await self.db.drop(run_db)
        return run, run_db

    def _cpu_delta(self, before: float | None) -> float | None:
        after = self.db.cpu_seconds()
        return after - before if after is not None and before is not None else None

    def compare(
        self,
        scenario: str,
        measure: str,
        ours: float | None,
        reference: float | None,
        fmt: Callable[[float], str],
        target: str,
        threshold: float | None,
        higher_is_better: bool = True,
    ) -> None:
        """Add a summary line; the ratio is ours/reference, checked against ``threshold``."""
        ratio = None
        if ours is not None and reference:
            ratio = ours / reference
        met = None
        if ratio is not None and threshold is not None:
            met = ratio >= threshold if higher_is_better else ratio <= threshold
        self.comparisons.append(
            Comparison(
                scenario=scenario,
                measure=measure,
                ours=fmt(ours) if ours is not None else "n/a",
                reference=fmt(reference) if reference is not None else "n/a",
                ratio=f"{ratio:.2f}x" if ratio is not None else "n/a",
                target=target,
                met=met,
            )
        )

    def absolute(
        self,
        scenario: str,
        measure: str,
        ours: str,
        reference: str,
        ratio: str,
        target: str,
        met: bool | None,
    ) -> None:
        """A summary line whose target is on our value itself, not on the ratio."""
        self.comparisons.append(Comparison(scenario, measure, ours, reference, ratio, target, met))

    # -- scenario 1: CPU-bound ------------------------------------------------------------------
    async def cpu(self) -> None:
        """0 ms provider, pgai's default batch size and concurrency pinned for both workers;
        plus ours at its own defaults, the database floor and the provider floor."""
        rows = self.settings.rows
        self.log(f"scenario 1, CPU-bound: {rows} rows, 0 ms provider")
        results: dict[str, Run] = {}
        db_floor: Run | None = None
        provider_floor: Run | None = None
        for worker in self.order():
            run, run_db = await self.backfill(
                "cpu",
                worker,
                rows,
                PINNED,
                ["-c", "1"],
                record=worker == OURS,
                settings_label="batch 50, -c 1",
                keep=True,
            )
            results[worker] = run
            self._backfills[("pinned", worker)] = (run, run_db)
        if OURS in self.workers:
            recorded = await self.provider.recorded()
            await self.provider.configure()
            seconds = await replay(self.provider.port, recorded, concurrency=1)
            provider_floor = Run("cpu", "provider floor", "same requests, 1 connection", rows)
            provider_floor.seconds = seconds
            provider_floor.provider = await self.provider.stats()
            provider_floor.note = "the fake server answering our worker's requests, no database"
            self.runs.append(provider_floor)
            self.log(f"    provider floor: {seconds:.1f} s, {rows / seconds:.0f} rows/s")
            del recorded
            chunks = await stored_chunks(self._backfills[("pinned", OURS)][1])
            # A floor is the best the database can do: the fastest of a few tries (one try
            # measured anywhere from 3.0 to 4.0 s here, and a slow one flattered the workers)
            tries: list[tuple[float, float | None]] = []
            for _ in range(FLOOR_TRIES):
                floor_db = await self.db.clone(OURS, rows, self.provider.url, PINNED)
                db_cpu = self.db.cpu_seconds()
                seconds = await database_floor(floor_db, chunks)
                tries.append((seconds, self._cpu_delta(db_cpu)))
                await self.db.drop(floor_db)
            seconds, floor_cpu = min(tries, key=lambda t: t[0])
            db_floor = Run("cpu", "database floor", "COPY precomputed vectors", rows)
            db_floor.seconds = seconds
            db_floor.db_cpu_seconds = floor_cpu
            db_floor.provider = {"inputs": len(chunks)}
            db_floor.note = (
                "binary COPY of the same chunks into the same target table; the fastest of "
                f"{FLOOR_TRIES} tries ({', '.join(f'{t:.1f}' for t, _ in tries)} s)"
            )
            self.runs.append(db_floor)
            self.log(f"    database floor: {seconds:.1f} s, {rows / seconds:.0f} rows/s")
            del chunks
            defaults_run, defaults_db = await self.backfill(
                "cpu", OURS, rows, Processing(), settings_label="defaults"
            )
            self._backfills[("defaults", OURS)] = (defaults_run, defaults_db)
        self.compare(
            "1 CPU-bound (0 ms, batch 50, -c 1)",
            f"rows/s ({rows} rows)",
            results[OURS].rows_per_second if OURS in results else None,
            results[REFERENCE].rows_per_second if REFERENCE in results else None,
            lambda v: f"{v:.0f}",
            ">= 3x",
            3.0,
        )
        self.compare(
            "1 CPU-bound",
            "worker CPU seconds",
            cpu_seconds(results.get(OURS)),
            cpu_seconds(results.get(REFERENCE)),
            lambda v: f"{v:.1f} s",
            "(lower is better)",
            None,
        )
        if ("defaults", OURS) in self._backfills:
            self.compare(
                "1 CPU-bound (0 ms, each at its defaults)",
                f"rows/s ({rows} rows)",
                self._backfills[("defaults", OURS)][0].rows_per_second,
                results[REFERENCE].rows_per_second if REFERENCE in results else None,
                lambda v: f"{v:.0f}",
                "(pgai's defaults are batch 50, -c 1)",
                None,
            )
        if OURS in results and db_floor is not None and provider_floor is not None:
            ours_rate = results[OURS].rows_per_second
            self.absolute(
                "1 CPU-bound",
                "ours rows/s vs the database floor",
                f"{ours_rate:.0f}",
                f"floor {db_floor.rows_per_second:.0f}",
                f"floor is {db_floor.rows_per_second / ours_rate:.1f}x faster"
                if ours_rate
                else "n/a",
                "within 2x of the floor",
                ours_rate * 2 >= db_floor.rows_per_second if ours_rate else False,
            )
            self.absolute(
                "1 CPU-bound",
                "ours rows/s vs the provider floor",
                f"{ours_rate:.0f}",
                f"floor {provider_floor.rows_per_second:.0f}",
                f"floor is {provider_floor.rows_per_second / ours_rate:.1f}x faster"
                if ours_rate
                else "n/a",
                "(the fake server is not the bottleneck)",
                None,
            )

    # -- scenario 2: latency-bound --------------------------------------------------------------
    async def latency(self) -> None:
        """200 ms per request: both at their defaults, then both at the same --concurrency."""
        rows = min(self.settings.rows, self.settings.latency_rows)
        concurrency = self.settings.latency_concurrency
        self.log(f"scenario 2, latency-bound: {rows} rows, 200 ms provider")
        for label, options, target, threshold in (
            ("defaults", [], ">= 5x", 5.0),
            (f"-c {concurrency}", ["-c", str(concurrency)], ">= 1.5x", 1.5),
        ):
            results: dict[str, Run] = {}
            for worker in self.order():
                run, _ = await self.backfill(
                    "latency",
                    worker,
                    rows,
                    Processing(),
                    options,
                    latency_ms=200,
                    settings_label=label,
                )
                results[worker] = run
            self.compare(
                f"2 latency-bound (200 ms, {label})",
                f"rows/s ({rows} rows)",
                results[OURS].rows_per_second if OURS in results else None,
                results[REFERENCE].rows_per_second if REFERENCE in results else None,
                lambda v: f"{v:.0f}",
                target,
                threshold,
            )

    # -- scenario 3: rate-limited provider ------------------------------------------------------
    async def ratelimit(self) -> None:
        """A tokens-per-minute limit well below what either worker can send; 200 ms latency."""
        rows = min(self.settings.rows, self.settings.ratelimit_rows)
        tpm = self.settings.tokens_per_minute
        concurrency = self.settings.ratelimit_concurrency
        allowed = tpm / 60
        self.log(f"scenario 3, rate-limited: {rows} rows, {tpm} tokens/min, 200 ms")
        results: dict[str, Run] = {}
        for worker in self.order():
            run, _ = await self.backfill(
                "ratelimit",
                worker,
                rows,
                Processing(),
                ["-c", str(concurrency)],
                latency_ms=200,
                tokens_per_minute=tpm,
                settings_label=f"defaults, -c {concurrency}, {tpm // 1000}k TPM",
            )
            results[worker] = run

        def share(run: Run) -> float:
            busy = run.provider.get("busy_seconds") or run.wall
            return float(run.provider.get("tokens", 0)) / busy / allowed if busy else 0.0

        def failed(run: Run) -> int:
            assert run.outcome is not None
            return run.rows - run.outcome.rows_embedded

        ours = results.get(OURS)
        ref = results.get(REFERENCE)
        self.compare(
            "3 rate-limited (200 ms, -c 4)",
            f"sustained tokens/s as % of allowed ({allowed:.0f}/s)",
            share(ours) * 100 if ours else None,
            share(ref) * 100 if ref else None,
            lambda v: f"{v:.0f}%",
            "ours >= 90%",
            None,
        )
        if ours is not None:
            self.comparisons[-1].met = share(ours) >= 0.9

        def failures(run: Run | None) -> str:
            if run is None or run.outcome is None:
                return "n/a"
            return f"{failed(run)} / {run.outcome.error_rows} / {run.provider.get('rate_limited')}"

        self.absolute(
            "3 rate-limited",
            "rows not embedded / error records / 429 answers",
            failures(ours),
            failures(ref),
            "",
            "0 failed rows, no 429 recorded as an error",
            failed(ours) == 0 and ours.outcome is not None and ours.outcome.error_rows == 0
            if ours
            else None,
        )

    # -- scenario 4: freshness ------------------------------------------------------------------
    async def freshness(self) -> None:
        """An idle worker (no --once, 5 min poll interval); rows inserted one at a time; the
        time from INSERT to the row's chunks being in the target table."""
        samples = self.settings.freshness_samples
        self.log(f"scenario 4, freshness: up to {samples} single-row inserts, 0 ms provider")
        results: dict[str, list[float | None]] = {}
        for worker in self.order():
            results[worker] = await self._freshness_one(worker, samples)

        def describe(latencies: list[float | None] | None) -> tuple[str, float | None]:
            if not latencies:
                return "n/a", None
            timeout = self.settings.freshness_timeout
            done = sorted(x for x in latencies if x is not None)
            missing = len(latencies) - len(done)
            if missing * 2 >= len(latencies):
                return f"> {timeout:.0f} s ({missing}/{len(latencies)} never searchable)", None
            values = done + [float("inf")] * missing
            p50 = statistics.median(values)
            p95 = values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]
            text = f"p50 {p50 * 1000:.0f} ms, p95 " + (
                f"{p95 * 1000:.0f} ms" if p95 != float("inf") else f"> {timeout:.0f} s"
            )
            return text, p50

        ours_text, ours_p50 = describe(results.get(OURS))
        ref_text, ref_p50 = describe(results.get(REFERENCE))
        ratio = ""
        if ours_p50 is not None and REFERENCE in results and ref_p50 is None:
            ratio = f"> {self.settings.freshness_timeout / ours_p50:.0f}x faster"
        elif ours_p50 and ref_p50:
            ratio = f"{ours_p50 / ref_p50:.2f}x"
        self.absolute(
            "4 freshness (idle worker, 5 min poll)",
            "insert-to-searchable latency",
            ours_text,
            ref_text + (" (polls every 5 min)" if REFERENCE in results else ""),
            ratio,
            "ours p50 < 1 s",
            ours_p50 < 1.0 if ours_p50 is not None else (False if OURS in results else None),
        )

    async def _freshness_one(self, worker: str, samples: int) -> list[float | None]:
        wait = self.settings.freshness_timeout
        # One row is queued before the worker starts: once it is searchable, the worker has
        # finished its first cycle and sits idle.
        run_db = await self.db.clone(worker, 1, self.provider.url, Processing())
        await self.provider.configure()
        running = RunningWorker(
            self.workers[worker],
            self.workers[worker].command(run_db.url, "--poll-interval", "5m"),
            self._log_path("freshness", worker),
        )
        conn = await asyncpg.connect(run_db.url)
        latencies: list[float | None] = []
        try:
            if await self._searchable_within(conn, 1, 120.0) is None:
                raise RuntimeError(f"{worker}: the first row was never embedded")
            await asyncio.sleep(1.0)
            new_docs = list(corpus.documents(samples + 1))[1:]
            for doc in new_docs:
                started = time.perf_counter()
                await conn.execute(
                    "INSERT INTO docs (id, title, body) VALUES ($1, $2, $3)",
                    doc.id,
                    doc.title,
                    doc.body,
                )
                latency = await self._searchable_within(conn, doc.id, wait, started)
                latencies.append(latency)
                if latency is None:
                    break  # a polling worker: later rows would wait just as long
                await asyncio.sleep(0.2)
        finally:
            await conn.close()
            running.terminate()
            measured = await running.finish(time_limit=60)
            await self.db.drop(run_db)
        run = Run("freshness", worker, "no --once, --poll-interval 5m", len(latencies))
        run.measured = measured
        run.provider = await self.provider.stats()
        done = [x for x in latencies if x is not None]
        run.note = f"{len(done)}/{len(latencies)} inserted rows searchable"
        if done:
            shown = ", ".join(f"{x * 1000:.0f}" for x in done[:8])
            run.note += f"; ms: {shown}" + (" ..." if len(done) > 8 else "")
        if len(done) < len(latencies):
            run.note += f"; stopped at the first row not searchable within {wait:.0f} s"
        self.runs.append(run)
        self.log(f"    {worker}: {run.note}")
        return latencies

    @staticmethod
    async def _searchable_within(
        conn: asyncpg.Connection, doc_id: int, wait: float, started: float | None = None
    ) -> float | None:
        started = time.perf_counter() if started is None else started
        while True:
            found = await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM docs_embedding_store WHERE id = $1)", doc_id
            )
            elapsed = time.perf_counter() - started
            if found:
                return elapsed
            if elapsed > wait:
                return None
            await asyncio.sleep(0.005)

    # -- scenario 5: memory ---------------------------------------------------------------------
    async def memory(self) -> None:
        """Peak RSS on the default backfill, and on a few rows of 10 MB of text."""
        rows = self.settings.rows
        self.log("scenario 5, memory")
        default_runs: dict[str, Run] = {}
        for worker in self.order():
            # pgai's defaults are batch 50, -c 1: the CPU-bound run already is its default run.
            key = ("defaults", worker) if worker == OURS else ("pinned", worker)
            if key not in self._backfills:
                processing = Processing() if worker == OURS else PINNED
                self._backfills[key] = await self.backfill(
                    "memory", worker, rows, processing, settings_label="defaults"
                )
            default_runs[worker] = self._backfills[key][0]

        def rss(run: Run | None) -> float | None:
            return run.measured.peak_rss_mb if run and run.measured else None

        ours_rss = rss(default_runs.get(OURS))
        self.compare(
            f"5 memory: default backfill ({rows} rows)",
            "peak RSS",
            ours_rss,
            rss(default_runs.get(REFERENCE)),
            lambda v: f"{v:.0f} MB",
            "ours < 200 MB",
            None,
        )
        self.comparisons[-1].met = ours_rss < 200 if ours_rss is not None else None
        count, size = self.settings.huge_rows, self.settings.huge_megabytes
        huge = [
            corpus.Document(1_000_000 + i, f"Huge document {i}", corpus.huge_text(size, seed=i))
            for i in range(count)
        ]
        huge_runs: dict[str, Run] = {}
        for worker in self.order():
            huge_runs[worker], _ = await self.backfill(
                "memory",
                worker,
                0,
                Processing(),
                extra_rows=huge,
                settings_label=f"defaults, {count} rows of {size:.0f} MB",
            )
        ours_huge = rss(huge_runs.get(OURS))
        self.compare(
            f"5 memory: {count} rows of {size:.0f} MB text",
            "peak RSS",
            ours_huge,
            rss(huge_runs.get(REFERENCE)),
            lambda v: f"{v:.0f} MB",
            "bounded (ours < 200 MB)",
            None,
        )
        self.comparisons[-1].met = ours_huge < 200 if ours_huge is not None else None

    # -- scenario 6: cost -----------------------------------------------------------------------
    async def cost(self) -> None:
        """After a backfill: 10% of rows get one paragraph rewritten, another 10% only a column
        the vectorizer does not read; the tokens each worker sends to catch up."""
        rows = self.settings.rows
        self.log(f"scenario 6, cost: update workload on {rows} embedded rows")
        docs = {d.id: d for d in self.db.ensure_corpus(rows)}
        edited = [(i, corpus.edit_one_paragraph(docs[i].body, seed=i)) for i in docs if i % 10 == 1]
        edited_ids = [doc_id for doc_id, _ in edited]
        minimum = 0
        results: dict[str, Run] = {}
        for worker in self.order():
            if ("pinned", worker) not in self._backfills:
                self._backfills[("pinned", worker)] = await self.backfill(
                    "cost", worker, rows, PINNED, ["-c", "1"], settings_label="backfill", keep=True
                )
            _, run_db = self._backfills.pop(("pinned", worker))
            conn = await asyncpg.connect(run_db.url)
            try:
                before = await _chunks_of(conn, edited_ids)
                await conn.executemany("UPDATE docs SET body = $2 WHERE id = $1", edited)
                await conn.execute("UPDATE docs SET views = views + 1 WHERE id % 10 = 6")
                queued = await conn.fetchval(
                    "SELECT ai.vectorizer_queue_pending($1::int, true)", run_db.vectorizer_id
                )
            finally:
                await conn.close()
            await self.db.settle(run_db)
            await self.provider.configure()
            self.log(f"  cost: {worker} re-embedding ({queued} rows queued) ...")
            db_cpu = self.db.cpu_seconds()
            measured = await run_once(
                self.workers[worker],
                run_db.url,
                ["-c", "1"],
                self._log_path("cost", worker),
                self.settings.run_timeout,
            )
            run = Run("cost", worker, "re-embed after updates, batch 50, -c 1", queued)
            run.rows_from_outcome = False
            run.measured = measured
            run.db_cpu_seconds = self._cpu_delta(db_cpu)
            run.outcome = await outcome(run_db)
            run.provider = await self.provider.stats()
            conn = await asyncpg.connect(run_db.url)
            try:
                after = await _chunks_of(conn, edited_ids)
            finally:
                await conn.close()
            # The least any worker must send: the chunk texts a row did not have before.
            minimum = sum(
                estimate_tokens([c for c in chunks if c not in before.get(doc_id, set())])
                for doc_id, chunks in after.items()
            )
            run.note = (
                f"{queued} rows queued by {len(edited)} body edits and "
                f"{len(range(6, rows + 1, 10))} `views`-only updates"
            )
            self.runs.append(run)
            results[worker] = run
            self.log(
                f"    {run.provider.get('tokens', 0)} tokens in {run.provider.get('requests', 0)}"
                f" requests, {run.wall:.1f} s; new chunk texts: {minimum} tokens"
            )
            await self.db.drop(run_db)

        def tokens(name: str) -> float | None:
            return float(results[name].provider.get("tokens", 0)) if name in results else None

        self.compare(
            "6 cost: update workload",
            "tokens sent to re-embed",
            tokens(OURS),
            tokens(REFERENCE),
            lambda v: f"{v:,.0f}",
            "<= 15%",
            0.15,
            higher_is_better=False,
        )
        reference_tokens = tokens(REFERENCE)
        self.absolute(
            "6 cost",
            "the least possible: tokens of chunk texts the edited rows did not have before",
            f"{minimum:,}",
            "",
            f"{minimum / reference_tokens:.2f}x" if reference_tokens else "n/a",
            "(what perfect chunk reuse would send)",
            None,
        )
        # The same least possible for smaller edits of the same rows, computed with the
        # worker's own chunker and formatter (no worker run): what a target can ask for.
        if reference_tokens:
            for label, edit in (
                ("one sentence of a paragraph rewritten", corpus.edit_one_sentence),
                ("one word replaced", corpus.edit_one_word),
            ):
                least = _least_tokens(docs, edited_ids, edit)
                self.absolute(
                    "6 cost",
                    f"the least possible if instead {label} (computed, not run)",
                    f"{least:,}",
                    "",
                    f"{least / reference_tokens:.2f}x",
                    "(each word sits in about 1.4 chunks of 800/400)",
                    None,
                )

    def save(self, path: Path) -> None:
        """Every run and comparison as JSON, next to the workers' logs."""
        data = {
            "settings": dataclasses.asdict(self.settings),
            "comparisons": [dataclasses.asdict(c) for c in self.comparisons],
            "runs": [dataclasses.asdict(r) for r in self.runs],
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=1, default=str))

    async def cleanup(self) -> None:
        for _, run_db in self._backfills.values():
            await self.db.drop(run_db)
        self._backfills.clear()
