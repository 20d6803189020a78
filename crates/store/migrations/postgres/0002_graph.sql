-- Relationships keep the raw profile ids they were observed on; readers map both ends
-- to their cluster (profiles.canonical_id), so merges and unmerges need no rewrite.
CREATE TABLE relationships (
    source_id BIGINT NOT NULL,
    target_id BIGINT NOT NULL,
    kind TEXT NOT NULL,
    weight DOUBLE PRECISION NOT NULL,
    count BIGINT NOT NULL,
    explicit BOOLEAN NOT NULL,
    sentiment_sum DOUBLE PRECISION NOT NULL DEFAULT 0,
    sentiment_n BIGINT NOT NULL DEFAULT 0,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    PRIMARY KEY (source_id, target_id, kind)
);
CREATE INDEX relationships_target ON relationships (target_id);

-- Inferred observations, one per event and edge, for word-of-mouth attribution.
CREATE TABLE touches (
    id BIGSERIAL PRIMARY KEY,
    source_id BIGINT NOT NULL,
    target_id BIGINT NOT NULL,
    kind TEXT NOT NULL,
    event_id BIGINT,
    at BIGINT NOT NULL,
    sentiment DOUBLE PRECISION
);
CREATE INDEX touches_target ON touches (target_id, at);
CREATE INDEX touches_source ON touches (source_id, at);

-- One row per person from the latest graph computation.
CREATE TABLE graph_scores (
    profile_id BIGINT PRIMARY KEY,
    pagerank DOUBLE PRECISION NOT NULL,
    betweenness DOUBLE PRECISION NOT NULL,
    community BIGINT NOT NULL,
    core BIGINT NOT NULL,
    reach1 BIGINT NOT NULL,
    reach2 BIGINT NOT NULL,
    evangelist DOUBLE PRECISION NOT NULL,
    syndication DOUBLE PRECISION NOT NULL,
    pagerank_pct DOUBLE PRECISION NOT NULL,
    betweenness_pct DOUBLE PRECISION NOT NULL,
    run_id BIGINT NOT NULL
);
CREATE INDEX graph_scores_pagerank ON graph_scores (pagerank);
CREATE INDEX graph_scores_betweenness ON graph_scores (betweenness);
CREATE INDEX graph_scores_syndication ON graph_scores (syndication);
CREATE INDEX graph_scores_evangelist ON graph_scores (evangelist);
CREATE INDEX graph_scores_community ON graph_scores (community, pagerank);

CREATE TABLE graph_runs (
    id BIGSERIAL PRIMARY KEY,
    started_at BIGINT NOT NULL,
    finished_at BIGINT NOT NULL,
    graph_version BIGINT NOT NULL,
    summary TEXT NOT NULL
);

-- Small named counters: graph_version (bumped by every relationship write) and the
-- positions of background workers in the event log.
CREATE TABLE counters (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
