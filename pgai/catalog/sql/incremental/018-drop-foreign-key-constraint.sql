-- Target tables no longer reference their source table: a foreign key made every source delete
-- wait on the target and blocked truncating the source. Drop such constraints where they exist.
do $migration$
declare
    _rec record;
begin
    for _rec in
        select c.conname, n.nspname, t.relname
        from ai.vectorizer v
        join pg_catalog.pg_class s on s.oid = pg_catalog.to_regclass(pg_catalog.format('%I.%I', v.source_schema, v.source_table))
        join pg_catalog.pg_constraint c on c.confrelid = s.oid and c.contype = 'f'
        join pg_catalog.pg_class t on t.oid = c.conrelid
        join pg_catalog.pg_namespace n on n.oid = t.relnamespace
        where v.config operator(pg_catalog.->) 'destination' operator(pg_catalog.->>) 'target_table' = t.relname
           or (v.config operator(pg_catalog.->) 'destination') is null
    loop
        execute pg_catalog.format('alter table %I.%I drop constraint %I', _rec.nspname, _rec.relname, _rec.conname);
    end loop;
end
$migration$;
