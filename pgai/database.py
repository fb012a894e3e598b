"""Connecting to PostgreSQL, and the one helper that quotes identifiers.

Every module that needs a connection goes through :func:`connect`, so a bad URL or an
unreachable server always produces the same clear, password-free message.
"""

from __future__ import annotations

import socket
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from pgai.errors import DatabaseError

DEFAULT_DB_URL = "postgres://postgres@localhost:5432/postgres"


def redact_url(url: str) -> str:
    """The URL with its password replaced, fit for logs and error messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable database URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    userinfo = (parts.username or "") + ":***"
    return urlunsplit(
        (parts.scheme, f"{userinfo}@{netloc[-1]}", parts.path, parts.query, parts.fragment)
    )


def quote_ident(name: str) -> str:
    """Quote an SQL identifier (schema, table, column) the way PostgreSQL's quote_ident does,
    except that it always quotes, so case and reserved words never matter."""
    if "\x00" in name:
        raise ValueError("identifiers cannot contain NUL characters")
    return '"' + name.replace('"', '""') + '"'


def quote_qualified(schema: str, name: str) -> str:
    """``"schema"."name"``."""
    return f"{quote_ident(schema)}.{quote_ident(name)}"


async def connect(url: str, **kwargs: Any) -> asyncpg.Connection:
    """Open one connection, turning every way it can fail into a :class:`DatabaseError`
    that names the (redacted) URL and what to check."""
    where = redact_url(url)
    try:
        return await asyncpg.connect(url, **kwargs)
    except (asyncpg.InvalidAuthorizationSpecificationError, asyncpg.InvalidPasswordError) as exc:
        raise DatabaseError(
            f"could not log in to {where}: {exc}. Check the user and password in the URL."
        ) from exc
    except asyncpg.InvalidCatalogNameError as exc:
        raise DatabaseError(
            f"database does not exist at {where}: {exc}. Create it or fix the URL."
        ) from exc
    except (OSError, socket.gaierror, asyncpg.CannotConnectNowError) as exc:
        raise DatabaseError(
            f"could not connect to {where}: {exc}. Is the server running and the URL right?"
        ) from exc
    except ValueError as exc:
        raise DatabaseError(f"invalid database URL {where}: {exc}") from exc
    except asyncpg.PostgresError as exc:
        raise DatabaseError(f"could not connect to {where}: {exc}") from exc


#: A connection of our own or one borrowed from a pool: the statements accept either.
DbConnection = asyncpg.Connection | PoolConnectionProxy
