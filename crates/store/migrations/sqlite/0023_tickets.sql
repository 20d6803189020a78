-- Support tickets: the ticket (its id is the number customers see, #id) and its messages.
CREATE TABLE tickets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    profile_id INTEGER NOT NULL,
    -- The address replies go to: the one the customer wrote from.
    address TEXT,
    subject TEXT NOT NULL,
    status TEXT NOT NULL,
    priority TEXT NOT NULL,
    assignee TEXT,
    tags TEXT NOT NULL DEFAULT '[]',
    channel TEXT NOT NULL,
    snooze_until INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    first_response_at INTEGER,
    resolved_at INTEGER,
    -- The customer's rating after resolution (1-5) and what they added.
    csat INTEGER,
    csat_comment TEXT
);
CREATE INDEX tickets_by_status ON tickets (status, updated_at);
CREATE INDEX tickets_by_assignee ON tickets (assignee, updated_at);
CREATE INDEX tickets_recent ON tickets (updated_at);
CREATE INDEX tickets_by_profile ON tickets (profile_id);
CREATE TABLE ticket_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket_id INTEGER NOT NULL REFERENCES tickets (id),
    author TEXT NOT NULL,
    staff TEXT,
    body TEXT NOT NULL,
    message_id TEXT UNIQUE,
    email_id TEXT,
    at INTEGER NOT NULL
);
CREATE INDEX ticket_messages_by_ticket ON ticket_messages (ticket_id, id);
