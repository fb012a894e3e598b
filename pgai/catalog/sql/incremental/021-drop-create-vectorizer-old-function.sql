-- create_vectorizer gained the loading/parsing parameters; drop every older overload so that
-- calls by name cannot become ambiguous. The current one is created by the idempotent files.
do $migration$
declare
    _sig text;
begin
    for _sig in
        select p.oid::pg_catalog.regprocedure::text
        from pg_catalog.pg_proc p
        join pg_catalog.pg_namespace n on n.oid = p.pronamespace
        where n.nspname = 'ai' and p.proname = 'create_vectorizer'
          and not ('loading' = any(coalesce(p.proargnames, '{}'::text[])))
    loop
        execute pg_catalog.format('drop function %s', _sig);
    end loop;
end
$migration$;
