-- `Segment Entered` / `Segment Exited` events get narrow rows of their own. Written as
-- full events, each cost a heap row with two JSON documents, four index entries (id,
-- message id, profile, name) and a pass of the event-numbers trigger: the largest part
-- of a real-time step's commit in a burst of membership changes, about three times the
-- cost of the rows below (two index entries, no trigger). Everything that reads events
-- reads the view `events`, which shows them as before: the same ids (drawn from the
-- events' sequence, so the log stays in one id order), message ids, names and
-- properties. Writers of ingested events write `event_rows`.
--
-- One table per name, so that each branch of the view is a plain scan of a table: the
-- planner then merges the branches in id order from their primary keys (the log's read,
-- `MAX(id)`), and drops both where a query names another event.
ALTER TABLE events RENAME TO event_rows;

CREATE TABLE segment_entered_events (
    id BIGINT PRIMARY KEY DEFAULT nextval('events_id_seq'),
    profile_id BIGINT NOT NULL,
    segment_id BIGINT NOT NULL,
    -- The segment's name when the event was written (a rename does not rewrite history).
    segment TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX segment_entered_events_profile ON segment_entered_events (profile_id, at, id);
CREATE TABLE segment_exited_events (LIKE segment_entered_events INCLUDING DEFAULTS);
ALTER TABLE segment_exited_events ADD PRIMARY KEY (id);
CREATE INDEX segment_exited_events_profile ON segment_exited_events (profile_id, at, id);

-- Existing membership events move over where the view shows them exactly as stored.
CREATE TEMPORARY TABLE moving ON COMMIT DROP AS
SELECT id, profile_id, (properties->>'segment_id')::bigint AS segment_id,
       properties->>'segment' AS segment, name = 'Segment Entered' AS entered, occurred_at AS at
FROM event_rows
WHERE source = 'segments' AND channel = 'rapport' AND type = 'track'
  AND name IN ('Segment Entered', 'Segment Exited')
  AND occurred_at = received_at AND text IS NULL AND context = '{}'::jsonb
  AND jsonb_typeof(properties->'segment') = 'string'
  AND properties->>'segment_id' ~ '^[0-9]{1,18}$'
  AND properties = jsonb_build_object('segment', properties->>'segment', 'segment_id', properties->>'segment_id')
  AND message_id = 'segment:' || occurred_at || ':' || (properties->>'segment_id') || ':' || profile_id || ':'
                   || CASE WHEN name = 'Segment Entered' THEN '1' ELSE '0' END;
INSERT INTO segment_entered_events (id, profile_id, segment_id, segment, at)
SELECT id, profile_id, segment_id, segment, at FROM moving WHERE entered;
INSERT INTO segment_exited_events (id, profile_id, segment_id, segment, at)
SELECT id, profile_id, segment_id, segment, at FROM moving WHERE NOT entered;
DELETE FROM event_rows e USING moving m WHERE e.id = m.id;

CREATE VIEW events AS
SELECT id, message_id, profile_id, type, name, channel, source, properties, context, text, occurred_at, received_at
FROM event_rows
UNION ALL
SELECT id, 'segment:' || at || ':' || segment_id || ':' || profile_id || ':1', profile_id,
       'track'::text, 'Segment Entered'::text, 'rapport'::text, 'segments'::text,
       jsonb_build_object('segment', segment, 'segment_id', segment_id::text), '{}'::jsonb,
       NULL::text, at, at
FROM segment_entered_events
UNION ALL
SELECT id, 'segment:' || at || ':' || segment_id || ':' || profile_id || ':0', profile_id,
       'track'::text, 'Segment Exited'::text, 'rapport'::text, 'segments'::text,
       jsonb_build_object('segment', segment, 'segment_id', segment_id::text), '{}'::jsonb,
       NULL::text, at, at
FROM segment_exited_events;
