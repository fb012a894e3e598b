"""Log output of the ``pgai`` commands: human-readable lines or JSON lines, never a secret.

``--log-format json`` writes one JSON object per line for log collectors, with the vectorizer id
as a field when the record carries one: ``log.info(..., extra={"vectorizer_id": 3})``, or a
format string that names it, ``log.info("vectorizer %s: ...", 3, ...)``.
:class:`RedactSecrets` is a safety net under both formats: passwords in connection URLs,
``Bearer`` tokens and API keys that end up in a message or a traceback are masked.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")

TEXT_FORMAT = "%(asctime)s [%(levelname)-8s] %(name)s: %(message)s"
TEXT_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"

MASK = "***"

_SECRET_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # scheme://user:password@host: keep the user, mask the password
    (re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://[^:/?#@\s]*):[^@/\s]+@"), rf"\1:{MASK}@"),
    # Authorization header values: Bearer <token>, and Basic <credentials> after the header
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=\-]{8,}"), rf"\1 {MASK}"),
    (
        re.compile(r"(?i)\b(authorization[\"']?\s*[:=]\s*[\"']?basic)\s+[A-Za-z0-9+/=]+"),
        rf"\1 {MASK}",
    ),
    # OpenAI-style keys (sk-..., sk-proj-...)
    (re.compile(r"\bsk-[A-Za-z0-9_\-]{6,}"), f"sk-{MASK}"),
    # key=value and "key": "value" forms: password=..., api_key: ..., "token": "..."
    (
        re.compile(
            r"(?i)\b(password|passwd|api[_\-]?key|secret|access[_\-]?token|token)"
            r"(\"?'?\s*[:=]\s*[\"']?)[^\s\"'&,;}]+"
        ),
        rf"\1\2{MASK}",
    ),
)


def redact_secrets(text: str) -> str:
    """``text`` with every credential-looking part masked."""
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactSecrets(logging.Filter):
    """Masks secrets in a record's message and traceback before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_secrets(message)
        if redacted != message:
            # the format string names the vectorizer; keep its id before replacing it
            vectorizer_id = _vectorizer_id(record)
            if vectorizer_id is not None:
                record.vectorizer_id = vectorizer_id
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_secrets(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_secrets(record.stack_info)
        return True


#: "vectorizer %s" (or "vectorizer_id=%s") in a log call's format string.
_ID_IN_TEMPLATE = re.compile(r"vectorizer(?: |_id=)%[sd]")
#: printf-style placeholders of a format string ("%%" is a literal percent sign).
_PLACEHOLDER = re.compile(r"%(?:%|[-#0 +]*\d*(?:\.\d+)?[a-zA-Z])")


def _vectorizer_id(record: logging.LogRecord) -> Any:
    """The vectorizer id a record is about: ``extra={"vectorizer_id": ...}``, else the
    argument of ``vectorizer %s`` in the call's format string (how the worker's log calls name
    their vectorizer), else None."""
    explicit = getattr(record, "vectorizer_id", None)
    if explicit is not None:
        return explicit
    if not isinstance(record.msg, str) or not isinstance(record.args, tuple):
        return None
    match = _ID_IN_TEMPLATE.search(record.msg)
    if match is None:
        return None
    before = [p for p in _PLACEHOLDER.findall(record.msg[: match.start()]) if p != "%%"]
    if len(before) >= len(record.args):
        return None
    value = record.args[len(before)]
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class TextFormatter(logging.Formatter):
    """``2024-01-01 12:00:00 [INFO    ] pgai.vectorizer: message``; a vectorizer id carried
    in ``extra`` and not already in the message is appended as ``[vectorizer N]``."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT, datefmt=TEXT_DATE_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        vectorizer_id = _vectorizer_id(record)
        if vectorizer_id is not None and f"vectorizer {vectorizer_id}" not in record.getMessage():
            first, newline, rest = text.partition("\n")
            text = f"{first} [vectorizer {vectorizer_id}]{newline}{rest}"
        return text


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, and
    ``vectorizer_id``, ``exception`` and ``stack`` when the record has them."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        vectorizer_id = _vectorizer_id(record)
        if vectorizer_id is not None:
            entry["vectorizer_id"] = vectorizer_id
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def make_handler(log_format: LogFormat = "text", stream: TextIO | None = None) -> logging.Handler:
    """A stream handler (stdout by default) with the format's formatter and the redaction
    filter."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(RedactSecrets())
    return handler


def configure_logging(level: int, log_format: LogFormat = "text") -> None:
    """Send every log record of the process at ``level`` and above to stdout in
    ``log_format``, replacing the handlers configured before."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}")
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(make_handler(log_format))
    root.setLevel(level)
    # httpx logs every request at INFO; that is noise at the worker's INFO level.
    logging.getLogger("httpx").setLevel(max(level, logging.WARNING))
