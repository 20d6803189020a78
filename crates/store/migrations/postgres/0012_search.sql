-- Free-text search (`GET /api/profiles?q=`, the web app's search box) matches any trait
-- and any identifier with ILIKE '%…%'. Trigram indexes turn those scans into index
-- lookups. pg_trgm ships with PostgreSQL and is a trusted extension (PostgreSQL 13+: a
-- database owner may create it without being superuser); where it cannot be created,
-- search still works, by scanning, and the migration says so.
DO $$
DECLARE
    ext_schema text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
        BEGIN
            CREATE EXTENSION pg_trgm SCHEMA public;
        EXCEPTION WHEN OTHERS THEN
            RAISE NOTICE 'pg_trgm could not be created (%); free-text search will scan', SQLERRM;
        END;
    END IF;
    SELECT extnamespace::regnamespace::text INTO ext_schema FROM pg_extension WHERE extname = 'pg_trgm';
    IF ext_schema IS NOT NULL THEN
        EXECUTE format('CREATE INDEX profiles_traits_trgm ON profiles USING gin ((traits::text) %s.gin_trgm_ops)', ext_schema);
        EXECUTE format('CREATE INDEX identities_value_trgm ON identities USING gin (value %s.gin_trgm_ops)', ext_schema);
    END IF;
END $$;
