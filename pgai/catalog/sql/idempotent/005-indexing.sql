-- Indexing: the vector index built on the embeddings once there are enough of them (only by the
-- timescaledb job; see scheduling). "default" is never stored: create_vectorizer resolves it from
-- the GUC ai.indexing_default.

-------------------------------------------------------------------------------
-- ai.indexing_none
create or replace function ai.indexing_none() returns jsonb
as $func$
    select pg_catalog.jsonb_build_object
    ( 'implementation', 'none'
    , 'config_type', 'indexing'
    )
$func$ language sql immutable security invoker
set search_path to pg_catalog, pg_temp
;

-------------------------------------------------------------------------------
-- ai.indexing_default
create or replace function ai.indexing_default() returns jsonb
as $func$
    select pg_catalog.jsonb_build_object
    ( 'implementation', 'default'
    , 'config_type', 'indexing'
    )
$func$ language sql immutable security invoker
set search_path to pg_catalog, pg_temp
;

-------------------------------------------------------------------------------
-- ai.indexing_diskann
create or replace function ai.indexing_diskann
( min_rows int4 default 100000
, storage_layout text default null
, num_neighbors int4 default null
, search_list_size int4 default null
, max_alpha float8 default null
, num_dimensions int4 default null
, num_bits_per_dimension int4 default null
, create_when_queue_empty bool default true
) returns jsonb
as $func$
    select pg_catalog.jsonb_object_agg(e.key, e.value)
    from pg_catalog.jsonb_each
    ( pg_catalog.jsonb_build_object
      ( 'implementation', 'diskann'
      , 'config_type', 'indexing'
      , 'min_rows', min_rows
      , 'storage_layout', storage_layout
      , 'num_neighbors', num_neighbors
      , 'search_list_size', search_list_size
      , 'max_alpha', max_alpha
      , 'num_dimensions', num_dimensions
      , 'num_bits_per_dimension', num_bits_per_dimension
      , 'create_when_queue_empty', create_when_queue_empty
      )
    ) e
    where pg_catalog.jsonb_typeof(e.value) != 'null'
$func$ language sql immutable security invoker
set search_path to pg_catalog, pg_temp
;

-------------------------------------------------------------------------------
-- ai.indexing_hnsw
create or replace function ai.indexing_hnsw
( min_rows int4 default 100000
, opclass text default 'vector_cosine_ops'
, m int4 default null
, ef_construction int4 default null
, create_when_queue_empty bool default true
) returns jsonb
as $func$
    select pg_catalog.jsonb_object_agg(e.key, e.value)
    from pg_catalog.jsonb_each
    ( pg_catalog.jsonb_build_object
      ( 'implementation', 'hnsw'
      , 'config_type', 'indexing'
      , 'min_rows', min_rows
      , 'opclass', opclass
      , 'm', m
      , 'ef_construction', ef_construction
      , 'create_when_queue_empty', create_when_queue_empty
      )
    ) e
    where pg_catalog.jsonb_typeof(e.value) != 'null'
$func$ language sql immutable security invoker
set search_path to pg_catalog, pg_temp
;

-------------------------------------------------------------------------------
-- ai._resolve_indexing_default
-- What indexing => ai.indexing_default() means in this session.
create or replace function ai._resolve_indexing_default() returns jsonb
as $func$
    select case pg_catalog.current_setting('ai.indexing_default', true)
        when 'indexing_diskann' then ai.indexing_diskann()
        when 'indexing_hnsw' then ai.indexing_hnsw()
        else ai.indexing_none()
    end
$func$ language sql stable security invoker
set search_path to pg_catalog, pg_temp
;

-------------------------------------------------------------------------------
-- ai._validate_indexing
create or replace function ai._validate_indexing(config jsonb) returns void
as $func$
declare
    _implementation text;
    _key text;
    _minimum int4;
    _value jsonb;
