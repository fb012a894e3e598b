"""Plain, comparable snapshots of the ``ai`` catalog and of the objects vectorizers create.

Every function takes an open asyncpg connection to one database and returns JSON-able data
(dicts, lists, strings, numbers) sorted so that two databases holding the same catalog give
equal snapshots. Nothing here depends on OIDs or attnums: columns are listed in table order,
constraints and indexes by their definitions, privileges by role name.

The compatibility test (tests/test_compat_pgai.py) takes these snapshots of a database where
Timescale's pgai 0.12.1 was installed and of one where ours was, then diffs them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import asyncpg

# Functions of the catalog that the real pgai worker looks up by name: only their existence
# is part of the contract (their signatures are internal).
WORKER_PROBED_FUNCTIONS = (
    "_vectorizer_create_queue_failed_table",
    "_worker_heartbeat",
    "_worker_progress",
    "_worker_start",
)

# Columns whose values depend on the clock or on random generators.
VOLATILE_COLUMNS = ("queued_at", "created_at", "embedding_uuid", "installed_at", "applied_at")

# Catalog tables and views of ``ai`` whose rows :func:`data` compares, each with the columns
# to leave out (clock values, random worker ids).
AI_DATA = {
    "_vectorizer_errors": ("recorded",),
    "vectorizer_errors": ("recorded",),
    "vectorizer_worker_process": ("id", "started", "last_heartbeat", "last_error_at"),
    "vectorizer_worker_progress": (
        "last_success_at",
        "last_success_process_id",
        "last_error_at",
        "last_error_process_id",
    ),
}


def is_semantic_catalog(name: str) -> bool:
    """Objects of pgai's semantic catalog feature (out of scope for us)."""
    return name.startswith(("sc_", "_sc_")) or "semantic_catalog" in name


def _qualified(schema: str, name: str) -> str:
    return f"{schema}.{name}"


