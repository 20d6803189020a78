-- Profiles are raw rows; canonical_id names the cluster (person) each belongs to.
CREATE SEQUENCE profiles_id_seq;
CREATE TABLE profiles (
    id BIGINT PRIMARY KEY,
    canonical_id BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    traits JSONB NOT NULL DEFAULT '{}',
    traits_updated_at BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX profiles_canonical ON profiles (canonical_id);

CREATE TABLE identities (
    id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    profile_id BIGINT NOT NULL,
    verified BOOLEAN NOT NULL DEFAULT false,
    proof TEXT,
    source TEXT NOT NULL,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    UNIQUE (kind, value)
);
CREATE INDEX identities_profile ON identities (profile_id);

CREATE TABLE events (
    id BIGSERIAL PRIMARY KEY,
    message_id TEXT NOT NULL UNIQUE,
    profile_id BIGINT NOT NULL,
    type TEXT NOT NULL,
    name TEXT,
    channel TEXT NOT NULL,
    source TEXT NOT NULL,
    properties JSONB NOT NULL,
    context JSONB NOT NULL,
    text TEXT,
    occurred_at BIGINT NOT NULL,
    received_at BIGINT NOT NULL
);
CREATE INDEX events_profile_time ON events (profile_id, occurred_at, id);

CREATE TABLE merges (
    id BIGSERIAL PRIMARY KEY,
    survivor_id BIGINT NOT NULL,
    merged_id BIGINT NOT NULL,
    member_ids TEXT NOT NULL,
    cause TEXT NOT NULL,
    message_id TEXT,
    by_whom TEXT NOT NULL,
    at BIGINT NOT NULL,
    undone_at BIGINT,
    undone_by TEXT
);
CREATE INDEX merges_survivor ON merges (survivor_id);
CREATE INDEX merges_merged ON merges (merged_id);

CREATE TABLE conflicts (
    id BIGSERIAL PRIMARY KEY,
    profile_a BIGINT NOT NULL,
    profile_b BIGINT NOT NULL,
    identifier TEXT NOT NULL,
    reason TEXT NOT NULL,
    message_id TEXT,
    count BIGINT NOT NULL DEFAULT 1,
    first_at BIGINT NOT NULL,
    last_at BIGINT NOT NULL,
    resolved_at BIGINT,
    UNIQUE (profile_a, profile_b, identifier)
);

CREATE TABLE merge_blocks (
    profile_a BIGINT NOT NULL,
    profile_b BIGINT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (profile_a, profile_b)
);

CREATE TABLE consents (
    id BIGSERIAL PRIMARY KEY,
    profile_id BIGINT NOT NULL,
    channel TEXT NOT NULL,
    purpose TEXT NOT NULL,
    status TEXT NOT NULL,
    source TEXT NOT NULL,
    proof TEXT,
    at BIGINT NOT NULL
);
CREATE INDEX consents_profile ON consents (profile_id, channel, purpose, at);

CREATE TABLE api_keys (
    id BIGSERIAL PRIMARY KEY,
    prefix TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    scope TEXT NOT NULL,
    label TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

-- RFC 7396 JSON merge patch, the same semantics as SQLite's json_patch().
CREATE OR REPLACE FUNCTION rapport_merge_patch(target JSONB, patch JSONB) RETURNS JSONB AS $$
DECLARE
    k TEXT;
    v JSONB;
    result JSONB;
BEGIN
    IF patch IS NULL OR jsonb_typeof(patch) <> 'object' THEN
        RETURN patch;
    END IF;
    IF target IS NULL OR jsonb_typeof(target) <> 'object' THEN
        result := '{}'::jsonb;
    ELSE
        result := target;
    END IF;
    FOR k, v IN SELECT * FROM jsonb_each(patch) LOOP
        IF jsonb_typeof(v) = 'null' THEN
            result := result - k;
        ELSE
            result := jsonb_set(result, ARRAY[k], rapport_merge_patch(result -> k, v));
        END IF;
    END LOOP;
    RETURN result;
END;
$$ LANGUAGE plpgsql IMMUTABLE;
