-- Per top-level trait key, the event time of the value held: a value is replaced only
-- by one at least as recent (docs/identity.md, "Traits"). Existing values take their
-- profile's last trait update as their time.
ALTER TABLE profiles ADD COLUMN trait_times JSONB NOT NULL DEFAULT '{}';
UPDATE profiles
   SET trait_times = (SELECT COALESCE(jsonb_object_agg(key, to_jsonb(profiles.traits_updated_at)), '{}'::jsonb)
                        FROM jsonb_each(profiles.traits))
 WHERE traits <> '{}'::jsonb;

-- The keys of `patch` not older than the stored ones (rapport_domain::traits::fresh_patch).
CREATE OR REPLACE FUNCTION rapport_fresh_patch(stored JSONB, patch JSONB, times JSONB) RETURNS JSONB AS $$
    SELECT COALESCE(jsonb_object_agg(p.key, p.value), '{}'::jsonb)
      FROM jsonb_each(patch) p
     WHERE NOT (times ? p.key AND stored ? p.key
                AND (times ->> p.key)::bigint < (stored ->> p.key)::bigint)
$$ LANGUAGE sql IMMUTABLE;

-- Stored times after a fresh patch: per key, the later (rapport_domain::traits::later_times).
CREATE OR REPLACE FUNCTION rapport_later_times(stored JSONB, times JSONB) RETURNS JSONB AS $$
    SELECT stored || COALESCE(jsonb_object_agg(t.key, t.value), '{}'::jsonb)
      FROM jsonb_each(times) t
     WHERE NOT (stored ? t.key AND (stored ->> t.key)::bigint > (t.value #>> '{}')::bigint)
$$ LANGUAGE sql IMMUTABLE;

-- Identifiers dropped from resolution (invalid or placeholders), counted per message
-- field and kind, with the latest example: `GET /api/ingestion/issues`.
CREATE TABLE ingestion_issues (
    field TEXT NOT NULL,
    kind TEXT NOT NULL,
    count BIGINT NOT NULL,
    first_at BIGINT NOT NULL,
    last_at BIGINT NOT NULL,
    example_value TEXT NOT NULL,
    example_reason TEXT NOT NULL,
    PRIMARY KEY (field, kind)
);

-- Identifiers moved off a person by hand (a recycled phone number, a shared kiosk), onto
-- a profile of their own; reversible.
CREATE TABLE detaches (
    id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    from_profile BIGINT NOT NULL,
    to_profile BIGINT NOT NULL,
    by_whom TEXT NOT NULL,
    at BIGINT NOT NULL,
    undone_at BIGINT,
    undone_by TEXT
);
CREATE INDEX detaches_from ON detaches (from_profile);
CREATE INDEX detaches_to ON detaches (to_profile);

-- A device linked to its person by a browser key through a trait identifier alone, not
-- yet confirmed (docs/identity.md, "Browser keys").
ALTER TABLE identities ADD COLUMN unconfirmed BOOLEAN NOT NULL DEFAULT false;
