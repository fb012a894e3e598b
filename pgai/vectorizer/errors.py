"""What goes into ``ai._vectorizer_errors`` (read through the ``ai.vectorizer_errors`` view).

Messages keep pgai's wording so dashboards built on pgai keep working; ``details`` carries what
pgai's rows lack: the keys involved, the HTTP status and whether the rows will be retried.
Secrets never reach this table: messages come from our own exceptions, which never include
API keys or database passwords.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pgai.database import DbConnection, redact_url

EMBEDDING_PROVIDER_FAILED = "embedding provider failed"
UNEXPECTED_ERROR = "vectorizer failed with unexpected error"
LOADING_FAILED = "loading failed"
CONFIGURATION_ERROR = "vectorizer configuration error"

#: How many keys of a failed batch are listed in one error row.
MAX_KEYS_IN_DETAILS = 100


def jsonable_keys(pks: Sequence[tuple[Any, ...]]) -> list[list[Any]]:
    """Primary keys as JSON values (non-JSON types such as timestamps become text)."""
    return [[v if isinstance(v, int | float | str | bool) else str(v) for v in pk] for pk in pks]


async def record_error(
    conn: DbConnection,
    vectorizer_id: int,
    message: str,
    details: dict[str, Any],
) -> None:
    """Insert one error row in its own statement (the caller's batch may have rolled back)."""
    if "error_reason" in details:
        details = {**details, "error_reason": scrub(str(details["error_reason"]))}
    await conn.execute(
        "INSERT INTO ai._vectorizer_errors (id, message, details) VALUES ($1, $2, $3::text::jsonb)",
        vectorizer_id,
        message,
        json.dumps(details, default=str),
    )


def scrub(text: str) -> str:
    """Remove anything that looks like a database URL with a password."""
    words = []
    for word in text.split(" "):
        if "://" in word and "@" in word:
            word = redact_url(word)
        words.append(word)
    return " ".join(words)
