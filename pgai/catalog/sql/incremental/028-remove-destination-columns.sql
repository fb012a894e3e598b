-- Where embeddings go is part of the config now (config.destination). Older catalogs kept it in
-- columns of ai.vectorizer: move those values into the config, then drop the columns.
do $migration$
begin
    if exists
    ( select 1 from pg_catalog.pg_attribute
      where attrelid = 'ai.vectorizer'::pg_catalog.regclass and attname = 'target_table' and not attisdropped
    ) then
        execute $sql$
            update ai.vectorizer
            set config = config operator(pg_catalog.||) pg_catalog.jsonb_build_object
            ( 'destination', pg_catalog.jsonb_build_object
                ( 'implementation', 'table'
                , 'config_type', 'destination'
                , 'target_schema', target_schema
                , 'target_table', target_table
                , 'view_schema', view_schema
                , 'view_name', view_name
                )
            )
            where not (config operator(pg_catalog.?) 'destination')
        $sql$;
        alter table ai.vectorizer
            drop column if exists target_schema
          , drop column if exists target_table
          , drop column if exists view_schema
          , drop column if exists view_name;
    end if;
end
$migration$;
