-- Internals of create_vectorizer: the objects one vectorizer owns (queue, failed queue, target
-- table, view, source triggers). Every identifier goes through format('%I') or quote_ident;
-- source_pk (see 017-upgrade-source-pk.sql) is the single description of a source's key.

-------------------------------------------------------------------------------
-- the primary key of a source table, as stored in ai.vectorizer.source_pk
create or replace function ai._vectorizer_source_pk(source_table pg_catalog.regclass)
returns pg_catalog.jsonb as
$func$
    select pg_catalog.jsonb_agg(x.entry order by x.pknum)
    from
    ( select k.pknum
      , pg_catalog.jsonb_build_object
        ( 'attnum', a.attnum
        , 'pknum', k.pknum
        , 'attname', a.attname
        , 'typname', pg_catalog.format_type(a.atttypid, a.atttypmod)
        ) as entry
      from pg_catalog.pg_constraint c
      cross join lateral pg_catalog.unnest(c.conkey) with ordinality as k(attnum, pknum)
      join pg_catalog.pg_attribute a on a.attrelid = c.conrelid and a.attnum = k.attnum
      where c.contype = 'p' and c.conrelid = source_table
    ) x
$func$ language sql stable security invoker
set search_path to pg_catalog, pg_temp
;

-------------------------------------------------------------------------------
-- "a", "b" (optionally prefixed: t."a", t."b"), in table order (attnum) or key order (pknum)
create or replace function ai._vectorizer_pk_list
( source_pk pg_catalog.jsonb
, prefix pg_catalog.text default null
, key_order pg_catalog.bool default false
) returns pg_catalog.text as
$func$
    select pg_catalog.string_agg
    ( coalesce(prefix || '.', '') || pg_catalog.quote_ident(x.attname)
    , ', ' order by case when key_order then x.pknum else x.attnum end
    )
    from pg_catalog.jsonb_to_recordset(source_pk) x(attnum int4, pknum int4, attname pg_catalog.name)
$func$ language sql immutable security invoker
set search_path to pg_catalog, pg_temp
;

-------------------------------------------------------------------------------
-- "a" int4 not null, "b" text not null (table order): key columns of queues and targets
create or replace function ai._vectorizer_pk_column_defs(source_pk pg_catalog.jsonb)
returns pg_catalog.text as
$func$
    select pg_catalog.string_agg
    ( pg_catalog.format('%I %s not null', x.attname, x.typname)
    , ', ' order by x.attnum
    )
    from pg_catalog.jsonb_to_recordset(source_pk) x(attnum int4, attname pg_catalog.name, typname pg_catalog.text)
$func$ language sql immutable security invoker
set search_path to pg_catalog, pg_temp
;

-------------------------------------------------------------------------------
-- l."a" = r."a" and l."b" = r."b" (key order); r may be a record variable such as old/new
create or replace function ai._vectorizer_pk_match
( source_pk pg_catalog.jsonb
, l pg_catalog.text
, r pg_catalog.text
, op pg_catalog.text default '='
, conj pg_catalog.text default ' and '
) returns pg_catalog.text as
$func$
    select pg_catalog.string_agg
    ( pg_catalog.format('%s.%I %s %s.%I', l, x.attname, op, r, x.attname)
    , conj order by x.pknum
    )
    from pg_catalog.jsonb_to_recordset(source_pk) x(pknum int4, attname pg_catalog.name)
$func$ language sql immutable security invoker
set search_path to pg_catalog, pg_temp
;

-------------------------------------------------------------------------------
create or replace function ai._vectorizer_grant_to
( grant_to pg_catalog.name[]
, privileges pg_catalog.text
, object_kind pg_catalog.text
, object_schema pg_catalog.name
, object_name pg_catalog.name default null
) returns void as
$func$
declare
    _grantee pg_catalog.name;
begin
    if grant_to is null then
        return;
    end if;
    foreach _grantee in array grant_to loop
        if object_kind = 'schema' then
            execute pg_catalog.format('grant %s on schema %I to %s', privileges, object_schema
                , case when _grantee = 'public' then 'public' else pg_catalog.quote_ident(_grantee) end);
        else
            execute pg_catalog.format('grant %s on %I.%I to %s', privileges, object_schema, object_name
                , case when _grantee = 'public' then 'public' else pg_catalog.quote_ident(_grantee) end);
        end if;
    end loop;
end
$func$ language plpgsql volatile security invoker
set search_path to pg_catalog, pg_temp
;

