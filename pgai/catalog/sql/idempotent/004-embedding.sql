-- Embedding: which provider and model turn the formatted chunks into vectors, and how many
-- dimensions those vectors have (the size of the vector column create_vectorizer makes).

-------------------------------------------------------------------------------
-- ai.embedding_openai
create or replace function ai.embedding_openai
( model text
, dimensions int4
, chat_user text default null
, api_key_name text default 'OPENAI_API_KEY'
, base_url text default null
) returns jsonb
as $func$
    select pg_catalog.jsonb_object_agg(e.key, e.value)
    from pg_catalog.jsonb_each
    ( pg_catalog.jsonb_build_object
      ( 'implementation', 'openai'
      , 'config_type', 'embedding'
      , 'model', model
      , 'dimensions', dimensions
      , 'user', chat_user
      , 'api_key_name', api_key_name
      , 'base_url', base_url
      )
    ) e
    where pg_catalog.jsonb_typeof(e.value) != 'null'
$func$ language sql immutable security invoker
set search_path to pg_catalog, pg_temp
;

-------------------------------------------------------------------------------
-- ai.embedding_ollama
create or replace function ai.embedding_ollama
( model text
, dimensions int4
, base_url text default null
, options jsonb default null
, keep_alive text default null
) returns jsonb
as $func$
    select pg_catalog.jsonb_object_agg(e.key, e.value)
    from pg_catalog.jsonb_each
    ( pg_catalog.jsonb_build_object
      ( 'implementation', 'ollama'
      , 'config_type', 'embedding'
      , 'model', model
      , 'dimensions', dimensions
      , 'base_url', base_url
      , 'options', options
      , 'keep_alive', keep_alive
      )
    ) e
    where pg_catalog.jsonb_typeof(e.value) != 'null'
$func$ language sql immutable security invoker
set search_path to pg_catalog, pg_temp
;

-------------------------------------------------------------------------------
-- ai.embedding_voyageai
create or replace function ai.embedding_voyageai
( model text
, dimensions int4
, input_type text default 'document'
, api_key_name text default 'VOYAGE_API_KEY'
) returns jsonb
as $func$
begin
    if input_type is not null and input_type not in ('query', 'document') then
        raise exception 'invalid input_type % for voyageai: pass input_type => ''document'' (for stored content, the default), ''query'' or null'
        , pg_catalog.quote_literal(input_type)
        using errcode = 'invalid_parameter_value';
    end if;
    return
    ( select pg_catalog.jsonb_object_agg(e.key, e.value)
      from pg_catalog.jsonb_each
      ( pg_catalog.jsonb_build_object
        ( 'implementation', 'voyageai'
        , 'config_type', 'embedding'
        , 'model', model
        , 'dimensions', dimensions
        , 'input_type', input_type
        , 'api_key_name', api_key_name
        )
      ) e
      where pg_catalog.jsonb_typeof(e.value) != 'null'
    );
end
$func$ language plpgsql immutable security invoker
set search_path to pg_catalog, pg_temp
;

-------------------------------------------------------------------------------
-- ai.embedding_litellm
create or replace function ai.embedding_litellm
( model text
, dimensions int4
, api_key_name text default null
, extra_options jsonb default null
) returns jsonb
as $func$
    select pg_catalog.jsonb_object_agg(e.key, e.value)
    from pg_catalog.jsonb_each
    ( pg_catalog.jsonb_build_object
      ( 'implementation', 'litellm'
      , 'config_type', 'embedding'
      , 'model', model
      , 'dimensions', dimensions
      , 'api_key_name', api_key_name
      , 'extra_options', extra_options
      )
    ) e
    where pg_catalog.jsonb_typeof(e.value) != 'null'
$func$ language sql immutable security invoker
set search_path to pg_catalog, pg_temp
;

-------------------------------------------------------------------------------
-- ai.embedding_sentence_transformers
-- A local model run by the worker itself (no API, no key).
create or replace function ai.embedding_sentence_transformers
( model text default 'nomic-ai/nomic-embed-text-v1.5'
, dimensions int4 default 768
) returns jsonb
as $func$
    select pg_catalog.jsonb_object_agg(e.key, e.value)
    from pg_catalog.jsonb_each
    ( pg_catalog.jsonb_build_object
      ( 'implementation', 'sentence_transformers'
      , 'config_type', 'embedding'
      , 'model', model
      , 'dimensions', dimensions
      )
    ) e
    where pg_catalog.jsonb_typeof(e.value) != 'null'
