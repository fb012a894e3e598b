-- Formatting: the text that is embedded (and stored as `chunk`) for each chunk of a row.
-- python_template is a Python string.Template; $chunk is the chunk, $<column> any source column.

-------------------------------------------------------------------------------
-- ai.formatting_python_template
create or replace function ai.formatting_python_template(template text default '$chunk') returns jsonb
as $func$
    select pg_catalog.jsonb_object_agg(e.key, e.value)
    from pg_catalog.jsonb_each
    ( pg_catalog.jsonb_build_object
      ( 'implementation', 'python_template'
      , 'config_type', 'formatting'
      , 'template', template
      )
    ) e
    where pg_catalog.jsonb_typeof(e.value) != 'null'
$func$ language sql immutable security invoker
set search_path to pg_catalog, pg_temp
;

-------------------------------------------------------------------------------
-- ai._validate_formatting
create or replace function ai._validate_formatting
( config jsonb
, source_schema name
, source_table name
) returns void
as $func$
declare
    _implementation text;
    _template jsonb;
    _source regclass;
begin
    if config is null then
        raise exception 'formatting configuration is required: pass e.g. formatting => ai.formatting_python_template()'
        using errcode = 'invalid_parameter_value';
    end if;
    if pg_catalog.jsonb_typeof(config) != 'object' then
        raise exception 'formatting config must be a json object, got %: build it with ai.formatting_python_template()'
        , config
        using errcode = 'invalid_parameter_value';
    end if;
    if config->>'config_type' is distinct from 'formatting' then
        raise exception 'formatting config has config_type %, expected "formatting": pass a config built by ai.formatting_python_template()'
        , coalesce(config->'config_type', 'null')
        using errcode = 'invalid_parameter_value';
    end if;

    _implementation = config->>'implementation';
    if _implementation is distinct from 'python_template' then
        raise exception 'invalid formatting implementation %: only "python_template" is supported, use ai.formatting_python_template()'
        , coalesce(config->'implementation', 'null')
        using errcode = 'invalid_parameter_value';
    end if;

    _template = config->'template';
    if _template is null or pg_catalog.jsonb_typeof(_template) != 'string' then
        raise exception 'formatting template must be a string: pass e.g. ai.formatting_python_template(''$title: $chunk'') (got %)'
        , coalesce(_template::text, 'nothing')
        using errcode = 'invalid_parameter_value';
    end if;
    -- the placeholder for the chunk, written $chunk or ${chunk} (not e.g. $chunk_id)
    if (_template #>> '{}') !~ '\$(chunk\M|\{chunk\})' then
        raise exception 'formatting template % does not contain $chunk: add $chunk where the chunk text goes, e.g. ''$title: $chunk'''
        , _template
        using errcode = 'invalid_parameter_value';
    end if;

    _source = pg_catalog.to_regclass(pg_catalog.format('%I.%I', source_schema, source_table));
    if _source is null then
        raise exception 'source table %.% does not exist'
        , pg_catalog.quote_ident(source_schema), pg_catalog.quote_ident(source_table)
        using errcode = 'undefined_table';
    end if;
    -- $chunk always means the chunk, so a source column of that name could never be reached
    if exists
    ( select 1
      from pg_catalog.pg_attribute a
      where a.attrelid = _source
      and a.attnum > 0
      and not a.attisdropped
      and a.attname = 'chunk'
    ) then
        raise exception 'the source table %.% has a column named "chunk", which clashes with the $chunk placeholder of the formatting template: rename the column'
        , pg_catalog.quote_ident(source_schema), pg_catalog.quote_ident(source_table)
        using errcode = 'invalid_parameter_value';
    end if;
end
$func$ language plpgsql stable security invoker
set search_path to pg_catalog, pg_temp
;
