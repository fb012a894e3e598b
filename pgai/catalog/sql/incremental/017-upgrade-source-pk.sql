-- source_pk carries, for every primary-key column, its position in the table (attnum), its
-- position in the key (pknum), its name and its full type (format_type), which the worker and
-- the generated SQL need. Recompute it for vectorizers created by older versions.
update ai.vectorizer v set source_pk =
( select pg_catalog.jsonb_agg(x.entry order by x.pknum)
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
    where c.contype = 'p'
      and c.conrelid = pg_catalog.format('%I.%I', v.source_schema, v.source_table)::pg_catalog.regclass
  ) x
)
where pg_catalog.to_regclass(pg_catalog.format('%I.%I', v.source_schema, v.source_table)) is not null;
