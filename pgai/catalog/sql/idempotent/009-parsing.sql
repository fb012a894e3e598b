-- Parsing: how loaded content becomes text. auto picks by content (bytes are parsed as a
-- document, text passes through); none passes text through; pymupdf and docling parse document
-- bytes (PDF, Office files, ...).

-------------------------------------------------------------------------------
-- ai.parsing_auto
create or replace function ai.parsing_auto() returns jsonb
as $func$
    select pg_catalog.jsonb_build_object
    ( 'implementation', 'auto'
    , 'config_type', 'parsing'
    )
$func$ language sql immutable security invoker
set search_path to pg_catalog, pg_temp
;

-------------------------------------------------------------------------------
-- ai.parsing_none
create or replace function ai.parsing_none() returns jsonb
as $func$
    select pg_catalog.jsonb_build_object
    ( 'implementation', 'none'
    , 'config_type', 'parsing'
    )
$func$ language sql immutable security invoker
set search_path to pg_catalog, pg_temp
;

-------------------------------------------------------------------------------
-- ai.parsing_pymupdf
create or replace function ai.parsing_pymupdf() returns jsonb
as $func$
    select pg_catalog.jsonb_build_object
    ( 'implementation', 'pymupdf'
    , 'config_type', 'parsing'
    )
$func$ language sql immutable security invoker
set search_path to pg_catalog, pg_temp
;

-------------------------------------------------------------------------------
-- ai.parsing_docling
create or replace function ai.parsing_docling() returns jsonb
as $func$
    select pg_catalog.jsonb_build_object
    ( 'implementation', 'docling'
    , 'config_type', 'parsing'
    )
$func$ language sql immutable security invoker
set search_path to pg_catalog, pg_temp
;

-------------------------------------------------------------------------------
-- ai._validate_parsing
-- Runs after ai._validate_loading, so the loading config is known to be sound; only the
-- combination of parser and loaded column is checked here.
create or replace function ai._validate_parsing
( parsing jsonb
, loading jsonb
, source_schema name
, source_table name
) returns void
as $func$
declare
    _implementation text;
    _column_name text;
    _is_bytea bool = false;
    _type_oid oid;
begin
    if parsing is null then
        raise exception 'parsing configuration is required: pass e.g. parsing => ai.parsing_auto()'
        using errcode = 'invalid_parameter_value';
    end if;
    if pg_catalog.jsonb_typeof(parsing) != 'object' then
        raise exception 'parsing config must be a json object, got %: build it with ai.parsing_auto(), ai.parsing_none(), ai.parsing_pymupdf() or ai.parsing_docling()'
        , parsing
        using errcode = 'invalid_parameter_value';
    end if;
    if parsing->>'config_type' is distinct from 'parsing' then
        raise exception 'parsing config has config_type %, expected "parsing": pass a config built by one of the ai.parsing_*() functions'
        , coalesce(parsing->'config_type', 'null')
        using errcode = 'invalid_parameter_value';
    end if;

    _implementation = parsing->>'implementation';
    if _implementation is null or _implementation not in ('auto', 'none', 'pymupdf', 'docling') then
        raise exception 'invalid parsing implementation %: use ai.parsing_auto(), ai.parsing_none(), ai.parsing_pymupdf() or ai.parsing_docling()'
        , coalesce(parsing->'implementation', 'null')
        using errcode = 'invalid_parameter_value';
    end if;

    if _implementation = 'auto' then
        return;
    end if;

    -- is the loaded column bytea (or a domain over it)? An unknown column is reported by
    -- ai._validate_loading.
    _column_name = loading->>'column_name';
    select a.atttypid into _type_oid
    from pg_catalog.pg_attribute a
    where a.attrelid = pg_catalog.to_regclass(pg_catalog.format('%I.%I', source_schema, source_table))
    and a.attnum > 0
    and not a.attisdropped
    and a.attname = _column_name
    ;
    while _type_oid is not null and _type_oid != 0 loop
        _is_bytea = _type_oid = 'bytea'::regtype;
        select t.typbasetype into _type_oid from pg_catalog.pg_type t where t.oid = _type_oid;
    end loop;

    if _implementation = 'none' and _is_bytea then
        raise exception 'parsing_none cannot read the bytea column %: document bytes must be parsed, use parsing => ai.parsing_auto(), ai.parsing_pymupdf() or ai.parsing_docling()'
        , pg_catalog.quote_ident(_column_name)
        using errcode = 'invalid_parameter_value';
    end if;

    if _implementation in ('pymupdf', 'docling')
    and loading->>'implementation' = 'column'
    and not _is_bytea then
        raise exception 'parsing_% parses document bytes, but the loaded column % is not bytea: use parsing => ai.parsing_auto() or ai.parsing_none() for text, or ai.loading_uri() if the column holds document URIs'
        , _implementation, pg_catalog.quote_ident(_column_name)
        using errcode = 'invalid_parameter_value';
    end if;
end
$func$ language plpgsql stable security invoker
set search_path to pg_catalog, pg_temp
;
