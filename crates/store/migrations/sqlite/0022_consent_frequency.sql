-- How often the person wants to hear (all, weekly, paused), chosen with the consent.
ALTER TABLE consents ADD COLUMN frequency TEXT NOT NULL DEFAULT 'all';
