-- The user-facing vectorizer API: create, drop, status, pending counts, enable/disable.

-------------------------------------------------------------------------------
-- A default vectorizer name must pass the name check; pgai derives names that do not when the
-- table or schema has capitals or other characters. Lower-case and replace the rest.
create or replace function ai._vectorizer_default_name(parts pg_catalog.text[])
returns pg_catalog.name as
$func$
    select pg_catalog.regexp_replace
    ( pg_catalog.regexp_replace
      ( pg_catalog.lower(pg_catalog.array_to_string(parts, '_'))
      , '[^a-z0-9_]', '_', 'g'
      )
    , '^([^a-z])', 'v_\1'
    )::pg_catalog.name
$func$ language sql immutable security invoker
set search_path to pg_catalog, pg_temp
;

-------------------------------------------------------------------------------
create or replace function ai._vectorizer_resolve_id(vectorizer_name pg_catalog.text)
returns pg_catalog.int4 as
$func$
declare
    _id pg_catalog.int4;
begin
    select v.id into _id from ai.vectorizer v where v.name = vectorizer_name;
    if _id is null then
        raise exception 'no vectorizer named "%"', vectorizer_name
        using errcode = 'undefined_object'
        , hint = 'the names of existing vectorizers are in ai.vectorizer_status';
    end if;
    return _id;
end
$func$ language plpgsql stable security invoker
set search_path to pg_catalog, pg_temp
;

-------------------------------------------------------------------------------
create or replace function ai.create_vectorizer
( source pg_catalog.regclass
, name pg_catalog.text default null
, destination pg_catalog.jsonb default ai.destination_table()
, loading pg_catalog.jsonb default null
, parsing pg_catalog.jsonb default ai.parsing_auto()
, embedding pg_catalog.jsonb default null
, chunking pg_catalog.jsonb default ai.chunking_recursive_character_text_splitter()
, indexing pg_catalog.jsonb default ai.indexing_default()
, formatting pg_catalog.jsonb default ai.formatting_python_template()
, scheduling pg_catalog.jsonb default ai.scheduling_default()
, processing pg_catalog.jsonb default ai.processing_default()
, queue_schema pg_catalog.name default null
, queue_table pg_catalog.name default null
, grant_to pg_catalog.name[] default ai.grant_to()
, enqueue_existing pg_catalog.bool default true
, if_not_exists pg_catalog.bool default false
) returns pg_catalog.int4 as
$func$
declare
    _grant_to pg_catalog.name[];
    _missing pg_catalog.name[];
    _source_schema pg_catalog.name;
    _source_table pg_catalog.name;
    _relkind pg_catalog."char";
    _source_pk pg_catalog.jsonb;
    _dimensions pg_catalog.int4;
    _vectorizer_id pg_catalog.int4;
    _queue_schema pg_catalog.name;
    _queue_table pg_catalog.name;
    _queue_failed_table pg_catalog.name;
    _trigger_name pg_catalog.name;
    _is_table_destination pg_catalog.bool;
    _target_schema pg_catalog.name;
    _target_table pg_catalog.name;
    _view_schema pg_catalog.name;
    _view_name pg_catalog.name;
    _embedding_column pg_catalog.name;
    _destination pg_catalog.jsonb;
    _name pg_catalog.text;
    _existing_id pg_catalog.int4;
    _job_id pg_catalog.int8;
