-- The embedding config no longer has a "truncate" switch: long inputs are handled by the worker.
update ai.vectorizer
set config = config operator(pg_catalog.#-) '{embedding,truncate}'::text[]
where config operator(pg_catalog.->) 'embedding' operator(pg_catalog.?) 'truncate';
