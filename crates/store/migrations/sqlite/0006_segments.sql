-- Segments: saved definitions, their members (people, by canonical id) and size history.
CREATE TABLE segments (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    definition TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    -- dynamic (a definition, kept current) or micro (members set by clustering).
    kind TEXT NOT NULL DEFAULT 'dynamic',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    refreshed_at INTEGER
);

CREATE TABLE segment_members (
    segment_id INTEGER NOT NULL,
    profile_id INTEGER NOT NULL,
    since INTEGER NOT NULL,
    PRIMARY KEY (segment_id, profile_id)
);
CREATE INDEX segment_members_profile ON segment_members (profile_id);

CREATE TABLE segment_sizes (
    segment_id INTEGER NOT NULL,
    at INTEGER NOT NULL,
    size INTEGER NOT NULL,
    entered INTEGER NOT NULL,
    exited INTEGER NOT NULL,
    PRIMARY KEY (segment_id, at)
);


-- Event aggregates in segment definitions select events by name, type and time; the
-- profile id makes counts index-only.
CREATE INDEX events_name_time ON events (name, type, occurred_at, profile_id);
