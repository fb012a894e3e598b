-- Loading: where the worker gets a row's content from: a column of the source row itself
-- (column), or a document whose URI that column holds (uri: file paths, http(s), s3://...).

-------------------------------------------------------------------------------
-- ai.loading_column
create or replace function ai.loading_column
( column_name name
, retries int4 default 6
) returns jsonb
as $func$
    select pg_catalog.jsonb_build_object
    ( 'implementation', 'column'
    , 'config_type', 'loading'
    , 'column_name', column_name
    , 'retries', retries
    )
$func$ language sql immutable security invoker
set search_path to pg_catalog, pg_temp
;

-------------------------------------------------------------------------------
-- ai.loading_uri
create or replace function ai.loading_uri
( column_name name
, retries int4 default 6
, aws_role_arn text default null
) returns jsonb
as $func$
    select pg_catalog.jsonb_object_agg(e.key, e.value)
    from pg_catalog.jsonb_each
    ( pg_catalog.jsonb_build_object
      ( 'implementation', 'uri'
      , 'config_type', 'loading'
      , 'column_name', column_name
      , 'retries', retries
      , 'aws_role_arn', aws_role_arn
      )
    ) e
    where pg_catalog.jsonb_typeof(e.value) != 'null'
$func$ language sql immutable security invoker
set search_path to pg_catalog, pg_temp
;

-------------------------------------------------------------------------------
-- ai._validate_loading
create or replace function ai._validate_loading
( config jsonb
, source_schema name
, source_table name
) returns void
as $func$
declare
    _implementation text;
    _column_name text;
    _value jsonb;
    _source regclass;
    _type_name name;
    _type_oid oid;
    _type_display text;
begin
    if config is null then
        raise exception 'loading configuration is required: pass e.g. loading => ai.loading_column(''<column>'')'
        using errcode = 'invalid_parameter_value';
    end if;
    if pg_catalog.jsonb_typeof(config) != 'object' then
        raise exception 'loading config must be a json object, got %: build it with ai.loading_column(''<column>'') or ai.loading_uri(''<column>'')'
        , config
        using errcode = 'invalid_parameter_value';
    end if;
    if config->>'config_type' is distinct from 'loading' then
        raise exception 'loading config has config_type %, expected "loading": pass a config built by ai.loading_column() or ai.loading_uri()'
        , coalesce(config->'config_type', 'null')
        using errcode = 'invalid_parameter_value';
    end if;

    _implementation = config->>'implementation';
    if _implementation is null or _implementation not in ('column', 'uri') then
        raise exception 'invalid loading implementation %: use ai.loading_column(''<column>'') or ai.loading_uri(''<column>'')'
        , coalesce(config->'implementation', 'null')
        using errcode = 'invalid_parameter_value';
    end if;

    _value = config->'column_name';
    if _value is null or pg_catalog.jsonb_typeof(_value) != 'string' or (_value #>> '{}') = '' then
        raise exception 'loading column_name is required: pass the source column to load, e.g. ai.loading_%(''body'') (got %)'
        , _implementation, coalesce(_value::text, 'nothing')
        using errcode = 'invalid_parameter_value';
    end if;
    _column_name = _value #>> '{}';

    _value = config->'retries';
    if _value is not null and not coalesce
    ( case when pg_catalog.jsonb_typeof(_value) = 'number'
      then _value::numeric = pg_catalog.trunc(_value::numeric) and _value::numeric between 0 and 2147483647
      end
    , false
    ) then
        raise exception 'loading retries must be an integer >= 0: pass retries => N, how often a failed load is retried before the row goes to the failed queue (got %)'
        , _value
        using errcode = 'invalid_parameter_value';
    end if;

    _value = config->'aws_role_arn';
    if _value is not null
    and ( _implementation != 'uri'
          or pg_catalog.jsonb_typeof(_value) != 'string'
          or (_value #>> '{}') not like 'arn:aws:iam::%:role/%'
        ) then
        if _implementation != 'uri' then
            raise exception 'aws_role_arn only applies to uri loading: use ai.loading_uri(''<column>'', aws_role_arn => ''...'')'
            using errcode = 'invalid_parameter_value';
        end if;
        raise exception 'invalid aws_role_arn %: pass the ARN of an IAM role, like ''arn:aws:iam::123456789012:role/my-role'''
        , _value
        using errcode = 'invalid_parameter_value';
    end if;

    -- the column must exist and hold text (or, for column loading, document bytes)
    _source = pg_catalog.to_regclass(pg_catalog.format('%I.%I', source_schema, source_table));
    if _source is null then
        raise exception 'source table %.% does not exist'
        , pg_catalog.quote_ident(source_schema), pg_catalog.quote_ident(source_table)
        using errcode = 'undefined_table';
    end if;
    select a.atttypid, pg_catalog.format_type(a.atttypid, a.atttypmod)
    into _type_oid, _type_display
    from pg_catalog.pg_attribute a
    where a.attrelid = _source
    and a.attnum > 0
    and not a.attisdropped
    and a.attname = _column_name
    ;
    if not found then
        raise exception 'loading column % does not exist in the source table %.%: pass the name of one of its columns'
        , pg_catalog.quote_ident(_column_name)
        , pg_catalog.quote_ident(source_schema), pg_catalog.quote_ident(source_table)
        using errcode = 'undefined_column';
    end if;
    -- a domain loads like its base type
    loop
        select t.typname, t.typbasetype into _type_name, _type_oid
        from pg_catalog.pg_type t
        where t.oid = _type_oid
        ;
        exit when _type_oid = 0;
    end loop;

    if _type_name not in ('text', 'varchar', 'char', 'bpchar', 'bytea') then
        raise exception 'loading column % has type %, but must be text, varchar, char or bytea: load another column, or add a text column holding the content'
        , pg_catalog.quote_ident(_column_name), _type_display
        using errcode = 'invalid_parameter_value';
    end if;
    if _implementation = 'uri' and _type_name = 'bytea' then
        raise exception 'loading_uri needs a text column holding the URI, but % is bytea: use ai.loading_column(%) to load document bytes stored in the table'
        , pg_catalog.quote_ident(_column_name), pg_catalog.quote_literal(_column_name)
        using errcode = 'invalid_parameter_value';
    end if;
end
$func$ language plpgsql stable security invoker
set search_path to pg_catalog, pg_temp
;
