-- Processing: how the worker paces a vectorizer (rows per batch, concurrent batches).

-------------------------------------------------------------------------------
-- ai.processing_default
create or replace function ai.processing_default
( batch_size int4 default null
, concurrency int4 default null
) returns jsonb
as $func$
    select pg_catalog.jsonb_object_agg(e.key, e.value)
    from pg_catalog.jsonb_each
    ( pg_catalog.jsonb_build_object
      ( 'implementation', 'default'
      , 'config_type', 'processing'
      , 'batch_size', batch_size
      , 'concurrency', concurrency
      )
    ) e
    where pg_catalog.jsonb_typeof(e.value) != 'null'
$func$ language sql immutable security invoker
set search_path to pg_catalog, pg_temp
;

-------------------------------------------------------------------------------
-- ai._validate_processing
create or replace function ai._validate_processing(config jsonb) returns void
as $func$
declare
    _value jsonb;
begin
    if config is null then
        raise exception 'processing configuration is required: pass e.g. processing => ai.processing_default()'
        using errcode = 'invalid_parameter_value';
    end if;
    if pg_catalog.jsonb_typeof(config) != 'object' then
        raise exception 'processing config must be a json object, got %: build it with ai.processing_default()'
        , config
        using errcode = 'invalid_parameter_value';
    end if;
    if config->>'config_type' is distinct from 'processing' then
        raise exception 'processing config has config_type %, expected "processing": pass a config built by ai.processing_default()'
        , coalesce(config->'config_type', 'null')
        using errcode = 'invalid_parameter_value';
    end if;
    if config->>'implementation' is distinct from 'default' then
        raise exception 'invalid processing implementation %: only "default" is supported, use ai.processing_default()'
        , coalesce(config->'implementation', 'null')
        using errcode = 'invalid_parameter_value';
    end if;

    _value = config->'batch_size';
    if _value is not null and not coalesce
    ( case when pg_catalog.jsonb_typeof(_value) = 'number'
      then _value::numeric = pg_catalog.trunc(_value::numeric) and _value::numeric between 1 and 2048
      end
    , false
    ) then
        raise exception 'batch_size must be an integer between 1 and 2048: pass batch_size => N, the number of rows the worker embeds per batch, or leave it out (got %)'
        , _value
        using errcode = 'invalid_parameter_value';
    end if;

    _value = config->'concurrency';
    if _value is not null and not coalesce
    ( case when pg_catalog.jsonb_typeof(_value) = 'number'
      then _value::numeric = pg_catalog.trunc(_value::numeric) and _value::numeric between 1 and 50
      end
    , false
    ) then
        raise exception 'concurrency must be an integer between 1 and 50: pass concurrency => N, the number of batches the worker runs at once, or leave it out (got %)'
        , _value
        using errcode = 'invalid_parameter_value';
    end if;
end
$func$ language plpgsql stable security invoker
set search_path to pg_catalog, pg_temp
;
