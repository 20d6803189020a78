-- Privacy: staff access audit, erased identifiers (hashes only), the customer portal's
-- sign-in links and sessions, and partners' insight budgets.
CREATE TABLE audit_log (
    id BIGSERIAL PRIMARY KEY,
    at BIGINT NOT NULL,
    who TEXT NOT NULL,
    action TEXT NOT NULL,
    -- What was acted on: `person:42`, `key:rk_ab12`, `user:3`; never personal data.
    target TEXT NOT NULL,
    detail JSONB NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_target ON audit_log (target, at);

CREATE TABLE erased_identifiers (
    hash TEXT PRIMARY KEY,
    at BIGINT NOT NULL
);

CREATE TABLE portal_links (
    token_hash TEXT PRIMARY KEY,
    purpose TEXT NOT NULL,
    email TEXT NOT NULL,
    profile_id BIGINT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX portal_links_email ON portal_links (email);

CREATE TABLE portal_sessions (
    token_hash TEXT PRIMARY KEY,
    profile_id BIGINT NOT NULL,
    csrf TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX portal_sessions_profile ON portal_sessions (profile_id);

CREATE TABLE insight_spend (
    key_id BIGINT NOT NULL,
    day BIGINT NOT NULL,
    epsilon DOUBLE PRECISION NOT NULL,
    queries BIGINT NOT NULL,
    PRIMARY KEY (key_id, day)
);

-- Daily counts of events removed by the retention job.
CREATE TABLE event_aggregates (
    day BIGINT NOT NULL,
    type TEXT NOT NULL,
    name TEXT NOT NULL,
    channel TEXT NOT NULL,
    count BIGINT NOT NULL,
    PRIMARY KEY (day, type, name, channel)
);
