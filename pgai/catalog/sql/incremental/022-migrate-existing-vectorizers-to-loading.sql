-- Older configs named the text column in chunking.chunk_column. Move it into an explicit
-- loading section (column loader, 6 retries) with parsing "auto", as current configs have.
update ai.vectorizer
set config = (config operator(pg_catalog.#-) '{chunking,chunk_column}'::text[])
    operator(pg_catalog.||) pg_catalog.jsonb_build_object
    ( 'loading', pg_catalog.jsonb_build_object
        ( 'implementation', 'column'
        , 'config_type', 'loading'
        , 'column_name', config operator(pg_catalog.->) 'chunking' operator(pg_catalog.->>) 'chunk_column'
        , 'retries', 6
        )
    , 'parsing', pg_catalog.jsonb_build_object('implementation', 'auto', 'config_type', 'parsing')
    )
where config operator(pg_catalog.->) 'chunking' operator(pg_catalog.?) 'chunk_column'
  and not (config operator(pg_catalog.?) 'loading');
