//! `rapport email …`: set up a sending domain, save templates, send, list messages and
//! suppressions — on the database directly, as the API does. The delivery worker of a
//! running `rapport serve` hands queued messages to the relay.

use crate::StoreArgs;
use anyhow::{Context, Result};
use clap::Subcommand;
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
}

fn field_error(e: rapport_store::StoreError) -> anyhow::Error {
    match e {
        rapport_store::StoreError::Invalid { field, reason } => {
            anyhow::anyhow!("--{}: {reason}", field.replace('_', "-"))
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
    }
    Ok(())
}
