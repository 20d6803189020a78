-- Products and tracked topics a text mentions, one table keyed by kind, replacing
-- text_products; and brand settings (lexicon terms, tracked topics, lead creation).
CREATE TABLE text_tags (
    event_id BIGINT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    profile_id BIGINT NOT NULL,
    occurred_at BIGINT NOT NULL,
    compound DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (event_id, kind, name)
);
INSERT INTO text_tags (event_id, kind, name, profile_id, occurred_at, compound)
    SELECT event_id, 'product', product, profile_id, occurred_at, compound FROM text_products;
DROP TABLE text_products;
CREATE INDEX text_tags_time ON text_tags (kind, occurred_at);
CREATE INDEX text_tags_name ON text_tags (kind, name, occurred_at);

CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value JSONB NOT NULL,
    updated_at BIGINT NOT NULL
);
