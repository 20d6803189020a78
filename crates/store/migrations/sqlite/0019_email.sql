-- E-mail: sending domains and DKIM keys, templates, the outbox of messages (rendered and
-- signed before sending) with their engagement, suppressions and primary addresses.
CREATE TABLE email_domains (
    domain TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL
);
CREATE TABLE email_keys (
    domain TEXT NOT NULL REFERENCES email_domains (domain),
    selector TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    private_key TEXT NOT NULL,
    public_key TEXT NOT NULL,
    PRIMARY KEY (domain, selector)
);
CREATE TABLE email_templates (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    subject TEXT NOT NULL,
    html TEXT NOT NULL,
    text TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE email_messages (
    id INTEGER PRIMARY KEY,
    public_id TEXT NOT NULL UNIQUE,
    idempotency_key TEXT UNIQUE,
    kind TEXT NOT NULL,
    template_id INTEGER,
    campaign_id INTEGER,
    profile_id INTEGER NOT NULL,
    to_address TEXT NOT NULL,
    address_reason TEXT NOT NULL,
    from_address TEXT NOT NULL,
    subject TEXT NOT NULL,
    return_path TEXT NOT NULL,
    raw BLOB NOT NULL,
    links TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at INTEGER NOT NULL,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    delivered_at INTEGER,
    opened_at INTEGER,
    clicked_at INTEGER,
    unsubscribed_at INTEGER
);
CREATE INDEX email_messages_due ON email_messages (status, next_at);
CREATE INDEX email_messages_profile ON email_messages (profile_id, id);
CREATE INDEX email_messages_address ON email_messages (to_address);
CREATE TABLE email_suppressions (
    address TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    detail TEXT,
    created_at INTEGER NOT NULL
);
CREATE TABLE email_primary (
    address TEXT PRIMARY KEY,
    chosen_at INTEGER NOT NULL
);
CREATE TABLE email_campaigns (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    template_id INTEGER NOT NULL,
    from_address TEXT NOT NULL,
    from_name TEXT,
    kind TEXT NOT NULL,
    audience TEXT NOT NULL,
    status TEXT NOT NULL,
    send_at INTEGER,
    per_minute INTEGER,
    planned INTEGER NOT NULL DEFAULT 0,
    skipped INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER
);
CREATE INDEX email_messages_campaign ON email_messages (campaign_id, status);
CREATE TABLE email_clicks (
    campaign_id INTEGER,
    message_id TEXT NOT NULL,
    url TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX email_clicks_campaign ON email_clicks (campaign_id, url);
