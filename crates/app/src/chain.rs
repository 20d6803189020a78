//! On-chain ingestion: the chains and token contracts a brand follows, and the worker
//! that back-fills from a start block and then follows new blocks with `eth_getLogs`,
//! `confirmations` behind the head. Each step (a block range) is written in one
//! transaction with its cursor, so a restart resumes where the last step ended. Before
//! each step the cursor's block hash is checked against the node; on a mismatch the
//! worker walks back to the fork, retracts what it saw after it (logs marked removed,
//! timeline events deleted, holdings replayed) and goes on from there.
//!
//! Transfers touching a wallet that belongs to a profile become `Token Received` /
//! `Token Sent` events on its timeline; a transfer between two customers' wallets is a
//! `transferred` relationship (inferred from the received side). Holdings are kept for
//! every wallet, known or not, so a wallet linked later shows what it holds at once.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use rapport_chain::abi::{self, decode_transfer, Standard, Transfer};
use rapport_chain::ledger::{self, Book, Holding};
use rapport_chain::rpc::{Rpc, RpcError};
use rapport_chain::{address_of, caip10, parse_caip2, Address, I256, U256};
use rapport_domain::identifier::{IdentityKey, IdentityKind};
use rapport_domain::message::{parse_message, BatchContext};
use rapport_domain::resolve::EventRow;
use rapport_domain::time::{now_millis, to_datetime, Millis};
use rapport_store::{
    ChainBatch, ChainRollback, ChainRow, ContractRow, DynStore, HoldingRow, LogRow, StoreError,
};
use serde::Deserialize;
use serde_json::{json, Value};

/// The source name of on-chain timeline events.
pub const SOURCE: &str = "chain";

fn invalid(field: &str, reason: impl Into<String>) -> StoreError {
    StoreError::invalid(field, reason)
}

fn rpc_err(e: RpcError) -> StoreError {
    StoreError::Unavailable(format!("EVM node: {e}"))
}

/// What `POST /api/chains` accepts.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChainInput {
    /// CAIP-2, e.g. `eip155:1`.
    pub id: String,
    pub name: Option<String>,
    /// The node's JSON-RPC URL (kept secret: never shown or logged).
    pub rpc_url: String,
    /// Blocks to wait before a log counts (default 12; 0 follows the head).
    pub confirmations: Option<i64>,
    /// First block to back-fill from (default: the head when the chain is added).
    pub start_block: Option<i64>,
    /// Blocks per `eth_getLogs` call (default 2000; halved when a node refuses).
    pub batch_blocks: Option<i64>,
    /// The brand's own addresses: transfers from them count as "from the brand".
    #[serde(default)]
    pub brand_wallets: Vec<String>,
    pub enabled: Option<bool>,
}

/// Registers (or edits) a chain after asking the node which chain it serves.
pub async fn add_chain(store: &DynStore, input: ChainInput) -> Result<ChainRow, StoreError> {
    let Some(chain_num) = parse_caip2(&input.id) else {
        return Err(invalid(
            "id",
            "must be a CAIP-2 EVM chain id such as eip155:1",
        ));
    };
    if !(input.rpc_url.starts_with("http://") || input.rpc_url.starts_with("https://")) {
        return Err(invalid("rpc_url", "must be an http:// or https:// URL"));
    }
    let confirmations = input.confirmations.unwrap_or(12);
    if !(0..=1000).contains(&confirmations) {
        return Err(invalid("confirmations", "must be between 0 and 1000"));
    }
    let batch = input.batch_blocks.unwrap_or(2000);
    if !(1..=100_000).contains(&batch) {
        return Err(invalid("batch_blocks", "must be between 1 and 100000"));
    }
    let mut brand = Vec::new();
    for (i, w) in input.brand_wallets.iter().enumerate() {
        let a: Address = w
            .trim()
            .parse()
            .map_err(|_| invalid(&format!("brand_wallets[{i}]"), "not a 0x address"))?;
        brand.push(a.to_checksum(None));
    }
    let rpc = Rpc::new(&input.rpc_url);
    let served = rpc.chain_id().await.map_err(|e| {
        invalid(
            "rpc_url",
            format!("the node did not answer eth_chainId: {e}"),
        )
    })?;
    if served != chain_num {
        return Err(invalid(
            "id",
            format!("the node serves eip155:{served}, not {}", input.id),
        ));
    }
    let start = match input.start_block {
        Some(b) if b < 0 => return Err(invalid("start_block", "must be 0 or more")),
        Some(b) => b,
        None => rpc.block_number().await.map_err(rpc_err)? as i64,
    };
    let now = now_millis();
    let existing = store.chains().await?.into_iter().find(|c| c.id == input.id);
    let row = ChainRow {
        id: input.id.clone(),
        name: input.name.unwrap_or_else(|| input.id.clone()),
        rpc_url: input.rpc_url,
        confirmations,
        start_block: start,
        batch_blocks: batch,
        brand_wallets: brand,
        enabled: input.enabled.unwrap_or(true),
        cursor_block: existing.as_ref().and_then(|c| c.cursor_block),
        cursor_hash: existing.as_ref().and_then(|c| c.cursor_hash.clone()),
        head_block: None,
        synced_at: None,
        last_error: None,
        created_at: existing.as_ref().map_or(now, |c| c.created_at),
        updated_at: now,
    };
    store.upsert_chain(row).await?;
    chain(store, &input.id).await
}

