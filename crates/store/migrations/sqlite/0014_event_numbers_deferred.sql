-- `event_numbers` is filled after the fact, not by a trigger on every insert: the
-- trigger cost HTTP ingestion about 16%, each number being a random insert into a large
-- key-ordered table inside the acknowledged transaction. `rapport serve` copies the
-- numbers of the events past `counters.event_numbers` in sorted batches when ingestion is
-- quiet; segment SQL reads the events past that position from their JSON, so answers
-- stay exact.
DROP TRIGGER event_numbers_added;

-- Everything up to now was indexed by the trigger and the back-fill.
INSERT OR REPLACE INTO counters (name, value) SELECT 'event_numbers', COALESCE(MAX(id), 0) FROM events;

-- Deleting the newest event lets SQLite hand its id out again; the position moves back
-- so a reused id is not taken as indexed.
CREATE TRIGGER event_numbers_rewound AFTER DELETE ON events
BEGIN
    UPDATE counters SET value = (SELECT COALESCE(MAX(id), 0) FROM events)
    WHERE name = 'event_numbers' AND value > (SELECT COALESCE(MAX(id), 0) FROM events);
END;
