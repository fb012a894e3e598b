-- Scheduling: when the vectorizer runs on Timescale Cloud (a timescaledb job). Self-hosted
-- workers ignore it. "default" is never stored: create_vectorizer resolves it from the GUC
-- ai.scheduling_default.

-------------------------------------------------------------------------------
-- ai.scheduling_none
create or replace function ai.scheduling_none() returns jsonb
as $func$
    select pg_catalog.jsonb_build_object
    ( 'implementation', 'none'
    , 'config_type', 'scheduling'
    )
$func$ language sql immutable security invoker
set search_path to pg_catalog, pg_temp
;

-------------------------------------------------------------------------------
-- ai.scheduling_default
create or replace function ai.scheduling_default() returns jsonb
as $func$
    select pg_catalog.jsonb_build_object
    ( 'implementation', 'default'
    , 'config_type', 'scheduling'
    )
$func$ language sql immutable security invoker
set search_path to pg_catalog, pg_temp
;

-------------------------------------------------------------------------------
-- ai.scheduling_timescaledb
create or replace function ai.scheduling_timescaledb
( schedule_interval interval default interval '5m'
, initial_start timestamptz default null
, fixed_schedule bool default null
, timezone text default null
) returns jsonb
as $func$
    select pg_catalog.jsonb_object_agg(e.key, e.value)
    from pg_catalog.jsonb_each
    ( pg_catalog.jsonb_build_object
      ( 'implementation', 'timescaledb'
      , 'config_type', 'scheduling'
      , 'schedule_interval', schedule_interval
      , 'initial_start', initial_start
      , 'fixed_schedule', fixed_schedule
      , 'timezone', timezone
      )
    ) e
    where pg_catalog.jsonb_typeof(e.value) != 'null'
$func$ language sql immutable security invoker
set search_path to pg_catalog, pg_temp
;

-------------------------------------------------------------------------------
-- ai._resolve_scheduling_default
-- What scheduling => ai.scheduling_default() means in this session.
create or replace function ai._resolve_scheduling_default() returns jsonb
as $func$
    select case pg_catalog.current_setting('ai.scheduling_default', true)
        when 'scheduling_timescaledb' then ai.scheduling_timescaledb()
        else ai.scheduling_none()
    end
$func$ language sql stable security invoker
set search_path to pg_catalog, pg_temp
;

-------------------------------------------------------------------------------
-- ai._validate_scheduling
create or replace function ai._validate_scheduling(config jsonb) returns void
as $func$
declare
    _implementation text;
    _value jsonb;
begin
    if config is null then
        raise exception 'scheduling configuration is required: pass e.g. scheduling => ai.scheduling_none()'
        using errcode = 'invalid_parameter_value';
    end if;
    if pg_catalog.jsonb_typeof(config) != 'object' then
        raise exception 'scheduling config must be a json object, got %: build it with ai.scheduling_none() or ai.scheduling_timescaledb()'
        , config
        using errcode = 'invalid_parameter_value';
    end if;
    if config->>'config_type' is distinct from 'scheduling' then
        raise exception 'scheduling config has config_type %, expected "scheduling": pass a config built by ai.scheduling_none() or ai.scheduling_timescaledb()'
        , coalesce(config->'config_type', 'null')
        using errcode = 'invalid_parameter_value';
    end if;

    _implementation = config->>'implementation';
    if _implementation is null or _implementation not in ('none', 'timescaledb') then
        raise exception 'invalid scheduling implementation %: use ai.scheduling_none() or ai.scheduling_timescaledb()'
        , coalesce(config->'implementation', 'null')
        using errcode = 'invalid_parameter_value';
    end if;

    if _implementation = 'timescaledb' then
        _value = config->'schedule_interval';
        if _value is not null then
            if pg_catalog.jsonb_typeof(_value) != 'string' then
                raise exception 'schedule_interval must be an interval written as a string: pass e.g. schedule_interval => interval ''10m'' (got %)'
                , _value
                using errcode = 'invalid_parameter_value';
            end if;
            begin
                perform (_value #>> '{}')::interval;
            exception when others then
                raise exception 'schedule_interval % is not a valid interval: pass e.g. schedule_interval => interval ''10m'''
                , _value
                using errcode = 'invalid_parameter_value';
            end;
        end if;

        _value = config->'initial_start';
        if _value is not null then
            if pg_catalog.jsonb_typeof(_value) != 'string' then
                raise exception 'initial_start must be a timestamptz written as a string: pass e.g. initial_start => ''2050-01-06 00:00+00''::timestamptz (got %)'
                , _value
                using errcode = 'invalid_parameter_value';
            end if;
            begin
                perform (_value #>> '{}')::timestamptz;
            exception when others then
                raise exception 'initial_start % is not a valid timestamptz: pass e.g. initial_start => ''2050-01-06 00:00+00''::timestamptz'
                , _value
                using errcode = 'invalid_parameter_value';
            end;
        end if;

        _value = config->'fixed_schedule';
        if _value is not null and pg_catalog.jsonb_typeof(_value) != 'boolean' then
            raise exception 'fixed_schedule must be true or false (got %)', _value
            using errcode = 'invalid_parameter_value';
        end if;

        _value = config->'timezone';
        if _value is not null and pg_catalog.jsonb_typeof(_value) != 'string' then
            raise exception 'timezone must be a string naming a time zone: pass e.g. timezone => ''Europe/Berlin'' (got %)'
            , _value
            using errcode = 'invalid_parameter_value';
        end if;
    end if;
end
$func$ language plpgsql stable security invoker
set search_path to pg_catalog, pg_temp
;
