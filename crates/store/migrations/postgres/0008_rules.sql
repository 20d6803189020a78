-- Every firing of a decision rule (the audit, and frequency caps), and the tasks rules
-- open for staff.
CREATE TABLE rule_firings (
    id BIGSERIAL PRIMARY KEY,
    rule TEXT NOT NULL,
    profile_id BIGINT NOT NULL,
    event_id BIGINT NOT NULL,
    at BIGINT NOT NULL,
    actions TEXT NOT NULL
);
CREATE INDEX rule_firings_rule ON rule_firings (rule, profile_id, at);

CREATE TABLE tasks (
    id BIGSERIAL PRIMARY KEY,
    profile_id BIGINT NOT NULL,
    rule TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'open',
    created_at BIGINT NOT NULL
);
CREATE INDEX tasks_status ON tasks (status, created_at);
