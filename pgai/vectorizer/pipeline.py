"""The text pipeline of one batch: load, parse, chunk and format the claimed rows.

Pure: no I/O, so it runs in a worker thread and is unit-tested without a database. A row whose
loading, parsing or formatting fails does not fail its neighbours: it comes back as an
:class:`ItemFailure` and the rest of the batch goes on.

The chunks of a batch are made a group at a time (:class:`ChunkStream`), not all at once: a
batch of long documents would otherwise hold every chunk of every row, raw and formatted, while
the first of them is embedded. A row's text is dropped as soon as its chunks are made, and a
chunk is formatted only when its group is taken.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Container, Iterator, Sequence
from dataclasses import dataclass, field
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
from pgai.vectorizer.formatting import compile_template, format_chunk_value, template_placeholders
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
    """A row that could not be turned into chunks (or embedded), and at which step."""

    pk: tuple[Any, ...]
    attempts: int
    step: str
    error: Exception

    def __post_init__(self) -> None:
        # Only the message is reported. The traceback would reference the frames that caught
        # the error, and through their locals the batch's chunks and vectors: a reference
        # cycle that keeps them alive until the garbage collector's next full pass.
        self.error.__traceback__ = None


@dataclass
class ChunkGroup:
    """Consecutive chunks of the batch, at most a limit of them not already stored."""

    chunks: list[PreparedChunk] = field(default_factory=list)
    #: rows that failed while this group was made (their earlier chunks may be in earlier groups)
    failures: list[ItemFailure] = field(default_factory=list)


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


def make_formatter(formatting: Formatting) -> Callable[[dict[str, Any]], Callable[[str], str]]:
    """The formatter a config asks for: given a row, the function of its chunks."""
    if isinstance(formatting, ChunkValue):
        return lambda _row: format_chunk_value
    return compile_template(formatting.template)


class ChunkStream:
    """The chunks of a batch's rows, in order, a group at a time.

    Takes the claimed rows over: the list passed in is emptied, so that a row's text can be
    freed as soon as its chunks are made. Rows whose source is gone are skipped.
    """

    def __init__(self, vectorizer: Vectorizer, claimed: list[ClaimedRow]) -> None:
        config = vectorizer.config
        self._split = make_splitter(config.chunking)
        self._format = make_formatter(config.formatting)
        self._column = config.loading.column_name
        self._parser = config.parsing.implementation
        formatting = config.formatting
        # the loaded column holds the whole text: keep it only when the template reads it
        self._keep_column = not isinstance(formatting, ChunkValue) and (
            self._column in template_placeholders(formatting.template)
        )
        self._rows = deque(item for item in claimed if item.row is not None)
        claimed.clear()
        #: characters of text to chunk, to tell a small batch from a large one
        self.text_chars = sum(_length((item.row or {}).get(self._column)) for item in self._rows)
        self._current: Iterator[PreparedChunk] | None = None
        self._peeked: PreparedChunk | None = None
        self._current_row: tuple[tuple[Any, ...], int] = ((), 0)
        #: rows whose chunks were all made (rows of no chunk included), in order
        self.processed: list[tuple[Any, ...]] = []
        #: rows that make no chunk at all (empty text)
        self.empty: list[tuple[Any, ...]] = []

    @property
    def exhausted(self) -> bool:
        return self._peeked is None and self._current is None and not self._rows

    def next_group(
        self, limit: int, stored: Container[tuple[tuple[Any, ...], str]] = ()
    ) -> ChunkGroup:
        """The next chunks, up to ``limit`` of them to embed: a chunk whose (key, text) is in
        ``stored`` rides along for free. A long document is spread over several groups."""
        group = ChunkGroup()
        fresh = 0
        while fresh < limit:
            chunk, self._peeked = self._peeked or self._advance(group.failures), None
            if chunk is None:
                break
            group.chunks.append(chunk)
            if (chunk.pk, chunk.text) not in stored:
                fresh += 1
        else:
            # look one chunk ahead, so that `exhausted` tells whether another group follows
            self._peeked = self._advance(group.failures)
        return group

    def _advance(self, failures: list[ItemFailure]) -> PreparedChunk | None:
        """The batch's next chunk; None once every row is done."""
        while True:
            if self._current is None:
                if not self._rows:
                    return None
                self._current = self._start(self._rows.popleft(), failures)
                continue
            pk, attempts = self._current_row
            try:
                return next(self._current)
            except StopIteration:
                self.processed.append(pk)
            except Exception as exc:  # noqa: BLE001 - a row's failure is that row's alone
                failures.append(ItemFailure(pk, attempts, "formatting", exc))
            self._current = None

    def _start(
        self, item: ClaimedRow, failures: list[ItemFailure]
    ) -> Iterator[PreparedChunk] | None:
        """Load, parse and split one row; its chunks are formatted as they are taken."""
        assert item.row is not None
        row = {**item.row, ATTEMPTS_COLUMN: item.attempts}
        self._current_row = (item.pk, item.attempts)
        step = "loading"
        try:
            payload = load_column(row, self._column)
            if payload == "":
                pieces: list[str] = []
            else:
                step = "parsing"
                text = parse(payload, self._parser)
                del payload
                step = "chunking"
                pieces = self._split(text)
                del text
            if not self._keep_column:
                row.pop(self._column, None)
            if not pieces:
                self.processed.append(item.pk)
                self.empty.append(item.pk)
                return None
            step = "formatting"
            # the row's values are rendered here, once: its chunks are only joined in
            format_piece = self._format(row)
            first = format_piece(pieces[0])
        except Exception as exc:  # noqa: BLE001 - any failure of one row is that row's failure
            failures.append(ItemFailure(item.pk, item.attempts, step, exc))
            return None
        return self._formatted(item.pk, pieces, first, format_piece)

    @staticmethod
    def _formatted(
        pk: tuple[Any, ...], pieces: list[str], first: str, format_piece: Callable[[str], str]
    ) -> Iterator[PreparedChunk]:
        yield PreparedChunk(pk, 0, first)
        for seq in range(1, len(pieces)):
            piece, pieces[seq] = pieces[seq], ""
            yield PreparedChunk(pk, seq, format_piece(piece))


def _length(value: object) -> int:
    return len(value) if isinstance(value, str | bytes) else 0


def prepare_rows(
    vectorizer: Vectorizer, claimed: Sequence[ClaimedRow]
) -> tuple[list[PreparedChunk], list[ItemFailure], list[tuple[Any, ...]]]:
    """Every chunk of ``claimed`` at once: (chunks, failures, processed rows). For tests and
    tools; the worker streams with :class:`ChunkStream`."""
    stream = ChunkStream(vectorizer, list(claimed))
    chunks: list[PreparedChunk] = []
    failures: list[ItemFailure] = []
    while not stream.exhausted:
        group = stream.next_group(1 << 30)
        chunks.extend(group.chunks)
        failures.extend(group.failures)
    return chunks, failures, stream.processed
