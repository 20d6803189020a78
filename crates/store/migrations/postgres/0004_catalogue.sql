-- The brand's product catalogue, and which analysed texts mention which product.
CREATE TABLE catalogue (
    name TEXT PRIMARY KEY,
    added_at BIGINT NOT NULL
);

CREATE TABLE text_products (
    event_id BIGINT NOT NULL,
    product TEXT NOT NULL,
    profile_id BIGINT NOT NULL,
    occurred_at BIGINT NOT NULL,
    compound DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (event_id, product)
);
CREATE INDEX text_products_time ON text_products (occurred_at);