begin
    -- 1. grantees: roles that do not exist are dropped with a warning
    select pg_catalog.array_agg(g.role) filter (where g.role = 'public' or r.oid is not null)
         , pg_catalog.array_agg(g.role) filter (where g.role != 'public' and r.oid is null)
    into _grant_to, _missing
    from pg_catalog.unnest(grant_to) g(role)
    left join pg_catalog.pg_roles r on r.rolname = g.role;
    if _missing is not null then
        raise warning 'grant_to: role(s) % do not exist and are skipped', _missing;
    end if;

    -- 2. the sections without defaults
    if embedding is null then
        raise exception 'embedding configuration is required'
        using errcode = 'invalid_parameter_value'
        , hint = 'pass embedding => ai.embedding_openai(''text-embedding-3-small'', 1536) or another ai.embedding_* helper';
    end if;
    if loading is null then
        raise exception 'loading configuration is required'
        using errcode = 'invalid_parameter_value'
        , hint = 'pass loading => ai.loading_column(''<text column>'') naming the column to embed';
    end if;

    -- 3. the source: a table the caller owns
    select n.nspname, c.relname, c.relkind
    into strict _source_schema, _source_table, _relkind
    from pg_catalog.pg_class c
    join pg_catalog.pg_namespace n on n.oid = c.relnamespace
    where c.oid = source;
    if _relkind not in ('r', 'p') then
        raise exception 'source %.% is not a table', _source_schema, _source_table
        using errcode = 'wrong_object_type'
        , hint = 'vectorizers read from ordinary or partitioned tables; pass the underlying table as source';
    end if;
    if not pg_catalog.pg_has_role(current_user, (select c.relowner from pg_catalog.pg_class c where c.oid = source), 'MEMBER') then
        raise exception 'only the owner of the source table %.% may create a vectorizer on it', _source_schema, _source_table
        using errcode = 'insufficient_privilege'
        , hint = 'connect as the table owner (or a member of the owning role)';
    end if;

    -- 4. the embedding model and the size of its vectors
    perform ai._validate_embedding(embedding);
    _dimensions = (embedding->>'dimensions')::pg_catalog.int4;

    -- 5. rows are identified by primary key
    _source_pk = ai._vectorizer_source_pk(source);
    if _source_pk is null or pg_catalog.jsonb_array_length(_source_pk) = 0 then
        raise exception 'source table %.% has no primary key', _source_schema, _source_table
        using errcode = 'invalid_table_definition'
        , hint = pg_catalog.format('vectorizers identify rows by primary key: ALTER TABLE %I.%I ADD PRIMARY KEY (...)', _source_schema, _source_table);
    end if;

    -- 6. the id names the queue, the failed queue and the trigger
    _vectorizer_id = pg_catalog.nextval(pg_catalog.pg_get_serial_sequence('ai.vectorizer', 'id'))::pg_catalog.int4;
    _queue_schema = coalesce(queue_schema, 'ai');
    _queue_table = coalesce(queue_table, pg_catalog.format('_vectorizer_q_%s', _vectorizer_id));
    _queue_failed_table = pg_catalog.format('_vectorizer_q_failed_%s', _vectorizer_id);
    _trigger_name = pg_catalog.format('_vectorizer_src_trg_%s', _vectorizer_id);
    if pg_catalog.to_regclass(pg_catalog.format('%I.%I', _queue_schema, _queue_table)) is not null then
        raise exception 'queue table %.% already exists', _queue_schema, _queue_table
        using errcode = 'duplicate_object'
        , hint = 'specify an alternate queue_table explicitly';
    end if;

    -- 7.-10. every section, validated against the source
    perform ai._validate_loading(loading, _source_schema, _source_table);
    perform ai._validate_parsing(parsing, loading, _source_schema, _source_table);
    perform ai._validate_destination(destination, chunking);
    perform ai._validate_chunking(chunking);
    if indexing->>'implementation' = 'default' then
        indexing = ai._resolve_indexing_default();
    end if;
    perform ai._validate_indexing(indexing);
    perform ai._validate_formatting(formatting, _source_schema, _source_table);
    if scheduling->>'implementation' = 'default' then
        scheduling = ai._resolve_scheduling_default();
    end if;
    perform ai._validate_scheduling(scheduling);
    perform ai._validate_processing(processing);

    -- 11. vector indexes are built by the scheduled job only
    if scheduling->>'implementation' = 'none' and indexing->>'implementation' != 'none' then
        raise exception 'automatic indexing is not supported without scheduling'
        using errcode = 'invalid_parameter_value'
        , hint = 'pass indexing => ai.indexing_none() and create the vector index yourself, or use scheduling => ai.scheduling_timescaledb()';
    end if;

    -- 12. where the embeddings go
    _is_table_destination = destination->>'implementation' = 'table';
    if _is_table_destination then
        _target_schema = coalesce(destination->>'target_schema', _source_schema);
        _target_table = coalesce
        ( destination->>'target_table'
        , (destination->>'destination') || '_store'
        , _source_table || '_embedding_store'
        );
        -- pgai ignores a given view_schema (the view always lands in the source schema); honour it
        _view_schema = coalesce(destination->>'view_schema', _source_schema);
        _view_name = coalesce
        ( destination->>'view_name'
        , destination->>'destination'
        , _source_table || '_embedding'
        );
        _destination = pg_catalog.jsonb_build_object
        ( 'implementation', 'table'
        , 'config_type', 'destination'
        , 'target_schema', _target_schema
        , 'target_table', _target_table
        , 'view_schema', _view_schema
        , 'view_name', _view_name
        );
    else
        _embedding_column = destination->>'embedding_column';
        _destination = pg_catalog.jsonb_build_object
        ( 'implementation', 'column'
        , 'config_type', 'destination'
        , 'embedding_column', _embedding_column
        );
    end if;

    -- 13. the name: given, or derived from the destination
    _name = coalesce
    ( create_vectorizer.name
    , case when _is_table_destination
        then ai._vectorizer_default_name(array[_target_schema, _target_table])
        else ai._vectorizer_default_name(array[_source_schema, _source_table, _embedding_column])
      end
    );
    select v.id into _existing_id from ai.vectorizer v where v.name = _name;
    if _existing_id is not null then
        if if_not_exists then
            raise notice 'a vectorizer named % already exists, skipping', _name;
            return _existing_id;
        end if;
        raise exception 'a vectorizer named % already exists', _name
        using errcode = 'duplicate_object'
        , hint = 'pass another name => ..., or if_not_exists => true to keep the existing one';
    end if;
    if _name !~ '^[a-z][a-z_0-9]*$' then
        raise exception 'invalid vectorizer name "%"', _name
        using errcode = 'invalid_parameter_value'
        , hint = 'a name starts with a lowercase letter and has only lowercase letters, digits and underscores';
    end if;

    -- 14. a table destination creates its target table and view: neither may exist
    if _is_table_destination then
        if pg_catalog.to_regclass(pg_catalog.format('%I.%I', _target_schema, _target_table)) is not null then
            raise exception 'destination table %.% already exists', _target_schema, _target_table
            using errcode = 'duplicate_object'
            , hint = 'drop it, or choose another with destination => ai.destination_table(target_table => ...)';
        end if;
        if pg_catalog.to_regclass(pg_catalog.format('%I.%I', _view_schema, _view_name)) is not null then
            raise exception 'destination view %.% already exists', _view_schema, _view_name
            using errcode = 'duplicate_object'
            , hint = 'drop it, or choose another with destination => ai.destination_table(view_name => ...)';
        end if;
        if pg_catalog.to_regnamespace(pg_catalog.quote_ident(_target_schema)) is null then
            raise exception 'target_schema % does not exist', _target_schema
            using errcode = 'invalid_schema_name', hint = 'create the schema first';
        end if;
        if pg_catalog.to_regnamespace(pg_catalog.quote_ident(_view_schema)) is null then
            raise exception 'view_schema % does not exist', _view_schema
            using errcode = 'invalid_schema_name', hint = 'create the schema first';
        end if;
    end if;
    if pg_catalog.to_regnamespace(pg_catalog.quote_ident(_queue_schema)) is null then
        raise exception 'queue_schema % does not exist', _queue_schema
        using errcode = 'invalid_schema_name', hint = 'create the schema first';
    end if;

    -- the objects
    perform ai._vectorizer_grant_to(_grant_to, 'usage', 'schema', _source_schema);
    perform ai._vectorizer_grant_to(_grant_to, 'select', 'table', _source_schema, _source_table);
    if _is_table_destination then
        perform ai._vectorizer_create_target_table(_source_pk, _target_schema, _target_table, _dimensions, _grant_to);
        perform ai._vectorizer_create_view
        (_view_schema, _view_name, _source_schema, _source_table, _source_pk, _target_schema, _target_table, _grant_to);
    else
        perform ai._vectorizer_add_embedding_column(_source_schema, _source_table, _dimensions, _embedding_column);
    end if;
    perform ai._vectorizer_create_queue_table(_queue_schema, _queue_table, _source_pk, _grant_to);
    perform ai._vectorizer_create_queue_failed_table(_queue_schema, _queue_failed_table, _source_pk, _grant_to);

    if scheduling->>'implementation' = 'timescaledb' then
        _job_id = ai._vectorizer_schedule_job(_vectorizer_id, scheduling);
        if _job_id is not null then
            scheduling = scheduling || pg_catalog.jsonb_build_object('job_id', _job_id);
        end if;
    end if;

    insert into ai.vectorizer
    ( id, source_schema, source_table, source_pk, trigger_name, queue_schema, queue_table
    , queue_failed_table, config, name
    )
    values
    ( _vectorizer_id, _source_schema, _source_table, _source_pk, _trigger_name, _queue_schema, _queue_table
    , _queue_failed_table
    , pg_catalog.jsonb_build_object
      ( 'version', '@config_format_version@'
      , 'loading', loading
      , 'parsing', parsing
      , 'embedding', embedding
      , 'chunking', chunking
      , 'indexing', indexing
      , 'formatting', formatting
      , 'scheduling', scheduling
      , 'processing', processing
      , 'destination', _destination
      )
    , _name
    );

    -- after the catalog row: the trigger watches the columns its config reads
    perform ai._vectorizer_create_source_trigger
    ( _trigger_name, _queue_schema, _queue_table, _source_schema, _source_table
    , _target_schema, _target_table, _source_pk
    );

    perform ai._vectorizer_grant_to(_grant_to, 'usage', 'schema', 'ai');
    perform ai._vectorizer_grant_to(_grant_to, 'select', 'table', 'ai', 'vectorizer');
    -- the worker running as a grantee records its failures (pgai forgets this grant)
    perform ai._vectorizer_grant_to(_grant_to, 'insert', 'table', 'ai', '_vectorizer_errors');

    if enqueue_existing then
        execute pg_catalog.format
        ( 'insert into %I.%I (%s) select %s from %I.%I'
        , _queue_schema, _queue_table
        , ai._vectorizer_pk_list(_source_pk)
        , ai._vectorizer_pk_list(_source_pk)
        , _source_schema, _source_table
        );
        perform pg_catalog.pg_notify('ai_vectorizer_queued', _trigger_name);
    end if;
    return _vectorizer_id;
