-- Every firing of a decision rule (the audit, and frequency caps), and the tasks rules
-- open for staff.
CREATE TABLE rule_firings (
    id INTEGER PRIMARY KEY,
    rule TEXT NOT NULL,
    profile_id INTEGER NOT NULL,
    event_id INTEGER NOT NULL,
    at INTEGER NOT NULL,
    actions TEXT NOT NULL
);
CREATE INDEX rule_firings_rule ON rule_firings (rule, profile_id, at);

CREATE TABLE tasks (
    id INTEGER PRIMARY KEY,
    profile_id INTEGER NOT NULL,
    rule TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'open',
    created_at INTEGER NOT NULL
);
CREATE INDEX tasks_status ON tasks (status, created_at);
