"""Loading a row's content and parsing it into text, without a database."""

import io
import zipfile

import pytest

from pgai.errors import ConfigurationError, PgaiError
from pgai.vectorizer.loading import LoadingError, guess_file_type, load_column
from pgai.vectorizer.parsing import ParsingError, parse

# -- load_column -------------------------------------------------------------------------------


def test_text_column_loads_as_text() -> None:
    assert load_column({"id": 1, "body": "hello"}, "body") == "hello"


def test_null_column_loads_as_empty_text() -> None:
    assert load_column({"body": None}, "body") == ""


def test_whitespace_is_loaded_untouched() -> None:
    assert load_column({"body": "  \n"}, "body") == "  \n"


def test_bytea_column_loads_as_bytes() -> None:
    assert load_column({"doc": b"%PDF-1.7"}, "doc") == b"%PDF-1.7"


def test_buffer_values_load_as_bytes() -> None:
    assert load_column({"doc": memoryview(b"abc")}, "doc") == b"abc"
    assert load_column({"doc": bytearray(b"abc")}, "doc") == b"abc"


def test_other_values_load_as_their_rendered_text() -> None:
    assert load_column({"n": 5}, "n") == "5"


def test_missing_column_is_a_loading_error_naming_it() -> None:
    with pytest.raises(LoadingError, match="'body'"):
        load_column({"id": 1}, "body")


def test_loading_and_parsing_errors_belong_to_the_pgai_hierarchy() -> None:
    assert issubclass(LoadingError, PgaiError)
    assert issubclass(ParsingError, PgaiError)


# -- guess_file_type ---------------------------------------------------------------------------


def _zip(entries: dict[str, bytes], *, mimetype: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        if mimetype is not None:
            archive.writestr(zipfile.ZipInfo("mimetype"), mimetype.encode())
        for name, content in entries.items():
            archive.writestr(name, content)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "file_type"),
    [
        pytest.param(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "pdf", id="pdf"),
        pytest.param(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "png", id="png"),
        pytest.param(b"\xff\xd8\xff\xe0\x00\x10JFIF", "jpg", id="jpeg"),
        pytest.param(b"GIF89a\x01\x00", "gif", id="gif"),
        pytest.param(b"II*\x00\x08\x00", "tif", id="tiff"),
        pytest.param(b"BM\x8a\x00\x00\x00\x00\x00\x00\x00\x8a\x00", "bmp", id="bmp"),
        pytest.param(b"RIFF\x24\x00\x00\x00WEBPVP8 ", "webp", id="webp"),
        pytest.param(b"{\\rtf1\\ansi hello}", "rtf", id="rtf"),
        pytest.param(b"<!DOCTYPE html><html><body>x</body></html>", "html", id="html-doctype"),
        pytest.param(b"\n  <html lang='en'><p>x</p></html>", "html", id="html-tag"),
        pytest.param(b'<?xml version="1.0"?><note/>', "xml", id="xml"),
        pytest.param(b"# Title\n\nSome *markdown* text.\n", "txt", id="markdown-as-text"),
        pytest.param("plain text, caf\u00e9\n".encode(), "txt", id="utf8-text"),
        pytest.param(b"BMW makes cars", "txt", id="text-starting-like-bmp"),
    ],
)
def test_guess_file_type_from_magic_bytes(data: bytes, file_type: str) -> None:
    assert guess_file_type(data) == file_type


def test_guess_file_type_of_ooxml_documents() -> None:
    assert guess_file_type(_zip({"[Content_Types].xml": b"", "word/document.xml": b""})) == "docx"
    assert guess_file_type(_zip({"[Content_Types].xml": b"", "xl/workbook.xml": b""})) == "xlsx"
    assert guess_file_type(_zip({"[Content_Types].xml": b"", "ppt/slides/s1.xml": b""})) == "pptx"


