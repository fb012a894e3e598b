-- Rows that keep failing move to a per-vectorizer failed queue instead of being retried forever.
alter table ai.vectorizer add column if not exists queue_failed_table pg_catalog.name;
