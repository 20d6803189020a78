//! Stored shapes of the on-chain side: chains and contracts followed, Transfer logs,
//! holdings per wallet, SIWE nonces, token rewards. Backends: `sqlite/chain.rs`,
//! `postgres/chain.rs`.

use crate::Result;
use async_trait::async_trait;
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
    /// `pending`, `sent`, `confirmed`, `failed`, or `reversed` (a failed points
    /// conversion whose points were given back; never retried).
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

/// On-chain data: chains and contracts followed, blocks, logs and holdings, SIWE nonces, token rewards.
#[async_trait]
pub trait ChainStore: Send + Sync {
    async fn chains(&self) -> Result<Vec<ChainRow>>;
    /// Adds or edits a chain; its sync position is kept.
    async fn upsert_chain(&self, c: ChainRow) -> Result<()>;
    async fn delete_chain(&self, id: &str) -> Result<()>;
    /// The node's head and the last sync error (None clears it).
    async fn set_chain_status(
        &self,
        id: &str,
        head: Option<i64>,
        error: Option<String>,
        at: Millis,
    ) -> Result<()>;
    async fn contracts(&self) -> Result<Vec<ContractRow>>;
    async fn upsert_contract(&self, c: ContractRow) -> Result<()>;
    /// Processed blocks' (number, hash), newest first.
    async fn chain_blocks(&self, chain: &str, limit: usize) -> Result<Vec<(i64, String)>>;
    /// Current holdings of (contract, wallet) pairs on a chain.
    async fn holdings_get(
        &self,
        chain: &str,
        keys: Vec<(String, String)>,
    ) -> Result<Vec<HoldingRow>>;
    async fn apply_chain_batch(&self, b: ChainBatch) -> Result<()>;
    /// Logs (not removed) in blocks after `block`.
    async fn chain_logs_after(&self, chain: &str, block: i64) -> Result<Vec<LogRow>>;
    /// Logs (not removed) up to `block` touching any (contract, wallet) pair, in chain order.
    async fn chain_logs_for(
        &self,
        chain: &str,
        keys: Vec<(String, String)>,
        block: i64,
    ) -> Result<Vec<LogRow>>;
    async fn rollback_chain(&self, r: ChainRollback) -> Result<()>;
    /// Holdings of these wallets (CAIP-10), all chains and tokens.
    async fn wallet_holdings(&self, wallets: Vec<String>) -> Result<Vec<HoldingRow>>;
    /// Largest holders of a token.
    async fn holders(&self, chain: &str, contract: &str, limit: usize) -> Result<Vec<HoldingRow>>;
    async fn create_siwe_nonce(&self, nonce: &str, at: Millis, expires: Millis) -> Result<()>;
    /// Marks a nonce used; false when it was never issued, is used, or has expired.
    async fn use_siwe_nonce(&self, nonce: &str, at: Millis) -> Result<bool>;
    /// Creates a reward, or returns the one with the same idempotency key (false).
    async fn create_reward(&self, r: RewardRow) -> Result<(RewardRow, bool)>;
    async fn update_reward(&self, r: RewardRow) -> Result<()>;
    async fn rewards(&self, status: Option<String>, limit: usize) -> Result<Vec<RewardRow>>;
    async fn reward(&self, id: i64) -> Result<RewardRow>;
}
