-- On-chain: the EVM chains and token contracts the brand follows, where each chain's
-- sync stands, the Transfer logs seen, holdings per wallet, SIWE nonces and token rewards.
CREATE TABLE chains (
    id TEXT PRIMARY KEY,                 -- CAIP-2, e.g. eip155:1
    name TEXT NOT NULL,
    rpc_url TEXT NOT NULL,               -- may hold a provider key: never logged or shown
    confirmations BIGINT NOT NULL,
    start_block BIGINT NOT NULL,
    batch_blocks BIGINT NOT NULL,
    brand_wallets TEXT NOT NULL,         -- JSON array of addresses whose transfers are "from the brand"
    enabled BOOLEAN NOT NULL DEFAULT true,
    cursor_block BIGINT,                -- last block fully processed
    cursor_hash TEXT,
    head_block BIGINT,
    synced_at BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE chain_contracts (
    chain_id TEXT NOT NULL,
    address TEXT NOT NULL,               -- EIP-55
    standard TEXT NOT NULL,              -- erc20 | erc721
    symbol TEXT NOT NULL,
    name TEXT NOT NULL,
    decimals BIGINT NOT NULL,
    brand_owned BOOLEAN NOT NULL,        -- mints of the brand's own tokens are "from the brand"
    created_at BIGINT NOT NULL,
    PRIMARY KEY (chain_id, address)
);
-- Hashes of processed blocks, to find where a re-org forked.
CREATE TABLE chain_blocks (
    chain_id TEXT NOT NULL,
    number BIGINT NOT NULL,
    hash TEXT NOT NULL,
    timestamp BIGINT NOT NULL,
    PRIMARY KEY (chain_id, number)
);
CREATE TABLE chain_logs (
    chain_id TEXT NOT NULL,
    tx_hash TEXT NOT NULL,
    log_index BIGINT NOT NULL,
    block_number BIGINT NOT NULL,
    block_hash TEXT NOT NULL,
    contract TEXT NOT NULL,
    standard TEXT NOT NULL,
    from_wallet TEXT NOT NULL,           -- CAIP-10
    to_wallet TEXT NOT NULL,
    value TEXT NOT NULL,                 -- raw amount or token id, decimal
    occurred_at BIGINT NOT NULL,
    removed BOOLEAN NOT NULL DEFAULT false,  -- retracted by a re-org
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
    amount DOUBLE PRECISION NOT NULL,                -- whole units (token ids counted for ERC-721)
    token_ids TEXT NOT NULL,             -- JSON array of decimal ids (ERC-721)
    held_since BIGINT,
    from_brand TEXT NOT NULL,
    from_brand_amount DOUBLE PRECISION NOT NULL,
    first_received_at BIGINT,
    last_activity_at BIGINT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (chain_id, contract, wallet)
);
CREATE INDEX holdings_wallet ON holdings (wallet);
CREATE TABLE siwe_nonces (
    nonce TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE TABLE rewards (
    id BIGSERIAL PRIMARY KEY,
    idempotency_key TEXT NOT NULL UNIQUE,
    profile_id BIGINT NOT NULL,
    chain_id TEXT NOT NULL,
    contract TEXT NOT NULL,
    wallet TEXT NOT NULL,                -- recipient, CAIP-10
    kind TEXT NOT NULL,                  -- transfer | mint
    amount TEXT NOT NULL,                -- whole units as asked
    raw_amount TEXT NOT NULL,
    status TEXT NOT NULL,                -- pending | sent | confirmed | failed
    tx_hash TEXT,
    raw_tx TEXT,                         -- the signed transaction, re-broadcast after a crash
    nonce BIGINT,
    attempts BIGINT NOT NULL DEFAULT 0,
    last_error TEXT,
    source TEXT NOT NULL,
    block_number BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX rewards_status ON rewards (status, id);
