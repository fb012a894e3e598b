"""Writes embeddings: binary COPY into the target table, or UPDATE of the embedding column.

Both run in the batch's transaction, so the new embeddings and the deletion of the claimed
queue rows commit together.
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pgai.database import DbConnection, quote_ident, quote_qualified
from pgai.vectorizer.config import ColumnDestination, TableDestination, Vectorizer


@dataclass(frozen=True)
class EmbeddedChunk:
    """One row of output: the source key, the chunk's position in its row, its formatted text
    and its vector."""

    pk: tuple[Any, ...]
    chunk_seq: int
    chunk: str
    #: the vector, or already packed by :func:`pack_vector`
    embedding: Sequence[float] | bytes


def pack_vector(values: Sequence[float]) -> bytes:
    """pgvector's binary format: dimensions (int16), unused (int16), float4 values, big-endian.

    The worker packs each vector as soon as the provider answers: four bytes a value instead
    of a Python float object (about 32), which bounds the memory of batches of long documents.
    """
    packed = array("f", values)
    if sys.byteorder == "little":
        packed.byteswap()
    return _HEADER.pack(len(packed), 0) + packed.tobytes()


_HEADER = struct.Struct(">HH")


def _encode_vector(value: Sequence[float] | bytes) -> bytes:
    return value if isinstance(value, bytes) else pack_vector(value)


def _decode_vector(data: bytes) -> list[float]:
    (dims, _unused) = struct.unpack_from(">HH", data)
    return list(struct.unpack_from(f">{dims}f", data, 4))


async def register_vector_type(conn: DbConnection) -> None:
    """Teach a connection pgvector's ``vector`` type (binary), wherever the extension lives."""
    schema = await conn.fetchval(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
        "WHERE e.extname = 'vector'"
    )
    if schema is not None:
        await conn.set_type_codec(
            "vector",
            schema=schema,
            encoder=_encode_vector,
            decoder=_decode_vector,
            format="binary",
        )


class EmbeddingWriter:
    """The write statements of one vectorizer."""

    def __init__(self, vectorizer: Vectorizer) -> None:
        self.vectorizer = vectorizer
        self.pk = vectorizer.pk_names
        self.destination = vectorizer.config.destination
        types = {c.attname: c.typname for c in vectorizer.source_pk}
        self._pk_types = [types[c] for c in self.pk]

    @property
    def is_table(self) -> bool:
        return isinstance(self.destination, TableDestination)

    async def delete_old_chunks(self, conn: DbConnection, pks: Sequence[tuple[Any, ...]]) -> None:
        """Table destination: drop the chunks of rows about to be re-embedded (also of rows that
        now produce no chunk at all)."""
        if not pks or not isinstance(self.destination, TableDestination):
            return
        target = quote_qualified(self.destination.target_schema, self.destination.target_table)
        cols = ", ".join(quote_ident(c) for c in self.pk)
        arrays = ", ".join(f"${i + 1}::{t}[]" for i, t in enumerate(self._pk_types))
        await conn.execute(
            f"DELETE FROM {target} WHERE ({cols}) IN (SELECT * FROM unnest({arrays}))",
            *[list(col) for col in zip(*pks, strict=True)],
        )

    async def stored_embeddings(
        self, conn: DbConnection, pks: Sequence[tuple[Any, ...]]
    ) -> dict[tuple[tuple[Any, ...], str], Sequence[float]]:
        """Table destination: the vectors already stored for these rows, by (key, chunk text).

        A chunk whose formatted text is unchanged since it was embedded reuses its vector: same
        text, same vectorizer, hence same model and dimensions. Editing one paragraph of a long
        document then costs the tokens of that paragraph's chunks, not of the whole document.
        """
        if not pks or not isinstance(self.destination, TableDestination):
            return {}
        target = quote_qualified(self.destination.target_schema, self.destination.target_table)
        cols = ", ".join(quote_ident(c) for c in self.pk)
        arrays = ", ".join(f"${i + 1}::{t}[]" for i, t in enumerate(self._pk_types))
        rows = await conn.fetch(
            f"SELECT {cols}, chunk, embedding FROM {target} "
            f"WHERE ({cols}) IN (SELECT * FROM unnest({arrays}))",
            *[list(col) for col in zip(*pks, strict=True)],
        )
        n = len(self.pk)
        return {(tuple(r[:n]), r["chunk"]): r["embedding"] for r in rows}

    async def write(self, conn: DbConnection, chunks: Sequence[EmbeddedChunk]) -> None:
        if not chunks:
            return
        if isinstance(self.destination, TableDestination):
            await conn.copy_records_to_table(
                self.destination.target_table,
                schema_name=self.destination.target_schema,
                columns=[*self.pk, "chunk_seq", "chunk", "embedding"],
                records=[(*c.pk, c.chunk_seq, c.chunk, c.embedding) for c in chunks],
            )
        else:
            assert isinstance(self.destination, ColumnDestination)
            source = quote_qualified(self.vectorizer.source_schema, self.vectorizer.source_table)
            where = " AND ".join(f"{quote_ident(c)} = ${i + 2}" for i, c in enumerate(self.pk))
            await conn.executemany(
                f"UPDATE {source} SET {quote_ident(self.destination.embedding_column)} = $1 "
                f"WHERE {where}",
                [(c.embedding, *c.pk) for c in chunks],
            )
