-- The real-time engine loads a person's recent firings at once (frequency caps in memory).
CREATE INDEX rule_firings_person ON rule_firings (profile_id, at);
