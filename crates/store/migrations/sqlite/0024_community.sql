-- The community (questions, answers, comments, ideas, votes) and the knowledge base
-- (articles, revisions, suggestions on the ticket form), each searched with FTS5.
CREATE TABLE posts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    parent_id INTEGER,
    -- The question or idea a post belongs to (its own id for those).
    topic_id INTEGER,
    profile_id INTEGER,
    staff TEXT,
    title TEXT,
    body TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT '',
    accepted_id INTEGER,
    score INTEGER NOT NULL DEFAULT 0,
    hidden INTEGER NOT NULL DEFAULT 0,
    locked INTEGER NOT NULL DEFAULT 0,
    official INTEGER NOT NULL DEFAULT 0,
    flag TEXT,
    duplicate_of INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX posts_by_kind ON posts (kind, created_at);
CREATE INDEX posts_by_parent ON posts (parent_id, created_at);
CREATE INDEX posts_by_profile ON posts (profile_id);
CREATE INDEX posts_flagged ON posts (flag) WHERE flag IS NOT NULL;
CREATE TABLE post_votes (
    post_id INTEGER NOT NULL,
    profile_id INTEGER NOT NULL,
    value INTEGER NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (post_id, profile_id)
);
CREATE INDEX post_votes_by_profile ON post_votes (profile_id);
CREATE VIRTUAL TABLE posts_fts USING fts5(title, body, content = 'posts', content_rowid = 'id',
    tokenize = 'porter unicode61 remove_diacritics 2');
INSERT INTO posts_fts (posts_fts, rank) VALUES ('rank', 'bm25(3.0, 1.0)');
CREATE TRIGGER posts_fts_insert AFTER INSERT ON posts BEGIN
    INSERT INTO posts_fts (rowid, title, body) VALUES (new.id, new.title, new.body);
END;
CREATE TRIGGER posts_fts_delete AFTER DELETE ON posts BEGIN
    INSERT INTO posts_fts (posts_fts, rowid, title, body) VALUES ('delete', old.id, old.title, old.body);
END;
CREATE TRIGGER posts_fts_update AFTER UPDATE OF title, body ON posts BEGIN
    INSERT INTO posts_fts (posts_fts, rowid, title, body) VALUES ('delete', old.id, old.title, old.body);
    INSERT INTO posts_fts (rowid, title, body) VALUES (new.id, new.title, new.body);
END;

CREATE TABLE kb_articles (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    category TEXT,
    status TEXT NOT NULL,
    author_profile INTEGER,
    author_staff TEXT,
    helpful_yes INTEGER NOT NULL DEFAULT 0,
    helpful_no INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    published_at INTEGER
);
CREATE INDEX kb_articles_by_status ON kb_articles (status, updated_at);
CREATE TABLE kb_revisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    article_id INTEGER NOT NULL REFERENCES kb_articles (id),
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    category TEXT,
    status TEXT NOT NULL,
    author_profile INTEGER,
    author_staff TEXT,
    note TEXT,
    at INTEGER NOT NULL
);
CREATE INDEX kb_revisions_by_article ON kb_revisions (article_id, id);
CREATE INDEX kb_revisions_by_status ON kb_revisions (status, id);
CREATE TABLE kb_deflections (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    profile_id INTEGER NOT NULL,
    article_id INTEGER NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX kb_deflections_by_time ON kb_deflections (at);
CREATE INDEX kb_deflections_by_profile ON kb_deflections (profile_id);
-- Prefix indexes: the ticket form searches as the customer types (`refu*`).
CREATE VIRTUAL TABLE kb_fts USING fts5(title, body, content = 'kb_articles', content_rowid = 'id',
    tokenize = 'porter unicode61 remove_diacritics 2', prefix = '2 3');
INSERT INTO kb_fts (kb_fts, rank) VALUES ('rank', 'bm25(5.0, 1.0)');
CREATE TRIGGER kb_fts_insert AFTER INSERT ON kb_articles BEGIN
    INSERT INTO kb_fts (rowid, title, body) VALUES (new.id, new.title, new.body);
END;
CREATE TRIGGER kb_fts_delete AFTER DELETE ON kb_articles BEGIN
    INSERT INTO kb_fts (kb_fts, rowid, title, body) VALUES ('delete', old.id, old.title, old.body);
END;
CREATE TRIGGER kb_fts_update AFTER UPDATE OF title, body ON kb_articles BEGIN
    INSERT INTO kb_fts (kb_fts, rowid, title, body) VALUES ('delete', old.id, old.title, old.body);
    INSERT INTO kb_fts (rowid, title, body) VALUES (new.id, new.title, new.body);
END;
