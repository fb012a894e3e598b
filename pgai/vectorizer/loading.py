"""Loading: get a row's content out of the row, and tell what kind of document bytes are.

Only ``column`` loading lives here (worker.md §6 step 1): the content is the value of one
source column, text or bytea. A failure here is a *loading error*, which the worker records
and retries per row without failing the batch, so it has its own exception type.
"""

import codecs
import io
import zipfile
import zlib
from collections.abc import Mapping

from pgai.errors import PgaiError
from pgai.vectorizer.formatting import render_value

__all__ = ["LoadingError", "guess_file_type", "load_column"]


class LoadingError(PgaiError):
    """A row's content could not be loaded; the row is retried later, the batch goes on."""


def load_column(row: Mapping[str, object], column_name: str) -> str | bytes:
    """The content of ``column_name`` in ``row``: text stays text, bytea stays bytes.

    NULL loads as ``""`` so the row is processed as empty (its old chunks are dropped) rather
    than failing. Raises LoadingError when the row has no such column.
    """
    try:
        value = row[column_name]
    except KeyError:
        raise LoadingError(
            f"the source row has no column {column_name!r} to load: check the loading "
            "column_name of the vectorizer against the source table"
        ) from None
    if value is None:
        return ""
    if isinstance(value, str | bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    # The SQL API only accepts text and bytea columns; anything else (an older catalog) is
    # loaded as the text the template would show for it.
    return render_value(value)


def guess_file_type(data: bytes) -> str | None:
    """Guess a document's type from its first bytes; the answer is a lower-case extension.

    Recognises PDF, EPUB, the Office formats (OOXML and OpenDocument inside a zip, legacy
    OLE2), RTF, common images, HTML, XML and, failing all those, UTF-8 plain text (``"txt"``).
    Returns None when nothing fits (including empty data), which the parsers report as "no
    file extension could be determined".
    """
    if not data:
        return None
    for magic, file_type in _SIGNATURES:
        if data.startswith(magic):
            return file_type
    if data.startswith(b"PK\x03\x04"):
        return _zip_file_type(data)
    if data.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return _ole2_file_type(data)
    if data.startswith(b"BM") and data[6:10] == b"\x00\x00\x00\x00":
        # "BM" alone would claim any text starting with those letters; the reserved bytes
        # of a bitmap header must be zero as well.
        return "bmp"
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "webp"
    return _text_file_type(data)


_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "pdf"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpg"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"II*\x00", "tif"),
    (b"MM\x00*", "tif"),
    (b"{\\rtf", "rtf"),
)

# The mimetype entry that OpenDocument and EPUB containers store first, uncompressed.
_ZIP_MIMETYPES = {
    "application/epub+zip": "epub",
    "application/vnd.oasis.opendocument.text": "odt",
    "application/vnd.oasis.opendocument.spreadsheet": "ods",
    "application/vnd.oasis.opendocument.presentation": "odp",
}

# OOXML documents are told apart by the folder holding their main part.
_OOXML_FOLDERS = (("word/", "docx"), ("xl/", "xlsx"), ("ppt/", "pptx"))

# Legacy Office files are OLE2 compound files; the name of the main stream (UTF-16-LE in the
# directory) says which application wrote it.
_OLE2_STREAMS = (
    ("WordDocument", "doc"),
    ("Workbook", "xls"),
    ("Book", "xls"),
    ("PowerPoint Document", "ppt"),
)

_TEXT_SAMPLE_SIZE = 8192

# Control characters that plain text may contain; any other one makes it look binary.
_TEXT_CONTROLS = frozenset("\t\n\r\f\v\b\x1b")


def _zip_file_type(data: bytes) -> str:
    """Tell EPUB, OpenDocument and OOXML apart from a plain zip archive."""
    # The containers that follow the rules store their mimetype first and uncompressed, so it
    # can be read without opening the archive, even when the archive is truncated.
    if data[30:38] == b"mimetype":
        file_type = _zip_mimetype_file_type(data[38:120].split(b"PK", 1)[0])
        if file_type is not None:
            return file_type
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
            mimetype = archive.read("mimetype") if "mimetype" in names else b""
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, zlib.error):
        # Truncated or damaged: still a zip as far as the first bytes tell.
        return "zip"
    file_type = _zip_mimetype_file_type(mimetype)
    if file_type is not None:
        return file_type
    if "[Content_Types].xml" in names:
        for folder, file_type in _OOXML_FOLDERS:
            if any(name.startswith(folder) for name in names):
                return file_type
    return "zip"


def _zip_mimetype_file_type(mimetype: bytes) -> str | None:
    """The file type a zip container's ``mimetype`` entry announces, if it is one we know."""
    text = mimetype.decode("ascii", "replace").strip()
    for known, file_type in _ZIP_MIMETYPES.items():
        if text.startswith(known):
            return file_type
    return None


def _ole2_file_type(data: bytes) -> str | None:
    """Name the legacy Office format of an OLE2 compound file, if its main stream is found."""
    for stream, file_type in _OLE2_STREAMS:
        if stream.encode("utf-16-le") + b"\x00\x00" in data:
            return file_type
    return None


def _text_file_type(data: bytes) -> str | None:
    """``"html"``, ``"xml"`` or ``"txt"`` for data that reads as UTF-8 text, else None."""
    sample = data[:_TEXT_SAMPLE_SIZE]
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        # Not final unless the sample is all the data: it may end inside a character.
        text = decoder.decode(sample, final=len(data) <= _TEXT_SAMPLE_SIZE)
    except UnicodeDecodeError:
        return None
    controls = sum(1 for char in text if char < " " and char not in _TEXT_CONTROLS)
    if "\x00" in text or controls * 100 > len(text):
        return None
    head = text.lstrip("\ufeff \t\r\n").lower()
    if head.startswith(("<!doctype html", "<html", "<head", "<body")):
        return "html"
    if head.startswith("<?xml"):
        return "html" if "<html" in head[:1024] else "xml"
    return "txt"