end
$func$ language plpgsql volatile security invoker
set search_path to pg_catalog, pg_temp
;

-------------------------------------------------------------------------------
-- TimescaleDB scheduling (Timescale Cloud): the job runs ai._vectorizer_job, which needs the
-- ai extension's ai.execute_vectorizer. Self-hosted workers ignore scheduling.
create or replace function ai._vectorizer_schedule_job
( vectorizer_id pg_catalog.int4
, scheduling pg_catalog.jsonb
) returns pg_catalog.int8 as
$func$
declare
    _job_id pg_catalog.int8;
    _sql pg_catalog.text;
begin
    if pg_catalog.to_regprocedure('public.add_job(regproc, interval, jsonb, timestamptz, boolean, regproc, boolean, text)') is null
       and not exists (select 1 from pg_catalog.pg_extension where extname = 'timescaledb') then
        raise exception 'scheduling_timescaledb needs the timescaledb extension'
        using errcode = 'feature_not_supported'
        , hint = 'self-hosted: pass scheduling => ai.scheduling_none() and run the vectorizer worker';
    end if;
    _sql = pg_catalog.format
    ( $sql$select public.add_job('ai._vectorizer_job'::pg_catalog.regproc, %L::pg_catalog.interval, config=>%L::pg_catalog.jsonb%s%s%s)$sql$
    , scheduling->>'schedule_interval'
    , pg_catalog.jsonb_build_object('vectorizer_id', vectorizer_id)
    , case when scheduling ? 'initial_start' then pg_catalog.format(', initial_start=>%L::pg_catalog.timestamptz', scheduling->>'initial_start') else '' end
    , case when scheduling ? 'fixed_schedule' then pg_catalog.format(', fixed_schedule=>%L::pg_catalog.bool', scheduling->>'fixed_schedule') else '' end
    , case when scheduling ? 'timezone' then pg_catalog.format(', timezone=>%L', scheduling->>'timezone') else '' end
    );
    execute _sql into _job_id;
    return _job_id;
