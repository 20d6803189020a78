-- Segments: saved definitions, their members (people, by canonical id) and size history.
CREATE TABLE segments (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    definition TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    -- dynamic (a definition, kept current) or micro (members set by clustering).
    kind TEXT NOT NULL DEFAULT 'dynamic',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    refreshed_at BIGINT
);

CREATE TABLE segment_members (
    segment_id BIGINT NOT NULL,
    profile_id BIGINT NOT NULL,
    since BIGINT NOT NULL,
    PRIMARY KEY (segment_id, profile_id)
);
CREATE INDEX segment_members_profile ON segment_members (profile_id);

CREATE TABLE segment_sizes (
    segment_id BIGINT NOT NULL,
    at BIGINT NOT NULL,
    size BIGINT NOT NULL,
    entered BIGINT NOT NULL,
    exited BIGINT NOT NULL,
    PRIMARY KEY (segment_id, at)
);


-- Event aggregates in segment definitions select events by name, type and time; the
-- profile id makes counts index-only.
CREATE INDEX events_name_time ON events (name, type, occurred_at, profile_id);