def test_guess_file_type_of_epub_and_opendocument() -> None:
    epub = _zip({"META-INF/container.xml": b""}, mimetype="application/epub+zip")
    odt = _zip({"content.xml": b""}, mimetype="application/vnd.oasis.opendocument.text")
    assert guess_file_type(epub) == "epub"
    assert guess_file_type(odt) == "odt"


def test_guess_file_type_reads_a_mimetype_entry_that_is_not_stored_first() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("content.opf", b"<package/>")
        archive.writestr("mimetype", b"application/epub+zip")
    assert guess_file_type(buffer.getvalue()) == "epub"


def test_guess_file_type_of_a_plain_or_damaged_zip() -> None:
    assert guess_file_type(_zip({"notes.txt": b"hi"})) == "zip"
    assert guess_file_type(b"PK\x03\x04garbage") == "zip"


def test_guess_file_type_of_legacy_office_files() -> None:
    header = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100
    assert guess_file_type(header + "WordDocument".encode("utf-16-le") + b"\x00\x00") == "doc"
    assert guess_file_type(header + "Workbook".encode("utf-16-le") + b"\x00\x00") == "xls"
    assert guess_file_type(header) is None


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\x00\x01\x02\x03binary", id="binary"),
        pytest.param(b"\xff\xfe\x00\x00", id="invalid-utf8"),
    ],
)
def test_guess_file_type_gives_up_on_unknown_data(data: bytes) -> None:
    assert guess_file_type(data) is None


def test_guess_file_type_tolerates_a_character_cut_at_the_sample_end() -> None:
    data = b"a" * 8191 + "\u00e9".encode() + b"more text"
    assert guess_file_type(data) == "txt"


# -- parse -------------------------------------------------------------------------------------


@pytest.mark.parametrize("implementation", ["auto", "none"])
def test_text_passes_through_untouched(implementation: str) -> None:
    assert parse("  some text\n", implementation) == "  some text\n"


@pytest.mark.parametrize("implementation", ["pymupdf", "docling"])
def test_document_parsers_refuse_text(implementation: str) -> None:
    with pytest.raises(ParsingError, match=f"parsing_{implementation}"):
        parse("some text", implementation)


def test_parsing_none_refuses_documents() -> None:
    with pytest.raises(ParsingError, match="parsing_none"):
        parse(b"%PDF-1.7", "none")


@pytest.mark.parametrize("implementation", ["auto", "pymupdf", "docling"])
def test_text_documents_are_decoded_as_utf8(implementation: str) -> None:
    assert parse("caf\u00e9 au lait\n".encode(), implementation) == "caf\u00e9 au lait\n"


def test_known_file_type_overrides_the_guess() -> None:
    assert parse(b"# Title", "docling", file_type="md") == "# Title"


def test_text_document_that_is_not_utf8_fails() -> None:
    with pytest.raises(ParsingError, match="not valid UTF-8"):
        parse(b"caf\xe9", "pymupdf", file_type="txt")


@pytest.mark.parametrize("implementation", ["auto", "pymupdf", "docling"])
def test_unknown_file_type_fails_as_in_the_reference(implementation: str) -> None:
    with pytest.raises(ParsingError, match="No file extension could be determined"):
        parse(b"\x00\x01\x02binary", implementation)


def test_auto_sends_pdf_to_docling_which_this_build_lacks() -> None:
    with pytest.raises(ParsingError, match=r"pdf documents needs the optional 'docling' extra"):
        parse(b"%PDF-1.7\n", "auto")


def test_auto_sends_epub_to_pymupdf_which_this_build_lacks() -> None:
    epub = _zip({"META-INF/container.xml": b""}, mimetype="application/epub+zip")
    with pytest.raises(ParsingError, match=r"epub documents needs the optional 'pymupdf' extra"):
        parse(epub, "auto")


def test_explicit_parser_is_named_in_the_error() -> None:
    with pytest.raises(ParsingError, match="'pymupdf' extra"):
        parse(b"%PDF-1.7\n", "pymupdf")


def test_unknown_implementation_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="unknown parsing implementation 'magic'"):
        parse("text", "magic")