-------------------------------------------------------------------------------
create or replace function ai._vectorizer_create_queue_table
( queue_schema pg_catalog.name
, queue_table pg_catalog.name
, source_pk pg_catalog.jsonb
, grant_to pg_catalog.name[]
) returns void as
$func$
begin
    execute pg_catalog.format
    ( $sql$
      create table %I.%I
      ( %s
      , queued_at pg_catalog.timestamptz not null default pg_catalog.now()
      , loading_retries pg_catalog.int4 not null default 0
      , loading_retry_after pg_catalog.timestamptz
      )
      $sql$
    , queue_schema, queue_table
    , ai._vectorizer_pk_column_defs(source_pk)
    );
    -- no unique constraint: the trigger appends, the worker de-duplicates when it claims
    execute pg_catalog.format
    ( 'create index on %I.%I (%s)'
    , queue_schema, queue_table, ai._vectorizer_pk_list(source_pk, null, true)
    );
    perform ai._vectorizer_grant_to(grant_to, 'usage', 'schema', queue_schema);
    perform ai._vectorizer_grant_to(grant_to, 'select, insert, update, delete', 'table', queue_schema, queue_table);
end
$func$ language plpgsql volatile security invoker
set search_path to pg_catalog, pg_temp
;

-------------------------------------------------------------------------------
-- The real worker probes for this function to know that queues have retry columns and a failed
-- queue exists; keep its name.
create or replace function ai._vectorizer_create_queue_failed_table
( queue_schema pg_catalog.name
, queue_failed_table pg_catalog.name
, source_pk pg_catalog.jsonb
, grant_to pg_catalog.name[]
) returns void as
$func$
begin
    execute pg_catalog.format
    ( $sql$
      create table %I.%I
      ( %s
      , created_at pg_catalog.timestamptz not null default pg_catalog.now()
      , failure_step pg_catalog.text not null default ''
      )
      $sql$
    , queue_schema, queue_failed_table
    , ai._vectorizer_pk_column_defs(source_pk)
    );
    execute pg_catalog.format
    ( 'create index on %I.%I (%s)'
    , queue_schema, queue_failed_table, ai._vectorizer_pk_list(source_pk, null, true)
    );
    perform ai._vectorizer_grant_to(grant_to, 'usage', 'schema', queue_schema);
    perform ai._vectorizer_grant_to(grant_to, 'select, insert, update, delete', 'table', queue_schema, queue_failed_table);
end
$func$ language plpgsql volatile security invoker
set search_path to pg_catalog, pg_temp
;

-------------------------------------------------------------------------------
create or replace function ai._vectorizer_create_target_table
( source_pk pg_catalog.jsonb
, target_schema pg_catalog.name
, target_table pg_catalog.name
, dimensions pg_catalog.int4
, grant_to pg_catalog.name[]
) returns void as
$func$
declare
    _vector_type pg_catalog.text;
begin
    select pg_catalog.format('%I.vector(%s)', n.nspname, dimensions)
    into strict _vector_type
    from pg_catalog.pg_extension e
    join pg_catalog.pg_namespace n on n.oid = e.extnamespace
    where e.extname = 'vector';

    execute pg_catalog.format
    ( $sql$
      create table %I.%I
      ( embedding_uuid pg_catalog.uuid not null primary key default pg_catalog.gen_random_uuid()
      , %s
      , chunk_seq pg_catalog.int4 not null
      , chunk pg_catalog.text not null
      , embedding %s not null
      , unique (%s, chunk_seq)
      )
      $sql$
    , target_schema, target_table
    , ai._vectorizer_pk_column_defs(source_pk)
    , _vector_type
    , ai._vectorizer_pk_list(source_pk, null, true)
    );
    -- vectors do not compress: keep them inline and uncompressed
    execute pg_catalog.format
    ( 'alter table %I.%I alter column embedding set storage main'
    , target_schema, target_table
    );
    perform ai._vectorizer_grant_to(grant_to, 'usage', 'schema', target_schema);
    perform ai._vectorizer_grant_to(grant_to, 'select, insert, update, delete', 'table', target_schema, target_table);
end
$func$ language plpgsql volatile security invoker
set search_path to pg_catalog, pg_temp
;

-------------------------------------------------------------------------------
-- The view joins every chunk with its source row: chunk columns first, then every source column
-- in table order (key columns taken from the target, so chunks of deleted rows keep their key).
create or replace function ai._vectorizer_create_view
( view_schema pg_catalog.name
, view_name pg_catalog.name
, source_schema pg_catalog.name
, source_table pg_catalog.name
, source_pk pg_catalog.jsonb
, target_schema pg_catalog.name
, target_table pg_catalog.name
, grant_to pg_catalog.name[]
) returns void as
$func$
declare
    _columns pg_catalog.text;
