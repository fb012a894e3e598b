-- grant_vectorizer_usage: what a role needs to use vectorizers (create them, run a worker, read
-- status and errors). With admin => true, everything in the catalog, with grant option.

create or replace function ai.grant_vectorizer_usage
( to_user pg_catalog.name
, admin pg_catalog.bool default false
) returns void as
$func$
declare
    _grantee pg_catalog.text = case when to_user = 'public' then 'public' else pg_catalog.quote_ident(to_user) end;
begin
    if not admin then
        execute pg_catalog.format('grant usage, create on schema ai to %s', _grantee);
        execute pg_catalog.format('grant select, insert, update, delete on table ai.vectorizer to %s', _grantee);
        execute pg_catalog.format('grant select on ai.vectorizer_status to %s', _grantee);
        execute pg_catalog.format('grant select, insert, update, delete on table ai._vectorizer_errors to %s', _grantee);
        execute pg_catalog.format('grant select on ai.vectorizer_errors to %s', _grantee);
        execute pg_catalog.format('grant select, insert, update, delete on table ai.vectorizer_worker_process, ai.vectorizer_worker_progress to %s', _grantee);
        execute pg_catalog.format('grant select on table ai.pgai_lib_version, ai.pgai_lib_migration, ai.pgai_lib_feature_flag to %s', _grantee);
        execute pg_catalog.format('grant usage, select, update on sequence ai.vectorizer_id_seq to %s', _grantee);
        execute pg_catalog.format('grant execute on all functions in schema ai to %s', _grantee);
    else
        execute pg_catalog.format('grant all privileges on schema ai to %s with grant option', _grantee);
        execute pg_catalog.format('grant all privileges on all tables in schema ai to %s with grant option', _grantee);
        execute pg_catalog.format('grant all privileges on all sequences in schema ai to %s with grant option', _grantee);
        execute pg_catalog.format('grant all privileges on all functions in schema ai to %s with grant option', _grantee);
    end if;
end
$func$ language plpgsql volatile security invoker
set search_path to pg_catalog, pg_temp
;