def _loads(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


# --------------------------------------------------------------------------------------------
# Relations


def _column_text(
    name: str,
    type_: str,
    not_null: bool,
    default: str | None,
    identity: str,
    generated: str,
    storage: str,
) -> str:
    """One column on one line, e.g. ``id integer not null identity d storage p``."""
    text = f"{name} {type_}"
    if not_null:
        text += " not null"
    if default is not None:
        text += f" default {default}"
    if identity:
        text += f" identity {identity}"
    if generated:
        text += f" generated {generated}"
    return f"{text} storage {storage}"


async def relations(conn: asyncpg.Connection, schemas: Sequence[str]) -> dict[str, Any]:
    """Tables, views and sequences of ``schemas`` with their columns in table order.

    A column is one string: name, type, ``not null``, default, identity kind, generated kind
    and storage (``attstorage``: ``p`` plain, ``m`` main, ``x`` extended, ``e`` external). View
    definitions are kept for views outside ``ai`` (the join views vectorizers create); for the
    ``ai`` views only their columns are part of the contract.
    """
    rows = await conn.fetch(
        """
        select n.nspname as schema, c.relname as name, c.relkind::text as kind,
               case when c.relkind = 'v' and n.nspname <> 'ai'
                    then pg_get_viewdef(c.oid, true) end as viewdef,
               c.relpersistence::text as persistence,
               (select coalesce(jsonb_agg(jsonb_build_array(
                         a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                         pg_get_expr(d.adbin, d.adrelid), a.attidentity::text,
                         a.attgenerated::text, a.attstorage::text)
                       order by a.attnum), '[]'::jsonb)
                  from pg_attribute a
                  left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
                  where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped) as columns
        from pg_class c
        join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = any($1::text[]) and c.relkind in ('r', 'v', 'm', 'p', 'f', 'S')
        """,
        list(schemas),
    )
    result: dict[str, Any] = {}
    for row in rows:
        if is_semantic_catalog(row["name"]):
            continue
        entry: dict[str, Any] = {"kind": row["kind"], "persistence": row["persistence"]}
        if row["kind"] != "S":
            entry["columns"] = [_column_text(*column) for column in _loads(row["columns"])]
        if row["viewdef"] is not None:
            entry["definition"] = row["viewdef"]
        result[_qualified(row["schema"], row["name"])] = entry
    for row in await conn.fetch(
        """
        select n.nspname as schema, c.relname as name, format_type(s.seqtypid, null) as type,
               s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcache, s.seqcycle
        from pg_sequence s
        join pg_class c on c.oid = s.seqrelid
        join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = any($1::text[])
        """,
        list(schemas),
    ):
        key = _qualified(row["schema"], row["name"])
        if key in result:
            result[key]["sequence"] = [
                row["type"],
                row["seqstart"],
                row["seqincrement"],
                row["seqmin"],
                row["seqmax"],
                row["seqcache"],
                row["seqcycle"],
            ]
    return dict(sorted(result.items()))


async def constraints(conn: asyncpg.Connection, schemas: Sequence[str]) -> dict[str, Any]:
    """Constraints per table as ``[name, type, definition]``.

    NOT NULL constraints (catalogued from PostgreSQL 18 on, with generated names that depend on
    a table's history) are left out: nullability is compared with the columns.
    """
    rows = await conn.fetch(
        """
        select n.nspname as schema, c.relname as rel, k.conname, k.contype::text as contype,
               pg_get_constraintdef(k.oid, true) as definition
        from pg_constraint k
        join pg_class c on c.oid = k.conrelid
        join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = any($1::text[]) and k.contype <> 'n'
        """,
        list(schemas),
    )
    result: dict[str, list[list[str]]] = {}
    for row in rows:
        if is_semantic_catalog(row["rel"]):
            continue
        key = _qualified(row["schema"], row["rel"])
        result.setdefault(key, []).append([row["conname"], row["contype"], row["definition"]])
    return {key: sorted(value) for key, value in sorted(result.items())}


async def indexes(conn: asyncpg.Connection, schemas: Sequence[str]) -> dict[str, Any]:
    """Indexes per table by their full definition (names included: the catalog names them)."""
    rows = await conn.fetch(
        """
        select n.nspname as schema, t.relname as rel, pg_get_indexdef(i.indexrelid) as definition
        from pg_index i
        join pg_class t on t.oid = i.indrelid
        join pg_namespace n on n.oid = t.relnamespace
        where n.nspname = any($1::text[])
        """,
        list(schemas),
    )
    result: dict[str, list[str]] = {}
    for row in rows:
        if is_semantic_catalog(row["rel"]):
            continue
        key = _qualified(row["schema"], row["rel"])
        result.setdefault(key, []).append(row["definition"])
    return {key: sorted(value) for key, value in sorted(result.items())}


# --------------------------------------------------------------------------------------------
# Functions

_FUNCTION_QUERY = """
    select p.oid, n.nspname as schema, p.proname as name,
           pg_get_function_identity_arguments(p.oid) as identity,
           pg_get_function_arguments(p.oid) as arguments,
           pg_get_function_result(p.oid) as result,
           p.prokind::text as kind, p.provolatile::text as volatility,
           p.prosecdef as security_definer,
           p.proisstrict as strict, p.proparallel::text as parallel, p.proconfig as config
    from pg_proc p
    join pg_namespace n on n.oid = p.pronamespace
"""


def _function_entry(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "arguments": row["arguments"],
        "result": row["result"],
        "kind": row["kind"],
        "volatility": row["volatility"],
        "security_definer": row["security_definer"],
        "strict": row["strict"],
        "parallel": row["parallel"],
        "config": sorted(row["config"] or []),
    }


async def functions(conn: asyncpg.Connection) -> dict[str, Any]:
    """Signatures of the public ``ai`` functions, keyed ``name(identity arguments)``.

    Semantic-catalog functions are left out, and so are internal functions (name starting with
    ``_``), except that the existence of the ones the real worker probes is recorded.
    """
    rows = await conn.fetch(_FUNCTION_QUERY + " where n.nspname = 'ai'")
    public: dict[str, Any] = {}
    probed: set[str] = set()
    for row in rows:
        name = row["name"]
        if is_semantic_catalog(name):
            continue
        if name.startswith("_"):
            if name in WORKER_PROBED_FUNCTIONS:
                probed.add(name)
            continue
        public[f"{name}({row['identity']})"] = _function_entry(row)
    return {"public": dict(sorted(public.items())), "worker_probed": sorted(probed)}


async def internal_functions(conn: asyncpg.Connection) -> dict[str, Any]:
    """Internal ``ai._*`` functions keyed ``name(input types)``: arguments and result.

    Their signatures are not part of the contract, but both installers ``create or replace``
    them: a function of the same name and input types with other argument names, fewer
    defaults or another result type makes the other installer fail ("cannot change name of
    input parameter", "cannot remove parameter defaults", "cannot change return type").
    """
    rows = await conn.fetch(
        """
        select p.proname as name, pg_catalog.oidvectortypes(p.proargtypes) as types,
               pg_get_function_arguments(p.oid) as arguments,
               pg_get_function_result(p.oid) as result
        from pg_proc p
        where p.pronamespace = 'ai'::regnamespace and p.proname like '\\_%'
        """
    )
    return dict(
        sorted(
            (
                f"{row['name']}({row['types']})",
                {"arguments": row["arguments"], "result": row["result"]},
            )
            for row in rows
            if not row["name"].startswith("_vectorizer_src_trg_")
        )
    )


async def trigger_functions(conn: asyncpg.Connection, schemas: Sequence[str]) -> dict[str, Any]:
    """The functions the triggers on tables of ``schemas`` execute (one per vectorizer)."""
    rows = await conn.fetch(
        _FUNCTION_QUERY
        + """
        where p.oid in (select t.tgfoid from pg_trigger t
                        join pg_class c on c.oid = t.tgrelid
                        join pg_namespace cn on cn.oid = c.relnamespace
                        where not t.tgisinternal and cn.nspname = any($1::text[]))
        """,
        list(schemas),
    )
    return dict(
        sorted(
            (f"{row['schema']}.{row['name']}({row['identity']})", _function_entry(row))
            for row in rows
        )
    )


# --------------------------------------------------------------------------------------------
# Triggers and privileges


async def triggers(conn: asyncpg.Connection, schemas: Sequence[str]) -> dict[str, Any]:
    """User triggers per table as their normalised ``CREATE TRIGGER`` text and enabled state."""
    rows = await conn.fetch(
        """
        select n.nspname as schema, c.relname as rel, pg_get_triggerdef(t.oid, true) as definition,
               t.tgenabled::text as enabled
        from pg_trigger t
        join pg_class c on c.oid = t.tgrelid
        join pg_namespace n on n.oid = c.relnamespace
        where not t.tgisinternal and n.nspname = any($1::text[])
        """,
        list(schemas),
    )
    result: dict[str, list[list[str]]] = {}
    for row in rows:
        key = _qualified(row["schema"], row["rel"])
        result.setdefault(key, []).append([row["definition"], row["enabled"]])
    return {key: sorted(value) for key, value in sorted(result.items())}


_ACL = """
    (select coalesce(jsonb_agg(jsonb_build_array(
              case when a.grantee = 0 then 'PUBLIC' else pg_get_userbyid(a.grantee) end,
              a.privilege_type, a.is_grantable, pg_get_userbyid(a.grantor))), 'null'::jsonb)
       from aclexplode({acl}) a)
"""


def _acl(column: str) -> str:
    return _ACL.format(acl=column)


def _sorted_acl(value: Any) -> Any:
    """ACL items as sorted ``grantee=PRIVILEGE/grantor`` strings (``*``: with grant option)."""
    value = _loads(value)
    if value is None:
        return None
    return sorted(
        f"{grantee}={privilege}{'*' if grantable else ''}/{grantor}"
        for grantee, privilege, grantable, grantor in value
    )


async def grants(conn: asyncpg.Connection, schemas: Sequence[str]) -> dict[str, Any]:
    """Privileges on the schemas, their relations and columns, and the ``ai`` functions.

    ``None`` means the default privileges (no GRANT/REVOKE ever ran on the object).
    """
    result: dict[str, Any] = {"schemas": {}, "relations": {}, "columns": {}, "functions": {}}
    for row in await conn.fetch(
        f"select nspname as name, {_acl('nspacl')} as acl from pg_namespace "
        "where nspname = any($1::text[])",
        list(schemas),
    ):
        result["schemas"][row["name"]] = _sorted_acl(row["acl"])
    for row in await conn.fetch(
        f"""
        select n.nspname as schema, c.relname as name, {_acl("c.relacl")} as acl
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = any($1::text[]) and c.relkind in ('r', 'v', 'm', 'p', 'f', 'S')
        """,
        list(schemas),
    ):
        if not is_semantic_catalog(row["name"]):
            result["relations"][_qualified(row["schema"], row["name"])] = _sorted_acl(row["acl"])
    for row in await conn.fetch(
        f"""
        select n.nspname as schema, c.relname as rel, a.attname, {_acl("a.attacl")} as acl
        from pg_attribute a
        join pg_class c on c.oid = a.attrelid
        join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = any($1::text[]) and a.attacl is not null and a.attnum > 0
        """,
        list(schemas),
    ):
        key = f"{row['schema']}.{row['rel']}.{row['attname']}"
        result["columns"][key] = _sorted_acl(row["acl"])
    for row in await conn.fetch(
        f"""
        select n.nspname as schema, p.proname as name,
               pg_get_function_identity_arguments(p.oid) as identity, {_acl("p.proacl")} as acl
        from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        where n.nspname = any($1::text[])
          and (n.nspname = 'ai' or p.proname like '\\_vectorizer\\_src\\_trg\\_%')
        """,
        list(schemas),
    ):
        name = row["name"]
        if is_semantic_catalog(name) or (
            name.startswith("_") and not name.startswith("_vectorizer_src_trg_")
        ):
            continue
        key = f"{row['schema']}.{name}({row['identity']})"
        result["functions"][key] = _sorted_acl(row["acl"])
    for section in result.values():
        section_items = sorted(section.items())
        section.clear()
        section.update(section_items)
    return result


# --------------------------------------------------------------------------------------------
# Installation bookkeeping


async def installation(conn: asyncpg.Connection) -> dict[str, Any]:
    """Extensions, recorded migrations (names only) and ``ai.pgai_lib_version`` rows."""
    extensions = [
        list(row)
        for row in await conn.fetch(
            "select e.extname, n.nspname from pg_extension e "
            "join pg_namespace n on n.oid = e.extnamespace order by 1"
        )
    ]
    migrations = [
        row["name"] for row in await conn.fetch("select name from ai.pgai_lib_migration order by 1")
    ]
    versions = [
        list(row)
        for row in await conn.fetch("select name, version from ai.pgai_lib_version order by 1")
    ]
    flags = [
        row["name"]
        for row in await conn.fetch("select name from ai.pgai_lib_feature_flag order by 1")
    ]
    return {
        "extensions": extensions,
        "migrations": migrations,
        "lib_versions": versions,
        "feature_flags": flags,
    }


# --------------------------------------------------------------------------------------------
# Vectorizers and data


async def vectorizers(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    """Every ``ai.vectorizer`` row as a dict (``config`` parsed), ordered by name.

    Ids are kept (and so are the names derived from them, like ``_vectorizer_q_<id>``): the
    compatibility scenario creates vectorizers in the same order in both databases and runs
    the failing calls (which may consume ids) last, so equal catalogs have equal ids.
    """
    rows = await conn.fetch("select to_jsonb(v) as row from ai.vectorizer v order by v.name")
    return [_loads(row["row"]) for row in rows]


async def vectorizer_status(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    """Rows of ``ai.vectorizer_status`` and both pending counts of every vectorizer."""
    rows = await conn.fetch(
        """
        select to_jsonb(s) || jsonb_build_object(
                 'pending_exact', ai.vectorizer_queue_pending(s.id, exact_count => true),
                 'pending_approx', ai.vectorizer_queue_pending(s.id)) as row
        from ai.vectorizer_status s order by s.name
        """
    )
    return [_loads(row["row"]) for row in rows]


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def table_rows(
    conn: asyncpg.Connection, schema: str, table: str, ignore: Iterable[str] = VOLATILE_COLUMNS
) -> list[Any]:
    """All rows of one table or view as JSON objects without the volatile columns, sorted."""
    relation = f"{quote_ident(schema)}.{quote_ident(table)}"
    sql = (
        "select coalesce(jsonb_agg(j order by j::text), '[]'::jsonb) "
        f"from (select to_jsonb(t) - $1::text[] as j from {relation} t) s"
    )
    rows: list[Any] = _loads(await conn.fetchval(sql, list(ignore)))
    return rows


async def data(conn: asyncpg.Connection, schemas: Sequence[str]) -> dict[str, Any]:
    """Contents of every table and view in ``schemas`` (source, target, queue tables; views).

    The ``ai`` schema only contributes the queue tables of vectorizers and the tables of
    :data:`AI_DATA`; vectorizer rows are compared through :func:`vectorizers`.
    """
    rows = await conn.fetch(
        """
        select n.nspname as schema, c.relname as name
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = any($1::text[]) and c.relkind in ('r', 'v', 'p')
        order by 1, 2
        """,
        sorted({"ai", *schemas}),
    )
    queues = {
        (row["queue_schema"], name)
        for row in await conn.fetch(
            "select queue_schema, queue_table, queue_failed_table from ai.vectorizer"
        )
        for name in (row["queue_table"], row["queue_failed_table"])
    }
    result: dict[str, Any] = {}
    for row in rows:
        schema, name = row["schema"], row["name"]
        ignore: Iterable[str] = VOLATILE_COLUMNS
        if schema == "ai" and name in AI_DATA:
            ignore = AI_DATA[name]
        elif schema == "ai" and (schema, name) not in queues:
            continue
        result[_qualified(schema, name)] = await table_rows(conn, schema, name, ignore)
    return result


async def catalog(conn: asyncpg.Connection, schemas: Sequence[str]) -> dict[str, Any]:
    """The whole structural snapshot: everything except table contents."""
    all_schemas = sorted({"ai", *schemas})
    return {
        "installation": await installation(conn),
        "relations": await relations(conn, all_schemas),
        "constraints": await constraints(conn, all_schemas),
        "indexes": await indexes(conn, all_schemas),
        "functions": await functions(conn),
        "internal_functions": await internal_functions(conn),
        "trigger_functions": await trigger_functions(conn, all_schemas),
        "triggers": await triggers(conn, all_schemas),
        "grants": await grants(conn, all_schemas),
        "vectorizers": await vectorizers(conn),
        "vectorizer_id_seq": await conn.fetchval("select last_value from ai.vectorizer_id_seq"),
    }
