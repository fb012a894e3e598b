-- Recorded under this name for compatibility with pgai's migration history. The pending-count
-- functions it introduced there are (re)created by idempotent/012-vectorizer-api.sql here.
select 1;