begin
    select pg_catalog.string_agg
    ( pg_catalog.format
      ( '%s.%I'
      , case when pk.attname is null then 's' else 't' end
      , a.attname
      )
    , ', ' order by a.attnum
    )
    into strict _columns
    from pg_catalog.pg_attribute a
    left join pg_catalog.jsonb_to_recordset(source_pk) pk(attname pg_catalog.name) on pk.attname = a.attname
    where a.attrelid = pg_catalog.format('%I.%I', source_schema, source_table)::pg_catalog.regclass
      and a.attnum > 0
      and not a.attisdropped;

    execute pg_catalog.format
    ( $sql$
      create view %I.%I as
      select t.embedding_uuid, t.chunk_seq, t.chunk, t.embedding, %s
      from %I.%I t
      left join %I.%I s on (%s)
      $sql$
    , view_schema, view_name
    , _columns
    , target_schema, target_table
    , source_schema, source_table
    , ai._vectorizer_pk_match(source_pk, 't', 's')
    );
    perform ai._vectorizer_grant_to(grant_to, 'usage', 'schema', view_schema);
    perform ai._vectorizer_grant_to(grant_to, 'select', 'view', view_schema, view_name);
end
$func$ language plpgsql volatile security invoker
set search_path to pg_catalog, pg_temp
;

-------------------------------------------------------------------------------
-- Column destination: the embedding lives in a vector column of the source table itself.
create or replace function ai._vectorizer_add_embedding_column
( source_schema pg_catalog.name
, source_table pg_catalog.name
, dimensions pg_catalog.int4
, embedding_column pg_catalog.name
) returns void as
$func$
declare
    _existing pg_catalog.text;
    _vector_schema pg_catalog.name;
begin
    select n.nspname into strict _vector_schema
    from pg_catalog.pg_extension e
    join pg_catalog.pg_namespace n on n.oid = e.extnamespace
    where e.extname = 'vector';

    select pg_catalog.format_type(a.atttypid, a.atttypmod) into _existing
    from pg_catalog.pg_attribute a
    where a.attrelid = pg_catalog.format('%I.%I', source_schema, source_table)::pg_catalog.regclass
      and a.attname = embedding_column
      and a.attnum > 0 and not a.attisdropped;

    if _existing is null then
        execute pg_catalog.format
        ( 'alter table %I.%I add column %I %I.vector(%s) default null'
        , source_schema, source_table, embedding_column, _vector_schema, dimensions
        );
        execute pg_catalog.format
        ( 'alter table %I.%I alter column %I set storage main'
        , source_schema, source_table, embedding_column
        );
    elsif _existing operator(pg_catalog.~) pg_catalog.format('(^|\.)vector\(%s\)$', dimensions) then
        raise notice 'column %.%.% already exists; the vectorizer will write its embeddings into it'
            , source_schema, source_table, embedding_column;
    else
        raise exception 'destination column %.%.% already exists with type %, not vector(%)'
            , source_schema, source_table, embedding_column, _existing, dimensions
        using errcode = 'duplicate_column'
        , hint = 'pass destination => ai.destination_column(''<another column>'') or drop the column';
    end if;
end
$func$ language plpgsql volatile security invoker
set search_path to pg_catalog, pg_temp
;

-------------------------------------------------------------------------------
-- The source columns a vectorizer reads: the key, the loaded column and every column the
-- formatting template names ($col or ${col}; $$ is a literal dollar). NULL when that cannot
-- be known.
create or replace function ai._vectorizer_watched_columns
( config pg_catalog.jsonb
, source_schema pg_catalog.name
, source_table pg_catalog.name
) returns pg_catalog.name[] as
$func$
    select case
        when config is null
          or config->'loading'->>'column_name' is null
          or coalesce(config->'formatting'->>'implementation', 'python_template')
             not in ('python_template', 'chunk_value')
        then null
        else
        ( select pg_catalog.array_agg(a.attname order by a.attnum)
          from pg_catalog.pg_attribute a
          where a.attrelid = pg_catalog.format('%I.%I', source_schema, source_table)::pg_catalog.regclass
            and a.attnum > 0 and not a.attisdropped
            and ( a.attname = config->'loading'->>'column_name'
               or exists
                  ( select 1 from pg_catalog.pg_constraint c
                    where c.conrelid = a.attrelid and c.contype = 'p' and a.attnum = any(c.conkey)
                  )
               or a.attname in
                  ( select coalesce(m[1], m[2])
                    from pg_catalog.regexp_matches
                    ( pg_catalog.replace(coalesce(config->'formatting'->>'template', ''), '$$', '')
                    , '\$(?:\{([_a-zA-Z][_a-zA-Z0-9]*)\}|([_a-zA-Z][_a-zA-Z0-9]*))'
                    , 'g'
                    ) m
                  )
                )
        )
        end