$func$ language sql immutable security invoker
set search_path to pg_catalog, pg_temp
;

-------------------------------------------------------------------------------
-- ai._validate_embedding
create or replace function ai._validate_embedding(config jsonb) returns void
as $func$
declare
    _implementation text;
    _value jsonb;
begin
    if config is null then
        raise exception 'embedding configuration is required: pass e.g. embedding => ai.embedding_openai(''text-embedding-3-small'', 768)'
        using errcode = 'invalid_parameter_value';
    end if;
    if pg_catalog.jsonb_typeof(config) != 'object' then
        raise exception 'embedding config must be a json object, got %: build it with one of the ai.embedding_*() functions, e.g. ai.embedding_openai(''text-embedding-3-small'', 768)'
        , config
        using errcode = 'invalid_parameter_value';
    end if;
    if config->>'config_type' is distinct from 'embedding' then
        raise exception 'embedding config has config_type %, expected "embedding": pass a config built by one of the ai.embedding_*() functions'
        , coalesce(config->'config_type', 'null')
        using errcode = 'invalid_parameter_value';
    end if;

    _implementation = config->>'implementation';
    if _implementation is null
    or _implementation not in ('openai', 'ollama', 'voyageai', 'litellm', 'sentence_transformers') then
        raise exception 'invalid embedding implementation %: use ai.embedding_openai(), ai.embedding_ollama(), ai.embedding_voyageai(), ai.embedding_litellm() or ai.embedding_sentence_transformers()'
        , coalesce(config->'implementation', 'null')
        using errcode = 'invalid_parameter_value';
    end if;

    _value = config->'model';
    if _value is null or pg_catalog.jsonb_typeof(_value) != 'string' or (_value #>> '{}') = '' then
        raise exception 'embedding model is required: pass model => ''<name>'', the provider''s name of the embedding model (got %)'
        , coalesce(_value::text, 'nothing')
        using errcode = 'invalid_parameter_value';
    end if;

    _value = config->'dimensions';
    if not coalesce
    ( case when pg_catalog.jsonb_typeof(_value) = 'number'
      then _value::numeric = pg_catalog.trunc(_value::numeric)
       and _value::numeric between 1 and 2147483647
      end
    , false
    ) then
        raise exception 'embedding dimensions must be a positive integer: pass dimensions => N, the size of the model''s vectors (got %)'
        , coalesce(_value::text, 'nothing')
        using errcode = 'invalid_parameter_value';
    end if;

    _value = config->'api_key_name';
    if _value is not null and (pg_catalog.jsonb_typeof(_value) != 'string' or (_value #>> '{}') = '') then
        raise exception 'api_key_name must be the name of an environment variable or secret: pass e.g. api_key_name => ''OPENAI_API_KEY'' (got %)'
        , _value
        using errcode = 'invalid_parameter_value';
    end if;

    if _implementation = 'voyageai' then
        _value = config->'input_type';
        if _value is not null and (_value #>> '{}') is distinct from 'query' and (_value #>> '{}') is distinct from 'document' then
            raise exception 'invalid input_type % for voyageai: pass input_type => ''document'' (for stored content, the default), ''query'' or null'
            , _value
            using errcode = 'invalid_parameter_value';
        end if;
    end if;

    if _implementation = 'ollama' then
        _value = config->'options';
        if _value is not null and pg_catalog.jsonb_typeof(_value) != 'object' then
            raise exception 'ollama options must be a json object: pass e.g. options => ''{"num_ctx": 8192}'' (got %)'
            , _value
            using errcode = 'invalid_parameter_value';
        end if;
    end if;

    if _implementation = 'litellm' then
        _value = config->'extra_options';
        if _value is not null and pg_catalog.jsonb_typeof(_value) != 'object' then
            raise exception 'litellm extra_options must be a json object: pass e.g. extra_options => ''{"api_base": "http://localhost:4000"}'' (got %)'
            , _value
            using errcode = 'invalid_parameter_value';
        end if;
    end if;
end
$func$ language plpgsql stable security invoker
set search_path to pg_catalog, pg_temp
;