/// Stops following a chain and forgets what was synced from it: its contracts, blocks,
/// logs and the holdings they gave people (announced, since holdings are part of a
/// person's standing).
pub async fn delete_chain(store: &DynStore, id: &str) -> Result<(), StoreError> {
    store.delete_chain(id).await?;
    crate::changes::announce(store, crate::changes::Change::Standing).await
}

pub async fn chain(store: &DynStore, id: &str) -> Result<ChainRow, StoreError> {
    store
        .chains()
        .await?
        .into_iter()
        .find(|c| c.id == id)
        .ok_or_else(|| StoreError::NotFound(format!("chain {id}")))
}

/// What `POST /api/chains/{id}/contracts` accepts.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContractInput {
    pub address: String,
    /// `erc20` or `erc721`.
    pub standard: String,
    pub symbol: String,
    pub name: Option<String>,
    /// Default 18 for ERC-20, 0 for ERC-721.
    pub decimals: Option<i64>,
    /// The brand's own token: its mints count as "from the brand".
    #[serde(default)]
    pub brand_owned: bool,
}

pub async fn add_contract(
    store: &DynStore,
    chain_id: &str,
    input: ContractInput,
) -> Result<ContractRow, StoreError> {
    chain(store, chain_id).await?;
    let a: Address = input
        .address
        .trim()
        .parse()
        .map_err(|_| invalid("address", "not a 0x contract address"))?;
    let standard = Standard::parse(&input.standard)
        .ok_or_else(|| invalid("standard", "must be erc20 or erc721"))?;
    let symbol = input.symbol.trim();
    if symbol.is_empty() || symbol.len() > 32 {
        return Err(invalid("symbol", "must be 1 to 32 characters"));
    }
    let decimals = input.decimals.unwrap_or(match standard {
        Standard::Erc20 => 18,
        Standard::Erc721 => 0,
    });
    if !(0..=36).contains(&decimals) {
        return Err(invalid("decimals", "must be between 0 and 36"));
    }
    let row = ContractRow {
        chain_id: chain_id.to_string(),
        address: a.to_checksum(None),
        standard: standard.as_str().to_string(),
        symbol: symbol.to_string(),
        name: input.name.unwrap_or_else(|| symbol.to_string()),
        decimals,
        brand_owned: input.brand_owned,
        created_at: now_millis(),
    };
    store.upsert_contract(row.clone()).await?;
    Ok(row)
}

/// A token named by symbol or contract address, on a chain when given.
pub async fn find_contract(
    store: &DynStore,
    token: &str,
    chain: Option<&str>,
) -> Result<ContractRow, StoreError> {
    let all = store.contracts().await?;
    let found: Vec<ContractRow> = all
        .into_iter()
        .filter(|c| chain.is_none_or(|ch| c.chain_id == ch))
        .filter(|c| c.symbol == token || c.address.eq_ignore_ascii_case(token))
        .collect();
    match found.len() {
        0 => Err(invalid(
            "token",
            format!(
                "no followed token is '{token}': add it with POST /api/chains/{{id}}/contracts"
            ),
        )),
        1 => Ok(found.into_iter().next().expect("one")),
        _ => Err(invalid(
            "token",
            format!("'{token}' is on several chains: name the chain"),
        )),
    }
}

/// What one sync call did.
#[derive(Debug, Default, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct SyncReport {
    pub chain: String,
    pub from_block: i64,
    pub to_block: i64,
    pub head: i64,
    pub logs: usize,
    pub events: usize,
    pub holdings: usize,
    /// Blocks rolled back by a re-org (0 when none).
    pub reorged_blocks: i64,
    pub retracted_logs: usize,
}

