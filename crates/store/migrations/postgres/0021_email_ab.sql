-- A/B tests: a campaign's test (variants, wait, metric, winner) and each test message's variant.
ALTER TABLE email_messages ADD COLUMN variant BIGINT;
ALTER TABLE email_campaigns ADD COLUMN ab TEXT;
