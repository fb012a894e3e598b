-- Vectorizers get a unique, human-friendly name. Existing ones are named after their target table
-- (table destination) or source table and embedding column (column destination).
alter table ai.vectorizer add column if not exists name pg_catalog.name;

update ai.vectorizer v
set name = case
    when v.config operator(pg_catalog.->) 'destination' operator(pg_catalog.->>) 'implementation' = 'column'
    then pg_catalog.format('%s_%s_%s', v.source_schema, v.source_table
        , v.config operator(pg_catalog.->) 'destination' operator(pg_catalog.->>) 'embedding_column')
    else pg_catalog.format('%s_%s'
        , v.config operator(pg_catalog.->) 'destination' operator(pg_catalog.->>) 'target_schema'
        , v.config operator(pg_catalog.->) 'destination' operator(pg_catalog.->>) 'target_table')
    end
where v.name is null;

alter table ai.vectorizer alter column name set not null;
alter table ai.vectorizer add constraint vectorizer_name_unique unique (name);
alter table ai.vectorizer add constraint vectorizer_name_check check (name operator(pg_catalog.~) '^[a-z][a-z_0-9]*$');