end
$func$ language plpgsql volatile security invoker
set search_path to pg_catalog, pg_temp
;

-------------------------------------------------------------------------------
create or replace function ai.drop_vectorizer
( vectorizer_id pg_catalog.int4
, drop_all pg_catalog.bool default false
) returns void as
$func$
declare
    _vec ai.vectorizer%rowtype;
    _trigger pg_catalog.pg_trigger%rowtype;
    _destination pg_catalog.jsonb;
begin
    select v.* into _vec from ai.vectorizer v where v.id = vectorizer_id;
    if not found then
        raise exception 'vectorizer % not found', vectorizer_id
        using errcode = 'no_data_found'
        , hint = 'the ids of existing vectorizers are in ai.vectorizer_status';
    end if;
    _destination = _vec.config->'destination';

    -- a scheduled job, if any
    if _vec.config->'scheduling'->>'implementation' = 'timescaledb'
       and _vec.config->'scheduling' ? 'job_id'
       and pg_catalog.to_regproc('public.delete_job') is not null then
        execute 'select public.delete_job($1::int4)' using (_vec.config->'scheduling'->>'job_id')::pg_catalog.int4;
    end if;

    -- the source triggers and their function
    if pg_catalog.to_regclass(pg_catalog.format('%I.%I', _vec.source_schema, _vec.source_table)) is not null then
        for _trigger in
            select t.* from pg_catalog.pg_trigger t
            where t.tgrelid = pg_catalog.format('%I.%I', _vec.source_schema, _vec.source_table)::pg_catalog.regclass
              and t.tgname in (_vec.trigger_name, _vec.trigger_name || '_truncate')
        loop
            execute pg_catalog.format('drop trigger %I on %I.%I', _trigger.tgname, _vec.source_schema, _vec.source_table);
        end loop;
    end if;
    execute pg_catalog.format('drop function if exists %I.%I() cascade', _vec.queue_schema, _vec.trigger_name);

    -- the queues
    if _vec.queue_table is not null then
        execute pg_catalog.format('drop table if exists %I.%I', _vec.queue_schema, _vec.queue_table);
    end if;
    if _vec.queue_failed_table is not null then
        execute pg_catalog.format('drop table if exists %I.%I', _vec.queue_schema, _vec.queue_failed_table);
    end if;

    -- the view and target table only when asked; an embedding column is never dropped
    if drop_all and _destination->>'implementation' = 'table' then
        execute pg_catalog.format('drop view if exists %I.%I', _destination->>'view_schema', _destination->>'view_name');
        execute pg_catalog.format('drop table if exists %I.%I', _destination->>'target_schema', _destination->>'target_table');
    end if;

    delete from ai.vectorizer v where v.id = _vec.id;
