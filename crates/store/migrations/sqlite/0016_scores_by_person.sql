-- The real-time engine reads a person's score values at every load and after every score
-- run: an index holding names and values answers that from one page, where the index on
-- the id alone sent each of a person's scores to a table page of its own.
DROP INDEX profile_scores_profile;
CREATE INDEX profile_scores_profile ON profile_scores (profile_id, name, value);
