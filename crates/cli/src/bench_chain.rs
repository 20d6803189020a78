//! `rapport bench chain`: back-fill of ERC-20 `Transfer` logs from a local EVM node.
//! The node (ganache, from npm) is started, `contracts/TransferEmitter.sol` compiled and
//! deployed, and `--logs` ERC-20 `Transfer` logs (mints) emitted in batches (`--per-tx`
//! per transaction; the emitter skips storage, which ganache executes slowly) to a pool
//! of wallets, half of them customers'. Then Rapport
//! syncs the chain from block 0 — logs, holdings, timeline events, cursor — and, in the
//! same run, the node alone is timed answering the same `eth_getLogs` and header calls,
//! so the report separates the node's share from Rapport's.

use anyhow::{anyhow, Result};
use rapport_chain::abi;
use rapport_chain::devnode::{compile, DevNode};
use rapport_chain::{caip10, Address, U256};
use rapport_domain::message::{parse_message, BatchContext};
use rapport_domain::time::now_millis;
use rapport_store::SourcedMessages;
use serde_json::json;
use std::collections::BTreeSet;
use std::time::Instant;

#[derive(clap::Args)]
pub struct ChainBench {
    /// Transfer logs to back-fill.
    #[arg(long, default_value_t = 100_000)]
    logs: usize,
    /// Logs per airdrop transaction.
    #[arg(long, default_value_t = 1_000)]
    per_tx: usize,
    /// Distinct recipient wallets.
    #[arg(long, default_value_t = 20_000)]
    wallets: usize,
    /// Blocks per eth_getLogs call (the chain's batch_blocks).
    #[arg(long, default_value_t = 2_000)]
    batch_blocks: i64,
    /// PostgreSQL URL; SQLite in a temporary directory when absent.
    #[arg(long, env = "RAPPORT_BENCH_DATABASE_URL")]
    database_url: Option<String>,
    #[arg(long)]
    json: bool,
}

pub async fn run(a: ChainBench) -> Result<()> {
    let node = DevNode::start().await.map_err(|e| anyhow!(e))?;
    let art = compile().map_err(|e| anyhow!(e))?;
    let owner = DevNode::wallet(0);
    let token = node
        .deploy(&owner, art["TransferEmitter"].bytecode.clone(), &[])
        .await
        .map_err(|e| anyhow!(e))?;
    let pool: Vec<Address> = (0..a.wallets)
        .map(|i| {
            let mut b = [0u8; 20];
            b[..8].copy_from_slice(&(i as u64 + 1).to_be_bytes());
            b[19] = 0x5a;
            Address::from(b)
        })
        .collect();
    eprintln!("making {} Transfer logs on the node…", a.logs);
    let t0 = Instant::now();
    let mut made = 0;
    let mut k = 0;
    while made < a.logs {
        let n = a.per_tx.min(a.logs - made);
        let to: Vec<Address> = (0..n).map(|j| pool[(k + j * 7919) % pool.len()]).collect();
        k += n;
        node.transact(
            &owner,
            token,
            abi::emit_transfers(&to, U256::from(1_000u64)),
        )
        .await
        .map_err(|e| anyhow!(e))?;
        made += n;
    }
    let head = node.rpc.block_number().await?;
    eprintln!(
        "{} logs in {} blocks made in {:.1} s",
        made,
        head,
        t0.elapsed().as_secs_f64()
    );

    // The node alone: the same eth_getLogs ranges and header batches Rapport asks for.
    let t0 = Instant::now();
    let mut from = 0u64;
    let mut fetched = 0;
    while from <= head {
        let to = (from + a.batch_blocks as u64 - 1).min(head);
        let logs = node
            .rpc
            .get_logs(from, to, &[token], abi::transfer_topic())
            .await?;
        let mut blocks: BTreeSet<u64> = logs.iter().map(|l| l.block_number).collect();
        blocks.insert(to);
        node.rpc
            .headers(&blocks.into_iter().collect::<Vec<_>>())
            .await?;
        fetched += logs.len();
        from = to + 1;
    }
    let node_s = t0.elapsed().as_secs_f64();

    let target = crate::bench::fresh_target(a.database_url.as_deref(), "chain").await?;
    let store = target.store.clone();
    // Half the wallets are customers'.
    let chain = format!("eip155:{}", rapport_chain::devnode::CHAIN_ID);
    let batch = BatchContext {
        received_at: now_millis(),
        ..Default::default()
    };
    let mut msgs = Vec::new();
    for (i, w) in pool.iter().enumerate().filter(|(i, _)| i % 2 == 0) {
        let m = json!({"type": "identify", "userId": format!("u{i}"), "traits": {"wallet": caip10(&chain, w)}});
        msgs.push(parse_message(&m, "", None, &batch, || format!("w{i}"))?);
    }
    let customers = msgs.len();
    for chunk in msgs.chunks(5_000) {
        store
            .ingest(vec![SourcedMessages {
                source: "bench".into(),
                messages: chunk.to_vec(),
            }])
            .await?;
    }
    rapport_app::chain::add_chain(
        &store,
        rapport_app::chain::ChainInput {
            id: chain.clone(),
            name: None,
            rpc_url: node.url.clone(),
            confirmations: Some(0),
            start_block: Some(0),
            batch_blocks: Some(a.batch_blocks),
            brand_wallets: vec![owner.address().to_string()],
            enabled: None,
        },
    )
    .await?;
    rapport_app::chain::add_contract(
        &store,
        &chain,
        rapport_app::chain::ContractInput {
            address: token.to_string(),
            standard: "erc20".into(),
            symbol: "BNCH".into(),
            name: None,
            decimals: Some(0),
            brand_owned: true,
        },
    )
    .await?;
    eprintln!("back-filling into {}…", target.kind);
    let t0 = Instant::now();
    let report = rapport_app::chain::sync_chain(&store, &chain, usize::MAX).await?;
    let total_s = t0.elapsed().as_secs_f64();
    // Holdings are written with each step: the sync's end is the time to holdings.
    let sample = store
        .holders(&chain, &token.to_checksum(None), 1)
        .await?
        .into_iter()
        .next();
    let stats = store.stats().await?;
    let rapport_s = (total_s - node_s).max(1e-9);
    let out = json!({
        "store": target.kind,
        "logs": report.logs,
        "blocks": head,
        "customers": customers,
        "timeline_events": report.events,
        "holdings": report.holdings,
        "node_only_s": node_s,
        "node_logs_per_s": fetched as f64 / node_s,
        "total_s": total_s,
        "logs_per_s": report.logs as f64 / total_s,
        "rapport_share_s": rapport_s,
        "rapport_logs_per_s": report.logs as f64 / rapport_s,
        "time_to_holdings_s": total_s,
        "top_holder": sample.map(|h| json!({"wallet": h.wallet, "amount": h.amount})),
        "events_stored": stats.events,
    });
    eprintln!(
        "{} logs: {:.2} s in all ({:.0} logs/s); the node alone {:.2} s; Rapport's share {:.2} s ({:.0} logs/s); {} timeline events, {} holdings",
        report.logs, total_s, report.logs as f64 / total_s, node_s, rapport_s, report.logs as f64 / rapport_s, report.events, report.holdings
    );
    if a.json {
        println!("{out}");
    }
    target.cleanup().await;
    Ok(())
}
