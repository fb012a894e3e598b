"""The results as markdown: machine, date, command, the summary of ratios, every run."""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.scenarios import Comparison, Run, Settings


def machine() -> dict[str, str]:
    """Cores, RAM, CPU model, OS, Python and the load when the run started."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GB RAM"
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return {
        "cpu": f"{os.cpu_count()} cores ({model})",
        "memory": memory,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "load": load,
    }


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|")


def _rate(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.2g}"


def summary_table(comparisons: Sequence[Comparison]) -> list[str]:
    lines = [
        "| scenario | measure | ours | pgai 0.12.1 | ours/ref | target | met |",
        "|---|---|---:|---:|---:|---|:---:|",
    ]
    for c in comparisons:
        met = {True: "yes", False: "**no**", None: ""}[c.met]
        cells = [c.scenario, c.measure, c.ours, c.reference, c.ratio, c.target, met]
        lines.append("| " + " | ".join(_cell(x) for x in cells) + " |")
    return lines


def _ratio(ours: float | None, reference: float | None) -> str:
    if ours is None or not reference:
        return ""
    return f"{ours / reference:.2f}x"


def _metrics(run: Run) -> dict[str, float | None]:
    measured = run.measured
    per_second = run.scenario != "freshness"
    return {
        "rows/s": run.rows_per_second if per_second else None,
        "chunks/s": run.chunks_per_second if per_second else None,
        "requests": run.provider.get("ok_requests"),
        "tokens": run.provider.get("tokens"),
        "cpu": measured.cpu_seconds if measured else None,
        "rss": measured.peak_rss_mb if measured else None,
    }


def runs_table(runs: Sequence[Run]) -> list[str]:
    """Every run, and after each pair of the same scenario and settings a row of ratios."""
    lines = [
        "| scenario | worker | settings | rows | wall s | rows/s | chunks/s | requests (429) "
        "| tokens sent | 1st request s | worker CPU s | DB CPU s | peak RSS MB | exit "
        "| left over |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    seen: dict[tuple[str, str, str], Run] = {}
    for run in runs:
        lines.append(_run_line(run))
        seen[(run.scenario, run.settings, run.worker)] = run
        partner = {"ours": "reference", "reference": "ours"}.get(run.worker)
        other = seen.get((run.scenario, run.settings, partner or ""))
        if other is None or run.scenario == "freshness":  # different work: no ratios
            continue
        ours, ref = (run, other) if run.worker == "ours" else (other, run)
        mine, theirs = _metrics(ours), _metrics(ref)
        cells = [
            run.scenario,
            "*ours/ref*",
            run.settings,
            "",
            _ratio(ours.wall, ref.wall),
            _ratio(mine["rows/s"], theirs["rows/s"]),
            _ratio(mine["chunks/s"], theirs["chunks/s"]),
            _ratio(mine["requests"], theirs["requests"]),
            _ratio(mine["tokens"], theirs["tokens"]),
            "",
            _ratio(mine["cpu"], theirs["cpu"]),
            _ratio(ours.db_cpu_seconds, ref.db_cpu_seconds),
            _ratio(mine["rss"], theirs["rss"]),
            "",
            "",
        ]
        lines.append("| " + " | ".join(_cell(x) for x in cells) + " |")
    return lines


def _run_line(run: Run) -> str:
    requests = run.provider.get("ok_requests")
    limited = run.provider.get("rate_limited") or 0
    tokens = run.provider.get("tokens")
    measured = run.measured
    left = ""
    if run.outcome is not None:
        parts = []
        if run.outcome.pending:
            parts.append(f"{run.outcome.pending} queued")
        if run.outcome.failed_rows:
            parts.append(f"{run.outcome.failed_rows} failed")
        if run.outcome.error_rows:
            messages = "; ".join(run.outcome.error_messages)
            parts.append(f"{run.outcome.error_rows} error records: {messages}")
        left = ", ".join(parts) or "none"
    if run.note:
        left = f"{left}; {run.note}" if left else run.note
    per_second = run.scenario != "freshness"
    cells = [
        run.scenario,
        run.worker,
        run.settings,
        run.rows_done,
        f"{run.wall:.1f}",
        _rate(run.rows_per_second) if per_second else "",
        _rate(run.chunks_per_second) if per_second else "",
        f"{requests} ({limited})" if requests is not None else "",
        f"{tokens:,}" if tokens is not None else "",
        f"{run.first_request_after:.1f}" if run.first_request_after is not None else "",
        f"{measured.cpu_seconds:.1f}" if measured else "",
        f"{run.db_cpu_seconds:.1f}" if run.db_cpu_seconds is not None else "",
        f"{measured.peak_rss_mb:.0f}" if measured else "",
        measured.exit_code if measured else "",
        left,
    ]
    return "| " + " | ".join(_cell(x) for x in cells) + " |"


def render(
    *,
    settings: Settings,
    scenarios: Sequence[str],
    comparisons: Sequence[Comparison],
    runs: Sequence[Run],
    command: str,
    started: datetime,
    seconds: float,
    info: dict[str, str],
    reference_version: str,
    notes: Sequence[str],
) -> str:
    date = started.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Benchmarks: our worker side by side with pgai 0.12.1",
        "",
        f"- **Date**: {date}; the whole run took {seconds / 60:.1f} min.",
        f"- **Command**: `{command}`",
        f"- **Machine**: {info['cpu']}, {info['memory']}, {info['os']}, Python {info['python']}; "
        f"load average at start {info['load']} (shared machine: read ratios, not absolutes).",
        f"- **Database**: {info.get('postgres', 'embedded PostgreSQL')}, one fresh clone of the "
        "same template per worker run.",
        f"- **Reference**: {reference_version}.",
        f"- **Corpus**: {settings.rows:,} rows of 1-3 KB English paragraphs (seeded); one "
        "vectorizer: `loading_column('body')`, recursive splitter 800/400, template "
        "`$title: $chunk`, `text-embedding-3-small` at 768 dimensions on a local fake OpenAI "
        "server.",
        f"- **Scenarios run**: {', '.join(scenarios)}.",
        "",
        "## Summary (ratios are ours / reference, measured in the same run)",
        "",
        *summary_table(comparisons),
        "",
        "## Every run",
        "",
        *runs_table(runs),
        "",
        "## How it is measured",
        "",
        "- Each worker runs as its own process (`python -m pgai vectorizer worker -d URL --once` "
        "for ours, the reference venv's `pgai vectorizer worker -d URL --once`), reaped with "
        "`wait4`: *wall s* is the process lifetime (start-up included; *1st request s* is when its "
        "first provider request arrived), *worker CPU s* its user + system CPU from `wait4`, "
        "*DB CPU s* what the PostgreSQL server's processes used meanwhile (psutil), "
        "*peak RSS* the kernel's high-water mark of its address space (`VmHWM`, read every "
        "10 ms; `ru_maxrss` would include the harness's own size, inherited through fork). "
        "rows/s and chunks/s = rows (chunks) in the target table after the run / wall s; "
        "*ours/ref* rows divide our figure by the reference's.",
        "- *requests* are the provider's successful answers (429 answers in brackets); *tokens "
        "sent* are counted by the fake server as ceil(UTF-8 bytes / 4) per input (OpenAI's "
        "rate-limit estimate), over successful requests.",
        "- The fake provider is a separate single-threaded asyncio process answering from a pool "
        "of pre-encoded vectors; latency is added per request. The rate limit is a token bucket "
        f"({settings.tokens_per_minute:,} tokens/min, capacity one minute, refilled "
        "continuously) that starts empty at the first request, so the run measures the sustained "
        "rate: tokens accepted / the provider's busy time (first request to last answer). 429s "
        "come at once with `Retry-After` and `retry-after-ms` (when the request will fit); every "
        "answer carries `x-ratelimit-limit/remaining/reset-tokens` with OpenAI's meaning and "
        "spelling: *reset* is the time until the bucket is full again (`1.2s`, `59.8s`), not "
        "the end of a fixed window.",
        "- Provider floor: the requests our worker sent in the CPU-bound run, replayed over one "
        "keep-alive connection with no database. Database floor: the chunks our worker stored, "
        "binary-COPYed with precomputed vectors into a fresh clone's target table in one "
        "transaction: the fastest of three tries (one try varies by a third on this machine).",
        f"- Sizes: latency-bound runs use the first {min(settings.rows, settings.latency_rows):,} "
        f"rows and the rate-limited runs {min(settings.rows, settings.ratelimit_rows):,} (so "
        "the whole benchmark stays under 15 minutes: pgai at 200 ms and its defaults embeds "
        "about 130 rows/s), the memory "
        f"scenario {settings.huge_rows} extra rows of {settings.huge_megabytes:.0f} MB each; "
        "freshness inserts rows one at a time into an idle worker (0 ms provider) and stops at "
        f"the first row not searchable within {settings.freshness_timeout:.0f} s.",
        *[f"- {note}" for note in notes],
        "",
    ]
    return "\n".join(lines)
