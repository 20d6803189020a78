-- Computed scores per person (RFM, custom weighted scores), replaced per score name on
-- each computation, each with the explanation of its value.
CREATE TABLE profile_scores (
    name TEXT NOT NULL,
    profile_id BIGINT NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    explanation TEXT NOT NULL,
    computed_at BIGINT NOT NULL,
    PRIMARY KEY (name, profile_id)
);
CREATE INDEX profile_scores_profile ON profile_scores (profile_id);
CREATE INDEX profile_scores_value ON profile_scores (name, value);
