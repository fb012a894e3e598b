-- Give vectorizers created before failed queues existed their failed-queue table.
do $migration$
declare
    _rec record;
    _failed pg_catalog.name;
    _cols text;
begin
    for _rec in
        select v.id, v.queue_schema, v.source_pk
        from ai.vectorizer v
        where v.queue_schema is not null and v.queue_failed_table is null
    loop
        _failed = pg_catalog.format('_vectorizer_q_failed_%s', _rec.id);
        select pg_catalog.string_agg(pg_catalog.format('%I %s not null', x.attname, x.typname), ', ' order by x.attnum)
        into strict _cols
        from pg_catalog.jsonb_to_recordset(_rec.source_pk) x(attnum int4, attname pg_catalog.name, typname text);
        execute pg_catalog.format
        ( 'create table if not exists %I.%I (%s, created_at timestamptz not null default pg_catalog.now(), failure_step text not null default %L)'
        , _rec.queue_schema, _failed, _cols, '');
        update ai.vectorizer set queue_failed_table = _failed where id = _rec.id;
    end loop;
end
$migration$;
