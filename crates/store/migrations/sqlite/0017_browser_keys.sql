-- Write keys used in web pages are public: their trust level and the origins allowed
-- to use them (a JSON list; empty = any).
ALTER TABLE api_keys ADD COLUMN trust TEXT NOT NULL DEFAULT 'server';
ALTER TABLE api_keys ADD COLUMN origins TEXT NOT NULL DEFAULT '[]';
