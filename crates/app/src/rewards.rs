//! Token rewards: an ERC-20 transfer or a mint from the brand's hot wallet to a
//! person's wallet. A request is stored first (its idempotency key is unique, so asking
//! twice never pays twice); a worker signs it with the next nonce, stores the signed
//! transaction *before* broadcasting it (after a crash the same transaction is sent
//! again, never a second one), follows the receipt to `confirmations` and records the
//! reward on the person's timeline. Failures are kept with their reason and can be
//! retried, which signs a new transaction.

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use rapport_chain::abi;
use rapport_chain::rpc::Rpc;
use rapport_chain::wallet::{Call, HotWallet};
use rapport_chain::{parse_caip2, Address, U256};
use rapport_domain::identifier::IdentityKind;
use rapport_domain::message::{parse_message, BatchContext};
use rapport_domain::resolve::{EventRow, ProfileId};
use rapport_domain::time::{now_millis, to_datetime};
use rapport_store::{DynStore, RewardRow, StoreError};
use serde::Deserialize;
use serde_json::json;

fn invalid(field: &str, reason: impl Into<String>) -> StoreError {
    StoreError::invalid(field, reason)
}

/// The hot wallet and the next nonce per chain. The key stays in memory only.
#[derive(Default)]
pub struct Rewards {
    hot: RwLock<Option<HotWallet>>,
    nonces: Mutex<HashMap<String, u64>>,
}

impl Rewards {
    pub fn set_hot_wallet(&self, w: Option<HotWallet>) {
        if let Ok(mut g) = self.hot.write() {
            *g = w;
        }
    }

    pub fn hot_wallet(&self) -> Option<HotWallet> {
        self.hot.read().ok().and_then(|g| g.clone())
    }

    fn take_nonce(&self, chain: &str, node: u64) -> u64 {
        let mut g = self.nonces.lock().unwrap_or_else(|e| e.into_inner());
        let n = g.get(chain).copied().unwrap_or(0).max(node);
        g.insert(chain.to_string(), n + 1);
        n
    }

    fn forget_nonce(&self, chain: &str) {
        let mut g = self.nonces.lock().unwrap_or_else(|e| e.into_inner());
        g.remove(chain);
    }
}

/// What `POST /api/rewards` accepts.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RewardInput {
    pub profile_id: ProfileId,
    /// The token's symbol or contract address.
    pub token: String,
    /// CAIP-2 chain, when the symbol is on several.
    pub chain: Option<String>,
    /// Whole units, e.g. "10" or "2.5" (1 for an NFT mint).
    pub amount: String,
    /// `transfer` (from the hot wallet's balance) or `mint`; default: mint for the
    /// brand's own tokens, else transfer.
    pub kind: Option<String>,
    /// The same key never pays twice; send one per intended payment.
    pub idempotency_key: Option<String>,
}

/// Stores a reward request (or returns the one with the same idempotency key; false).
pub async fn request(
    store: &DynStore,
    input: RewardInput,
    source: &str,
) -> Result<(RewardRow, bool), StoreError> {
    if store.chains().await?.is_empty() {
        return Err(StoreError::Conflict(
            "no chain is configured: add one with POST /api/chains before sending token rewards"
                .into(),
        ));
    }
    let key = match input.idempotency_key {
        Some(k) if k.trim().is_empty() || k.len() > 200 => {
            return Err(invalid("idempotency_key", "must be 1 to 200 characters"))
        }
        Some(k) => k,
        None => uuid::Uuid::new_v4().to_string(),
    };
    let contract =
        crate::chain::find_contract(store, input.token.trim(), input.chain.as_deref()).await?;
    let kind = input.kind.unwrap_or_else(|| {
        if contract.brand_owned {
            "mint"
        } else {
            "transfer"
        }
        .into()
    });
    if !matches!(kind.as_str(), "mint" | "transfer") {
        return Err(invalid("kind", "must be transfer or mint"));
    }
    let erc721 = contract.standard == "erc721";
    if erc721 && kind != "mint" {
        return Err(invalid(
            "kind",
            "ERC-721 rewards are mints (one token each)",
        ));
    }
    let raw = abi::parse_units(
        &input.amount,
        if erc721 { 0 } else { contract.decimals as u8 },
    )
    .filter(|v| !v.is_zero())
    .ok_or_else(|| {
        invalid(
            "amount",
            format!(
                "must be a positive amount with at most {} decimals",
                contract.decimals
            ),
        )
    })?;
    if erc721 && raw != U256::from(1u64) {
        return Err(invalid("amount", "an NFT reward mints exactly 1"));
    }
    let view = store.profile(input.profile_id).await?;
    let prefix = format!("{}:", contract.chain_id);
    let mut wallets: Vec<_> = view
        .identities
        .iter()
        .filter(|i| i.kind == IdentityKind::Wallet && i.value.starts_with(&prefix))
        .collect();
    // A verified wallet first, then the most recently seen.
    wallets.sort_by_key(|i| (!i.verified, std::cmp::Reverse(i.last_seen)));
    let wallet = wallets.first().ok_or_else(|| {
        invalid(
            "profile_id",
            format!("this person has no wallet on {}", contract.chain_id),
        )
    })?;
    let now = now_millis();
    store
        .create_reward(RewardRow {
            id: 0,
            idempotency_key: key,
            profile_id: view.id,
            chain_id: contract.chain_id.clone(),
            contract: contract.address.clone(),
            wallet: wallet.value.clone(),
            kind,
            amount: input.amount.trim().to_string(),
            raw_amount: raw.to_string(),
            status: "pending".into(),
            tx_hash: None,
            raw_tx: None,
            nonce: None,
            attempts: 0,
            last_error: None,
            source: source.to_string(),
            block_number: None,
            created_at: now,
            updated_at: now,
        })
        .await
}

