"""Templates render row values exactly as pgai 0.12.1 (psycopg + str()) does."""

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pgai.vectorizer.formatting import (
    compile_template,
    format_chunk,
    format_chunk_value,
    render_value,
    template_placeholders,
)

# -- render_value: the table of worker.md §8 ---------------------------------------------------


@pytest.mark.parametrize(
    ("value", "rendered"),
    [
        pytest.param(None, "None", id="null"),
        pytest.param(True, "True", id="bool-true"),
        pytest.param(False, "False", id="bool-false"),
        pytest.param(42, "42", id="int"),
        pytest.param("some text", "some text", id="text"),
        pytest.param(Decimal("1.50"), "1.50", id="numeric-keeps-scale"),
        pytest.param(Decimal("100"), "100", id="numeric-integral"),
        pytest.param({"a": 1, "b": "x"}, "{'a': 1, 'b': 'x'}", id="jsonb-object"),
        pytest.param([1, "two", None, True], "[1, 'two', None, True]", id="jsonb-array"),
        pytest.param([1, 2], "[1, 2]", id="int-array"),
        pytest.param(["a", "b"], "['a', 'b']", id="text-array"),
        pytest.param([[1, 2], [3, 4]], "[[1, 2], [3, 4]]", id="2d-array"),
        pytest.param(
            datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
            "2024-01-02 03:04:05+00:00",
            id="timestamptz",
        ),
        pytest.param(datetime(2024, 1, 2, 3, 4, 5), "2024-01-02 03:04:05", id="timestamp"),
        pytest.param(
            datetime(2024, 1, 2, 3, 4, 5, 123456), "2024-01-02 03:04:05.123456", id="timestamp-us"
        ),
        pytest.param(date(2024, 5, 6), "2024-05-06", id="date"),
        pytest.param(time(3, 4, 5), "03:04:05", id="time"),
        pytest.param(timedelta(days=1, hours=2), "1 day, 2:00:00", id="interval"),
        pytest.param(
            uuid.UUID("12345678-1234-5678-1234-567812345678"),
            "12345678-1234-5678-1234-567812345678",
            id="uuid",
        ),
        pytest.param(b"\x00ab'", 'b"\\x00ab\'"', id="bytea"),
        pytest.param(bytearray(b"ab"), "b'ab'", id="bytearray-as-bytes"),
        pytest.param(memoryview(b"ab"), "b'ab'", id="memoryview-as-bytes"),
        pytest.param(1.5, "1.5", id="float"),
    ],
)
def test_render_value_spells_values_like_psycopg_str(value: object, rendered: str) -> None:
    assert render_value(value) == rendered


def test_render_value_shows_timestamptz_in_the_session_timezone() -> None:
    value = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    rendered = render_value(value, session_timezone=ZoneInfo("Europe/Paris"))
    assert rendered == "2024-01-02 04:04:05+01:00"


def test_render_value_leaves_naive_timestamps_alone_whatever_the_session_timezone() -> None:
    value = datetime(2024, 1, 2, 3, 4, 5)
    assert render_value(value, session_timezone=ZoneInfo("Europe/Paris")) == "2024-01-02 03:04:05"


def test_render_value_converts_array_elements_too() -> None:
    value = [bytearray(b"x"), None]
    assert render_value(value) == "[b'x', None]"


# -- format_chunk ------------------------------------------------------------------------------


def test_default_template_is_the_chunk() -> None:
    assert format_chunk("$chunk", "the text", {"id": 1}) == "the text"


def test_template_reads_row_columns_with_both_placeholder_spellings() -> None:
    row = {"title": "Intro", "id": 7}
    assert format_chunk("${title} #$id: $chunk", "body", row) == "Intro #7: body"


