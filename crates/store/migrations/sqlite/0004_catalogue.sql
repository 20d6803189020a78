-- The brand's product catalogue, and which analysed texts mention which product.
CREATE TABLE catalogue (
    name TEXT PRIMARY KEY,
    added_at INTEGER NOT NULL
);

CREATE TABLE text_products (
    event_id INTEGER NOT NULL,
    product TEXT NOT NULL,
    profile_id INTEGER NOT NULL,
    occurred_at INTEGER NOT NULL,
    compound REAL NOT NULL,
    PRIMARY KEY (event_id, product)
);
CREATE INDEX text_products_time ON text_products (occurred_at);
