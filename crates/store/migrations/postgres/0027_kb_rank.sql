-- Knowledge-base search ranks on a compact vector: the title with its positions (weight
-- A) and the body's words once each, without positions. ts_rank over a help article's
-- full positions took most of a search's time (docs/benchmarks.md); a body word counts
-- once, a title word most.
DROP INDEX kb_articles_search;
ALTER TABLE kb_articles DROP COLUMN tsv;
ALTER TABLE kb_articles ADD COLUMN tsv tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('english', title), 'A') || strip(to_tsvector('english', body))) STORED;
CREATE INDEX kb_articles_search ON kb_articles USING GIN (tsv);