end
$func$ language plpgsql volatile security invoker
set search_path to pg_catalog, pg_temp
;

create or replace function ai.drop_vectorizer
( name pg_catalog.text
, drop_all pg_catalog.bool default false
) returns void as
$func$
declare
    _id pg_catalog.int4;
begin
    -- as in pgai, dropping by an unknown name does nothing
    select v.id into _id from ai.vectorizer v where v.name = drop_vectorizer.name;
    if _id is not null then
        perform ai.drop_vectorizer(_id, drop_all);
    end if;
end
$func$ language plpgsql volatile security invoker
set search_path to pg_catalog, pg_temp
;

-------------------------------------------------------------------------------
-- How many queue rows wait. The approximate count stops at 10001 rows and then answers the
-- largest int8, so that monitoring a huge backlog stays cheap.
create or replace function ai.vectorizer_queue_pending
( vectorizer_id pg_catalog.int4
, exact_count pg_catalog.bool default false
) returns pg_catalog.int8 as
$func$
declare
    _queue_schema pg_catalog.name;
    _queue_table pg_catalog.name;
    _count pg_catalog.int8;
begin
    select v.queue_schema, v.queue_table into _queue_schema, _queue_table
    from ai.vectorizer v where v.id = vectorizer_id;
    if not found then
        raise exception 'vectorizer % not found', vectorizer_id
        using errcode = 'undefined_object'
        , hint = 'the ids of existing vectorizers are in ai.vectorizer_status';
    end if;
    if _queue_schema is null or _queue_table is null then
        raise exception 'vectorizer has no queue table';
    end if;
    if exact_count then
        execute pg_catalog.format('select pg_catalog.count(*) from %I.%I', _queue_schema, _queue_table)
        into strict _count;
    else
        execute pg_catalog.format
        ( 'select pg_catalog.count(*) from (select 1 from %I.%I limit 10001) q'
        , _queue_schema, _queue_table
        ) into strict _count;
        if _count = 10001 then
            _count = 9223372036854775807;
        end if;
    end if;
    return _count;
