-- Profiles are raw rows; canonical_id names the cluster (person) each belongs to.
CREATE TABLE profiles (
    id INTEGER PRIMARY KEY,
    canonical_id INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    traits TEXT NOT NULL DEFAULT '{}',
    traits_updated_at INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX profiles_canonical ON profiles (canonical_id);

CREATE TABLE identities (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    profile_id INTEGER NOT NULL,
    verified INTEGER NOT NULL DEFAULT 0,
    proof TEXT,
    source TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    UNIQUE (kind, value)
);
CREATE INDEX identities_profile ON identities (profile_id);

CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    message_id TEXT NOT NULL UNIQUE,
    profile_id INTEGER NOT NULL,
    type TEXT NOT NULL,
    name TEXT,
    channel TEXT NOT NULL,
    source TEXT NOT NULL,
    properties TEXT NOT NULL,
    context TEXT NOT NULL,
    text TEXT,
    occurred_at INTEGER NOT NULL,
    received_at INTEGER NOT NULL
);
CREATE INDEX events_profile_time ON events (profile_id, occurred_at, id);

CREATE TABLE merges (
    id INTEGER PRIMARY KEY,
    survivor_id INTEGER NOT NULL,
    merged_id INTEGER NOT NULL,
    member_ids TEXT NOT NULL,
    cause TEXT NOT NULL,
    message_id TEXT,
    by_whom TEXT NOT NULL,
    at INTEGER NOT NULL,
    undone_at INTEGER,
    undone_by TEXT
);
CREATE INDEX merges_survivor ON merges (survivor_id);
CREATE INDEX merges_merged ON merges (merged_id);

CREATE TABLE conflicts (
    id INTEGER PRIMARY KEY,
    profile_a INTEGER NOT NULL,
    profile_b INTEGER NOT NULL,
    identifier TEXT NOT NULL,
    reason TEXT NOT NULL,
    message_id TEXT,
    count INTEGER NOT NULL DEFAULT 1,
    first_at INTEGER NOT NULL,
    last_at INTEGER NOT NULL,
    resolved_at INTEGER,
    UNIQUE (profile_a, profile_b, identifier)
);

CREATE TABLE merge_blocks (
    profile_a INTEGER NOT NULL,
    profile_b INTEGER NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (profile_a, profile_b)
);

CREATE TABLE consents (
    id INTEGER PRIMARY KEY,
    profile_id INTEGER NOT NULL,
    channel TEXT NOT NULL,
    purpose TEXT NOT NULL,
    status TEXT NOT NULL,
    source TEXT NOT NULL,
    proof TEXT,
    at INTEGER NOT NULL
);
CREATE INDEX consents_profile ON consents (profile_id, channel, purpose, at);

CREATE TABLE api_keys (
    id INTEGER PRIMARY KEY,
    prefix TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    scope TEXT NOT NULL,
    label TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
