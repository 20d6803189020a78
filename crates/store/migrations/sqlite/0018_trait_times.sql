-- Per top-level trait key, the event time of the value held: a value is replaced only
-- by one at least as recent (docs/identity.md, "Traits"). Existing values take their
-- profile's last trait update as their time.
ALTER TABLE profiles ADD COLUMN trait_times TEXT NOT NULL DEFAULT '{}';
UPDATE profiles
   SET trait_times = (SELECT json_group_object(key, profiles.traits_updated_at) FROM json_each(profiles.traits))
 WHERE traits <> '{}';

-- Identifiers dropped from resolution (invalid or placeholders), counted per message
-- field and kind, with the latest example: `GET /api/ingestion/issues`.
CREATE TABLE ingestion_issues (
    field TEXT NOT NULL,
    kind TEXT NOT NULL,
    count INTEGER NOT NULL,
    first_at INTEGER NOT NULL,
    last_at INTEGER NOT NULL,
    example_value TEXT NOT NULL,
    example_reason TEXT NOT NULL,
    PRIMARY KEY (field, kind)
);

-- Identifiers moved off a person by hand (a recycled phone number, a shared kiosk), onto
-- a profile of their own; reversible.
CREATE TABLE detaches (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    from_profile INTEGER NOT NULL,
    to_profile INTEGER NOT NULL,
    by_whom TEXT NOT NULL,
    at INTEGER NOT NULL,
    undone_at INTEGER,
    undone_by TEXT
);
CREATE INDEX detaches_from ON detaches (from_profile);
CREATE INDEX detaches_to ON detaches (to_profile);

-- A device linked to its person by a browser key through a trait identifier alone, not
-- yet confirmed (docs/identity.md, "Browser keys").
ALTER TABLE identities ADD COLUMN unconfirmed INTEGER NOT NULL DEFAULT 0;
