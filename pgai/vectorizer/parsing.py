"""Parsing: turn loaded content into the text that gets chunked (worker.md §6 step 3).

Text passes through untouched. Document bytes are converted to Markdown by pymupdf or docling
in the reference; neither is part of this build, so the only documents parsed here are plain
text and Markdown files, and every other document type fails with a message naming the
optional extra it needs. A parse failure is not a loading error: it fails the whole batch,
because retrying the row cannot make a missing converter appear.
"""

from pgai.errors import ConfigurationError, PgaiError
from pgai.vectorizer.loading import guess_file_type

__all__ = ["PARSING_IMPLEMENTATIONS", "ParsingError", "parse"]

PARSING_IMPLEMENTATIONS = frozenset({"auto", "none", "pymupdf", "docling"})
"""The values ``parsing.implementation`` may take."""

# Document types whose bytes are already the text to embed.
_TEXT_FILE_TYPES = frozenset({"txt", "md"})


class ParsingError(PgaiError):
    """Loaded content could not be turned into text; the batch fails."""


def parse(payload: str | bytes, implementation: str, *, file_type: str | None = None) -> str:
    """The text of ``payload`` according to the vectorizer's parsing ``implementation``.

    ``auto`` passes text and parses documents with pymupdf when they are EPUB, docling
    otherwise; ``none`` passes text and refuses documents; ``pymupdf`` and ``docling`` parse
    documents and refuse text. ``file_type`` is the document's lower-case extension when the
    loader knows it (e.g. from a URI); otherwise it is guessed from the bytes.

    Raises ParsingError for content the implementation cannot parse, ConfigurationError for an
    unknown implementation.
    """
    if implementation not in PARSING_IMPLEMENTATIONS:
        raise ConfigurationError(
            f"unknown parsing implementation {implementation!r}: use one of "
            f"{', '.join(sorted(PARSING_IMPLEMENTATIONS))}"
        )
    if isinstance(payload, str):
        if implementation in ("auto", "none"):
            return payload
        raise ParsingError(
            f"parsing_{implementation} parses document bytes but got text: use "
            "ai.parsing_auto() or ai.parsing_none() for a text column"
        )

    if implementation == "none":
        raise ParsingError(
            "parsing_none cannot read document bytes: use ai.parsing_auto(), "
            "ai.parsing_pymupdf() or ai.parsing_docling() for a bytea column or document URIs"
        )
    if file_type is None:
        file_type = guess_file_type(payload)
    if file_type is None:
        raise ParsingError(
            "No file extension could be determined for the document: its first bytes match "
            "no known format (store a supported document, or load it from a URI with an "
            "extension)"
        )
    if implementation == "auto":
        implementation = "pymupdf" if file_type == "epub" else "docling"
    if file_type in _TEXT_FILE_TYPES:
        return _decode_text(payload, file_type)
    raise ParsingError(
        f"converting {file_type} documents needs the optional '{implementation}' extra "
        f"(parsing_{implementation}), which this build of pgai does not provide: store the "
        "content as text, or convert it to text or Markdown before inserting it"
    )


def _decode_text(payload: bytes, file_type: str) -> str:
    """Decode a plain text or Markdown document, which must be UTF-8.

    A byte order mark is kept, as the reference keeps it, so the chunks stay the same.
    """
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ParsingError(
            f"the {file_type} document is not valid UTF-8 ({error.reason} at byte "
            f"{error.start}): store it as UTF-8"
        ) from error
