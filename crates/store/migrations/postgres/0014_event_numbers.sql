-- The numeric top-level properties of named events, one row each, kept by statement
-- triggers so every writer (ingest, chain sync, re-orgs, imports) keeps it true. Sums,
-- averages, minima and maxima over a window are answered from the covering index
-- instead of reading each event's JSON from the heap.
CREATE TABLE event_numbers (
    event_id BIGINT NOT NULL,
    prop TEXT NOT NULL,
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    occurred_at BIGINT NOT NULL,
    profile_id BIGINT NOT NULL,
    value float8 NOT NULL,
    PRIMARY KEY (event_id, prop)
);

INSERT INTO event_numbers (event_id, prop, name, type, occurred_at, profile_id, value)
SELECT e.id, j.key, e.name, e.type, e.occurred_at, e.profile_id, (j.value #>> '{}')::float8
FROM events e, jsonb_each(e.properties) j
WHERE e.name IS NOT NULL AND jsonb_typeof(e.properties) = 'object' AND jsonb_typeof(j.value) = 'number';

CREATE INDEX event_numbers_window ON event_numbers (name, type, prop, occurred_at) INCLUDE (profile_id, value);

CREATE FUNCTION event_numbers_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO event_numbers (event_id, prop, name, type, occurred_at, profile_id, value)
    SELECT e.id, j.key, e.name, e.type, e.occurred_at, e.profile_id, (j.value #>> '{}')::float8
    FROM added e, jsonb_each(e.properties) j
    WHERE e.name IS NOT NULL AND jsonb_typeof(e.properties) = 'object' AND jsonb_typeof(j.value) = 'number';
    RETURN NULL;
END $$;

CREATE FUNCTION event_numbers_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM event_numbers n USING removed r WHERE n.event_id = r.id;
    RETURN NULL;
END $$;

CREATE FUNCTION event_numbers_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM event_numbers n USING before_rows r WHERE n.event_id = r.id;
    INSERT INTO event_numbers (event_id, prop, name, type, occurred_at, profile_id, value)
    SELECT e.id, j.key, e.name, e.type, e.occurred_at, e.profile_id, (j.value #>> '{}')::float8
    FROM after_rows e, jsonb_each(e.properties) j
    WHERE e.name IS NOT NULL AND jsonb_typeof(e.properties) = 'object' AND jsonb_typeof(j.value) = 'number';
    RETURN NULL;
END $$;

CREATE TRIGGER event_numbers_added AFTER INSERT ON events
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION event_numbers_added();
CREATE TRIGGER event_numbers_removed AFTER DELETE ON events
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION event_numbers_removed();
CREATE TRIGGER event_numbers_changed AFTER UPDATE ON events
    REFERENCING OLD TABLE AS before_rows NEW TABLE AS after_rows FOR EACH STATEMENT EXECUTE FUNCTION event_numbers_changed();
