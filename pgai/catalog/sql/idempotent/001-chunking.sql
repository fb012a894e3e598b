-- Chunking: how the loaded (and parsed) text of a row is cut into the pieces that get embedded.
-- The helpers build the "chunking" section of ai.vectorizer.config (keys whose value is SQL NULL
-- are left out); ai._validate_chunking checks whatever the caller passed to create_vectorizer.

-------------------------------------------------------------------------------
-- ai.chunking_character_text_splitter
create or replace function ai.chunking_character_text_splitter
( chunk_size int4 default 800
, chunk_overlap int4 default 400
, separator text default E'\n\n'
, is_separator_regex bool default false
) returns jsonb
as $func$
    select pg_catalog.jsonb_object_agg(e.key, e.value)
    from pg_catalog.jsonb_each
    ( pg_catalog.jsonb_build_object
      ( 'implementation', 'character_text_splitter'
      , 'config_type', 'chunking'
      , 'chunk_size', chunk_size
      , 'chunk_overlap', chunk_overlap
      , 'separator', separator
      , 'is_separator_regex', is_separator_regex
      )
    ) e
    where pg_catalog.jsonb_typeof(e.value) != 'null'
$func$ language sql immutable security invoker
set search_path to pg_catalog, pg_temp
;

-------------------------------------------------------------------------------
-- ai.chunking_recursive_character_text_splitter
create or replace function ai.chunking_recursive_character_text_splitter
( chunk_size int4 default 800
, chunk_overlap int4 default 400
, separators text[] default array[E'\n\n', E'\n', '.', '?', '!', ' ', '']
, is_separator_regex bool default false
) returns jsonb
as $func$
    select pg_catalog.jsonb_object_agg(e.key, e.value)
    from pg_catalog.jsonb_each
    ( pg_catalog.jsonb_build_object
      ( 'implementation', 'recursive_character_text_splitter'
      , 'config_type', 'chunking'
      , 'chunk_size', chunk_size
      , 'chunk_overlap', chunk_overlap
      , 'separators', separators
      , 'is_separator_regex', is_separator_regex
      )
    ) e
    where pg_catalog.jsonb_typeof(e.value) != 'null'
$func$ language sql immutable security invoker
set search_path to pg_catalog, pg_temp
;

-------------------------------------------------------------------------------
-- ai.chunking_none
create or replace function ai.chunking_none() returns jsonb
as $func$
    select pg_catalog.jsonb_build_object
    ( 'implementation', 'none'
    , 'config_type', 'chunking'
    )
$func$ language sql immutable security invoker
set search_path to pg_catalog, pg_temp
;

-------------------------------------------------------------------------------
-- ai._validate_chunking
create or replace function ai._validate_chunking(config jsonb) returns void
as $func$
declare
    _implementation text;
    _chunk_size jsonb;
    _chunk_overlap jsonb;
    _value jsonb;
begin
    if config is null then
        raise exception 'chunking configuration is required: pass e.g. chunking => ai.chunking_recursive_character_text_splitter()'
        using errcode = 'invalid_parameter_value';
    end if;
    if pg_catalog.jsonb_typeof(config) != 'object' then
        raise exception 'chunking config must be a json object, got %: build it with ai.chunking_recursive_character_text_splitter(), ai.chunking_character_text_splitter() or ai.chunking_none()'
        , config
        using errcode = 'invalid_parameter_value';
    end if;
    if config->>'config_type' is distinct from 'chunking' then
        raise exception 'chunking config has config_type %, expected "chunking": pass a config built by one of the ai.chunking_*() functions'
        , coalesce(config->'config_type', 'null')
        using errcode = 'invalid_parameter_value';
    end if;

    _implementation = config->>'implementation';
    if _implementation is null
    or _implementation not in ('character_text_splitter', 'recursive_character_text_splitter', 'none') then
        raise exception 'invalid chunking implementation %: use ai.chunking_recursive_character_text_splitter(), ai.chunking_character_text_splitter() or ai.chunking_none()'
        , coalesce(config->'implementation', 'null')
        using errcode = 'invalid_parameter_value';
    end if;

    if _implementation = 'none' then
        return;
    end if;

    -- both splitters need a size and an overlap; the worker has no defaults of its own
    _chunk_size = config->'chunk_size';
    if not coalesce
    ( case when pg_catalog.jsonb_typeof(_chunk_size) = 'number'
      then _chunk_size::numeric = pg_catalog.trunc(_chunk_size::numeric) and _chunk_size::numeric > 0
      end
    , false
    ) then
        raise exception 'chunk_size must be a positive integer: pass chunk_size => N, the maximum length of a chunk in characters (got %)'
        , coalesce(_chunk_size::text, 'nothing')
        using errcode = 'invalid_parameter_value';
    end if;

    _chunk_overlap = config->'chunk_overlap';
    if not coalesce
    ( case when pg_catalog.jsonb_typeof(_chunk_overlap) = 'number'
      then _chunk_overlap::numeric = pg_catalog.trunc(_chunk_overlap::numeric) and _chunk_overlap::numeric >= 0
      end
    , false
    ) then
        raise exception 'chunk_overlap must be an integer >= 0: pass chunk_overlap => N, the number of characters consecutive chunks share (got %)'
        , coalesce(_chunk_overlap::text, 'nothing')
        using errcode = 'invalid_parameter_value';
    end if;

    if _chunk_overlap::numeric >= _chunk_size::numeric then
        raise exception 'chunk_overlap (%) must be smaller than chunk_size (%): lower chunk_overlap or raise chunk_size'
        , _chunk_overlap, _chunk_size
        using errcode = 'invalid_parameter_value';
    end if;

    _value = config->'is_separator_regex';
    if _value is not null and pg_catalog.jsonb_typeof(_value) != 'boolean' then
        raise exception 'is_separator_regex must be true or false (got %)', _value
        using errcode = 'invalid_parameter_value';
    end if;

    if _implementation = 'character_text_splitter' then
        _value = config->'separator';
        if _value is not null and pg_catalog.jsonb_typeof(_value) != 'string' then
            raise exception 'separator must be a string: pass e.g. separator => E''\n\n'' (got %)'
            , _value
            using errcode = 'invalid_parameter_value';
        end if;
    else
        _value = config->'separators';
        if _value is not null
        and ( pg_catalog.jsonb_typeof(_value) != 'array'
              or exists
              ( select 1
                from pg_catalog.jsonb_array_elements(_value) s
                where pg_catalog.jsonb_typeof(s.value) != 'string'
              )
            ) then
            raise exception 'separators must be an array of strings: pass e.g. separators => array[E''\n\n'', E''\n'', '' ''] (got %)'
            , _value
            using errcode = 'invalid_parameter_value';
        end if;
    end if;
end
$func$ language plpgsql stable security invoker
set search_path to pg_catalog, pg_temp
;
