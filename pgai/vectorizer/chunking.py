"""Chunkers: split a document's text into the pieces that get embedded.

The three chunkers reproduce, output for output, what pgai 0.12.1 gets from
langchain-text-splitters 0.3.8 (worker.md §7), because users compare the chunks we store
with the ones the reference stored, and re-embedding a table just because a chunk boundary
moved by one character costs them money. That includes the quirks: lengths are code points
(``len``), a piece that cannot be split further is kept even when it is too long, and the
character splitter re-inserts its separator literally even when it is a regular expression.

Everything here is pure and runs on the hot path of the worker (one call per source row), so
regular expressions are compiled once per pattern and the merge step does no quadratic list
slicing.
"""

import re
from collections import deque
from collections.abc import Iterable, Sequence
from functools import lru_cache

__all__ = [
    "DEFAULT_CHARACTER_SEPARATOR",
    "DEFAULT_RECURSIVE_SEPARATORS",
    "split_character",
    "split_none",
    "split_recursive_character",
]

DEFAULT_CHARACTER_SEPARATOR = "\n\n"
"""The separator of ``ai.chunking_character_text_splitter()`` when none is given."""

DEFAULT_RECURSIVE_SEPARATORS: tuple[str, ...] = ("\n\n", "\n", ".", "?", "!", " ", "")
"""The separators of ``ai.chunking_recursive_character_text_splitter()``, coarsest first."""


def split_none(text: str) -> list[str]:
    """Return the whole text as its only chunk, untouched.

    No stripping and no dropping of blank text: ``chunking_none`` is used when a row's content
    is embedded as is (e.g. a column destination), so even ``"   "`` stays one chunk.
    """
    return [text]


def split_character(
    text: str,
    *,
    chunk_size: int,
    chunk_overlap: int,
    separator: str = DEFAULT_CHARACTER_SEPARATOR,
    is_separator_regex: bool = False,
) -> list[str]:
    """Split on one separator, then pack the pieces into chunks of at most ``chunk_size``.

    The separator is dropped by the split and put back, literally, between the pieces that
    share a chunk; in regex mode that means the pattern text itself (``aa\\s+bb``), which is
    what the reference stores, so we do the same. A piece longer than ``chunk_size`` becomes a
    chunk of its own. Chunks are stripped and blank ones dropped.

    Raises ValueError when the overlap is larger than the chunk size.
    """
    _check_sizes(chunk_size, chunk_overlap)
    pattern = _separator_pattern(separator, is_separator_regex)
    pieces = _split_dropping_separator(text, pattern)
    return _merge(pieces, separator, chunk_size, chunk_overlap)


def split_recursive_character(
    text: str,
    *,
    chunk_size: int,
    chunk_overlap: int,
    separators: Sequence[str] = DEFAULT_RECURSIVE_SEPARATORS,
    is_separator_regex: bool = False,
) -> list[str]:
    """Split on the coarsest separator present, recursing with finer ones on pieces too long.

    Each separator stays glued to the start of the piece that follows it, so chunks read
    ``". It should split"`` rather than losing the punctuation. Pieces shorter than
    ``chunk_size`` are packed together (with overlap); a piece that is still too long once the
    separators are exhausted is kept whole and, unlike packed chunks, not stripped.

    Raises ValueError when the overlap is larger than the chunk size or no separator is given.
    """
    _check_sizes(chunk_size, chunk_overlap)
    if not separators:
        # The reference fails with an IndexError here; say what is wrong instead.
        raise ValueError("separators must not be empty: pass e.g. ['\\n\\n', '\\n', ' ', '']")
    patterns = tuple(_separator_pattern(s, is_separator_regex) for s in separators)
    return _split_recursive(text, tuple(separators), patterns, chunk_size, chunk_overlap)


def _check_sizes(chunk_size: int, chunk_overlap: int) -> None:
    """Reject sizes the splitters cannot honour, with the reference's message for the overlap."""
    if chunk_overlap > chunk_size:
        raise ValueError(
            f"Got a larger chunk overlap ({chunk_overlap}) than chunk size ({chunk_size}), "
            "should be smaller."
        )
    # The SQL API rejects these too; a hand-edited config would otherwise crash the merge
    # (negative overlap) or emit one chunk per character (size 0).
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size}")
    if chunk_overlap < 0:
        raise ValueError(f"chunk_overlap must be zero or positive, got {chunk_overlap}")


def _separator_pattern(separator: str, is_separator_regex: bool) -> str:
    """The regular expression that finds ``separator``: itself in regex mode, else escaped."""
    return separator if is_separator_regex else re.escape(separator)


