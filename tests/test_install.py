"""The installer: `pgai install`, pgai.install() and pgai.ainstall()."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import replace

import asyncpg
import pytest

import pgai
from pgai.catalog import CONFIG_FORMAT_VERSION, AlreadyInstalledError, CatalogSource, Migration
from pgai.catalog.installer import PACKAGE_LIBRARY_NAME
from pgai.errors import CatalogError, DatabaseError
from tests.pgserver import PgTestServer
from tests.worker_support import run_pgai

# The names pgai 0.12.1 records; a real `pgai install` after ours must find them all.
PGAI_MIGRATIONS = [
    "001-vectorizer.sql",
    "003-vec-storage.sql",
    "005-vectorizer-queue-pending.sql",
    "006-drop-vectorizer.sql",
    "012-add-vectorizer-disabled-column.sql",
    "017-upgrade-source-pk.sql",
    "018-drop-foreign-key-constraint.sql",
    "019-drop-truncate-from-vectorizer-config-lib.sql",
    "020-add-worker-tracking-table.sql",
    "021-drop-create-vectorizer-old-function.sql",
    "022-migrate-existing-vectorizers-to-loading.sql",
    "023-migrate-vectorizer-queue-tables.sql",
    "024-add-vectorizer-queue-failed-table.sql",
    "025-migrate-vectorizer-to-have-queue-failed-table.sql",
    "026-change_trigger_definition.sql",
    "027-drop-loading-uri-old-signature.sql",
    "028-remove-destination-columns.sql",
    "029-add-vectorizer-name-column.sql",
    "030-add_vectorizer_errors_view.sql",
]


async def fetch_state(url: str) -> dict[str, object]:
    conn = await asyncpg.connect(url)
    try:
        return {
            "migrations": [
                tuple(r)
                for r in await conn.fetch(
                    "SELECT name, applied_at FROM ai.pgai_lib_migration ORDER BY name"
                )
            ],
            "versions": {
                r["name"]: (r["version"], r["installed_at"])
                for r in await conn.fetch("SELECT * FROM ai.pgai_lib_version")
            },
            "functions": sorted(
                r[0]
                for r in await conn.fetch(
                    "SELECT p.oid::regprocedure::text FROM pg_proc p "
                    "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'ai'"
                )
            ),
        }
    finally:
        await conn.close()


async def test_fresh_install_creates_vector_extension_schema_and_records_migrations(
    empty_db_url: str,
) -> None:
    assert await pgai.ainstall(empty_db_url) is True
    conn = await asyncpg.connect(empty_db_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM pg_extension WHERE extname = 'vector'")
        names = [r[0] for r in await conn.fetch("SELECT name FROM ai.pgai_lib_migration")]
        assert sorted(names) == PGAI_MIGRATIONS
        versions = dict(await conn.fetch("SELECT name, version FROM ai.pgai_lib_version"))
        assert versions == {"ai": CONFIG_FORMAT_VERSION, PACKAGE_LIBRARY_NAME: pgai.__version__}
        for table in ("vectorizer", "_vectorizer_errors", "vectorizer_worker_process"):
            assert await conn.fetchval("SELECT to_regclass($1)", f"ai.{table}") is not None
    finally:
        await conn.close()


async def test_second_install_changes_nothing(empty_db_url: str) -> None:
    await pgai.ainstall(empty_db_url)
    before = await fetch_state(empty_db_url)
    assert await pgai.ainstall(empty_db_url) is False
    assert await fetch_state(empty_db_url) == before


async def test_strict_install_of_same_version_raises(empty_db_url: str) -> None:
    await pgai.ainstall(empty_db_url)
    with pytest.raises(AlreadyInstalledError, match="already been installed/upgraded"):
        await pgai.ainstall(empty_db_url, strict=True)


def test_sync_install_returns_whether_it_changed_something(empty_db_url: str) -> None:
    assert pgai.install(empty_db_url) is True
    assert pgai.install(empty_db_url) is False


async def test_newer_version_upgrades_in_place(empty_db_url: str) -> None:
    await pgai.ainstall(empty_db_url)
    current = CatalogSource.from_package()
    newer = replace(
        current,
        version="99.0.0",
        migrations=(
            *current.migrations,
            Migration("900-test-upgrade.sql", "create table ai.upgrade_marker (x int);"),
        ),
        idempotent=(
            *current.idempotent,
            Migration(
                "998-test-upgrade.sql",
                "create or replace function ai.upgrade_probe() returns int "
                "language sql as 'select 99';",
            ),
        ),
    )
    assert await pgai.ainstall(empty_db_url, source=newer) is True
    conn = await asyncpg.connect(empty_db_url)
    try:
        assert await conn.fetchval("SELECT ai.upgrade_probe()") == 99
        assert await conn.fetchval("SELECT to_regclass('ai.upgrade_marker')") is not None
        assert (
            await conn.fetchval(
                "SELECT version FROM ai.pgai_lib_version WHERE name = $1", PACKAGE_LIBRARY_NAME
            )
            == "99.0.0"
        )
        assert (
            await conn.fetchval(
                "SELECT applied_at_version FROM ai.pgai_lib_migration WHERE name = $1",
                "900-test-upgrade.sql",
            )
            == "99.0.0"
        )
        # the migrations of the first install ran once and were not run again
        assert (
            await conn.fetchval("SELECT count(*) FROM ai.pgai_lib_migration")
            == len(PGAI_MIGRATIONS) + 1
        )
    finally:
        await conn.close()
    # and the same newer version a second time is a no-op
    assert await pgai.ainstall(empty_db_url, source=newer) is False


async def test_upgrade_keeps_existing_vectorizers_working(empty_db_url: str) -> None:
    await pgai.ainstall(empty_db_url)
    conn = await asyncpg.connect(empty_db_url)
    try:
        await conn.execute("CREATE TABLE doc (id int PRIMARY KEY, body text)")
        await conn.execute(
            "SELECT ai.create_vectorizer('doc'::regclass, "
            "loading => ai.loading_column('body'), "
            "embedding => ai.embedding_openai('text-embedding-3-small', 4))"
        )
    finally:
        await conn.close()
    newer = replace(CatalogSource.from_package(), version="99.0.0")
    assert await pgai.ainstall(empty_db_url, source=newer) is True
    conn = await asyncpg.connect(empty_db_url)
    try:
        await conn.execute("INSERT INTO doc VALUES (1, 'hello')")
        assert await conn.fetchval("SELECT ai.vectorizer_queue_pending(1, true)") == 1
    finally:
        await conn.close()


def test_two_installs_racing_from_two_processes_are_safe(empty_db_url: str) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "pgai", "install", "-d", empty_db_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    said = sorted(out for out, _ in outputs)
    assert said == [
        f"pgai {pgai.__version__} installed\n",
        f"pgai {pgai.__version__} is already installed\n",
    ]

    async def count() -> int:
        conn = await asyncpg.connect(empty_db_url)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM ai.pgai_lib_migration"))
        finally:
            await conn.close()

    import asyncio

    assert asyncio.run(count()) == len(PGAI_MIGRATIONS)


def test_cli_install_takes_the_url_from_the_environment(empty_db_url: str) -> None:
    result = run_pgai("install", env={"VECTORIZER_DB_URL": empty_db_url})
    assert result.returncode == 0, result.stderr
    assert f"pgai {pgai.__version__} installed" in result.stdout
    again = run_pgai("install", "--strict", "-d", empty_db_url)
    assert again.returncode == 1
    assert "already been installed/upgraded" in again.stderr


def test_cli_install_with_unreachable_server_is_a_clear_error_without_password() -> None:
    result = run_pgai("install", "-d", "postgres://someone:s3cret@127.0.0.1:1/nowhere")
    assert result.returncode == 1
    assert "could not connect to postgres://someone:***@127.0.0.1:1/nowhere" in result.stderr
    assert "s3cret" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


async def test_install_into_missing_database_names_it(pg_server: PgTestServer) -> None:
    with pytest.raises(DatabaseError, match="database does not exist"):
        await pgai.ainstall(pg_server.url("pgai_no_such_database"))


async def test_missing_pgvector_is_a_clear_error(empty_db_url: str) -> None:
    # PostgreSQL 18 looks for extensions along extension_control_path: point it at an empty
    # folder and the server no longer offers pgvector, as on a server without the package.
    conn = await asyncpg.connect(empty_db_url)
    empty = tempfile.mkdtemp(prefix="no-extensions-")
    os.chmod(empty, 0o755)
    try:
        if int(await conn.fetchval("SHOW server_version_num")) < 180000:
            pytest.skip("extension_control_path needs PostgreSQL 18")
        await conn.execute(
            f'ALTER DATABASE "{await conn.fetchval("SELECT current_database()")}" '
            f"SET extension_control_path = '{empty}'"
        )
    finally:
        await conn.close()
    with pytest.raises(CatalogError) as caught:
        await pgai.ainstall(empty_db_url)
    message = str(caught.value)
    assert "pgvector extension is not available" in message
    assert "postgresql-18-pgvector" in message
    os.rmdir(empty)


async def test_only_the_owner_of_the_catalog_may_upgrade_it(empty_db_url: str) -> None:
    await pgai.ainstall(empty_db_url)
    conn = await asyncpg.connect(empty_db_url)
    role = f"intruder_{os.getpid()}"
    try:
        await conn.execute(f"DROP ROLE IF EXISTS {role}")
        await conn.execute(f"CREATE ROLE {role} LOGIN")
        await conn.execute(
            f'GRANT CREATE ON DATABASE "{await conn.fetchval("SELECT current_database()")}" '
            f"TO {role}"
        )
        await conn.execute(f"GRANT USAGE ON SCHEMA ai TO {role}")
        newer = replace(CatalogSource.from_package(), version="99.0.0")
        intruder_url = empty_db_url.replace("postgresql://postgres@", f"postgresql://{role}@")
        with pytest.raises(CatalogError, match=r"only the owner of the ai\.pgai_lib_migration"):
            await pgai.ainstall(intruder_url, source=newer)
    finally:
        await conn.execute(f"DROP OWNED BY {role}")
        await conn.execute(f"DROP ROLE {role}")
        await conn.close()


async def test_failed_install_leaves_the_database_unchanged(empty_db_url: str) -> None:
    broken = replace(
        CatalogSource.from_package(),
        idempotent=(Migration("000-broken.sql", "select this is not sql;"),),
    )
    with pytest.raises(CatalogError, match=r"idempotent/000-broken.sql"):
        await pgai.ainstall(empty_db_url, source=broken)
    conn = await asyncpg.connect(empty_db_url)
    try:
        assert await conn.fetchval("SELECT to_regnamespace('ai')") is None
    finally:
        await conn.close()
