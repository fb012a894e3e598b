-- grant_to: the roles create_vectorizer grants access to (the vectorizer's source, target, view
-- and queue, and the catalog): the roles passed in plus those listed in the GUC
-- ai.grant_to_default (comma separated, blanks around names ignored). Each role appears once;
-- the array is sorted by name, and empty when there are none.

-------------------------------------------------------------------------------
-- ai.grant_to(variadic grantees name[])
create or replace function ai.grant_to(variadic grantees name[]) returns name[]
as $func$
    select coalesce(pg_catalog.array_agg(g.grantee order by g.grantee), '{}'::name[])
    from
    ( select a.grantee
      from pg_catalog.unnest(grantees) a(grantee)
      union
      select pg_catalog.btrim(d.grantee)::name
      from pg_catalog.regexp_split_to_table
      ( coalesce(pg_catalog.current_setting('ai.grant_to_default', true), '')
      , ','
      ) d(grantee)
    ) g
    where g.grantee is not null and g.grantee != ''
$func$ language sql volatile security invoker
set search_path to pg_catalog, pg_temp
;

-------------------------------------------------------------------------------
-- ai.grant_to()
create or replace function ai.grant_to() returns name[]
as $func$
    select ai.grant_to(variadic '{}'::name[])
$func$ language sql volatile security invoker
set search_path to pg_catalog, pg_temp
;
