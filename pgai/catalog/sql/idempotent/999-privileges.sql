-- grant_vectorizer_usage: what a role needs to define vectorizers and read their status and
-- errors. With admin => true, all privileges on the catalog's own tables (as pgai grants them).

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
        execute pg_catalog.format('grant select on ai._vectorizer_errors, ai.vectorizer_errors, ai.vectorizer_status to %s', _grantee);
        execute pg_catalog.format('grant select, usage on sequence ai.vectorizer_id_seq to %s', _grantee);
    else
        execute pg_catalog.format('grant all privileges on schema ai to %s', _grantee);
        execute pg_catalog.format
        ( 'grant all privileges on table ai.pgai_lib_migration, ai.pgai_lib_version, ai.pgai_lib_feature_flag'
          ', ai.vectorizer, ai._vectorizer_errors, ai.vectorizer_errors, ai.vectorizer_status to %s'
        , _grantee);
        execute pg_catalog.format('grant all privileges on sequence ai.vectorizer_id_seq to %s', _grantee);
    end if;
end
$func$ language plpgsql volatile security invoker
set search_path to pg_catalog, pg_temp
;
