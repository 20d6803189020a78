-- What each event's text says (written by the analysis worker).
CREATE TABLE text_analyses (
    event_id BIGINT PRIMARY KEY,
    profile_id BIGINT NOT NULL,
    occurred_at BIGINT NOT NULL,
    compound DOUBLE PRECISION NOT NULL,
    label TEXT NOT NULL,
    language TEXT NOT NULL,
    complaint DOUBLE PRECISION NOT NULL,
    churn_risk DOUBLE PRECISION NOT NULL,
    intents TEXT NOT NULL,
    entities TEXT NOT NULL
);
CREATE INDEX text_analyses_profile ON text_analyses (profile_id, occurred_at);
CREATE INDEX text_analyses_time ON text_analyses (occurred_at);
