-- Outbound deliveries rules ask for (webhooks), retried with back-off until delivered or
-- dead-lettered.
CREATE TABLE outbox (
    id BIGSERIAL PRIMARY KEY,
    rule TEXT NOT NULL,
    profile_id BIGINT NOT NULL,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    body TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    max_attempts BIGINT NOT NULL,
    next_at BIGINT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    last_error TEXT,
    created_at BIGINT NOT NULL,
    delivered_at BIGINT
);
CREATE INDEX outbox_due ON outbox (status, next_at);