/// Puts a failed reward back in the queue; it will be signed anew.
pub async fn retry(store: &DynStore, id: i64) -> Result<RewardRow, StoreError> {
    let mut r = store.reward(id).await?;
    if r.status != "failed" {
        return Err(StoreError::Conflict(format!(
            "reward {id} is {}: only failed rewards can be retried",
            r.status
        )));
    }
    r.status = "pending".into();
    r.tx_hash = None;
    r.raw_tx = None;
    r.nonce = None;
    r.updated_at = now_millis();
    store.update_reward(r.clone()).await?;
    Ok(r)
}

/// Sends what is pending and follows what was sent. Returns the rewards touched.
pub async fn step(store: &DynStore, rewards: &Rewards) -> Result<usize, StoreError> {
    let mut open = store.rewards(Some("pending".into()), 50).await?;
    open.extend(store.rewards(Some("sent".into()), 200).await?);
    if open.is_empty() {
        return Ok(0);
    }
    let chains: HashMap<String, rapport_store::ChainRow> = store
        .chains()
        .await?
        .into_iter()
        .map(|c| (c.id.clone(), c))
        .collect();
    let standards: HashMap<(String, String), String> = store
        .contracts()
        .await?
        .into_iter()
        .map(|c| ((c.chain_id, c.address), c.standard))
        .collect();
    let hot = rewards.hot_wallet();
    let mut touched = 0;
    // Oldest first, so nonces follow the order of requests.
    open.sort_by_key(|r| r.id);
    for mut r in open {
        let Some(c) = chains.get(&r.chain_id) else {
            continue;
        };
        let rpc = Rpc::new(&c.rpc_url);
        let now = now_millis();
        if r.status == "pending" {
            let Some(hot) = &hot else {
                if r.last_error.is_none() {
                    r.last_error = Some(
                        "no hot wallet key is configured (serve --hot-wallet-key file:… or env:…)"
                            .into(),
                    );
                    r.updated_at = now;
                    store.update_reward(r).await?;
                }
                continue;
            };
            touched += 1;
            let standard = standards
                .get(&(r.chain_id.clone(), r.contract.clone()))
                .map_or("erc20", String::as_str);
            match send(&rpc, rewards, hot, c, standard, &r).await {
                Ok((raw, hash, nonce)) => {
                    // Stored before it is broadcast: a crash now re-sends this one.
                    r.status = "sent".into();
                    r.tx_hash = Some(format!("{hash:#x}"));
                    r.raw_tx = Some(alloy_hex(&raw));
                    r.nonce = Some(nonce as i64);
                    r.attempts += 1;
                    r.last_error = None;
                    r.updated_at = now;
                    store.update_reward(r.clone()).await?;
                    if let Err(e) = rpc.send_raw(&raw).await {
                        rewards.forget_nonce(&c.id);
                        r.status = "failed".into();
                        r.last_error = Some(format!("the node refused the transaction: {e}"));
                        store.update_reward(r).await?;
                    }
                }
                Err(e) => {
                    r.status = "failed".into();
                    r.attempts += 1;
                    r.last_error = Some(e);
                    r.updated_at = now;
                    store.update_reward(r).await?;
                }
            }
        } else {
            let Some(hash) = r.tx_hash.as_ref().and_then(|h| h.parse().ok()) else {
                continue;
            };
            match rpc.receipt(&hash).await {
                Ok(None) => {
                    // Not mined: after a while, broadcast the very same transaction again.
                    if now - r.updated_at > 30_000 {
                        if let Some(raw) = r
                            .raw_tx
                            .as_deref()
                            .and_then(|h| rapport_chain::hex::decode(h).ok())
                        {
                            let _ = rpc.send_raw(&raw).await;
                        }
                        r.updated_at = now;
                        store.update_reward(r).await?;
                        touched += 1;
                    }
                }
                Ok(Some(receipt)) if !receipt.success => {
                    r.status = "failed".into();
                    r.last_error = Some("the transaction reverted on chain".into());
                    r.block_number = Some(receipt.block_number as i64);
                    r.updated_at = now;
                    store.update_reward(r).await?;
                    touched += 1;
                }
                Ok(Some(receipt)) => {
                    let head = rpc.block_number().await.unwrap_or(receipt.block_number);
                    if head.saturating_sub(receipt.block_number) < c.confirmations as u64 {
                        continue;
                    }
                    r.status = "confirmed".into();
                    r.block_number = Some(receipt.block_number as i64);
                    r.updated_at = now;
                    record(store, &r).await?;
                    store.update_reward(r).await?;
                    touched += 1;
                }
                Err(e) => tracing::warn!(reward = r.id, error = %e, "reward receipt not read"),
            }
        }
    }
    Ok(touched)
}