@lru_cache(maxsize=512)
def _compiled(pattern: str) -> re.Pattern[str]:
    """Compile a pattern once; the same few separators are used for every row of a table."""
    return re.compile(pattern)


def _split_dropping_separator(text: str, pattern: str) -> list[str]:
    """Split ``text`` where ``pattern`` matches, dropping the matches and empty pieces.

    An empty pattern means "between every character". Text captured by groups of a
    user-supplied regex is kept as pieces of its own, as ``re.split`` returns it.
    """
    if not pattern:
        return list(text)
    return [piece for piece in _compiled(pattern).split(text) if piece]


def _split_keeping_separator(text: str, pattern: str) -> list[str]:
    """Split ``text`` where ``pattern`` matches, gluing each match to the start of the next piece.

    ``"a. b. c"`` on ``\\.`` gives ``["a", ". b", ". c"]``. Empty pieces are dropped.
    """
    if not pattern:
        return list(text)
    parts = _compiled(f"({pattern})").split(text)
    # parts = [before, sep1, after1, sep2, after2, ...]: pair every separator with what follows.
    # Groups inside a user regex add more entries (possibly None for a group that did not
    # take part); they are paired the same way and None counts as empty.
    pieces = [parts[0]]
    last = len(parts) - 1
    for i in range(1, last, 2):
        pieces.append((parts[i] or "") + (parts[i + 1] or ""))
    if len(parts) % 2 == 0:
        pieces.append(parts[-1] or "")
    return [piece for piece in pieces if piece]


def _merge(pieces: Iterable[str], separator: str, chunk_size: int, chunk_overlap: int) -> list[str]:
    """Pack consecutive pieces into chunks of at most ``chunk_size``, joined by ``separator``.

    When the next piece does not fit, the current chunk is emitted and pieces are dropped from
    its front until what is left is no longer than ``chunk_overlap`` and leaves room for the
    next piece; what is left starts the next chunk, which is how consecutive chunks overlap.
    Emitted chunks are stripped; blank ones are dropped.
    """
    separator_length = len(separator)
    chunks: list[str] = []
    window: deque[str] = deque()
    # Length of separator.join(window), kept up to date instead of recomputed.
    window_length = 0
    for piece in pieces:
        piece_length = len(piece)
        if window and window_length + separator_length + piece_length > chunk_size:
            _emit(chunks, separator.join(window))
            while window and (
                window_length > chunk_overlap
                or window_length + separator_length + piece_length > chunk_size
            ):
                dropped = window.popleft()
                window_length -= len(dropped) + (separator_length if window else 0)
        window.append(piece)
        window_length += piece_length + (separator_length if len(window) > 1 else 0)
    _emit(chunks, separator.join(window))
    return chunks


def _emit(chunks: list[str], chunk: str) -> None:
    """Append ``chunk`` stripped, unless nothing but whitespace is left of it."""
    chunk = chunk.strip()
    if chunk:
        chunks.append(chunk)


def _split_recursive(
    text: str,
    separators: tuple[str, ...],
    patterns: tuple[str, ...],
    chunk_size: int,
    chunk_overlap: int,
) -> list[str]:
    """One level of the recursive splitter: ``separators[i]`` is found by ``patterns[i]``."""
    # Use the first separator that occurs in the text; the empty separator always "occurs".
    # If none does, the last one is used (it splits nothing) and there is nothing finer left.
    pattern = patterns[-1]
    finer_separators: tuple[str, ...] = ()
    finer_patterns: tuple[str, ...] = ()
    for index, separator in enumerate(separators):
        if separator == "":
            pattern = ""
            break
        if _compiled(patterns[index]).search(text):
            pattern = patterns[index]
            finer_separators = separators[index + 1 :]
            finer_patterns = patterns[index + 1 :]
            break

    chunks: list[str] = []
    short_pieces: list[str] = []
    for piece in _split_keeping_separator(text, pattern):
        if len(piece) < chunk_size:
            short_pieces.append(piece)
            continue
        if short_pieces:
            chunks.extend(_merge(short_pieces, "", chunk_size, chunk_overlap))
            short_pieces = []
        if finer_separators:
            chunks.extend(
                _split_recursive(piece, finer_separators, finer_patterns, chunk_size, chunk_overlap)
            )
        else:
            chunks.append(piece)
    if short_pieces:
        chunks.extend(_merge(short_pieces, "", chunk_size, chunk_overlap))
    return chunks