/// Per-chain state the worker keeps between steps.
struct Tokens {
    by_address: HashMap<Address, ContractRow>,
    brand: HashSet<Address>,
}

impl Tokens {
    fn new(chain: &ChainRow, contracts: Vec<ContractRow>) -> Self {
        Tokens {
            by_address: contracts
                .into_iter()
                .filter(|c| c.chain_id == chain.id)
                .filter_map(|c| Some((c.address.parse().ok()?, c)))
                .collect(),
            brand: chain
                .brand_wallets
                .iter()
                .filter_map(|w| w.parse().ok())
                .collect(),
        }
    }

    fn is_from_brand(&self, t: &Transfer) -> bool {
        self.brand.contains(&t.from)
            || (t.from.is_zero()
                && self
                    .by_address
                    .get(&t.contract)
                    .is_some_and(|c| c.brand_owned))
    }
}

fn signed_units(b: I256, decimals: u8) -> f64 {
    let v = abi::units(b.unsigned_abs(), decimals);
    if b.is_negative() {
        -v
    } else {
        v
    }
}

fn holding_row(chain: &str, c: &ContractRow, wallet: &str, h: &Holding, at: Millis) -> HoldingRow {
    let erc721 = c.standard == "erc721";
    let dec = if erc721 { 0 } else { c.decimals as u8 };
    HoldingRow {
        chain_id: chain.to_string(),
        contract: c.address.clone(),
        wallet: wallet.to_string(),
        symbol: c.symbol.clone(),
        standard: c.standard.clone(),
        balance: h.balance.to_string(),
        amount: signed_units(h.balance, dec),
        token_ids: h.token_ids.iter().map(U256::to_string).collect(),
        held_since: h.held_since,
        from_brand: h.from_brand.to_string(),
        from_brand_amount: abi::units(h.from_brand, dec),
        first_received_at: h.first_received_at,
        last_activity_at: h.last_activity_at,
        updated_at: at,
    }
}

fn holding_of(r: &HoldingRow) -> Holding {
    Holding {
        balance: r.balance.parse().unwrap_or_default(),
        token_ids: r
            .token_ids
            .iter()
            .filter_map(|t| U256::from_str_radix(t, 10).ok())
            .collect(),
        held_since: r.held_since,
        from_brand: U256::from_str_radix(&r.from_brand, 10).unwrap_or_default(),
        first_received_at: r.first_received_at,
        last_activity_at: r.last_activity_at,
    }
}

fn transfer_of(l: &LogRow) -> Option<Transfer> {
    let wallet = address_of;
    Some(Transfer {
        standard: Standard::parse(&l.standard)?,
        contract: l.contract.parse().ok()?,
        from: wallet(&l.from_wallet)?,
        to: wallet(&l.to_wallet)?,
        value: U256::from_str_radix(&l.value, 10).ok()?,
    })
}

/// The timeline event ids a log may have produced (both directions).
fn message_ids(chain: &str, tx: &str, index: i64) -> [String; 2] {
    [
        format!("chain:{chain}:{tx}:{index}:in"),
        format!("chain:{chain}:{tx}:{index}:out"),
    ]
}

