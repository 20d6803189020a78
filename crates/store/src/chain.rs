//! Stored shapes of the on-chain side: chains and contracts followed, Transfer logs,
//! holdings per wallet, token rewards. Backends: `sqlite/chain.rs`, `postgres/chain.rs`.

use rapport_domain::resolve::{EventRow, ProfileId};
use rapport_domain::time::Millis;
use serde::Serialize;

/// An EVM chain the brand follows, and where its sync stands.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ChainRow {
    /// CAIP-2, e.g. `eip155:1`.
    pub id: String,
    pub name: String,
    /// The JSON-RPC URL; often holds a provider key, so never serialised.
    #[serde(skip)]
    pub rpc_url: String,
    pub confirmations: i64,
    pub start_block: i64,
    pub batch_blocks: i64,
    /// Addresses whose transfers count as "from the brand".
    pub brand_wallets: Vec<String>,
    pub enabled: bool,
    /// The last block fully processed.
    pub cursor_block: Option<i64>,
    pub cursor_hash: Option<String>,
    /// The node's latest block when last asked.
    pub head_block: Option<i64>,
    pub synced_at: Option<Millis>,
    pub last_error: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// A token contract the brand follows on a chain.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ContractRow {
    pub chain_id: String,
    /// EIP-55 address.
    pub address: String,
    /// `erc20` or `erc721`.
    pub standard: String,
    pub symbol: String,
    pub name: String,
    pub decimals: i64,
    /// The brand's own token: its mints count as "from the brand".
    pub brand_owned: bool,
    pub created_at: Millis,
}

/// One `Transfer` log as stored.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LogRow {
    pub chain_id: String,
    pub tx_hash: String,
    pub log_index: i64,
    pub block_number: i64,
    pub block_hash: String,
    pub contract: String,
    pub standard: String,
    /// CAIP-10.
    pub from_wallet: String,
    pub to_wallet: String,
    /// Raw amount (ERC-20) or token id (ERC-721), decimal.
    pub value: String,
    pub occurred_at: Millis,
    pub removed: bool,
}

/// What one wallet holds of one token.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct HoldingRow {
    pub chain_id: String,
    pub contract: String,
    /// CAIP-10.
    pub wallet: String,
    pub symbol: String,
    pub standard: String,
    /// Raw balance, decimal (signed: a back-fill that starts late may see a wallet send
    /// more than it saw arrive).
    pub balance: String,
    /// Whole units (decimals applied); the number of tokens for ERC-721.
    pub amount: f64,
    /// ERC-721 token ids held.
    pub token_ids: Vec<String>,
    /// Held without a break since (ms), when the balance is positive.
    pub held_since: Option<Millis>,
    pub from_brand: String,
    pub from_brand_amount: f64,
    pub first_received_at: Option<Millis>,
    pub last_activity_at: Option<Millis>,
    pub updated_at: Millis,
}

/// One step of a chain's sync, written in one transaction: the logs of a block range,
/// the holdings they changed, the timeline events of known wallets, the blocks' hashes
/// and the new cursor. A crash leaves the step either whole or absent.
#[derive(Debug, Clone, Default)]
pub struct ChainBatch {
    pub chain_id: String,
    pub logs: Vec<LogRow>,
    pub holdings: Vec<HoldingRow>,
    /// (number, hash, timestamp ms)
    pub blocks: Vec<(i64, String, i64)>,
    pub cursor: (i64, String),
    pub head: i64,
    pub events: Vec<EventRow>,
    pub at: Millis,
}

/// Undoing a re-org: logs after `ancestor` are marked removed, their timeline events
/// deleted, the touched holdings replaced by their replay, the cursor set back.
#[derive(Debug, Clone, Default)]
pub struct ChainRollback {
    pub chain_id: String,
    pub ancestor: (i64, String),
    pub holdings: Vec<HoldingRow>,
    pub retract_message_ids: Vec<String>,
    pub at: Millis,
}

/// A token reward and where it stands.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RewardRow {
    pub id: i64,
    pub idempotency_key: String,
    pub profile_id: ProfileId,
    pub chain_id: String,
    pub contract: String,
    /// The recipient, CAIP-10.
    pub wallet: String,
    /// `transfer` (from the hot wallet's balance) or `mint`.
    pub kind: String,
    /// Whole units as asked.
    pub amount: String,
    pub raw_amount: String,
    /// `pending`, `sent`, `confirmed` or `failed`.
    pub status: String,
    pub tx_hash: Option<String>,
    #[serde(skip)]
    pub raw_tx: Option<String>,
    pub nonce: Option<i64>,
    pub attempts: i64,
    pub last_error: Option<String>,
    /// `api`, `cli` or `rule:<name>`.
    pub source: String,
    pub block_number: Option<i64>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// A staff account of the web app.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct UserRow {
    pub id: i64,
    pub email: String,
    /// Argon2 PHC string; never serialised.
    #[serde(skip)]
    pub password_hash: String,
    /// `admin`, `marketer`, `agent` or `viewer`.
    pub role: String,
    pub created_at: Millis,
    pub last_login_at: Option<Millis>,
}