fn alloy_hex(b: &[u8]) -> String {
    format!("0x{}", rapport_chain::hex::encode(b))
}

async fn send(
    rpc: &Rpc,
    rewards: &Rewards,
    hot: &HotWallet,
    c: &rapport_store::ChainRow,
    standard: &str,
    r: &RewardRow,
) -> Result<(Vec<u8>, rapport_chain::B256, u64), String> {
    let chain_num = parse_caip2(&c.id).ok_or("the chain id is not eip155")?;
    let contract: Address = r.contract.parse().map_err(|_| "bad contract address")?;
    let to = rapport_chain::address_of(&r.wallet).ok_or("bad recipient wallet")?;
    let value = U256::from_str_radix(&r.raw_amount, 10).map_err(|_| "bad amount")?;
    let data = match (r.kind.as_str(), standard) {
        ("mint", "erc721") => abi::erc721_mint(&to),
        ("mint", _) => abi::erc20_mint(&to, value),
        _ => abi::erc20_transfer(&to, value),
    };
    // Estimation runs the call: a transfer the hot wallet cannot pay fails here, with
    // the contract's reason, before any nonce is used.
    let gas = rpc
        .estimate_gas(&hot.address(), &contract, &data)
        .await
        .map_err(|e| format!("the call would fail: {e}"))?;
    let (max_fee, tip) = rpc.fees().await.map_err(|e| e.to_string())?;
    let node_nonce = rpc.nonce(&hot.address()).await.map_err(|e| e.to_string())?;
    let nonce = rewards.take_nonce(&c.id, node_nonce);
    let (raw, hash) = hot
        .sign(&Call {
            chain_id: chain_num,
            nonce,
            to: contract,
            data,
            gas_limit: gas + gas / 5,
            max_fee_per_gas: max_fee,
            max_priority_fee_per_gas: tip,
        })
        .map_err(|e| e.to_string())?;
    Ok((raw, hash, nonce))
}

/// The reward on the person's timeline (once, whatever happens).
async fn record(store: &DynStore, r: &RewardRow) -> Result<(), StoreError> {
    let now = now_millis();
    let msg = json!({"type": "track", "userId": format!("rapport-profile-{}", r.profile_id),
        "event": "Token Reward Sent", "context": {"channel": "onchain"}, "timestamp": to_datetime(now).to_rfc3339(),
        "properties": {"reward_id": r.id, "chain": r.chain_id, "contract": r.contract, "to": r.wallet,
            "amount": r.amount, "kind": r.kind, "tx_hash": r.tx_hash, "block_number": r.block_number, "source": r.source}});
    let batch = BatchContext {
        received_at: now,
        ..Default::default()
    };
    let m = parse_message(&msg, "", None, &batch, || format!("reward:{}", r.id))
        .map_err(|e| StoreError::Backend(e.to_string()))?;
    store
        .insert_events_once(
            vec![EventRow {
                profile_id: r.profile_id,
                message: m,
            }],
            "rewards",
        )
        .await
}

pub async fn run(
    store: DynStore,
    rewards: std::sync::Arc<Rewards>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let step = step(&store, &rewards).await;
        if !crate::worker::pause_after(
            "token rewards",
            step,
            Duration::from_millis(500),
            Duration::from_millis(100),
            &mut shutdown,
        )
        .await
        {
            return;
        }
    }
}
