"""The chunkers reproduce pgai 0.12.1 (langchain-text-splitters 0.3.8) chunk for chunk."""

import re
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pgai.vectorizer.chunking import (
    DEFAULT_RECURSIVE_SEPARATORS,
    split_character,
    split_none,
    split_recursive_character,
)

# -- the test vectors of worker.md §7, verbatim ------------------------------------------------


def test_recursive_splits_sentences_keeping_punctuation_at_the_start_of_the_next_chunk() -> None:
    text = (
        "Hello world. This is a test of the chunker. It should split. "
        "Into several pieces! Really? Yes."
    )
    assert split_recursive_character(text, chunk_size=30, chunk_overlap=10) == [
        "Hello world",
        ". This is a test of the",
        "of the chunker",
        ". It should split",
        ". Into several pieces! Really",
        "? Yes",
        ".",
    ]


def test_recursive_falls_back_to_characters_when_there_is_no_separator() -> None:
    assert split_recursive_character(
        "abcdefghijklmnopqrstuvwxyz", chunk_size=10, chunk_overlap=0
    ) == ["abcdefghij", "klmnopqrst", "uvwxyz"]


def test_recursive_overlap_only_repeats_whole_pieces_that_fit() -> None:
    assert split_recursive_character(
        "aaa bbb ccc ddd eee fff ggg", chunk_size=10, chunk_overlap=3
    ) == ["aaa bbb", "ccc ddd", "eee fff", "ggg"]


def test_character_splits_paragraphs_and_keeps_an_over_long_one_whole() -> None:
    text = "p1 text\n\np2 text\n\np3 is a much longer paragraph\n\np4"
    assert split_character(text, chunk_size=10, chunk_overlap=0, separator="\n\n") == [
        "p1 text",
        "p2 text",
        "p3 is a much longer paragraph",
        "p4",
    ]


def test_character_overlap_repeats_the_last_words() -> None:
    text = "one two three four five six seven eight"
    assert split_character(text, chunk_size=20, chunk_overlap=5, separator=" ") == [
        "one two three four",
        "four five six seven",
        "seven eight",
    ]


def test_character_regex_mode_reinserts_the_pattern_text_literally() -> None:
    assert split_character(
        "aa  bb\tcc\ndd ee ff gg",
        chunk_size=10,
        chunk_overlap=0,
        separator=r"\s+",
        is_separator_regex=True,
    ) == ["aa\\s+bb", "cc\\s+dd", "ee\\s+ff", "gg"]


def test_character_keeps_a_piece_without_separator_even_when_too_long() -> None:
    assert split_character("abcdefghij", chunk_size=5, chunk_overlap=0) == ["abcdefghij"]


def test_character_with_defaults_drops_whitespace_only_text() -> None:
    assert split_character("   ", chunk_size=800, chunk_overlap=400) == []


def test_recursive_with_defaults_drops_whitespace_only_text() -> None:
    assert split_recursive_character("   ", chunk_size=800, chunk_overlap=400) == []


def test_recursive_keeps_an_unsplittable_piece_whole() -> None:
    chunks = split_recursive_character(
        "AGI" * 5000, chunk_size=128, chunk_overlap=10, separators=["\n\n"]
    )
    assert chunks == ["AGI" * 5000]
    assert len(chunks[0]) == 15000


# -- further behaviour ------------------------------------------------------------------------


def test_none_returns_the_text_untouched() -> None:
    assert split_none("   ") == ["   "]
    assert split_none(" a b ") == [" a b "]
    assert split_none("") == [""]


def test_empty_text_gives_no_chunks() -> None:
    assert split_character("", chunk_size=10, chunk_overlap=0) == []
    assert split_recursive_character("", chunk_size=10, chunk_overlap=0) == []


def test_default_recursive_separators_match_the_sql_defaults() -> None:
    assert DEFAULT_RECURSIVE_SEPARATORS == ("\n\n", "\n", ".", "?", "!", " ", "")


def test_lengths_are_counted_in_code_points() -> None:
    assert split_recursive_character("日本語テキスト", chunk_size=3, chunk_overlap=0) == [
        "日本語",
        "テキス",
        "ト",
    ]


def test_recursive_unsplittable_piece_is_not_stripped() -> None:
    assert split_recursive_character(
        "  abcdefgh  ", chunk_size=4, chunk_overlap=0, separators=["\n"]
    ) == ["  abcdefgh  "]


def test_recursive_regex_separators_are_kept_with_the_next_piece() -> None:
    assert split_recursive_character(
        "one1two22three",
        chunk_size=6,
        chunk_overlap=0,
        separators=[r"\d+"],
        is_separator_regex=True,
    ) == ["one", "1two", "22three"]


def test_separators_are_literal_unless_regex_mode_is_on() -> None:
    assert split_character("a.b.c", chunk_size=1, chunk_overlap=0, separator=".") == [
        "a",
        "b",
        "c",
    ]


