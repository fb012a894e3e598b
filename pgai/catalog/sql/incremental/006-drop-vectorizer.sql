-- Recorded under this name for compatibility with pgai's migration history. drop_vectorizer
-- is (re)created by idempotent/012-vectorizer-api.sql here.
select 1;
