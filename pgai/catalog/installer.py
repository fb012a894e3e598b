"""Installs and upgrades the ``ai`` catalog.

The catalog is kept compatible with Timescale pgai 0.12.1 in both directions:

* the same tracking tables (``ai.pgai_lib_migration``, ``ai.pgai_lib_version``,
  ``ai.pgai_lib_feature_flag``) and the same migration names, so a database pgai prepared is
  upgraded by us without re-running what it already did, and pgai's installer, run after ours,
  finds its own migrations recorded and its version current (so it changes nothing);
* our own package version sits in a second ``pgai_lib_version`` row, which decides when our
  idempotent files run again (an upgrade in place).

Everything happens in one transaction behind an advisory lock, so two installers racing from
two processes serialise, and a failure leaves the database as it was.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources

import anyio
import asyncpg

from pgai.database import connect, quote_ident
from pgai.errors import CatalogError

log = logging.getLogger(__name__)

#: The pgai catalog format this package implements; stored as ``config.version`` of new
#: vectorizers and as ``pgai_lib_version('ai')``, where pgai's own tools look for it.
CONFIG_FORMAT_VERSION = "0.12.1"
#: The ``pgai_lib_version`` row that carries this package's own version.
PACKAGE_LIBRARY_NAME = "pgai_vectorizer_worker"
#: First key of the advisory lock that serialises installers (second key: the schema name hash).
_INSTALL_LOCK_KEY = 1_953_655_138
MIN_SERVER_VERSION = 15


class AlreadyInstalledError(CatalogError):
    """The catalog is already at this version (raised only with ``strict=True``)."""


@dataclass(frozen=True)
class Migration:
    """A named change that runs once per database; its name is recorded when it has run."""

    name: str
    body: str


@dataclass(frozen=True)
class CatalogSource:
    """What one version of the catalog consists of: run-once migrations, then files that
    (re)create functions and views on every install or upgrade."""

    version: str
    migrations: tuple[Migration, ...]
    idempotent: tuple[Migration, ...]

    @classmethod
    def from_package(cls) -> CatalogSource:
        from pgai import __version__

        root = resources.files("pgai.catalog") / "sql"

        def read(folder: str) -> tuple[Migration, ...]:
            files = sorted(
                (f for f in (root / folder).iterdir() if f.name.endswith(".sql")),
                key=lambda f: f.name,
            )
            return tuple(Migration(f.name, f.read_text(encoding="utf-8")) for f in files)

        return cls(
            version=__version__, migrations=read("incremental"), idempotent=read("idempotent")
        )


def _render(body: str, vector_schema: str) -> str:
    return body.replace("@extschema:vector@", quote_ident(vector_schema)).replace(
        "@config_format_version@", CONFIG_FORMAT_VERSION
    )


def install(db_url: str, vector_extension_schema: str | None = None, strict: bool = False) -> bool:
    """Install or upgrade the catalog in the database at ``db_url``.

    Returns True when something was installed or upgraded, False when it was already current.
    With ``strict=True`` an already current catalog raises :class:`AlreadyInstalledError`.
    """
    return anyio.run(lambda: ainstall(db_url, vector_extension_schema, strict))


async def ainstall(
    db_url: str,
    vector_extension_schema: str | None = None,
    strict: bool = False,
    *,
    source: CatalogSource | None = None,
) -> bool:
    """Async variant of :func:`install`; ``source`` replaces the packaged catalog (tests)."""
    source = source or CatalogSource.from_package()
    conn = await connect(db_url)
    try:
        await _check_server_version(conn)
        try:
            async with conn.transaction():
                await conn.execute(
                    "SELECT pg_catalog.pg_advisory_xact_lock($1, pg_catalog.hashtext('ai'))",
                    _INSTALL_LOCK_KEY,
                )
                # Before narrowing search_path: a new extension goes to the user's usual schema.
                vector_schema = await _ensure_vector_extension(conn, vector_extension_schema)
                await conn.execute("SET LOCAL search_path = pg_catalog, pg_temp")
                await _refuse_outdated_ai_extension(conn)
                changed = await _apply(conn, source, vector_schema)
        except AlreadyInstalledError:
            if strict:
                raise
            log.info("pgai catalog %s is already installed", source.version)
            return False
    finally:
        await conn.close()
    log.info("pgai %s installed", source.version)
    return changed


async def _check_server_version(conn: asyncpg.Connection) -> None:
    version_num = int(await conn.fetchval("SELECT current_setting('server_version_num')"))
    if version_num // 10000 < MIN_SERVER_VERSION:
        raise CatalogError(
            f"postgres {version_num // 10000} is unsupported, pgai requires postgres version "
            f"{MIN_SERVER_VERSION} or greater"
        )


async def _ensure_vector_extension(conn: asyncpg.Connection, wanted_schema: str | None) -> str:
    schema: str | None = await conn.fetchval(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
        "WHERE e.extname = 'vector'"
    )
    if schema is not None:
        return schema
    available = await conn.fetchval(
        "SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'"
    )
    if not available:
        server = await conn.fetchval("SELECT current_setting('server_version_num')::int / 10000")
        raise CatalogError(
            "the pgvector extension is not available on this PostgreSQL server, and pgai "
            f"needs it for its vector columns. Install pgvector for PostgreSQL {server} on the "
            f"server (e.g. the Debian/Ubuntu package postgresql-{server}-pgvector, or build it "
            "from https://github.com/pgvector/pgvector), then run `pgai install` again."
        )
    statement = "CREATE EXTENSION IF NOT EXISTS vector"
    if wanted_schema:
        statement += f" WITH SCHEMA {quote_ident(wanted_schema)}"
    try:
        await conn.execute(statement)
    except asyncpg.InsufficientPrivilegeError as exc:
        raise CatalogError(
            f"could not create the vector extension: {exc}. Ask a superuser (or the database "
            "owner, pgvector being a trusted extension) to run CREATE EXTENSION vector first."
        ) from exc
    except asyncpg.InvalidSchemaNameError as exc:
        raise CatalogError(
            f"could not create the vector extension in schema {wanted_schema!r}: {exc}. "
            "Create the schema first or leave vector_extension_schema unset."
        ) from exc
    schema = await conn.fetchval(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
        "WHERE e.extname = 'vector'"
    )
    if schema is None:  # pragma: no cover - CREATE EXTENSION succeeded
        raise CatalogError("vector extension not installed")
    return schema


async def _refuse_outdated_ai_extension(conn: asyncpg.Connection) -> None:
    version: str | None = await conn.fetchval(
        "SELECT extversion FROM pg_extension WHERE extname = 'ai'"
    )
    if version is not None and _version_tuple(version) < (0, 10, 0):
        raise CatalogError(
            f"The ai extension is outdated and must be upgraded (installed: {version}). "
            "Upgrade it to 0.10.0 or later (ALTER EXTENSION ai UPDATE) before running "
            "pgai install."
        )


def _version_tuple(version: str) -> tuple[int, ...]:
    numbers = re.findall(r"\d+", version.split("-")[0])
    return tuple(int(n) for n in numbers[:3])


async def _apply(conn: asyncpg.Connection, source: CatalogSource, vector_schema: str) -> bool:
    await conn.execute("CREATE SCHEMA IF NOT EXISTS ai")
    await _check_migration_owner(conn)
    await conn.execute(
        """
        CREATE TABLE IF NOT EXISTS ai.pgai_lib_migration
        ( name text not null primary key
        , applied_at_version text not null
        , applied_at timestamptz not null default pg_catalog.clock_timestamp()
        , body text not null
        )
        """
    )
    # pgai's own installer serialises on this lock; taking it too keeps us out of its way.
    await conn.execute("LOCK TABLE ai.pgai_lib_migration")
    await conn.execute(
        """
        CREATE TABLE IF NOT EXISTS ai.pgai_lib_feature_flag
        ( name text not null primary key
        , applied_at_version text not null
        , applied_at timestamptz not null default pg_catalog.clock_timestamp()
        );
        CREATE TABLE IF NOT EXISTS ai.pgai_lib_version
        ( name text not null primary key
        , version text not null
        , installed_at timestamptz not null default pg_catalog.clock_timestamp()
        );
        """
    )
    versions: dict[str, str] = {
        r["name"]: r["version"]
        for r in await conn.fetch("SELECT name, version FROM ai.pgai_lib_version")
    }
    applied = {r["name"] for r in await conn.fetch("SELECT name FROM ai.pgai_lib_migration")}
    pending = [m for m in source.migrations if m.name not in applied]
    if (
        not pending
        and versions.get(PACKAGE_LIBRARY_NAME) == source.version
        and _version_tuple(versions.get("ai", "0")) >= _version_tuple(CONFIG_FORMAT_VERSION)
    ):
        raise AlreadyInstalledError("the pgai library has already been installed/upgraded")

    await _record_versions(conn, source.version, versions.get("ai"))
    for migration in pending:
        await _run(conn, "incremental", migration, vector_schema)
        await conn.execute(
            "INSERT INTO ai.pgai_lib_migration (name, body, applied_at_version) "
            "VALUES ($1, $2, $3)",
            migration.name,
            migration.body,
            source.version,
        )
    for script in source.idempotent:
        await _run(conn, "idempotent", script, vector_schema)
    return True


async def _check_migration_owner(conn: asyncpg.Connection) -> None:
    """Only the owner of the catalog may migrate it (members of the owning role count)."""
    row = await conn.fetchrow(
        """
        SELECT pg_catalog.pg_get_userbyid(c.relowner) AS owner,
               pg_catalog.pg_has_role(current_user, c.relowner, 'MEMBER') AS is_member,
               c.relowner = 'pg_database_owner'::regrole AND d.datdba = (
                   SELECT oid FROM pg_roles WHERE rolname = current_user) AS owns_database
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        CROSS JOIN pg_database d
        WHERE n.nspname = 'ai' AND c.relname = 'pgai_lib_migration'
          AND d.datname = current_database()
        """
    )
    if row is not None and not (row["is_member"] or row["owns_database"]):
        raise CatalogError(
            "only the owner of the ai.pgai_lib_migration table can run database migrations "
            f"(owner: {row['owner']}); connect as that role to install or upgrade"
        )


async def _record_versions(conn: asyncpg.Connection, version: str, ai_version: str | None) -> None:
    await conn.execute(
        "INSERT INTO ai.pgai_lib_version (name, version) VALUES ($1, $2) "
        "ON CONFLICT (name) DO UPDATE SET version = excluded.version, "
        "installed_at = pg_catalog.clock_timestamp()",
        PACKAGE_LIBRARY_NAME,
        version,
    )
    # Never move pgai's own row backwards: a newer pgai may have installed after us.
    if ai_version is None or _version_tuple(ai_version) < _version_tuple(CONFIG_FORMAT_VERSION):
        await conn.execute(
            "INSERT INTO ai.pgai_lib_version (name, version) VALUES ('ai', $1) "
            "ON CONFLICT (name) DO UPDATE SET version = excluded.version, "
            "installed_at = pg_catalog.clock_timestamp()",
            CONFIG_FORMAT_VERSION,
        )


async def _run(
    conn: asyncpg.Connection, folder: str, script: Migration, vector_schema: str
) -> None:
    try:
        await conn.execute(_render(script.body, vector_schema))
    except asyncpg.PostgresError as exc:
        detail = f"{type(exc).__name__}: {exc}"
        raise CatalogError(
            f"installing the catalog failed in {folder}/{script.name}: {detail}"
        ) from exc
