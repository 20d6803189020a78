-- Tickets: the team that handles one, and where one came from when something other than a
-- person opened it (`event:<id>`: a social complaint), which opens it once only.
ALTER TABLE tickets ADD COLUMN team TEXT;
ALTER TABLE tickets ADD COLUMN origin TEXT;
CREATE INDEX tickets_by_team ON tickets (team, updated_at);
CREATE UNIQUE INDEX tickets_by_origin ON tickets (origin) WHERE origin IS NOT NULL;
