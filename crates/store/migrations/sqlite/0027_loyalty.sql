-- Loyalty points: lots (points earned together, with what remains), the append-only
-- ledger of entries, each person's tier, the rewards catalogue with its coupon codes, and
-- redemptions. Rows are keyed by the raw profile they were earned on; a person's are
-- their members' together.
CREATE TABLE loyalty_lots (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    profile_id INTEGER NOT NULL,
    -- earn or adjust
    kind TEXT NOT NULL,
    amount INTEGER NOT NULL,
    remaining INTEGER NOT NULL,
    earned_at INTEGER NOT NULL,
    unlock_at INTEGER NOT NULL,
    expires_at INTEGER,
    order_ref TEXT,
    -- The order's revenue (tiers by spend).
    revenue REAL,
    reversed_at INTEGER
);
-- Open lots of a person (the balance, spending), and everything by time (tiers).
CREATE INDEX loyalty_lots_open ON loyalty_lots (profile_id, expires_at, unlock_at, remaining) WHERE remaining > 0;
CREATE INDEX loyalty_lots_by_profile ON loyalty_lots (profile_id, earned_at);
CREATE INDEX loyalty_lots_expiring ON loyalty_lots (expires_at) WHERE remaining > 0 AND expires_at IS NOT NULL;
CREATE TABLE loyalty_entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    profile_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    amount INTEGER NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    at INTEGER NOT NULL,
    lot_id INTEGER,
    -- [{"lot", "take"}]
    moves TEXT NOT NULL DEFAULT '[]',
    order_ref TEXT,
    reason TEXT,
    source TEXT NOT NULL,
    -- For a reversal: points earned for the order that were already spent.
    unrecovered INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX loyalty_entries_by_profile ON loyalty_entries (profile_id, id);
CREATE INDEX loyalty_entries_by_time ON loyalty_entries (at);
CREATE TABLE loyalty_tiers (
    profile_id INTEGER PRIMARY KEY,
    tier TEXT,
    since INTEGER NOT NULL,
    below_since INTEGER,
    updated_at INTEGER NOT NULL
);
CREATE TABLE loyalty_rewards (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    cost INTEGER NOT NULL,
    -- Left to give (NULL: no limit); a pool of codes also limits it.
    stock INTEGER,
    per_person INTEGER,
    -- JSON list of tier names (empty: everybody), and a segment name.
    tiers TEXT NOT NULL DEFAULT '[]',
    segment TEXT,
    starts_at INTEGER,
    ends_at INTEGER,
    active INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE loyalty_codes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    reward_id INTEGER NOT NULL REFERENCES loyalty_rewards (id),
    code TEXT NOT NULL,
    redemption_id INTEGER,
    UNIQUE (reward_id, code)
);
CREATE INDEX loyalty_codes_free ON loyalty_codes (reward_id, id) WHERE redemption_id IS NULL;
CREATE TABLE loyalty_redemptions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT NOT NULL UNIQUE,
    profile_id INTEGER NOT NULL,
    reward_id INTEGER NOT NULL,
    cost INTEGER NOT NULL,
    code TEXT,
    entry_id INTEGER NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX loyalty_redemptions_by_profile ON loyalty_redemptions (profile_id, reward_id);