end
$func$ language plpgsql stable security invoker
set search_path to pg_catalog, pg_temp
;

create or replace function ai.vectorizer_queue_pending
( name pg_catalog.text
, exact_count pg_catalog.bool default false
) returns pg_catalog.int8 as
$func$
    select ai.vectorizer_queue_pending(ai._vectorizer_resolve_id(name), exact_count)
$func$ language sql stable security invoker
set search_path to pg_catalog, pg_temp
;

-------------------------------------------------------------------------------
create or replace view ai.vectorizer_status as
select
  v.id
, v.name
, pg_catalog.format('%I.%I', v.source_schema, v.source_table) as source_table
, case when v.config->'destination'->>'implementation' = 'table' then
    pg_catalog.format('%I.%I', v.config->'destination'->>'target_schema', v.config->'destination'->>'target_table')
  end as target_table
, case when v.config->'destination'->>'implementation' = 'table' then
    pg_catalog.format('%I.%I', v.config->'destination'->>'view_schema', v.config->'destination'->>'view_name')
  end as "view"
, case when v.config->'destination'->>'implementation' = 'column' then
    v.config->'destination'->>'embedding_column'
  else 'embedding'
  end as embedding_column
, case when v.queue_table is not null
       and pg_catalog.has_table_privilege
           (current_user, pg_catalog.format('%I.%I', v.queue_schema, v.queue_table), 'select')
  then ai.vectorizer_queue_pending(v.id)
  end as pending_items
, v.disabled
from ai.vectorizer v
;

-------------------------------------------------------------------------------
-- disabled vectorizers stay defined but no worker processes them
create or replace function ai._vectorizer_set_disabled
( vectorizer_id pg_catalog.int4
, disabled pg_catalog.bool
) returns void as
$func$
declare
    _scheduling pg_catalog.jsonb;
