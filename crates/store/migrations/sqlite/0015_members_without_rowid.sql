-- Member rows and size points are looked up by their keys only: stored in key order
-- (WITHOUT ROWID), a real-time entry or exit writes two B-trees instead of three, and a
-- size point one instead of two.
CREATE TABLE segment_members_keyed (
    segment_id INTEGER NOT NULL,
    profile_id INTEGER NOT NULL,
    since INTEGER NOT NULL,
    PRIMARY KEY (segment_id, profile_id)
) WITHOUT ROWID;
INSERT INTO segment_members_keyed (segment_id, profile_id, since)
    SELECT segment_id, profile_id, since FROM segment_members ORDER BY segment_id, profile_id;
DROP TABLE segment_members;
ALTER TABLE segment_members_keyed RENAME TO segment_members;
CREATE INDEX segment_members_profile ON segment_members (profile_id);

CREATE TABLE segment_sizes_keyed (
    segment_id INTEGER NOT NULL,
    at INTEGER NOT NULL,
    size INTEGER NOT NULL,
    entered INTEGER NOT NULL,
    exited INTEGER NOT NULL,
    PRIMARY KEY (segment_id, at)
) WITHOUT ROWID;
INSERT INTO segment_sizes_keyed (segment_id, at, size, entered, exited)
    SELECT segment_id, at, size, entered, exited FROM segment_sizes ORDER BY segment_id, at;
DROP TABLE segment_sizes;
ALTER TABLE segment_sizes_keyed RENAME TO segment_sizes;
