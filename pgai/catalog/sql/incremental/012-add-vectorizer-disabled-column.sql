-- A vectorizer can be switched off without dropping it; workers skip disabled ones.
alter table ai.vectorizer add column if not exists disabled pg_catalog.bool not null default false;
