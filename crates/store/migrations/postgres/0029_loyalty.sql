-- Loyalty points: lots (points earned together, with what remains), the append-only
-- ledger of entries, each person's tier, the rewards catalogue with its coupon codes, and
-- redemptions. Rows are keyed by the raw profile they were earned on; a person's are
-- their members' together.
CREATE TABLE loyalty_lots (
    id BIGSERIAL PRIMARY KEY,
    profile_id BIGINT NOT NULL,
    -- earn or adjust
    kind TEXT NOT NULL,
    amount BIGINT NOT NULL,
    remaining BIGINT NOT NULL,
    earned_at BIGINT NOT NULL,
    unlock_at BIGINT NOT NULL,
    expires_at BIGINT,
    order_ref TEXT,
    -- The order's revenue (tiers by spend).
    revenue DOUBLE PRECISION,
    reversed_at BIGINT
);
-- Open lots of a person (the balance, spending), and everything by time (tiers).
CREATE INDEX loyalty_lots_open ON loyalty_lots (profile_id, expires_at, unlock_at, remaining) WHERE remaining > 0;
CREATE INDEX loyalty_lots_by_profile ON loyalty_lots (profile_id, earned_at);
CREATE INDEX loyalty_lots_expiring ON loyalty_lots (expires_at) WHERE remaining > 0 AND expires_at IS NOT NULL;
CREATE TABLE loyalty_entries (
    id BIGSERIAL PRIMARY KEY,
    profile_id BIGINT NOT NULL,
    kind TEXT NOT NULL,
    amount BIGINT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    at BIGINT NOT NULL,
    lot_id BIGINT,
    -- [{"lot", "take"}]
    moves TEXT NOT NULL DEFAULT '[]',
    order_ref TEXT,
    reason TEXT,
    source TEXT NOT NULL,
    -- For a reversal: points earned for the order that were already spent.
    unrecovered BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX loyalty_entries_by_profile ON loyalty_entries (profile_id, id);
CREATE INDEX loyalty_entries_by_time ON loyalty_entries (at);
CREATE TABLE loyalty_tiers (
    profile_id BIGINT PRIMARY KEY,
    tier TEXT,
    since BIGINT NOT NULL,
    below_since BIGINT,
    updated_at BIGINT NOT NULL
);
CREATE TABLE loyalty_rewards (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    cost BIGINT NOT NULL,
    -- Left to give (NULL: no limit); a pool of codes also limits it.
    stock BIGINT,
    per_person BIGINT,
    -- JSON list of tier names (empty: everybody), and a segment name.
    tiers TEXT NOT NULL DEFAULT '[]',
    segment TEXT,
    starts_at BIGINT,
    ends_at BIGINT,
    active BIGINT NOT NULL DEFAULT 1,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE loyalty_codes (
    id BIGSERIAL PRIMARY KEY,
    reward_id BIGINT NOT NULL REFERENCES loyalty_rewards (id),
    code TEXT NOT NULL,
    redemption_id BIGINT,
    UNIQUE (reward_id, code)
);
CREATE INDEX loyalty_codes_free ON loyalty_codes (reward_id, id) WHERE redemption_id IS NULL;
CREATE TABLE loyalty_redemptions (
    id BIGSERIAL PRIMARY KEY,
    idempotency_key TEXT NOT NULL UNIQUE,
    profile_id BIGINT NOT NULL,
    reward_id BIGINT NOT NULL,
    cost BIGINT NOT NULL,
    code TEXT,
    entry_id BIGINT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX loyalty_redemptions_by_profile ON loyalty_redemptions (profile_id, reward_id);
