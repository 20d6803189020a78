-- What each event's text says (written by the analysis worker).
CREATE TABLE text_analyses (
    event_id INTEGER PRIMARY KEY,
    profile_id INTEGER NOT NULL,
    occurred_at INTEGER NOT NULL,
    compound REAL NOT NULL,
    label TEXT NOT NULL,
    language TEXT NOT NULL,
    complaint REAL NOT NULL,
    churn_risk REAL NOT NULL,
    intents TEXT NOT NULL,
    entities TEXT NOT NULL
);
CREATE INDEX text_analyses_profile ON text_analyses (profile_id, occurred_at);
CREATE INDEX text_analyses_time ON text_analyses (occurred_at);
