-- Embedding columns are stored uncompressed and inline (STORAGE MAIN): vectors do not compress,
-- and TOAST-ing them costs a detour on every read. Applies to target tables that exist already.
do $migration$
declare
    _rec record;
begin
    for _rec in
        select v.config operator(pg_catalog.->) 'destination' as destination
        from ai.vectorizer v
    loop
        if _rec.destination operator(pg_catalog.->>) 'implementation' = 'table'
           and pg_catalog.to_regclass(pg_catalog.format('%I.%I'
                , _rec.destination operator(pg_catalog.->>) 'target_schema'
                , _rec.destination operator(pg_catalog.->>) 'target_table')) is not null then
            execute pg_catalog.format('alter table %I.%I alter column embedding set storage main'
                , _rec.destination operator(pg_catalog.->>) 'target_schema'
                , _rec.destination operator(pg_catalog.->>) 'target_table');
        end if;
    end loop;
end
$migration$;
