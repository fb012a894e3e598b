"""The batch's text pipeline, without a database: groups, failures, and what it keeps."""

from __future__ import annotations

from typing import Any

import pytest

from pgai.vectorizer.config import Vectorizer, parse_vectorizer
from pgai.vectorizer.pipeline import ChunkStream, PreparedChunk, prepare_rows
from pgai.vectorizer.queue import ClaimedRow


def vectorizer(template: str = "$title: $chunk", chunk_size: int = 20) -> Vectorizer:
    return parse_vectorizer(
        {
            "id": 3,
            "source_schema": "public",
            "source_table": "docs",
            "source_pk": [{"attnum": 1, "pknum": 1, "attname": "id", "typname": "int4"}],
            "trigger_name": "tr",
            "queue_schema": "ai",
            "queue_table": "q",
            "config": {
                "version": "0.12.1",
                "loading": {"implementation": "column", "column_name": "body"},
                "embedding": {
                    "implementation": "openai",
                    "model": "text-embedding-3-small",
                    "dimensions": 8,
                },
                "chunking": {
                    "implementation": "character_text_splitter",
                    "chunk_size": chunk_size,
                    "chunk_overlap": 0,
                    "separator": "\n\n",
                },
                "formatting": {"implementation": "python_template", "template": template},
                "destination": {
                    "implementation": "table",
                    "target_schema": "public",
                    "target_table": "docs_store",
                },
            },
        }
    )


def row(pk: int, body: Any, title: str = "t", **columns: Any) -> ClaimedRow:
    return ClaimedRow((pk,), 0, {"id": pk, "title": title, "body": body, **columns})


def paragraphs(pk: int, count: int) -> str:
    return "\n\n".join(f"row {pk} part {i}" for i in range(count))


def drain(stream: ChunkStream, limit: int, stored: Any = ()) -> list[list[PreparedChunk]]:
    groups = []
    while not stream.exhausted:
        groups.append(stream.next_group(limit, stored).chunks)
    return groups


def test_groups_hold_at_most_the_limit_and_a_long_row_spreads_over_several() -> None:
    claimed = [row(1, paragraphs(1, 7)), row(2, paragraphs(2, 2))]
    stream = ChunkStream(vectorizer(), claimed)
    assert claimed == []  # the stream took the rows over
    groups = drain(stream, 3)
    assert [len(g) for g in groups] == [3, 3, 3]
    flat = [c for g in groups for c in g]
    assert [(c.pk, c.chunk_seq) for c in flat] == [((1,), i) for i in range(7)] + [
        ((2,), 0),
        ((2,), 1),
    ]
    assert flat[0].text == "t: row 1 part 0"
    assert stream.processed == [(1,), (2,)]


def test_stored_chunks_ride_along_for_free() -> None:
    stored = {((1,), "t: row 1 part 0"), ((1,), "t: row 1 part 1")}
    groups = drain(ChunkStream(vectorizer(), [row(1, paragraphs(1, 4))]), 2, stored)
    # the two stored chunks cost nothing: all four fit in one group of two to embed
    assert [len(g) for g in groups] == [4]


def test_a_row_failing_at_any_step_fails_alone() -> None:
    claimed = [
        row(1, paragraphs(1, 2)),
        ClaimedRow((2,), 1, {"id": 2, "title": "t"}),  # no column to load
        ClaimedRow((3,), 2, {"id": 3, "body": paragraphs(3, 2)}),  # no column for $title
        row(4, ""),
        ClaimedRow((5,), 0, None),  # deleted since it was queued
        row(6, paragraphs(6, 1)),
    ]
    stream = ChunkStream(vectorizer(), claimed)
    group = stream.next_group(100)
    assert stream.exhausted
    assert {c.pk for c in group.chunks} == {(1,), (6,)}
    failures = {f.pk: (f.step, f.attempts, type(f.error).__name__) for f in group.failures}
    assert failures == {(2,): ("loading", 1, "LoadingError"), (3,): ("formatting", 2, "KeyError")}
    # no traceback: it would hold the pipeline's frames (and the batch's chunks) in a cycle
    assert all(f.error.__traceback__ is None for f in group.failures)
    assert stream.processed == [(1,), (4,), (6,)]
    assert stream.empty == [(4,)]


def test_a_chunk_failing_to_format_midway_fails_its_row(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def flaky_formatter(_formatting: object) -> Any:
        """Formats two chunks of a row, then breaks."""

        def bind(row: dict[str, Any]) -> Any:
            calls = iter(range(100))
            return lambda chunk: chunk if next(calls) < 2 else 1 / 0

        return bind

    monkeypatch.setattr("pgai.vectorizer.pipeline.make_formatter", flaky_formatter)
    claimed = [row(1, paragraphs(1, 5)), row(2, paragraphs(2, 1))]
    stream = ChunkStream(vectorizer(), claimed)
    first = stream.next_group(2)
    assert [c.chunk_seq for c in first.chunks] == [0, 1]
    second = stream.next_group(2)
    assert stream.exhausted
    # the row fails when its third chunk is made (looking ahead of the first group)
    failures = [*first.failures, *second.failures]
    assert [(f.pk, f.step, type(f.error)) for f in failures] == [
        ((1,), "formatting", ZeroDivisionError)
    ]
    assert [c.pk for c in second.chunks] == [(2,)]
    assert stream.processed == [(2,)]


def test_the_loaded_text_is_not_kept_unless_the_template_reads_it() -> None:
    body = paragraphs(1, 3)
    chunks, failures, processed = prepare_rows(vectorizer("$body|$chunk", 200), [row(1, body)])
    assert failures == [] and processed == [(1,)]
    assert [c.text for c in chunks] == [f"{body}|{body}"]
    chunks, _, _ = prepare_rows(vectorizer("[$chunk]"), [row(1, body)])
    assert [c.text for c in chunks] == ["[row 1 part 0]", "[row 1 part 1]", "[row 1 part 2]"]


@pytest.mark.parametrize("limit", [1, 2, 5, 1000])
def test_grouping_never_changes_the_chunks(limit: int) -> None:
    rows = [row(i, paragraphs(i, i % 4)) for i in range(1, 12)]
    expected, _, _ = prepare_rows(vectorizer(), rows)
    groups = drain(ChunkStream(vectorizer(), list(rows)), limit)
    assert [c for g in groups for c in g] == expected
    assert all(len(g) <= limit for g in groups)
