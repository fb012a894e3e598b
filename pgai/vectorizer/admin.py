"""Operations on vectorizers that people run by hand (``pgai vectorizer retry-failed``)."""

from __future__ import annotations

from collections.abc import Sequence

from pgai.database import connect
from pgai.errors import ConfigurationError
from pgai.vectorizer.config import parse_vectorizer
from pgai.vectorizer.queue import QueueStatements


async def retry_failed(db_url: str, vectorizer_ids: Sequence[int] = ()) -> dict[int, int]:
    """Move every failed-queue row of the given vectorizers (default: all) back into their
    queues. Returns rows moved per vectorizer id."""
    conn = await connect(db_url)
    try:
        rows = await conn.fetch(
            "SELECT to_jsonb(v) AS v FROM ai.vectorizer v "
            "WHERE cardinality($1::int4[]) = 0 OR id = any($1::int4[]) ORDER BY id",
            list(vectorizer_ids),
        )
        vectorizers = [parse_vectorizer(_as_dict(r["v"])) for r in rows]
        missing = sorted(set(vectorizer_ids) - {v.id for v in vectorizers})
        if missing:
            raise ConfigurationError(f"no vectorizer with id {missing}")
        return {v.id: await QueueStatements(v).retry_failed(conn) for v in vectorizers}
    finally:
        await conn.close()


def _as_dict(value: object) -> dict[str, object]:
    import json

    if isinstance(value, str):
        loaded = json.loads(value)
        assert isinstance(loaded, dict)
        return loaded
    assert isinstance(value, dict)
    return value