begin
    update ai.vectorizer v set disabled = _vectorizer_set_disabled.disabled
    where v.id = vectorizer_id
    returning v.config->'scheduling' into _scheduling;
    if not found then
        raise exception 'vectorizer % not found', vectorizer_id
        using errcode = 'undefined_object'
        , hint = 'the ids of existing vectorizers are in ai.vectorizer_status';
    end if;
    if _scheduling->>'implementation' = 'timescaledb' and _scheduling ? 'job_id'
       and pg_catalog.to_regproc('public.alter_job') is not null then
        execute 'select public.alter_job($1::int4, scheduled=>$2)'
        using (_scheduling->>'job_id')::pg_catalog.int4, not disabled;
    end if;
end
$func$ language plpgsql volatile security invoker
set search_path to pg_catalog, pg_temp
;

create or replace function ai.disable_vectorizer_schedule(vectorizer_id pg_catalog.int4)
returns void as
$func$
    select ai._vectorizer_set_disabled(vectorizer_id, true)
$func$ language sql volatile security invoker
set search_path to pg_catalog, pg_temp
;

create or replace function ai.disable_vectorizer_schedule(name pg_catalog.text)
returns void as
$func$
    select ai._vectorizer_set_disabled(ai._vectorizer_resolve_id(name), true)
$func$ language sql volatile security invoker
set search_path to pg_catalog, pg_temp
;

create or replace function ai.enable_vectorizer_schedule(vectorizer_id pg_catalog.int4)
returns void as
$func$
    select ai._vectorizer_set_disabled(vectorizer_id, false)
$func$ language sql volatile security invoker
set search_path to pg_catalog, pg_temp
;

create or replace function ai.enable_vectorizer_schedule(name pg_catalog.text)
returns void as
$func$
    select ai._vectorizer_set_disabled(ai._vectorizer_resolve_id(name), false)
$func$ language sql volatile security invoker
set search_path to pg_catalog, pg_temp
;

-------------------------------------------------------------------------------
create or replace function ai.set_scheduling
( vectorizer_id pg_catalog.int4
, scheduling pg_catalog.jsonb default ai.scheduling_default()
, indexing pg_catalog.jsonb default ai.indexing_default()
) returns pg_catalog.jsonb as
$func$
declare
    _config pg_catalog.jsonb;
    _job_id pg_catalog.int8;
begin
    select v.config into _config from ai.vectorizer v where v.id = vectorizer_id;
    if not found then
        raise exception 'vectorizer % not found', vectorizer_id
        using errcode = 'undefined_object'
        , hint = 'the ids of existing vectorizers are in ai.vectorizer_status';
    end if;
    if scheduling->>'implementation' = 'default' then
        scheduling = ai._resolve_scheduling_default();
    end if;
    perform ai._validate_scheduling(scheduling);
    if indexing->>'implementation' = 'default' then
        indexing = ai._resolve_indexing_default();
    end if;
    perform ai._validate_indexing(indexing);
    if scheduling->>'implementation' = 'none' and indexing->>'implementation' != 'none' then
        raise exception 'automatic indexing is not supported without scheduling'
        using errcode = 'invalid_parameter_value'
        , hint = 'pass indexing => ai.indexing_none(), or use scheduling => ai.scheduling_timescaledb()';
    end if;

    if _config->'scheduling' ? 'job_id' and pg_catalog.to_regproc('public.delete_job') is not null then
        execute 'select public.delete_job($1::int4)' using (_config->'scheduling'->>'job_id')::pg_catalog.int4;
    end if;
    if scheduling->>'implementation' = 'timescaledb' then
        _job_id = ai._vectorizer_schedule_job(vectorizer_id, scheduling);
        if _job_id is not null then
            scheduling = scheduling || pg_catalog.jsonb_build_object('job_id', _job_id);
        end if;
    end if;

    update ai.vectorizer v
    set config = v.config || pg_catalog.jsonb_build_object('scheduling', scheduling, 'indexing', indexing)
    where v.id = vectorizer_id
    returning v.config into _config;
    return _config;
