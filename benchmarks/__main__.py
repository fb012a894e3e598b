"""``python -m benchmarks``: our worker side by side with pgai 0.12.1 (``make bench``)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import report, workers
from benchmarks.database import DIMENSIONS, BenchDatabase
from benchmarks.provider import ProviderClient
from benchmarks.reference import Reference, ensure_reference
from benchmarks.scenarios import OURS, REFERENCE, SCENARIOS, Bench, Settings

REPO = Path(__file__).resolve().parent.parent
QUICK_SCENARIOS = ("cpu", "freshness")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Throughput, freshness, memory and cost of our vectorizer worker, side by "
        "side with Timescale's pgai 0.12.1 worker, on an embedded PostgreSQL and a local fake "
        "OpenAI server.",
    )
    parser.add_argument("--rows", type=int, help="corpus rows (default 20000; --quick: 500)")
    parser.add_argument(
        "--scenarios",
        help=f"comma-separated subset of {','.join(SCENARIOS)} (default: all; --quick: "
        f"{','.join(QUICK_SCENARIOS)})",
    )
    parser.add_argument(
        "--workers",
        default=f"{OURS},{REFERENCE}",
        help="which workers to run: ours, reference or both (default)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a fast sanity run: 500 rows, 2 scenarios"
    )
    parser.add_argument(
        "--output",
        help="where to write the markdown (default: BENCHMARKS.md for a full run of both "
        "workers, else .cache/bench/last.md); '-' writes nothing",
    )
    parser.add_argument(
        "--logs", help="folder for the workers' logs and results.json (default: .cache/bench/)"
    )
    parser.add_argument("--latency-rows", type=int, help="rows of the latency-bound runs")
    parser.add_argument("--ratelimit-rows", type=int, help="rows of the rate-limited runs")
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace) -> tuple[Settings, list[str], list[str]]:
    settings = Settings()
    scenarios = list(SCENARIOS)
    if args.quick:
        settings.rows = 500
        settings.freshness_samples = 5
        settings.huge_rows = 1
        settings.huge_megabytes = 1.0
        scenarios = list(QUICK_SCENARIOS)
    if args.rows:
        settings.rows = args.rows
    if args.latency_rows:
        settings.latency_rows = args.latency_rows
    if args.ratelimit_rows:
        settings.ratelimit_rows = args.ratelimit_rows
    if args.scenarios:
        scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
        unknown = sorted(set(scenarios) - set(SCENARIOS))
        if unknown:
            raise SystemExit(f"unknown scenario(s) {unknown}; choose from {list(SCENARIOS)}")
    chosen = [w.strip() for w in args.workers.split(",") if w.strip()]
    if not chosen or set(chosen) - {OURS, REFERENCE}:
        raise SystemExit("--workers takes ours, reference or ours,reference")
    return settings, [s for s in SCENARIOS if s in scenarios], chosen


async def run(args: argparse.Namespace, argv: list[str]) -> str:
    """Run the selected scenarios; the markdown report."""
    settings, scenarios, chosen = settings_from(args)
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    info = report.machine()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.0f}s] {message}", flush=True)

    reference: Reference | None = None
    reference_version = "not run"
    if REFERENCE in chosen:
        reference = ensure_reference(log)
        venv = str(reference.venv).replace(str(Path.home()), "~", 1)
        reference_version = (
            f"`{reference.version()}` (pgai and the dependencies of the worker's OpenAI path, "
            f"in a cached venv `{venv}`)"
        )
    commands = {OURS: workers.ours()}
    if reference is not None:
        commands[REFERENCE] = workers.reference(reference)
    commands = {name: commands[name] for name in chosen}

    db = BenchDatabase(reference, log)
    provider = ProviderClient(DIMENSIONS)
    logs = Path(args.logs or REPO / ".cache" / "bench") / started_at.strftime("%Y%m%d-%H%M%S")
    bench = Bench(settings, db, provider, commands, logs, log)
    log(f"scenarios {','.join(scenarios)}; workers {','.join(chosen)}; logs in {logs}")
    db.start()
    try:
        await db.find_postmaster()
        server = await db.server_settings()
        info["postgres"] = (
            f"embedded PostgreSQL {server['server_version'].split()[0]} + pgvector "
            f"(shared_buffers {server['shared_buffers']}, "
            f"synchronous_commit {server['synchronous_commit']})"
        )
        await provider.start()
        for name in scenarios:
            await getattr(bench, name)()
        await bench.cleanup()
        bench.save(logs / "results.json")
    finally:
        await provider.stop()
        db.stop()
    seconds = time.perf_counter() - started
    command = " ".join(["python -m benchmarks", *argv])
    markdown = report.render(
        settings=settings,
        scenarios=scenarios,
        comparisons=bench.comparisons,
        runs=bench.runs,
        command=command,
        started=started_at,
        seconds=seconds,
        info=info,
        reference_version=reference_version,
        notes=bench.notes,
    )
    return markdown


def default_output(args: argparse.Namespace) -> Path | None:
    """BENCHMARKS.md keeps the latest full comparison; partial runs go to .cache/bench."""
    if args.output == "-":
        return None
    if args.output:
        return Path(args.output)
    _, scenarios, chosen = settings_from(args)
    full = set(scenarios) == set(SCENARIOS) and set(chosen) == {OURS, REFERENCE}
    if full and not args.quick:
        return REPO / "BENCHMARKS.md"
    return REPO / ".cache" / "bench" / "last.md"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    markdown = asyncio.run(run(args, argv))
    print()
    print(markdown)
    output = default_output(args)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(markdown)
        print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
