-- Relationships keep the raw profile ids they were observed on; readers map both ends
-- to their cluster (profiles.canonical_id), so merges and unmerges need no rewrite.
CREATE TABLE relationships (
    source_id INTEGER NOT NULL,
    target_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    weight REAL NOT NULL,
    count INTEGER NOT NULL,
    explicit INTEGER NOT NULL,
    sentiment_sum REAL NOT NULL DEFAULT 0,
    sentiment_n INTEGER NOT NULL DEFAULT 0,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    PRIMARY KEY (source_id, target_id, kind)
) WITHOUT ROWID;
CREATE INDEX relationships_target ON relationships (target_id);

-- Inferred observations, one per event and edge, for word-of-mouth attribution.
CREATE TABLE touches (
    id INTEGER PRIMARY KEY,
    source_id INTEGER NOT NULL,
    target_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    event_id INTEGER,
    at INTEGER NOT NULL,
    sentiment REAL
);
CREATE INDEX touches_target ON touches (target_id, at);
CREATE INDEX touches_source ON touches (source_id, at);

-- One row per person from the latest graph computation.
CREATE TABLE graph_scores (
    profile_id INTEGER PRIMARY KEY,
    pagerank REAL NOT NULL,
    betweenness REAL NOT NULL,
    community INTEGER NOT NULL,
    core INTEGER NOT NULL,
    reach1 INTEGER NOT NULL,
    reach2 INTEGER NOT NULL,
    evangelist REAL NOT NULL,
    syndication REAL NOT NULL,
    pagerank_pct REAL NOT NULL,
    betweenness_pct REAL NOT NULL,
    run_id INTEGER NOT NULL
);
CREATE INDEX graph_scores_pagerank ON graph_scores (pagerank);
CREATE INDEX graph_scores_betweenness ON graph_scores (betweenness);
CREATE INDEX graph_scores_syndication ON graph_scores (syndication);
CREATE INDEX graph_scores_evangelist ON graph_scores (evangelist);
CREATE INDEX graph_scores_community ON graph_scores (community, pagerank);

CREATE TABLE graph_runs (
    id INTEGER PRIMARY KEY,
    started_at INTEGER NOT NULL,
    finished_at INTEGER NOT NULL,
    graph_version INTEGER NOT NULL,
    summary TEXT NOT NULL
);

-- Small named counters: graph_version (bumped by every relationship write) and the
-- positions of background workers in the event log.
CREATE TABLE counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
