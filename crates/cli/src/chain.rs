//! `rapport chain …` and `rapport rewards …`: the on-chain side from the command line,
//! on the same services as the API.

use anyhow::{bail, Result};
use clap::Subcommand;
use rapport_app::chain::{ChainInput, ContractInput};
use rapport_app::rewards::{self, RewardInput, Rewards};
use rapport_chain::wallet::HotWallet;
use std::time::{Duration, Instant};

use crate::StoreArgs;

#[derive(Subcommand)]
pub enum ChainCommand {
    /// Follow an EVM chain (or edit it): the node is asked which chain it serves.
    Add {
        #[command(flatten)]
        store: StoreArgs,
        /// CAIP-2 id, e.g. eip155:1.
        #[arg(long)]
        id: String,
        /// JSON-RPC URL (kept secret).
        #[arg(long, env = "RAPPORT_RPC_URL", hide_env_values = true)]
        rpc_url: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        confirmations: Option<i64>,
        /// First block to back-fill from (default: the current head).
        #[arg(long)]
        start_block: Option<i64>,
        /// The brand's own addresses (repeat).
        #[arg(long = "brand-wallet")]
        brand_wallets: Vec<String>,
    },
    /// Follow a token contract on a chain.
    Contract {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        chain: String,
        #[arg(long)]
        address: String,
        /// erc20 or erc721.
        #[arg(long)]
        standard: String,
        #[arg(long)]
        symbol: String,
        #[arg(long)]
        decimals: Option<i64>,
        /// The brand's own token (its mints count as "from the brand").
        #[arg(long)]
        brand_owned: bool,
    },
    /// Sync a chain now and print what was done.
    Sync {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        chain: String,
        #[arg(long, default_value_t = 1000)]
        steps: usize,
    },
    /// The chains followed and where their sync stands.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Subcommand)]
pub enum RewardsCommand {
    /// Ask for a token reward; with --hot-wallet-key, send it and wait for confirmation.
    Send {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        profile: i64,
        /// Symbol or contract address.
        #[arg(long)]
        token: String,
        /// Whole units.
        #[arg(long)]
        amount: String,
        #[arg(long)]
        chain: Option<String>,
        /// transfer or mint.
        #[arg(long)]
        kind: Option<String>,
        /// The same key never pays twice.
        #[arg(long)]
        idempotency_key: Option<String>,
        /// file:/path or env:NAME holding the hot wallet's private key.
        #[arg(long, env = "RAPPORT_HOT_WALLET_KEY", hide_env_values = true)]
        hot_wallet_key: Option<String>,
    },
    /// Rewards, newest first.
    List {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        status: Option<String>,
    },
    /// Queue a failed reward again.
    Retry {
        #[command(flatten)]
        store: StoreArgs,
        id: i64,
    },
}

fn print<T: serde::Serialize>(v: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

pub async fn chain(cmd: ChainCommand) -> Result<()> {
    match cmd {
        ChainCommand::Add {
            store,
            id,
            rpc_url,
            name,
            confirmations,
            start_block,
            brand_wallets,
        } => {
            let s = store.open().await?;
            let c = rapport_app::chain::add_chain(
                &s,
                ChainInput {
                    id,
                    name,
                    rpc_url,
                    confirmations,
                    start_block,
                    batch_blocks: None,
                    brand_wallets,
                    enabled: None,
                },
            )
            .await?;
            print(&c)
        }
        ChainCommand::Contract {
            store,
            chain,
            address,
            standard,
            symbol,
            decimals,
            brand_owned,
        } => {
            let s = store.open().await?;
            let c = rapport_app::chain::add_contract(
                &s,
                &chain,
                ContractInput {
                    address,
                    standard,
                    symbol,
                    name: None,
                    decimals,
                    brand_owned,
                },
            )
            .await?;
            print(&c)
        }
        ChainCommand::Sync {
            store,
            chain,
            steps,
        } => {
            let s = store.open().await?;
            print(&rapport_app::chain::sync_chain(&s, &chain, steps).await?)
        }
        ChainCommand::List { store } => {
            let s = store.open().await?;
            let chains = s.chains().await?;
            if chains.is_empty() {
                eprintln!("no chain is configured: rapport chain add --id eip155:N --rpc-url URL");
            }
            print(&chains)
        }
    }
}

pub async fn rewards_cmd(cmd: RewardsCommand) -> Result<()> {
    match cmd {
        RewardsCommand::Send {
            store,
            profile,
            token,
            amount,
            chain,
            kind,
            idempotency_key,
            hot_wallet_key,
        } => {
            let s = store.open().await?;
            let (mut r, created) = rewards::request(
                &s,
                RewardInput {
                    profile_id: profile,
                    token,
                    chain,
                    amount,
                    kind,
                    idempotency_key,
                },
                "cli",
            )
            .await?;
            if !created {
                eprintln!("a reward with this idempotency key exists already: nothing new is paid");
            }
            if let Some(spec) = hot_wallet_key {
                let service = Rewards::default();
                service.set_hot_wallet(Some(HotWallet::load(&spec)?));
                let start = Instant::now();
                while !matches!(r.status.as_str(), "confirmed" | "failed") {
                    if start.elapsed() > Duration::from_secs(300) {
                        bail!("reward {} is still {} after 5 minutes", r.id, r.status);
                    }
                    rewards::step(&s, &service).await?;
                    r = s.reward(r.id).await?;
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            }
            print(&r)?;
            if r.status == "failed" {
                bail!(
                    "reward {} failed: {}",
                    r.id,
                    r.last_error.unwrap_or_default()
                );
            }
            Ok(())
        }
        RewardsCommand::List { store, status } => {
            let s = store.open().await?;
            print(&s.rewards(status, 100).await?)
        }
        RewardsCommand::Retry { store, id } => {
            let s = store.open().await?;
            print(&rewards::retry(&s, id).await?)
        }
    }
}
