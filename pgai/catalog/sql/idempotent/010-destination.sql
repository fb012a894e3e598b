-- Destination: where the embeddings go. table: a target table of chunks + embeddings and a
-- view joining it to the source; column: one embedding per row, in a column of the source table.
-- destination_table's `destination` key is a name stem consumed by create_vectorizer
-- (<destination>_store, <destination>) and not stored.

-------------------------------------------------------------------------------
-- ai.destination_table
create or replace function ai.destination_table
( destination name default null
, target_schema name default null
, target_table name default null
, view_schema name default null
, view_name name default null
) returns jsonb
as $func$
    select pg_catalog.jsonb_object_agg(e.key, e.value)
    from pg_catalog.jsonb_each
    ( pg_catalog.jsonb_build_object
      ( 'implementation', 'table'
      , 'config_type', 'destination'
      , 'destination', destination
      , 'target_schema', target_schema
      , 'target_table', target_table
      , 'view_schema', view_schema
      , 'view_name', view_name
      )
    ) e
    where pg_catalog.jsonb_typeof(e.value) != 'null'
$func$ language sql immutable security invoker
set search_path to pg_catalog, pg_temp
;

-------------------------------------------------------------------------------
-- ai.destination_column
create or replace function ai.destination_column(embedding_column name) returns jsonb
as $func$
    select pg_catalog.jsonb_object_agg(e.key, e.value)
    from pg_catalog.jsonb_each
    ( pg_catalog.jsonb_build_object
      ( 'implementation', 'column'
      , 'config_type', 'destination'
      , 'embedding_column', embedding_column
      )
    ) e
    where pg_catalog.jsonb_typeof(e.value) != 'null'
$func$ language sql immutable security invoker
set search_path to pg_catalog, pg_temp
;

-------------------------------------------------------------------------------
-- ai._validate_destination
create or replace function ai._validate_destination
( destination jsonb
, chunking jsonb
) returns void
as $func$
declare
    _implementation text;
    _key text;
    _value jsonb;
begin
    if destination is null then
        raise exception 'destination configuration is required: pass e.g. destination => ai.destination_table() or ai.destination_column(''embedding'')'
        using errcode = 'invalid_parameter_value';
    end if;
    if pg_catalog.jsonb_typeof(destination) != 'object' then
        raise exception 'destination config must be a json object, got %: build it with ai.destination_table() or ai.destination_column(''<column>'')'
        , destination
        using errcode = 'invalid_parameter_value';
    end if;
    if destination->>'config_type' is distinct from 'destination' then
        raise exception 'destination config has config_type %, expected "destination": pass a config built by ai.destination_table() or ai.destination_column()'
        , coalesce(destination->'config_type', 'null')
        using errcode = 'invalid_parameter_value';
    end if;

    _implementation = destination->>'implementation';
    if _implementation is null or _implementation not in ('table', 'column') then
        raise exception 'invalid destination implementation %: use ai.destination_table() or ai.destination_column(''<column>'')'
        , coalesce(destination->'implementation', 'null')
        using errcode = 'invalid_parameter_value';
    end if;

    if _implementation = 'table' then
        foreach _key in array array['destination', 'target_schema', 'target_table', 'view_schema', 'view_name'] loop
            _value = destination->_key;
            if _value is not null and (pg_catalog.jsonb_typeof(_value) != 'string' or (_value #>> '{}') = '') then
                raise exception 'destination % must be a name: pass % => ''<name>'' or leave it out (got %)'
                , _key, _key, _value
                using errcode = 'invalid_parameter_value';
            end if;
        end loop;
        return;
    end if;

    _value = destination->'embedding_column';
    if _value is null or pg_catalog.jsonb_typeof(_value) != 'string' or (_value #>> '{}') = '' then
        raise exception 'destination embedding_column is required: pass the column of the source table to hold the embedding, e.g. ai.destination_column(''embedding'') (got %)'
        , coalesce(_value::text, 'nothing')
        using errcode = 'invalid_parameter_value';
    end if;
    -- one embedding per row: the whole content must be a single chunk
    if chunking is null or chunking->>'implementation' is distinct from 'none' then
        raise exception 'destination_column stores one embedding per row, so it needs chunking => ai.chunking_none() (got chunking implementation %)'
        , coalesce(chunking->'implementation', 'null')
        using errcode = 'invalid_parameter_value';
    end if;
end
$func$ language plpgsql stable security invoker
set search_path to pg_catalog, pg_temp
;