/// Syncs one chain for up to `max_steps` block ranges. Returns what was done.
pub async fn sync_chain(
    store: &DynStore,
    chain_id: &str,
    max_steps: usize,
) -> Result<SyncReport, StoreError> {
    let c = chain(store, chain_id).await?;
    let tokens = Tokens::new(&c, store.contracts().await?);
    let rpc = Rpc::new(&c.rpc_url);
    let mut report = SyncReport {
        chain: c.id.clone(),
        ..Default::default()
    };
    if tokens.by_address.is_empty() {
        return Ok(report);
    }
    let head = match rpc.block_number().await {
        Ok(h) => h as i64,
        Err(e) => {
            store
                .set_chain_status(&c.id, None, Some(e.to_string()), now_millis())
                .await?;
            return Err(rpc_err(e));
        }
    };
    report.head = head;
    let mut cursor = match (c.cursor_block, c.cursor_hash.clone()) {
        (Some(b), Some(h)) => Some((b, h)),
        _ => None,
    };
    if let Some((b, h)) = &cursor {
        let now_hash = rpc
            .headers(&[*b as u64])
            .await
            .map_err(rpc_err)?
            .pop()
            .flatten()
            .map(|h| format!("{:#x}", h.hash));
        if now_hash.as_deref() != Some(h.as_str()) {
            let (ancestor, retracted) = rollback(store, &c, &tokens, &rpc).await?;
            report.reorged_blocks = b - ancestor.0;
            report.retracted_logs = retracted;
            cursor = (ancestor.0 >= c.start_block).then_some(ancestor);
        }
    }
    let target = head - c.confirmations;
    let mut from = cursor.as_ref().map_or(c.start_block, |(b, _)| b + 1);
    report.from_block = from;
    report.to_block = from - 1;
    let addresses: Vec<Address> = tokens.by_address.keys().copied().collect();
    let mut span = c.batch_blocks.max(1);
    let mut steps = 0;
    while from <= target && steps < max_steps {
        let to = (from + span - 1).min(target);
        let logs = match rpc
            .get_logs(from as u64, to as u64, &addresses, abi::transfer_topic())
            .await
        {
            Ok(l) => l,
            // Providers cap results per call: ask for fewer blocks.
            Err(RpcError::Node { .. }) if to > from => {
                span = ((to - from + 1) / 2).max(1);
                continue;
            }
            Err(e) => {
                store
                    .set_chain_status(&c.id, Some(head), Some(e.to_string()), now_millis())
                    .await?;
                return Err(rpc_err(e));
            }
        };
        let step = step(store, &c, &tokens, &rpc, to, head, logs).await?;
        let Some(step) = step else {
            // The node changed under us mid-step (a re-org): the next call sorts it out.
            break;
        };
        report.logs += step.logs;
        report.events += step.events;
        report.holdings += step.holdings;
        report.to_block = to;
        from = to + 1;
        steps += 1;
    }
    if steps == 0 {
        store
            .set_chain_status(&c.id, Some(head), None, now_millis())
            .await?;
    }
    Ok(report)
}

struct StepDone {
    logs: usize,
    events: usize,
    holdings: usize,
}