$func$ language sql stable security invoker
set search_path to pg_catalog, pg_temp
;

-------------------------------------------------------------------------------
-- The body of a vectorizer's trigger function. Every enqueue also notifies the channel
-- ai_vectorizer_queued with the trigger's name (_vectorizer_src_trg_<id>), which names the
-- vectorizer. Table destination: inserts and relevant updates
-- queue the key; a changed key or a delete removes the old chunks at once; truncate empties the
-- target and the queue. Column destination: inserts and relevant updates queue the key (the
-- embedding goes away with its row). An update is relevant when a column other than an embedding
-- column of a column-destination vectorizer on this table changed, so the worker's own writes of
-- embeddings never queue the row again.
create or replace function ai._vectorizer_build_trigger_definition
( queue_schema pg_catalog.name
, queue_table pg_catalog.name
, target_schema pg_catalog.name
, target_table pg_catalog.name
, source_schema pg_catalog.name
, source_table pg_catalog.name
, source_pk pg_catalog.jsonb
) returns pg_catalog.text as
$func$
declare
    _pk_cols pg_catalog.text = ai._vectorizer_pk_list(source_pk);
    _new_vals pg_catalog.text = ai._vectorizer_pk_list(source_pk, 'new');
    _enqueue pg_catalog.text;
    _relevant pg_catalog.text;
    _pk_changed pg_catalog.text;
    _delete_old pg_catalog.text;
    _config pg_catalog.jsonb;
    _watched pg_catalog.name[];
begin
    -- the notification wakes idle workers at once (LISTEN ai_vectorizer_queued); PostgreSQL
    -- folds identical notifications of one transaction into one, so bulk writes send one
    _enqueue = pg_catalog.format
    ( 'insert into %I.%I (%s) values (%s); perform pg_catalog.pg_notify(%L, tg_name);'
    , queue_schema, queue_table, _pk_cols, _new_vals, 'ai_vectorizer_queued'
    );
    -- An update is relevant when a column the vectorizer reads changed: the loaded column and
    -- the template's placeholders. Without a known config (a pgai catalog mid-upgrade), any
    -- change but the embedding column of a column-destination vectorizer counts, as in pgai.
    select v.config into _config
    from ai.vectorizer v
    where v.queue_schema = _vectorizer_build_trigger_definition.queue_schema
      and v.queue_table = _vectorizer_build_trigger_definition.queue_table;
    _watched = ai._vectorizer_watched_columns(_config, source_schema, source_table);
    if _watched is not null and pg_catalog.cardinality(_watched) > 0 then
        select pg_catalog.format
        ( '_relevant = %s;'
        , pg_catalog.string_agg
          ( pg_catalog.format('old.%I is distinct from new.%I', c, c)
          , ' or ' order by c
          )
        )
        into _relevant
        from pg_catalog.unnest(_watched) c;
    else
        _relevant = pg_catalog.format
        ( $sql$
            select coalesce(pg_catalog.array_agg(v.config->'destination'->>'embedding_column'), '{}'::text[])
            into _ignored
            from ai.vectorizer v
            where v.source_schema = %L and v.source_table = %L
              and v.config->'destination'->>'implementation' = 'column';
            _relevant = (pg_catalog.to_jsonb(old) operator(pg_catalog.-) _ignored)
                is distinct from (pg_catalog.to_jsonb(new) operator(pg_catalog.-) _ignored);
          $sql$
        , source_schema, source_table
        );
    end if;

    if target_table is null then
        return pg_catalog.format
        ( $body$
declare
    _ignored text[];
    _relevant bool;
begin
    if tg_level = 'STATEMENT' then
        return null;
    end if;
    if tg_op = 'INSERT' then
        %s
        return new;
    elsif tg_op = 'UPDATE' then
        %s
        if _relevant then
            %s
        end if;
        return new;
    end if;
    return old;
end;
          $body$
        , _enqueue, _relevant, _enqueue
        );
    end if;

    _pk_changed = ai._vectorizer_pk_match(source_pk, 'old', 'new', 'is distinct from', ' or ');
    _delete_old = pg_catalog.format
    ( 'delete from %I.%I t where %s;'
    , target_schema, target_table, ai._vectorizer_pk_match(source_pk, 't', 'old')
    );
    return pg_catalog.format
    ( $body$
declare
    _ignored text[];
    _relevant bool;
begin
    if tg_level = 'STATEMENT' then
        if tg_op = 'TRUNCATE' then
            truncate table %I.%I;
            truncate table %I.%I;
        end if;
        return null;
    end if;
    if tg_op = 'INSERT' then
        %s
        return new;
    elsif tg_op = 'UPDATE' then
        if %s then
            %s
            %s
        else
            %s
            if _relevant then
                %s
            end if;
        end if;
        return new;
    elsif tg_op = 'DELETE' then
        %s
        return old;
    end if;
    return null;
end;
      $body$
    , target_schema, target_table, queue_schema, queue_table
    , _enqueue
    , _pk_changed, _delete_old, _enqueue
    , _relevant, _enqueue
    , _delete_old
    );
