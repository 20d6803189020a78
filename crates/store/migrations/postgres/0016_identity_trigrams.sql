-- The trigram index of identity values (migration 12) also answers `value = …`, and for
-- the join that resolves each ingested message's identities the planner chose it over
-- the unique (kind, value) B-tree: 1.7 ms a lookup on short values such as user ids,
-- where the B-tree takes microseconds. Indexing lower(value) instead keeps equality
-- lookups off it; free-text search matches lower(value) LIKE lower(pattern), which is
-- what ILIKE did.
DO $$
DECLARE
    ext_schema text;
BEGIN
    SELECT extnamespace::regnamespace::text INTO ext_schema FROM pg_extension WHERE extname = 'pg_trgm';
    DROP INDEX IF EXISTS identities_value_trgm;
    IF ext_schema IS NOT NULL THEN
        EXECUTE format('CREATE INDEX identities_value_trgm ON identities USING gin (lower(value) %s.gin_trgm_ops)', ext_schema);
    END IF;
END $$;