begin
    if config is null then
        raise exception 'indexing configuration is required: pass e.g. indexing => ai.indexing_none()'
        using errcode = 'invalid_parameter_value';
    end if;
    if pg_catalog.jsonb_typeof(config) != 'object' then
        raise exception 'indexing config must be a json object, got %: build it with ai.indexing_none(), ai.indexing_diskann() or ai.indexing_hnsw()'
        , config
        using errcode = 'invalid_parameter_value';
    end if;
    if config->>'config_type' is distinct from 'indexing' then
        raise exception 'indexing config has config_type %, expected "indexing": pass a config built by ai.indexing_none(), ai.indexing_diskann() or ai.indexing_hnsw()'
        , coalesce(config->'config_type', 'null')
        using errcode = 'invalid_parameter_value';
    end if;

    _implementation = config->>'implementation';
    if _implementation is null or _implementation not in ('none', 'diskann', 'hnsw') then
        raise exception 'invalid indexing implementation %: use ai.indexing_none(), ai.indexing_diskann() or ai.indexing_hnsw()'
        , coalesce(config->'implementation', 'null')
        using errcode = 'invalid_parameter_value';
    end if;

    if _implementation = 'none' then
        return;
    end if;

    -- integer settings; 0 is meaningful for some (min_rows 0 = index right away, diskann
    -- num_dimensions 0 = all dimensions), never for the graph parameters
    foreach _key in array array
    [ 'min_rows', 'num_dimensions', 'num_bits_per_dimension'
    , 'num_neighbors', 'search_list_size', 'm', 'ef_construction'
    ] loop
        _value = config->_key;
        _minimum = case when _key in ('min_rows', 'num_dimensions', 'num_bits_per_dimension') then 0 else 1 end;
        if _value is not null and not coalesce
        ( case when pg_catalog.jsonb_typeof(_value) = 'number'
          then _value::numeric = pg_catalog.trunc(_value::numeric)
           and _value::numeric between _minimum and 2147483647
          end
        , false
        ) then
            raise exception '% of % indexing must be an integer >= %: pass % => N or leave it out (got %)'
            , _key, _implementation, _minimum, _key, _value
            using errcode = 'invalid_parameter_value';
        end if;
    end loop;

    _value = config->'create_when_queue_empty';
    if _value is not null and pg_catalog.jsonb_typeof(_value) != 'boolean' then
        raise exception 'create_when_queue_empty must be true or false (got %)', _value
        using errcode = 'invalid_parameter_value';
    end if;

    if _implementation = 'diskann' then
        _value = config->'storage_layout';
        if _value is not null and (_value #>> '{}') is distinct from 'memory_optimized' and (_value #>> '{}') is distinct from 'plain' then
            raise exception 'invalid diskann storage_layout %: pass storage_layout => ''memory_optimized'' or ''plain'', or leave it out'
            , _value
            using errcode = 'invalid_parameter_value';
        end if;
        _value = config->'max_alpha';
        if _value is not null and not coalesce
        ( case when pg_catalog.jsonb_typeof(_value) = 'number' then _value::numeric > 0 end
        , false
        ) then
            raise exception 'max_alpha of diskann indexing must be a positive number: pass e.g. max_alpha => 1.2 or leave it out (got %)'
            , _value
            using errcode = 'invalid_parameter_value';
        end if;
    else
        _value = config->'opclass';
        if _value is not null
        and (_value #>> '{}') is distinct from 'vector_cosine_ops'
        and (_value #>> '{}') is distinct from 'vector_ip_ops'
        and (_value #>> '{}') is distinct from 'vector_l1_ops' then
            raise exception 'invalid hnsw opclass %: pass opclass => ''vector_cosine_ops'', ''vector_ip_ops'' or ''vector_l1_ops'''
            , _value
            using errcode = 'invalid_parameter_value';
        end if;
    end if;
end
$func$ language plpgsql stable security invoker
set search_path to pg_catalog, pg_temp
;