end
$func$ language plpgsql immutable security invoker
set search_path to pg_catalog, pg_temp
;

-------------------------------------------------------------------------------
-- (Re)creates the trigger function; it runs as its owner (security definer) so that users who
-- may write the source table need no rights on the queue or target.
create or replace function ai._vectorizer_create_trigger_function
( trigger_name pg_catalog.name
, queue_schema pg_catalog.name
, queue_table pg_catalog.name
, target_schema pg_catalog.name
, target_table pg_catalog.name
, source_schema pg_catalog.name
, source_table pg_catalog.name
, source_pk pg_catalog.jsonb
) returns void as
$func$
begin
    execute pg_catalog.format
    ( $sql$
      create or replace function %I.%I() returns trigger as $trigger$%s$trigger$
      language plpgsql volatile parallel safe security definer
      set search_path to pg_catalog, pg_temp
      $sql$
    , queue_schema, trigger_name
    , ai._vectorizer_build_trigger_definition
      (queue_schema, queue_table, target_schema, target_table, source_schema, source_table, source_pk)
    );
    execute pg_catalog.format('revoke all on function %I.%I() from public', queue_schema, trigger_name);
end
$func$ language plpgsql volatile security invoker
set search_path to pg_catalog, pg_temp
;

-------------------------------------------------------------------------------
create or replace function ai._vectorizer_create_source_trigger
( trigger_name pg_catalog.name
, queue_schema pg_catalog.name
, queue_table pg_catalog.name
, source_schema pg_catalog.name
, source_table pg_catalog.name
, target_schema pg_catalog.name
, target_table pg_catalog.name
, source_pk pg_catalog.jsonb
) returns void as
$func$
begin
    perform ai._vectorizer_create_trigger_function
    (trigger_name, queue_schema, queue_table, target_schema, target_table, source_schema, source_table, source_pk);
    execute pg_catalog.format
    ( 'create trigger %I after insert or update or delete on %I.%I for each row execute function %I.%I()'
    , trigger_name, source_schema, source_table, queue_schema, trigger_name
    );
    execute pg_catalog.format
    ( 'create trigger %I after truncate on %I.%I for each statement execute function %I.%I()'
    , trigger_name || '_truncate', source_schema, source_table, queue_schema, trigger_name
    );
end
$func$ language plpgsql volatile security invoker
set search_path to pg_catalog, pg_temp
;

-------------------------------------------------------------------------------
-- Regenerate the trigger function of every vectorizer, so that an upgrade also upgrades the
-- triggers of vectorizers created by an older version (or by pgai).
do $regenerate$
declare
    _v record;
begin
    for _v in
        select v.id, v.trigger_name, v.queue_schema, v.queue_table, v.source_schema, v.source_table, v.source_pk
        , v.config->'destination' as destination
        from ai.vectorizer v
        where v.queue_table is not null
          and pg_catalog.to_regclass(pg_catalog.format('%I.%I', v.source_schema, v.source_table)) is not null
          and pg_catalog.to_regprocedure(pg_catalog.format('%I.%I()', v.queue_schema, v.trigger_name)) is not null
    loop
        begin
            perform ai._vectorizer_create_trigger_function
            ( _v.trigger_name, _v.queue_schema, _v.queue_table
            , case when _v.destination->>'implementation' = 'column' then null else _v.destination->>'target_schema' end
            , case when _v.destination->>'implementation' = 'column' then null else _v.destination->>'target_table' end
            , _v.source_schema, _v.source_table, _v.source_pk
            );
        exception when insufficient_privilege then
            raise warning 'could not upgrade the trigger of vectorizer %: %; reinstall as the owner of %.%()'
                , _v.id, sqlerrm, _v.queue_schema, _v.trigger_name;
        end;
    end loop;
end
$regenerate$;
