"""`make demo` end to end: embedded PostgreSQL, the local model, search results that make sense."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pgai.demo import python_corpus

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("sentence_transformers") is None,
    reason="the demo's local model needs the 'local' extra (make install provides it)",
)


def run_demo(data_dir: Path, rows: int) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    return subprocess.run(
        [sys.executable, "-m", "pgai", "demo", "--rows", str(rows), "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def answers(output: str, question: str) -> list[str]:
    lines = output.splitlines()
    start = lines.index(f"  Q: {question}")
    return [line.strip() for line in lines[start + 1 : start + 4]]


def test_the_corpus_ships_with_python() -> None:
    corpus = python_corpus()
    assert len(corpus) > 500
    assert len({d.id for d in corpus}) == len(corpus)
    assert any(d.title == "help topic exceptions" for d in corpus)


def test_demo_runs_end_to_end_and_its_searches_find_relevant_text(tmp_path: Path) -> None:
    first = run_demo(tmp_path / "demo", rows=60)
    assert first.returncode == 0, first.stdout + first.stderr
    out = first.stdout
    for step in (
        "starting an embedded PostgreSQL 18 + pgvector",
        "installing the ai catalog",
        "loading 60 documents",
        "creating a vectorizer with the local model all-MiniLM-L6-v2",
        "running the vectorizer worker on 60 rows",
        "60/60 rows",
        "asking questions",
        "pgai vectorizer worker -d",
    ):
        assert step in out, step
    top = answers(out, "what happens when an exception is raised inside a with block?")
    assert any("xception" in hit for hit in top), top

    # run twice: everything is reused, nothing is embedded again
    second = run_demo(tmp_path / "demo", rows=60)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "already installed" in second.stdout
    assert "the documents are loaded already" in second.stdout
    assert "the vectorizer python_docs exists already" in second.stdout
    assert " 0 chunks" in second.stdout
