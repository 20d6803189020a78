//! `rapport email …`: set up a sending domain, save templates, send, list messages and
//! suppressions, make and steer campaigns — on the database directly, as the API does.
//! The workers of a running `rapport serve` plan campaigns and hand queued messages to
//! the relay.

use crate::StoreArgs;
use anyhow::{Context, Result};
use clap::Subcommand;
use rapport_app::email::campaigns::{self, AbInput, CampaignInput};
use rapport_app::email::{Email, SendRequest};
use rapport_email::template::Source;
use rapport_store::MessageQuery;
use serde_json::{json, Value};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum EmailCommand {
    /// Set up a sending domain; prints the DKIM TXT records to publish.
    Domain {
        #[command(flatten)]
        store: StoreArgs,
        domain: String,
        /// Keys to make: ed25519, rsa (default both).
        #[arg(long, value_delimiter = ',')]
        keys: Option<Vec<String>>,
    },
    /// Save a template (a new one, or replace the one with this name).
    Template {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        name: String,
        #[arg(long)]
        subject: String,
        /// File holding the HTML part.
        #[arg(long)]
        html: PathBuf,
        /// File holding the text part (derived from the HTML when absent).
        #[arg(long)]
        text: Option<PathBuf>,
    },
    /// Send one message (queued now; `rapport serve` delivers it).
    Send {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        template: String,
        /// `email:<address>` or a profile id.
        #[arg(long)]
        to: String,
        #[arg(long)]
        from: String,
        /// JSON object of template data.
        #[arg(long, default_value = "{}")]
        data: String,
        #[arg(long, default_value = "transactional")]
        kind: String,
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Latest messages (JSON Lines).
    Messages {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Suppressed addresses (JSON Lines).
    Suppressions {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Campaigns: make, list, show, and start, pause, resume or cancel one.
    Campaign {
        #[command(subcommand)]
        cmd: CampaignCommand,
    },
}

#[derive(Subcommand)]
pub enum CampaignCommand {
    /// Make a campaign (a draft unless `--start` or `--send-at`).
    Create {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        name: String,
        #[arg(long)]
        template: String,
        #[arg(long)]
        from: String,
        /// The audience: a segment (name or id), evaluated when the campaign starts…
        #[arg(
            long,
            conflicts_with = "profiles",
            required_unless_present = "profiles"
        )]
        segment: Option<String>,
        /// …or a list of profile ids.
        #[arg(long, value_delimiter = ',')]
        profiles: Option<Vec<i64>>,
        #[arg(long, default_value = "marketing")]
        kind: String,
        /// Messages per minute handed to the relay.
        #[arg(long)]
        per_minute: Option<i64>,
        /// ISO-8601 start time.
        #[arg(long)]
        send_at: Option<String>,
        #[arg(long)]
        start: bool,
        /// An A/B test as JSON: `{"variants": [{"subject": …}, {"template": …}],
        /// "sample_percent": 20, "metric": "open", "wait_seconds": 14400}`.
        #[arg(long)]
        ab: Option<String>,
    },
    /// All campaigns (JSON Lines).
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// One campaign with its report.
    Show {
        #[command(flatten)]
        store: StoreArgs,
        id: i64,
    },
    /// Start, pause, resume or cancel a campaign.
    Act {
        #[command(flatten)]
        store: StoreArgs,
        id: i64,
        #[arg(value_parser = ["start", "pause", "resume", "cancel"])]
        action: String,
    },
}

fn field_error(e: rapport_store::StoreError) -> anyhow::Error {
    match e {
        rapport_store::StoreError::Invalid { field, reason } => {
            // The API's `audience.segment` is the CLI's `--segment`.
            let flag = field.strip_prefix("audience.").unwrap_or(&field);
            anyhow::anyhow!("--{}: {reason}", flag.replace('_', "-"))
        }
        other => other.into(),
    }
}

pub async fn run(cmd: EmailCommand) -> Result<()> {
    match cmd {
        EmailCommand::Domain {
            store,
            domain,
            keys,
        } => {
            let s = store.open().await?;
            let d = Email::new(s)
                .add_domain(&domain, keys.as_deref())
                .await
                .map_err(field_error)?;
            for k in &d.keys {
                println!(
                    "{}",
                    json!({"domain": d.domain, "algorithm": k.algorithm, "dns_name": format!("{}._domainkey.{}", k.selector, d.domain), "dns_txt": format!("v=DKIM1; k={}; p={}", k.algorithm, k.public_key)})
                );
            }
        }
        EmailCommand::Template {
            store,
            name,
            subject,
            html,
            text,
        } => {
            let s = store.open().await?;
            let read = |p: &PathBuf| {
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))
            };
            let src = Source {
                subject,
                html: read(&html)?,
                text: text.as_ref().map(read).transpose()?,
            };
            let id = s.template(&name).await?.map_or(0, |t| t.id);
            let t = Email::new(s)
                .save_template(id, &name, src)
                .await
                .map_err(field_error)?;
            println!("{}", json!({"id": t.id, "name": t.name}));
        }
        EmailCommand::Send {
            store,
            template,
            to,
            from,
            data,
            kind,
            idempotency_key,
        } => {
            let s = store.open().await?;
            let data: Value = serde_json::from_str(&data).context("--data: not JSON")?;
            let to = to.parse::<i64>().map_or(json!(to), |id| json!(id));
            let m = Email::new(s)
                .send(SendRequest {
                    template,
                    to,
                    from,
                    from_name: None,
                    data,
                    idempotency_key,
                    kind: Some(kind),
                    not_before: None,
                    untracked: false,
                    thread: None,
                })
                .await
                .map_err(field_error)?;
            println!(
                "{}",
                json!({"id": m.public_id, "status": m.status, "to": m.to_address, "reason": m.last_error})
            );
        }
        EmailCommand::Messages {
            store,
            status,
            limit,
        } => {
            let s = store.open().await?;
            for m in s
                .messages(MessageQuery {
                    profile: None,
                    status,
                    limit: limit.clamp(1, 10_000),
                })
                .await?
            {
                println!("{}", serde_json::to_string(&m)?);
            }
        }
        EmailCommand::Suppressions { store } => {
            let s = store.open().await?;
            for x in s.suppressions(100_000).await? {
                println!("{}", serde_json::to_string(&x)?);
            }
        }
        EmailCommand::Campaign { cmd } => campaign(cmd).await?,
    }
    Ok(())
}