@pytest.mark.parametrize("split", [split_character, split_recursive_character])
def test_overlap_larger_than_size_is_rejected_with_the_reference_message(
    split: Callable[..., list[str]],
) -> None:
    with pytest.raises(ValueError) as raised:
        split("text", chunk_size=10, chunk_overlap=11)
    assert str(raised.value) == (
        "Got a larger chunk overlap (11) than chunk size (10), should be smaller."
    )


def test_overlap_equal_to_size_is_accepted() -> None:
    assert split_character("a b c", chunk_size=3, chunk_overlap=3, separator=" ") == [
        "a b",
        "b c",
    ]


@pytest.mark.parametrize(("size", "overlap"), [(0, 0), (-1, -2), (10, -1)])
def test_non_positive_size_or_negative_overlap_is_rejected(size: int, overlap: int) -> None:
    with pytest.raises(ValueError):
        split_character("text", chunk_size=size, chunk_overlap=overlap)


def test_recursive_without_separators_is_rejected() -> None:
    with pytest.raises(ValueError, match="separators must not be empty"):
        split_recursive_character("text", chunk_size=10, chunk_overlap=0, separators=[])


# -- properties -------------------------------------------------------------------------------

_words = st.text(alphabet="abcdefgh", min_size=1, max_size=12)
_texts = st.text(alphabet="ab .?!\n\t日", max_size=300)
_sizes = st.integers(min_value=2, max_value=60)


@st.composite
def _size_and_overlap(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(_sizes)
    return size, draw(st.integers(min_value=0, max_value=size))


def _without_whitespace(text: str) -> str:
    return "".join(char for char in text if not char.isspace())


@given(_texts, _size_and_overlap())
def test_recursive_with_default_separators_never_exceeds_the_size(
    text: str, sizes: tuple[int, int]
) -> None:
    size, overlap = sizes
    for chunk in split_recursive_character(text, chunk_size=size, chunk_overlap=overlap):
        assert len(chunk) <= size


@given(_texts, _size_and_overlap(), st.sampled_from([" ", "\n", ".", "ab"]))
def test_character_exceeds_the_size_only_with_a_single_unsplittable_piece(
    text: str, sizes: tuple[int, int], separator: str
) -> None:
    size, overlap = sizes
    for chunk in split_character(text, chunk_size=size, chunk_overlap=overlap, separator=separator):
        if len(chunk) > size:
            assert separator not in chunk


@given(_texts, _size_and_overlap())
def test_chunks_are_stripped_and_not_empty(text: str, sizes: tuple[int, int]) -> None:
    size, overlap = sizes
    for split in (split_character, split_recursive_character):
        for chunk in split(text, chunk_size=size, chunk_overlap=overlap):
            assert chunk
            assert chunk == chunk.strip()


@given(st.lists(_words, max_size=40), st.integers(min_value=1, max_value=40))
def test_character_without_overlap_covers_all_words_in_order(words: list[str], size: int) -> None:
    text = " ".join(words)
    chunks = split_character(text, chunk_size=size, chunk_overlap=0, separator=" ")
    assert " ".join(chunks).split() == words


@given(_texts, _sizes)
def test_recursive_without_overlap_keeps_every_character_in_order(text: str, size: int) -> None:
    chunks = split_recursive_character(text, chunk_size=size, chunk_overlap=0)
    assert _without_whitespace("".join(chunks)) == _without_whitespace(text)


@given(_texts, _size_and_overlap(), st.booleans())
def test_splitting_is_deterministic(text: str, sizes: tuple[int, int], regex: bool) -> None:
    size, overlap = sizes
    separators = [r"\n+", r"[.?!]", r"\s", ""] if regex else list(DEFAULT_RECURSIVE_SEPARATORS)
    first = split_recursive_character(
        text,
        chunk_size=size,
        chunk_overlap=overlap,
        separators=separators,
        is_separator_regex=regex,
    )
    second = split_recursive_character(
        text,
        chunk_size=size,
        chunk_overlap=overlap,
        separators=separators,
        is_separator_regex=regex,
    )
    assert first == second
    assert split_character(text, chunk_size=size, chunk_overlap=overlap) == split_character(
        text, chunk_size=size, chunk_overlap=overlap
    )


@given(_texts, _size_and_overlap())
def test_regex_mode_with_an_escaped_separator_matches_literal_mode(
    text: str, sizes: tuple[int, int]
) -> None:
    size, overlap = sizes
    literal = split_recursive_character(text, chunk_size=size, chunk_overlap=overlap)
    as_regex = split_recursive_character(
        text,
        chunk_size=size,
        chunk_overlap=overlap,
        separators=[re.escape(s) for s in DEFAULT_RECURSIVE_SEPARATORS],
        is_separator_regex=True,
    )
    assert literal == as_regex