def test_template_renders_values_like_psycopg() -> None:
    row = {
        "price": Decimal("1.50"),
        "meta": {"a": 1, "b": "x"},
        "published": datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
        "missing": None,
        "flag": True,
    }
    assert format_chunk("$price $meta $published $missing $flag: $chunk", "c", row) == (
        "1.50 {'a': 1, 'b': 'x'} 2024-01-02 03:04:05+00:00 None True: c"
    )


def test_template_double_dollar_is_a_literal_dollar() -> None:
    assert format_chunk("costs $$5: $chunk", "c", {}) == "costs $5: c"


def test_template_leaves_the_chunk_text_unprocessed() -> None:
    assert format_chunk("$chunk", "$title and $$", {"title": "x"}) == "$title and $$"


def test_loading_retries_is_available_like_any_column() -> None:
    row = {"id": 1, "loading_retries": 0}
    assert format_chunk("$loading_retries $chunk", "c", row) == "0 c"


def test_missing_placeholder_raises_key_error_named_like_the_reference() -> None:
    with pytest.raises(KeyError) as raised:
        format_chunk("$title: $chunk", "c", {"id": 1})
    assert raised.value.args == ("title",)


def test_malformed_placeholder_raises_value_error_naming_it() -> None:
    with pytest.raises(ValueError, match=r"Invalid placeholder.*'\$1st'"):
        format_chunk("$chunk costs $1st", "c", {})


def test_lone_dollar_at_the_end_is_malformed() -> None:
    with pytest.raises(ValueError, match="Invalid placeholder"):
        format_chunk("$chunk $", "c", {})


def test_a_row_column_named_chunk_is_rejected() -> None:
    with pytest.raises(ValueError, match="named 'chunk'"):
        format_chunk("$chunk", "c", {"chunk": "column value"})


def test_chunk_value_formatting_returns_the_chunk_unchanged() -> None:
    assert format_chunk_value("  a $chunk  ") == "  a $chunk  "


# -- template_placeholders ---------------------------------------------------------------------


def test_placeholders_lists_named_and_braced_names() -> None:
    assert template_placeholders("$title by ${author}: $chunk") == {"title", "author", "chunk"}


def test_placeholders_ignores_escaped_dollars() -> None:
    assert template_placeholders("$$price $$ $chunk") == {"chunk"}


def test_placeholders_counts_a_repeated_name_once() -> None:
    assert template_placeholders("$a $a ${a}") == {"a"}


def test_placeholders_of_a_template_without_any() -> None:
    assert template_placeholders("plain text") == set()


def test_placeholders_skips_malformed_ones() -> None:
    assert template_placeholders("$1 $ok ${bad-name}") == {"ok"}


def test_columns_the_template_does_not_read_are_not_rendered() -> None:
    class Unprintable:
        def __str__(self) -> str:
            raise AssertionError("rendered a column the template does not read")

    assert format_chunk("$title: $chunk", "c", {"title": "T", "blob": Unprintable()}) == "T: c"


# -- compile_template: the worker's formatter ---------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(
    template=st.lists(
        st.sampled_from(
            [
                "$chunk",
                "${chunk}",
                "$title",
                "${title}",
                "$id",
                "$$",
                "$missing",
                "$",
                "$1x",
                " : ",
                "text",
                "\n",
                "{",
                "}",
                "$title_",
            ]
        ),
        max_size=8,
    ).map("".join),
    chunk=st.text(max_size=20),
    row=st.fixed_dictionaries(
        {"id": st.integers(), "title": st.one_of(st.none(), st.text(max_size=10))},
        optional={"title_": st.booleans(), "chunk": st.just("collides")},
    ),
)
def test_a_compiled_template_formats_exactly_as_format_chunk(
    template: str, chunk: str, row: dict[str, object]
) -> None:
    def outcome(run: Callable[[], str]) -> tuple[str, object]:
        try:
            return ("ok", run())
        except (KeyError, ValueError) as exc:
            return (type(exc).__name__, str(exc))

    expected = outcome(lambda: format_chunk(template, chunk, row))
    assert outcome(lambda: compile_template(template)(row)(chunk)) == expected