#[allow(clippy::too_many_arguments)]
async fn step(
    store: &DynStore,
    c: &ChainRow,
    tokens: &Tokens,
    rpc: &Rpc,
    to: i64,
    head: i64,
    mut logs: Vec<abi::Log>,
) -> Result<Option<StepDone>, StoreError> {
    logs.retain(|l| !l.removed);
    logs.sort_by_key(|l| (l.block_number, l.log_index));
    let mut numbers: BTreeSet<u64> = logs.iter().map(|l| l.block_number).collect();
    numbers.insert(to as u64);
    let numbers: Vec<u64> = numbers.into_iter().collect();
    let headers = rpc.headers(&numbers).await.map_err(rpc_err)?;
    let mut blocks = HashMap::new();
    for (n, h) in numbers.iter().zip(headers) {
        let Some(h) = h else { return Ok(None) };
        blocks.insert(*n, h);
    }
    if logs
        .iter()
        .any(|l| blocks[&l.block_number].hash != l.block_hash)
    {
        return Ok(None);
    }
    let now = now_millis();
    // Decode, and gather the wallets and holdings touched.
    let mut transfers = Vec::with_capacity(logs.len());
    let mut keys: BTreeSet<(Address, Address)> = BTreeSet::new();
    for l in &logs {
        let Some(t) = decode_transfer(l) else {
            continue;
        };
        if !tokens.by_address.contains_key(&t.contract) {
            continue;
        }
        for w in [t.from, t.to] {
            if !w.is_zero() {
                keys.insert((t.contract, w));
            }
        }
        let at = blocks[&l.block_number].timestamp as i64 * 1000;
        transfers.push((l, t, at));
    }
    let key_strings: Vec<(String, String)> = keys
        .iter()
        .map(|(ct, w)| (ct.to_checksum(None), caip10(&c.id, w)))
        .collect();
    let mut book: Book = HashMap::new();
    for r in store.holdings_get(&c.id, key_strings.clone()).await? {
        if let (Ok(ct), Some(w)) = (r.contract.parse::<Address>(), address_of(&r.wallet)) {
            book.insert((ct, w), holding_of(&r));
        }
    }
    for (_, t, at) in &transfers {
        ledger::apply(&mut book, t, *at, tokens.is_from_brand(t));
    }
    // Owners of the wallets touched.
    let wallets: Vec<Address> = keys
        .iter()
        .map(|k| k.1)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let idents: Vec<IdentityKey> = wallets
        .iter()
        .filter_map(|w| IdentityKey::parse(IdentityKind::Wallet, &caip10(&c.id, w)).ok())
        .collect();
    let owners: HashMap<String, i64> = idents
        .iter()
        .zip(store.lookup_many(idents.clone()).await?)
        .filter_map(|(k, p)| Some((k.value.clone(), p?)))
        .collect();
    let mut rows = Vec::with_capacity(transfers.len());
    let mut events = Vec::new();
    let batch = BatchContext {
        received_at: now,
        ..Default::default()
    };
    for (l, t, at) in &transfers {
        let contract = &tokens.by_address[&t.contract];
        let (from_w, to_w) = (caip10(&c.id, &t.from), caip10(&c.id, &t.to));
        let tx = format!("{:#x}", l.tx_hash);
        rows.push(LogRow {
            chain_id: c.id.clone(),
            tx_hash: tx.clone(),
            log_index: l.log_index as i64,
            block_number: l.block_number as i64,
            block_hash: format!("{:#x}", l.block_hash),
            contract: contract.address.clone(),
            standard: contract.standard.clone(),
            from_wallet: from_w.clone(),
            to_wallet: to_w.clone(),
            value: t.value.to_string(),
            occurred_at: *at,
            removed: false,
        });
        let ids = message_ids(&c.id, &tx, l.log_index as i64);
        for (dir, wallet, mid) in [("in", &to_w, &ids[0]), ("out", &from_w, &ids[1])] {
            let Some(profile) = owners.get(wallet.as_str()) else {
                continue;
            };
            let erc721 = t.standard == Standard::Erc721;
            let amount = if erc721 {
                json!(1.0)
            } else {
                // Past 10^18 units a number would be refused (sums must stay finite):
                // such an amount goes as text, like `raw_amount`.
                let units = abi::units(t.value, contract.decimals as u8);
                if units.abs() <= rapport_domain::message::MAX_DECIMAL {
                    json!(units)
                } else {
                    json!(units.to_string())
                }
            };
            let mut props = json!({
                "chain": c.id, "chain_id": parse_caip2(&c.id), "contract": contract.address,
                "symbol": contract.symbol, "standard": contract.standard,
                "from": from_w, "to": to_w, "amount": amount,
                "tx_hash": tx, "block_number": l.block_number, "log_index": l.log_index,
                "direction": dir, "from_brand": tokens.is_from_brand(t),
            });
            if erc721 {
                props["token_id"] = json!(t.value.to_string());
            } else {
                props["raw_amount"] = json!(t.value.to_string());
            }
            let name = if dir == "in" {
                "Token Received"
            } else {
                "Token Sent"
            };
            let msg = json!({"type": "track", "userId": format!("rapport-profile-{profile}"), "event": name,
                "properties": props, "context": {"channel": "onchain"}, "timestamp": to_datetime(*at).to_rfc3339()});
            let m = parse_message(&msg, "", None, &batch, || mid.clone())
                .map_err(|e| StoreError::Backend(format!("on-chain event: {e}")))?;
            events.push(EventRow {
                profile_id: *profile,
                message: m,
            });
        }
    }
    let holdings: Vec<HoldingRow> = keys
        .iter()
        .filter_map(|k| {
            let h = book.get(k)?;
            let contract = tokens.by_address.get(&k.0)?;
            Some(holding_row(&c.id, contract, &caip10(&c.id, &k.1), h, now))
        })
        .collect();
    let done = StepDone {
        logs: rows.len(),
        events: events.len(),
        holdings: holdings.len(),
    };
    let mut block_rows: Vec<(i64, String, i64)> = blocks
        .values()
        .map(|h| {
            (
                h.number as i64,
                format!("{:#x}", h.hash),
                h.timestamp as i64 * 1000,
            )
        })
        .collect();
    block_rows.sort();
    let cursor_hash = format!("{:#x}", blocks[&(to as u64)].hash);
    store
        .apply_chain_batch(ChainBatch {
            chain_id: c.id.clone(),
            logs: rows,
            holdings,
            blocks: block_rows,
            cursor: (to, cursor_hash),
            head,
            events,
            at: now,
        })
        .await?;
    if done.holdings > 0 {
        crate::changes::announce(store, crate::changes::Change::Standing).await?;
    }
    Ok(Some(done))
}

