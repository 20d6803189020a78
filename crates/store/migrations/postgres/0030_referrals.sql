-- Referrals: each person's code, and who referred whom (one referrer per referred person,
-- the first), with its status: pending until the referred person converts, converted
-- (credited once), or refused (a self-referral) with the reason.
CREATE TABLE referral_codes (
    code TEXT PRIMARY KEY,
    profile_id BIGINT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);
CREATE TABLE referrals (
    id BIGSERIAL PRIMARY KEY,
    code TEXT NOT NULL,
    referrer_id BIGINT NOT NULL,
    referred_id BIGINT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    reason TEXT,
    created_at BIGINT NOT NULL,
    converted_at BIGINT
);
CREATE INDEX referrals_by_referrer ON referrals (referrer_id, status);
