-- Tickets: the team that handles one, and where one came from when something other than a
-- person opened it (`event:<id>`: a social complaint), which opens it once only.
ALTER TABLE tickets ADD COLUMN team TEXT;
ALTER TABLE tickets ADD COLUMN origin TEXT;
CREATE INDEX tickets_by_team ON tickets (team, updated_at);
CREATE UNIQUE INDEX tickets_by_origin ON tickets (origin) WHERE origin IS NOT NULL;
-- A ticket's tags one per row, so the inbox finds a rare tag without reading every ticket
-- (kept with the ticket in the same transaction).
CREATE TABLE ticket_tags (
    tag TEXT NOT NULL,
    ticket_id BIGINT NOT NULL,
    PRIMARY KEY (tag, ticket_id)
);
INSERT INTO ticket_tags (tag, ticket_id)
    SELECT DISTINCT j.tag, t.id FROM tickets t, jsonb_array_elements_text(t.tags::jsonb) AS j(tag);
