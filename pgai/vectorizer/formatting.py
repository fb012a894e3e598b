"""Formatting: the text that is embedded (and stored as ``chunk``) for each chunk of a row.

``python_template`` is ``string.Template(template).substitute(chunk=..., **row)`` over the
source row, as in pgai 0.12.1 (worker.md §8). The reference reads rows with psycopg and renders
each value with ``str()``; we read them with asyncpg, whose decoded values sometimes print
differently, so :func:`render_value` converts them to the spelling psycopg would have produced.
Users write templates like ``"$title ($published): $chunk"`` and expect the stored chunk text
to stay the same when they switch workers.
"""

import string
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, tzinfo

__all__ = [
    "compile_template",
    "format_chunk",
    "format_chunk_value",
    "render_value",
    "template_placeholders",
]


def format_chunk(
    template: str,
    chunk: str,
    row: Mapping[str, object],
    *,
    session_timezone: tzinfo | None = None,
) -> str:
    """Fill ``template`` with the chunk (``$chunk``) and the row's columns (``$column``).

    Every value is rendered with :func:`render_value`; ``$$`` is a literal ``$``.
    ``session_timezone`` is the database session's TimeZone, in which the reference shows
    timestamptz values (asyncpg decodes them in UTC).

    Raises KeyError (whose argument is the placeholder's name, as the reference reports it)
    when the template reads a column the row does not have, and ValueError naming the
    offending text when a ``$`` starts no valid placeholder. A row column named ``chunk``
    raises ValueError: ``$chunk`` always means the chunk, and the reference fails on it too.
    """
    if "chunk" in row:
        raise ValueError(
            "the source row has a column named 'chunk', which collides with the $chunk "
            "placeholder: rename the column or vectorize a view that renames it"
        )
    values = _TemplateValues(chunk, row, session_timezone)
    try:
        return string.Template(template).substitute(values)
    except ValueError as error:
        raise ValueError(f"{error} ({_invalid_placeholder(template)!r}): {_DOLLAR_HINT}") from error


def compile_template(
    template: str, *, session_timezone: tzinfo | None = None
) -> Callable[[Mapping[str, object]], Callable[[str], str]]:
    """:func:`format_chunk` for many chunks of the same rows: the template is parsed once, a
    row's columns are rendered once per row (not once per chunk), and a chunk is a join.

    ``compile_template(t)(row)(chunk) == format_chunk(t, chunk, row)``, errors included: the
    row's errors (a missing column, a column named ``chunk``) are raised by ``(row)``, and a
    template with an invalid placeholder formats each chunk with :func:`format_chunk`, which
    reports it.
    """
    parts: list[tuple[str, str | None]] = []  # (literal text, or None and a column name)
    position = 0
    for match in string.Template.pattern.finditer(template):
        if match.group("invalid") is not None:
            return lambda row: (
                lambda chunk: format_chunk(template, chunk, row, session_timezone=session_timezone)
            )
        parts.append((template[position : match.start()], None))
        name = match.group("named") or match.group("braced")
        parts.append(("$", None) if name is None else ("", name))
        position = match.end()
    parts.append((template[position:], None))

    def bind(row: Mapping[str, object]) -> Callable[[str], str]:
        if "chunk" in row:
            format_chunk(template, "", row)  # raises the collision error
        pieces: list[str] = []
        slots: list[int] = []
        for literal, name in parts:
            if name == "chunk":
                slots.append(len(pieces))
                pieces.append("")
            elif name is not None:
                pieces.append(render_value(row[name], session_timezone=session_timezone))
            elif literal:
                pieces.append(literal)
        if not slots:
            text = "".join(pieces)
            return lambda _chunk: text

        def fill(chunk: str) -> str:
            for slot in slots:
                pieces[slot] = chunk
            return "".join(pieces)

        return fill

    return bind


def format_chunk_value(chunk: str) -> str:
    """The legacy ``chunk_value`` formatting: the chunk itself, nothing added."""
    return chunk


def template_placeholders(template: str) -> set[str]:
    """The names a template reads: ``$name`` and ``${name}``, not the ``$$`` escape.

    Knowing them tells which source columns a vectorizer depends on. Malformed placeholders
    are ignored here; :func:`format_chunk` reports them.
    """
    return set(string.Template(template).get_identifiers())


def render_value(value: object, *, session_timezone: tzinfo | None = None) -> str:
    """Spell an asyncpg-decoded value the way ``str()`` of the psycopg-decoded value reads.

    ``None`` → ``None``, booleans ``True``/``False``, numerics keep their scale (``1.50``),
    json/jsonb (decoded to dict/list by the caller: asyncpg hands it over as a JSON string
    unless a codec is set) → Python repr ``{'a': 1}``, arrays → ``[1, 2]``, dates and times as
    ``str()`` gives them, bytea → ``b'...'``. An aware datetime is first converted to
    ``session_timezone`` when one is given, as psycopg does.
    """
    return str(_as_psycopg_would_decode(value, session_timezone))


_DOLLAR_HINT = "write $$ for a literal dollar sign, and $name or ${name} for a column"


class _TemplateValues(Mapping[str, str]):
    """The chunk and the row's rendered values, rendered only when the template reads them.

    The formatter runs once per chunk, and rows often carry large columns the template never
    mentions (the document itself, jsonb metadata), so rendering everything eagerly is waste.
    """

    def __init__(
        self, chunk: str, row: Mapping[str, object], session_timezone: tzinfo | None
    ) -> None:
        self._chunk = chunk
        self._row = row
        self._session_timezone = session_timezone

    def __getitem__(self, name: str) -> str:
        if name == "chunk":
            return self._chunk
        # A missing column raises KeyError(name), which is what the reference reports.
        return render_value(self._row[name], session_timezone=self._session_timezone)

    def __iter__(self) -> Iterator[str]:
        yield "chunk"
        yield from self._row

    def __len__(self) -> int:
        return len(self._row) + 1


def _as_psycopg_would_decode(value: object, session_timezone: tzinfo | None) -> object:
    """Turn the few asyncpg results whose ``str()`` differs from psycopg's into psycopg's."""
    if isinstance(value, datetime):
        if value.tzinfo is not None and session_timezone is not None:
            return value.astimezone(session_timezone)
        return value
    if isinstance(value, bytearray | memoryview):
        # psycopg returns bytea as bytes; str() of the other buffer types reads differently.
        return bytes(value)
    if isinstance(value, list):
        # Array elements print with repr(), so their types must match psycopg's as well.
        return [_as_psycopg_would_decode(item, session_timezone) for item in value]
    return value


def _invalid_placeholder(template: str) -> str:
    """The text of the first ``$`` that starts no valid placeholder, for error messages."""
    for match in string.Template.pattern.finditer(template):
        if match.group("invalid") is not None:
            # The "invalid" group is empty and sits right after the "$".
            start = match.start()
            return template[start : start + 12].split()[0]
    return "$"
