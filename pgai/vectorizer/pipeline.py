"""The text pipeline of one batch: load, parse, chunk and format every claimed row.

Pure: no I/O, so it runs in a worker thread and is unit-tested without a database. A row whose
loading, parsing or formatting fails does not fail its neighbours: it comes back as an
:class:`ItemFailure` and the rest of the batch goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pgai.vectorizer.chunking import split_character, split_none, split_recursive_character
from pgai.vectorizer.config import (
    CharacterTextSplitter,
    Chunking,
    ChunkValue,
    Formatting,
    RecursiveCharacterTextSplitter,
    Vectorizer,
)
from pgai.vectorizer.formatting import format_chunk, format_chunk_value
from pgai.vectorizer.loading import load_column
from pgai.vectorizer.parsing import parse
from pgai.vectorizer.queue import ATTEMPTS_COLUMN, ClaimedRow


@dataclass(frozen=True)
class PreparedChunk:
    """A formatted chunk ready to embed; ``text`` is both what is embedded and what is stored."""

    pk: tuple[Any, ...]
    chunk_seq: int
    text: str


@dataclass(frozen=True)
class ItemFailure:
    """A row that could not be turned into chunks, and at which step."""

    pk: tuple[Any, ...]
    attempts: int
    step: str
    error: Exception


@dataclass
class PreparedBatch:
    chunks: list[PreparedChunk]
    failures: list[ItemFailure]
    #: keys of the rows that were processed (with or without chunks)
    processed: list[tuple[Any, ...]]
    #: failures so far of every claimed row, by key
    attempts: dict[tuple[Any, ...], int]


def make_splitter(chunking: Chunking) -> Callable[[str], list[str]]:
    """The chunker a config asks for, as a function of the text."""
    if isinstance(chunking, RecursiveCharacterTextSplitter):
        return lambda text: split_recursive_character(
            text,
            chunk_size=chunking.chunk_size,
            chunk_overlap=chunking.chunk_overlap,
            separators=chunking.separators,
            is_separator_regex=chunking.is_separator_regex,
        )
    if isinstance(chunking, CharacterTextSplitter):
        return lambda text: split_character(
            text,
            chunk_size=chunking.chunk_size,
            chunk_overlap=chunking.chunk_overlap,
            separator=chunking.separator,
            is_separator_regex=chunking.is_separator_regex,
        )
    return split_none


def make_formatter(formatting: Formatting) -> Callable[[str, dict[str, Any]], str]:
    if isinstance(formatting, ChunkValue):
        return lambda chunk, _row: format_chunk_value(chunk)
    template = formatting.template
    return lambda chunk, row: format_chunk(template, chunk, row)


def prepare_batch(vectorizer: Vectorizer, claimed: Sequence[ClaimedRow]) -> PreparedBatch:
    """Turn claimed rows into formatted chunks; rows whose source is gone are skipped."""
    config = vectorizer.config
    split = make_splitter(config.chunking)
    fmt = make_formatter(config.formatting)
    batch = PreparedBatch(
        chunks=[], failures=[], processed=[], attempts={c.pk: c.attempts for c in claimed}
    )
    for item in claimed:
        if item.row is None:
            continue
        row = {**item.row, ATTEMPTS_COLUMN: item.attempts}
        step = "loading"
        try:
            payload = load_column(row, config.loading.column_name)
            if payload == "":
                batch.processed.append(item.pk)
                continue
            step = "parsing"
            text = parse(payload, config.parsing.implementation)
            step = "chunking"
            pieces = split(text)
            step = "formatting"
            formatted = [fmt(piece, row) for piece in pieces]
        except Exception as exc:  # noqa: BLE001 - any failure of one row is that row's failure
            batch.failures.append(ItemFailure(item.pk, item.attempts, step, exc))
            continue
        batch.processed.append(item.pk)
        batch.chunks.extend(PreparedChunk(item.pk, seq, t) for seq, t in enumerate(formatted))
    return batch