async fn campaign(cmd: CampaignCommand) -> Result<()> {
    match cmd {
        CampaignCommand::Create {
            store,
            name,
            template,
            from,
            segment,
            profiles,
            kind,
            per_minute,
            send_at,
            start,
            ab,
        } => {
            let ab: Option<AbInput> = ab
                .map(|a| serde_json::from_str(&a))
                .transpose()
                .context("--ab")?;
            let audience = match (segment, profiles) {
                (Some(s), _) => json!({"segment": s}),
                (None, p) => json!({"profiles": p.unwrap_or_default()}),
            };
            let email = Email::new(store.open().await?);
            let c = campaigns::create(
                &email,
                CampaignInput {
                    name,
                    template,
                    from,
                    from_name: None,
                    kind: Some(kind),
                    audience,
                    send_at,
                    per_minute,
                    start,
                    ab,
                },
            )
            .await
            .map_err(field_error)?;
            println!("{}", serde_json::to_string(&c)?);
        }
        CampaignCommand::List { store } => {
            for c in store.open().await?.campaigns().await? {
                println!("{}", serde_json::to_string(&c)?);
            }
        }
        CampaignCommand::Show { store, id } => {
            let email = Email::new(store.open().await?);
            println!("{}", campaigns::view(&email, id).await?);
        }
        CampaignCommand::Act { store, id, action } => {
            let email = Email::new(store.open().await?);
            let c = campaigns::act(&email, id, &action).await?;
            println!("{}", serde_json::to_string(&c)?);
        }
    }
    Ok(())
}
