-- A/B tests: a campaign's test (variants, wait, metric, winner) and each test message's variant.
ALTER TABLE email_messages ADD COLUMN variant BIGINT;
ALTER TABLE email_campaigns ADD COLUMN ab TEXT;
-- The signed-to-be message bytes are stored uncompressed: pglz cost more CPU than the
-- disk it saved when a campaign queues a million (rapport bench campaign).
ALTER TABLE email_messages ALTER COLUMN raw SET STORAGE EXTERNAL;