end
$func$ language plpgsql volatile security invoker
set search_path to pg_catalog, pg_temp
;

-------------------------------------------------------------------------------
-- Running a vectorizer inside the database and embedding from SQL need the ai extension
-- (Timescale Cloud). Without it these say so instead of failing on a missing function.
create or replace function ai._vectorizer_require_ai_extension(what pg_catalog.text)
returns void as
$func$
begin
    if not exists (select 1 from pg_catalog.pg_extension where extname = 'ai') then
        raise exception '% needs the ai extension, which is not installed in this database', what
        using errcode = 'feature_not_supported'
        , hint = 'self-hosted: run the vectorizer worker (pgai vectorizer worker) instead';
    end if;
end
$func$ language plpgsql stable security invoker
set search_path to pg_catalog, pg_temp
;

create or replace function ai.execute_vectorizer(vectorizer_name pg_catalog.text)
returns void as
$func$
begin
    perform ai._vectorizer_require_ai_extension('ai.execute_vectorizer');
    execute 'select ai.execute_vectorizer($1::pg_catalog.int4)' using ai._vectorizer_resolve_id(vectorizer_name);
end
$func$ language plpgsql volatile security invoker
set search_path to pg_catalog, pg_temp
;

create or replace function ai.vectorizer_embed
( embedding_config pg_catalog.jsonb
, input_text pg_catalog.text
, input_type pg_catalog.text default null
) returns @extschema:vector@.vector as
$func$
declare
    _result @extschema:vector@.vector;
    _impl pg_catalog.text = embedding_config->>'implementation';
begin
    perform ai._vectorizer_require_ai_extension('ai.vectorizer_embed');
    case _impl
    when 'openai' then
        execute 'select ai.openai_embed($1, $2, api_key_name=>$3, dimensions=>$4, openai_user=>$5)'
        into _result
        using embedding_config->>'model', input_text, embedding_config->>'api_key_name'
            , (embedding_config->>'dimensions')::pg_catalog.int4, embedding_config->>'user';
    when 'ollama' then
        execute 'select ai.ollama_embed($1, $2, host=>$3, keep_alive=>$4, embedding_options=>$5)'
        into _result
        using embedding_config->>'model', input_text, embedding_config->>'base_url'
            , embedding_config->>'keep_alive', embedding_config->'options';
    when 'voyageai' then
        execute 'select ai.voyageai_embed($1, $2, input_type=>$3, api_key_name=>$4)'
        into _result
        using embedding_config->>'model', input_text, coalesce(input_type, 'query')
            , embedding_config->>'api_key_name';
    else
        raise exception 'vectorizer_embed does not support the % embedding implementation', _impl
        using errcode = 'feature_not_supported';
    end case;
    return _result;
end
$func$ language plpgsql immutable security invoker
set search_path to pg_catalog, pg_temp
;

create or replace function ai.vectorizer_embed
( vectorizer_id pg_catalog.int4
, input_text pg_catalog.text
, input_type pg_catalog.text default null
) returns @extschema:vector@.vector as
$func$
    select ai.vectorizer_embed(v.config->'embedding', input_text, input_type)
    from ai.vectorizer v
    where v.id = vectorizer_id
$func$ language sql stable security invoker
set search_path to pg_catalog, pg_temp
;

create or replace function ai.vectorizer_embed
( name pg_catalog.text
, input_text pg_catalog.text
, input_type pg_catalog.text default null
) returns @extschema:vector@.vector as
$func$
    select ai.vectorizer_embed(ai._vectorizer_resolve_id(name), input_text, input_type)
$func$ language sql stable security invoker
set search_path to pg_catalog, pg_temp
;
