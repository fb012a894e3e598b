"""The benchmark harness runs end to end: ``python -m benchmarks --quick`` on our worker only.

The reference worker is left out (it needs a virtualenv built from the package registry); this
checks that the harness starts its database and fake provider, drives our worker, measures it
and writes a results table whose numbers are sane.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _table_rows(markdown: str, header_start: str) -> list[dict[str, str]]:
    """The rows of the markdown table whose header line starts with ``header_start``."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    header = [cell.strip() for cell in lines[start].strip("|").split("|")]
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip()[1:-1])]
        rows.append(dict(zip(header, cells, strict=True)))
    return rows


def test_quick_benchmark_of_our_worker_writes_a_table_with_sane_numbers(tmp_path: Path) -> None:
    output = tmp_path / "bench.md"
    done = subprocess.run(
        [
            *(sys.executable, "-m", "benchmarks", "--quick", "--workers", "ours"),
            *("--output", output, "--logs", tmp_path / "logs"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    markdown = output.read_text()
    assert "python -m benchmarks --quick --workers ours" in markdown
    assert "cores" in markdown

    runs = _table_rows(markdown, "| scenario | worker |")
    backfills = [r for r in runs if r["scenario"] == "cpu" and r["worker"] == "ours"]
    assert len(backfills) == 2  # pinned settings and our defaults
    for run in backfills:
        assert run["exit"] == "0"
        assert int(run["rows"]) == 500
        assert float(run["rows/s"]) > 5
        assert float(run["chunks/s"]) > float(run["rows/s"])  # 1-3 KB rows, 800-char chunks
        assert int(run["tokens sent"].replace(",", "")) > 500 * 200
        assert 0 < float(run["worker CPU s"]) < 120
        assert 20 < float(run["peak RSS MB"]) < 4000
        assert run["left over"] == "none"
    floors = {r["worker"]: r for r in runs if "floor" in r["worker"]}
    assert set(floors) == {"provider floor", "database floor"}
    assert all(float(r["rows/s"]) > 0 for r in floors.values())

    summary = _table_rows(markdown, "| scenario | measure |")
    freshness = next(r for r in summary if r["scenario"].startswith("4 freshness"))
    p50 = re.match(r"p50 (\d+) ms, p95 (\d+) ms", freshness["ours"])
    assert p50 is not None, freshness
    assert 0 <= int(p50.group(1)) <= int(p50.group(2)) < 10_000