/// Finds the last block both the node and Rapport agree on and undoes everything
/// after it. Returns the ancestor and how many logs were retracted.
async fn rollback(
    store: &DynStore,
    c: &ChainRow,
    tokens: &Tokens,
    rpc: &Rpc,
) -> Result<((i64, String), usize), StoreError> {
    let known = store.chain_blocks(&c.id, 2048).await?;
    let mut ancestor = (c.start_block - 1, String::new());
    for chunk in known.chunks(128) {
        let numbers: Vec<u64> = chunk.iter().map(|(n, _)| *n as u64).collect();
        let headers = rpc.headers(&numbers).await.map_err(rpc_err)?;
        if let Some((n, h)) = chunk.iter().zip(headers).find_map(|((n, h), node)| {
            node.filter(|x| format!("{:#x}", x.hash) == *h)
                .map(|_| (*n, h.clone()))
        }) {
            ancestor = (n, h);
            break;
        }
    }
    let gone = store.chain_logs_after(&c.id, ancestor.0).await?;
    let mut keys: BTreeSet<(String, String)> = BTreeSet::new();
    let mut retract = Vec::new();
    for l in &gone {
        for w in [&l.from_wallet, &l.to_wallet] {
            if !w.ends_with(":0x0000000000000000000000000000000000000000") {
                keys.insert((l.contract.clone(), w.clone()));
            }
        }
        retract.extend(message_ids(&c.id, &l.tx_hash, l.log_index));
    }
    let keys: Vec<(String, String)> = keys.into_iter().collect();
    // Replay what survives for every holding the retracted logs touched.
    let kept = store
        .chain_logs_for(&c.id, keys.clone(), ancestor.0)
        .await?;
    let mut book: Book = HashMap::new();
    for l in &kept {
        if let Some(t) = transfer_of(l) {
            ledger::apply(&mut book, &t, l.occurred_at, tokens.is_from_brand(&t));
        }
    }
    let now = now_millis();
    let holdings = keys
        .iter()
        .filter_map(|(ct, w)| {
            let contract = tokens.by_address.get(&ct.parse::<Address>().ok()?)?;
            let addr = address_of(w)?;
            let h = book
                .get(&(contract.address.parse().ok()?, addr))
                .cloned()
                .unwrap_or_default();
            Some(holding_row(&c.id, contract, w, &h, now))
        })
        .collect();
    tracing::warn!(chain = %c.id, ancestor = ancestor.0, retracted = gone.len(), "re-org: rolled back to the last common block");
    store
        .rollback_chain(ChainRollback {
            chain_id: c.id.clone(),
            ancestor: ancestor.clone(),
            holdings,
            retract_message_ids: retract,
            at: now,
        })
        .await?;
    // Events left the history: the engine reads everyone whole again.
    crate::changes::announce(store, crate::changes::Change::Retracted).await?;
    Ok((ancestor, gone.len()))
}

/// Follows every enabled chain: a step every `every` while caught up, at once while
/// back-filling.
pub async fn run(
    store: DynStore,
    every: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let step = async {
            let mut n = 0;
            for c in store.chains().await? {
                if !c.enabled {
                    continue;
                }
                match sync_chain(&store, &c.id, 10).await {
                    Ok(r) => n += (r.to_block - r.from_block + 1).max(0) as usize,
                    Err(e) => tracing::warn!(chain = %c.id, error = %e, "chain sync failed"),
                }
            }
            Ok::<usize, StoreError>(n)
        }
        .await;
        if !crate::worker::pause_after(
            "chain sync",
            step,
            every,
            Duration::from_millis(10),
            &mut shutdown,
        )
        .await
        {
            return;
        }
    }
}

/// A person's holdings, for the profile view.
pub async fn profile_holdings(
    store: &DynStore,
    id: rapport_domain::resolve::ProfileId,
) -> Result<Value, StoreError> {
    let view = store.profile(id).await?;
    let wallets: Vec<(String, bool)> = view
        .identities
        .iter()
        .filter(|i| i.kind == IdentityKind::Wallet)
        .map(|i| (i.value.clone(), i.verified))
        .collect();
    let chains = store.chains().await?;
    let holdings = if wallets.is_empty() {
        Vec::new()
    } else {
        store
            .wallet_holdings(wallets.iter().map(|w| w.0.clone()).collect())
            .await?
    };
    let mut out = json!({
        "profile_id": view.id,
        "wallets": wallets.iter().map(|(w, v)| json!({"wallet": w, "verified": v})).collect::<Vec<_>>(),
        "holdings": holdings,
    });
    if chains.is_empty() {
        out["note"] =
            json!("no chain is configured: add one with POST /api/chains to follow holdings");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_amounts() {
        assert_eq!(
            signed_units(I256::try_from(-1_500_000i64).unwrap(), 6),
            -1.5
        );
        assert_eq!(signed_units(I256::try_from(2i64).unwrap(), 0), 2.0);
    }
}
