-- Per top-level trait key, the event time of the value held: a value is replaced only
-- by one at least as recent (docs/identity.md, "Traits"). Existing values take their
-- profile's last trait update as their time.
ALTER TABLE profiles ADD COLUMN trait_times TEXT NOT NULL DEFAULT '{}';
UPDATE profiles
   SET trait_times = (SELECT json_group_object(key, profiles.traits_updated_at) FROM json_each(profiles.traits))
 WHERE traits <> '{}';
