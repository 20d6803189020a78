-- On-chain: the EVM chains and token contracts the brand follows, where each chain's
-- sync stands, the Transfer logs seen, holdings per wallet, SIWE nonces and token rewards.
CREATE TABLE chains (
    id TEXT PRIMARY KEY,                 -- CAIP-2, e.g. eip155:1
    name TEXT NOT NULL,
    rpc_url TEXT NOT NULL,               -- may hold a provider key: never logged or shown
    confirmations INTEGER NOT NULL,
    start_block INTEGER NOT NULL,
    batch_blocks INTEGER NOT NULL,
    brand_wallets TEXT NOT NULL,         -- JSON array of addresses whose transfers are "from the brand"
    enabled INTEGER NOT NULL DEFAULT 1,
    cursor_block INTEGER,                -- last block fully processed
    cursor_hash TEXT,
    head_block INTEGER,
    synced_at INTEGER,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE chain_contracts (
    chain_id TEXT NOT NULL,
    address TEXT NOT NULL,               -- EIP-55
    standard TEXT NOT NULL,              -- erc20 | erc721
    symbol TEXT NOT NULL,
    name TEXT NOT NULL,
    decimals INTEGER NOT NULL,
    brand_owned INTEGER NOT NULL,        -- mints of the brand's own tokens are "from the brand"
    created_at INTEGER NOT NULL,
    PRIMARY KEY (chain_id, address)
);
-- Hashes of processed blocks, to find where a re-org forked.
CREATE TABLE chain_blocks (
    chain_id TEXT NOT NULL,
    number INTEGER NOT NULL,
    hash TEXT NOT NULL,
    timestamp INTEGER NOT NULL,
    PRIMARY KEY (chain_id, number)
);
CREATE TABLE chain_logs (
    chain_id TEXT NOT NULL,
    tx_hash TEXT NOT NULL,
    log_index INTEGER NOT NULL,
    block_number INTEGER NOT NULL,
    block_hash TEXT NOT NULL,
    contract TEXT NOT NULL,
    standard TEXT NOT NULL,
    from_wallet TEXT NOT NULL,           -- CAIP-10
    to_wallet TEXT NOT NULL,
    value TEXT NOT NULL,                 -- raw amount or token id, decimal
    occurred_at INTEGER NOT NULL,
    removed INTEGER NOT NULL DEFAULT 0,  -- retracted by a re-org
    PRIMARY KEY (chain_id, tx_hash, log_index)
);
CREATE INDEX chain_logs_block ON chain_logs (chain_id, block_number);
CREATE INDEX chain_logs_from ON chain_logs (from_wallet, contract);
CREATE INDEX chain_logs_to ON chain_logs (to_wallet, contract);
CREATE TABLE holdings (
    chain_id TEXT NOT NULL,
    contract TEXT NOT NULL,
    wallet TEXT NOT NULL,                -- CAIP-10, as identities store wallets
    symbol TEXT NOT NULL,
    standard TEXT NOT NULL,
    balance TEXT NOT NULL,               -- raw, decimal, signed
    amount REAL NOT NULL,                -- whole units (token ids counted for ERC-721)
    token_ids TEXT NOT NULL,             -- JSON array of decimal ids (ERC-721)
    held_since INTEGER,
    from_brand TEXT NOT NULL,
    from_brand_amount REAL NOT NULL,
    first_received_at INTEGER,
    last_activity_at INTEGER,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (chain_id, contract, wallet)
);
CREATE INDEX holdings_wallet ON holdings (wallet);
CREATE TABLE siwe_nonces (
    nonce TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER
);
CREATE TABLE rewards (
    id INTEGER PRIMARY KEY,
    idempotency_key TEXT NOT NULL UNIQUE,
    profile_id INTEGER NOT NULL,
    chain_id TEXT NOT NULL,
    contract TEXT NOT NULL,
    wallet TEXT NOT NULL,                -- recipient, CAIP-10
    kind TEXT NOT NULL,                  -- transfer | mint
    amount TEXT NOT NULL,                -- whole units as asked
    raw_amount TEXT NOT NULL,
    status TEXT NOT NULL,                -- pending | sent | confirmed | failed
    tx_hash TEXT,
    raw_tx TEXT,                         -- the signed transaction, re-broadcast after a crash
    nonce INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    source TEXT NOT NULL,
    block_number INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX rewards_status ON rewards (status, id);
