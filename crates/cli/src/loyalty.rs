//! `rapport loyalty …`: a person's points, staff adjustments, and the ledger exported as
//! CSV (for the books: every entry of everyone, oldest first).

use anyhow::Result;
use clap::Subcommand;
use rapport_app::loyalty::{self, AdjustInput};
use serde_json::json;

use crate::StoreArgs;

#[derive(Subcommand)]
pub enum LoyaltyCommand {
    /// A person's points, tier, lots and latest entries (JSON).
    Show {
        #[command(flatten)]
        store: StoreArgs,
        profile: i64,
    },
    /// Add points (positive) or take them (negative), with a reason.
    Adjust {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        profile: i64,
        #[arg(long, allow_hyphen_values = true)]
        points: i64,
        #[arg(long)]
        reason: String,
        /// The same key never adjusts twice.
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Write off expired points now.
    Expire {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// The ledger of these people (or one person) as CSV on stdout.
    Export {
        #[command(flatten)]
        store: StoreArgs,
        /// Profile ids (a person's members are included); each person's whole ledger.
        #[arg(long, required = true, num_args = 1..)]
        profile: Vec<i64>,
    },
}

pub async fn run(cmd: LoyaltyCommand) -> Result<()> {
    match cmd {
        LoyaltyCommand::Show { store, profile } => {
            let s = store.open().await?;
            let v = loyalty::view(&s, profile, 50).await?;
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        LoyaltyCommand::Adjust {
            store,
            profile,
            points,
            reason,
            idempotency_key,
        } => {
            let s = store.open().await?;
            let input = AdjustInput {
                profile_id: profile,
                points: json!(points),
                reason,
                expires_days: None,
                idempotency_key,
            };
            let (e, created) = loyalty::adjust(&s, input, "cli").await?;
            if !created {
                eprintln!(
                    "an adjustment with this idempotency key exists already: nothing changed"
                );
            }
            println!("{}", serde_json::to_string(&e)?);
        }
        LoyaltyCommand::Expire { store } => {
            let s = store.open().await?;
            let mut lots = 0;
            loop {
                let now = rapport_domain::time::now_millis();
                let n = loyalty::expire_step(&s, now, loyalty::EXPIRY_BATCH).await?;
                lots += n;
                if n < loyalty::EXPIRY_BATCH {
                    break;
                }
            }
            println!("{}", json!({ "lots": lots }));
        }
        LoyaltyCommand::Export { store, profile } => {
            let s = store.open().await?;
            let mut w = csv::Writer::from_writer(std::io::stdout());
            w.write_record([
                "entry",
                "profile_id",
                "kind",
                "points",
                "at",
                "order",
                "reason",
                "source",
                "key",
            ])?;
            for p in profile {
                let members = loyalty::members(&s, p).await?;
                let mut before = None;
                let mut all = Vec::new();
                loop {
                    let page = s.entries(&members, before, 1_000).await?;
                    let Some(last) = page.last() else { break };
                    before = Some(last.id);
                    all.extend(page);
                }
                for e in all.iter().rev() {
                    w.write_record([
                        e.id.to_string(),
                        e.profile_id.to_string(),
                        e.kind.clone(),
                        e.amount.to_string(),
                        rapport_domain::time::to_datetime(e.at).to_rfc3339(),
                        e.order.clone().unwrap_or_default(),
                        e.reason.clone().unwrap_or_default(),
                        e.source.clone(),
                        e.idempotency_key.clone(),
                    ])?;
                }
            }
            w.flush()?;
        }
    }
    Ok(())
}
