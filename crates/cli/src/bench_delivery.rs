//! `rapport bench delivery`: end to end to a local SMTP sink (aiosmtpd from PyPI, counting
//! what it accepts), against the sink's own ceiling measured in the same run by a
//! trivial client — the same signed message blasted over the same number of
//! connections, with no database and no signing. Rapport's side: a campaign to N people
//! planned first, then `rapport serve --smtp-url` started and timed until every message
//! is delivered (claimed, signed with Ed25519 and RSA-2048, handed over, recorded).

use crate::bench::{fresh_target, python_venv, report, Server};
use anyhow::{bail, Context, Result};
use rapport_app::email::campaigns::{self, CampaignInput};
use rapport_app::email::{Email, EmailSettings};
use rapport_email::smtp::{Outcome, Relay};
use serde_json::json;
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct DeliveryBench {
    #[arg(long, default_value_t = 10_000)]
    messages: usize,
    /// SMTP connections, for the trivial client and for Rapport.
    #[arg(long, default_value_t = 4)]
    connections: u32,
    #[arg(long, env = "RAPPORT_BENCH_DATABASE_URL")]
    database_url: Option<String>,
    #[arg(long)]
    json: bool,
}

/// A sink that accepts everything and keeps nothing (what is measured is the delivery,
/// not the sink's disk).
const SINK: &str = r#"
import asyncio, sys
from aiosmtpd.controller import Controller
class Sink:
    async def handle_DATA(self, server, session, envelope):
        return "250 OK"
c = Controller(Sink(), hostname="127.0.0.1", port=int(sys.argv[1]))
c.start()
print("ready", flush=True)
asyncio.get_event_loop().run_until_complete(asyncio.sleep(86400))
"#;

struct Sink(std::process::Child);

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub async fn run(a: DeliveryBench) -> Result<()> {
    let py = python_venv("smtp", "aiosmtpd", "aiosmtpd==1.4.6")?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut child = Command::new(py)
        .args(["-c", SINK, &port.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .context("starting aiosmtpd")?;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().context("sink stdout")?).read_line(&mut line)?;
    let _sink = Sink(child);
    let url = format!("smtp://127.0.0.1:{port}");

    // Rapport's campaign, planned before the clock starts.
    let target = fresh_target(a.database_url.as_deref(), "delivery").await?;
    let email = Arc::new(Email::new(target.store.clone()));
    email
        .set_settings(EmailSettings {
            relay_url: Some(url.clone()),
            connections: a.connections,
            marketing_consent: "not_denied".into(),
            ..EmailSettings::default()
        })
        .await?;
    email.add_domain("example.com", None).await?;
    email
        .save_template(0, "newsletter", crate::bench_email::template())
        .await?;
    let people: Vec<i64> = {
        let mut ids = Vec::with_capacity(a.messages);
        for k in 0..a.messages {
            let m = rapport_domain::message::parse_message(
                &json!({"type": "identify", "userId": format!("d{k}"), "messageId": format!("d{k}"), "traits": {"email": format!("person{k}@example.com")}}),
                "",
                None,
                &Default::default(),
                String::new,
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            ids.push(m);
        }
        for chunk in ids.chunks(5_000) {
            target
                .store
                .ingest(vec![rapport_store::SourcedMessages {
                    source: "bench".into(),
                    messages: chunk.to_vec(),
                }])
                .await?;
        }
        let mut out = Vec::with_capacity(a.messages);
        for k in 0..a.messages {
            let key = rapport_domain::IdentityKey::parse(
                rapport_domain::identifier::IdentityKind::Email,
                &format!("person{k}@example.com"),
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            out.push(target.store.lookup(&key).await?.context("person")?);
        }
        out
    };
    let c = campaigns::create(
        &email,
        CampaignInput {
            name: "Blast".into(),
            template: "newsletter".into(),
            from: "news@example.com".into(),
            from_name: None,
            kind: None,
            audience: json!({"profiles": people}),
            send_at: None,
            per_minute: None,
            start: true,
            ab: None,
        },
    )
    .await?;
    while campaigns::step(&email).await? > 0 {}
    let planned = target
        .store
        .campaign(c.id)
        .await?
        .context("campaign")?
        .planned as usize;
    if planned != a.messages {
        bail!("{planned} of {} messages planned", a.messages);
    }

    // The sink's ceiling: one signed message of the same size, blasted.
    let sample = target
        .store
        .messages(rapport_store::MessageQuery {
            limit: 1,
            ..Default::default()
        })
        .await?
        .pop()
        .context("a message")?;
    let keys = target.store.domains().await?;
    let signers: Vec<_> = keys[0]
        .keys
        .iter()
        .filter_map(|k| {
            rapport_email::dkim::Algorithm::parse(&k.algorithm).map(|alg| {
                rapport_email::dkim::DkimKey {
                    algorithm: alg,
                    selector: k.selector.clone(),
                    private_key: k.private_key.clone(),
                    public_key: k.public_key.clone(),
                }
            })
        })
        .map(|k| k.signer("example.com"))
        .collect::<Result<_, _>>()?;
    let raw = Arc::new(rapport_email::dkim::sign(&signers, &sample.raw)?);
    let relay = Relay::new(&url, a.connections).map_err(|e| anyhow::anyhow!("{e}"))?;
    let t = Instant::now();
    let mut jobs = tokio::task::JoinSet::new();
    for i in 0..a.messages {
        while jobs.len() >= a.connections as usize {
            if let Some(r) = jobs.join_next().await {
                if !matches!(r?, Outcome::Accepted(_)) {
                    bail!("the sink refused the trivial client");
                }
            }
        }
        let (relay, raw) = (relay.clone(), raw.clone());
        jobs.spawn(async move {
            relay
                .send("bounce@example.com", &format!("p{i}@example.com"), &raw)
                .await
        });
    }
    while let Some(r) = jobs.join_next().await {
        if !matches!(r?, Outcome::Accepted(_)) {
            bail!("the sink refused the trivial client");
        }
    }
    let ceiling = a.messages as f64 / t.elapsed().as_secs_f64();

    // Rapport end to end.
    let t = Instant::now();
    let server = Server::start(&target).await?;
    loop {
        let r = target.store.campaign_report(c.id).await?;
        let delivered = r.statuses.get("delivered").copied().unwrap_or(0) as usize;
        if delivered >= a.messages {
            break;
        }
        if t.elapsed() > Duration::from_secs(1800) {
            server.stop();
            bail!("only {delivered} of {} delivered in 30 minutes", a.messages);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rapport = a.messages as f64 / t.elapsed().as_secs_f64();
    server.stop();
    let kind = target.kind;
    target.cleanup().await;
    report(
        a.json,
        json!({
            "bench": "delivery", "store": kind, "messages": a.messages, "connections": a.connections,
            "message_bytes": raw.len(), "keys": ["ed25519", "rsa"],
            "sink_ceiling_per_sec": ceiling.round(), "rapport_per_sec": rapport.round(),
            "ratio": (rapport / ceiling * 1000.0).round() / 1000.0, "target_ratio": 0.8,
        }),
    );
    Ok(())
}
