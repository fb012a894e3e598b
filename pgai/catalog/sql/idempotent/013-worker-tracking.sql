-- Worker tracking: workers call these to announce themselves, beat their heart and report what
-- each vectorizer did. Security invoker: the worker's role needs rights on the two tables.

create or replace function ai._worker_start
( version pg_catalog.text
, expected_heartbeat_interval pg_catalog.interval
) returns pg_catalog.uuid as
$func$
declare
    _id pg_catalog.uuid;
begin
    insert into ai.vectorizer_worker_process (version, expected_heartbeat_interval)
    values (_worker_start.version, _worker_start.expected_heartbeat_interval)
    returning id into strict _id;
    return _id;
end
$func$ language plpgsql volatile security invoker
set search_path to pg_catalog, pg_temp
;

create or replace function ai._worker_heartbeat
( worker_id pg_catalog.uuid
, num_successes_since_last_heartbeat pg_catalog.int4
, num_errors_since_last_heartbeat pg_catalog.int4
, error_message pg_catalog.text
) returns void as
$func$
begin
    update ai.vectorizer_worker_process set
      last_heartbeat = pg_catalog.clock_timestamp()
    , heartbeat_count = heartbeat_count + 1
    , success_count = success_count + num_successes_since_last_heartbeat
    , error_count = error_count + num_errors_since_last_heartbeat
    , last_error_message = coalesce(error_message, last_error_message)
    , last_error_at = case when error_message is null then last_error_at else pg_catalog.clock_timestamp() end
    where id = worker_id;
end
$func$ language plpgsql volatile security invoker
set search_path to pg_catalog, pg_temp
;

create or replace function ai._worker_progress
( worker_id pg_catalog.uuid
, worker_vectorizer_id pg_catalog.int4
, num_successes pg_catalog.int4
, error_message pg_catalog.text
) returns void as
$func$
begin
    insert into ai.vectorizer_worker_progress (vectorizer_id)
    values (worker_vectorizer_id)
    on conflict (vectorizer_id) do nothing;

    if error_message is null then
        update ai.vectorizer_worker_progress set
          last_success_at = pg_catalog.clock_timestamp()
        , last_success_process_id = worker_id
        , success_count = success_count + num_successes
        where vectorizer_id = worker_vectorizer_id;
    else
        update ai.vectorizer_worker_progress set
          last_error_at = pg_catalog.clock_timestamp()
        , last_error_message = error_message
        , last_error_process_id = worker_id
        , error_count = error_count + 1
        , success_count = success_count + num_successes
        where vectorizer_id = worker_vectorizer_id;
    end if;
end
$func$ language plpgsql volatile security invoker
set search_path to pg_catalog, pg_temp
;
