-- Outbound deliveries rules ask for (webhooks), retried with back-off until delivered or
-- dead-lettered.
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    rule TEXT NOT NULL,
    profile_id INTEGER NOT NULL,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    body TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    next_at INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    last_error TEXT,
    created_at INTEGER NOT NULL,
    delivered_at INTEGER
);
CREATE INDEX outbox_due ON outbox (status, next_at);
