-- A question's whole thread (answers, and comments on the question and on its answers)
-- in one read, for its page.
CREATE INDEX posts_by_topic ON posts (topic_id, id);
