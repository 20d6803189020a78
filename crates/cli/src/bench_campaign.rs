//! `rapport bench campaign`: a campaign to a segment of N people planned and queued —
//! the segment evaluated, each person's address chosen, the newsletter of
//! `bench email` rendered and stored with its `Email Sent` — on a fresh store (SQLite in
//! a directory, or a PostgreSQL schema). The people are generated in SQL first (as
//! `bench segments` does; 10% have denied marketing consent and are skipped).

use anyhow::{Context, Result};
use rapport_app::email::campaigns::{self, CampaignInput};
use rapport_app::email::{Email, EmailSettings};
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct CampaignBench {
    #[arg(long, default_value_t = 1_000_000)]
    people: i64,
    /// PostgreSQL URL (schema `bench_campaign`, dropped first); SQLite in --data-dir
    /// (emptied first) otherwise.
    #[arg(long, env = "RAPPORT_BENCH_DATABASE_URL")]
    database_url: Option<String>,
    #[arg(long, default_value = "/tmp/rapport-bench-campaign")]
    data_dir: PathBuf,
    /// DKIM keys of the sending domain: ed25519, rsa (default both, as Rapport makes).
    #[arg(long, value_delimiter = ',')]
    keys: Option<Vec<String>>,
    #[arg(long)]
    json: bool,
}

pub async fn run(a: CampaignBench) -> Result<()> {
    const SCHEMA: &str = "bench_campaign";
    let t0 = Instant::now();
    let store =
        crate::bench_segments::fresh_store(a.database_url.as_deref(), SCHEMA, &a.data_dir).await?;
    // People with an e-mail address, some wallets, consents (none of the events).
    let pg = a.database_url.is_some();
    let now = rapport_domain::time::now_millis();
    let people: Vec<String> = crate::bench_segments::generation(pg, a.people, 0, now)
        .into_iter()
        .take(4)
        .collect();
    crate::bench_segments::run_generation(a.database_url.as_deref(), SCHEMA, &a.data_dir, &people)
        .await?;
    let generated = t0.elapsed().as_secs_f64();
    eprintln!("{} people generated in {generated:.0} s", a.people);

    let email = std::sync::Arc::new(Email::new(store.clone()));
    email
        .set_settings(EmailSettings {
            marketing_consent: "not_denied".into(),
            ..EmailSettings::default()
        })
        .await?;
    email
        .add_domain("example.com", a.keys.as_deref())
        .await
        .context("domain")?;
    email
        .save_template(0, "newsletter", crate::bench_email::template())
        .await?;
    let seg = rapport_app::segments::create(&store, "Everyone", "has email", "").await?;

    let t = Instant::now();
    let c = campaigns::create(
        &email,
        CampaignInput {
            name: "Spring".into(),
            template: "newsletter".into(),
            from: "news@example.com".into(),
            from_name: Some("Example".into()),
            kind: None,
            audience: json!({"segment": seg.id}),
            send_at: None,
            per_minute: None,
            start: true,
            ab: None,
        },
    )
    .await?;
    let mut made = 0;
    loop {
        made += campaigns::step(&email).await?;
        let c = store.campaign(c.id).await?.context("campaign")?;
        if c.status != "planning" && c.status != "scheduled" {
            break;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    let c = store.campaign(c.id).await?.context("campaign")?;
    let v = json!({
        "bench": "campaign", "store": if pg { "postgres" } else { "sqlite" },
        "people": a.people, "keys": a.keys.clone().unwrap_or_else(|| vec!["ed25519".into(), "rsa".into()]),
        "status": c.status, "planned": c.planned, "skipped": c.skipped, "made": made,
        "seconds": (secs * 10.0).round() / 10.0,
        "people_per_sec": (a.people as f64 / secs).round(),
        "target_seconds": 120,
        "generation_seconds": generated.round(),
    });
    if !a.json {
        for (k, val) in v.as_object().into_iter().flatten() {
            eprintln!("{k:>20}: {val}");
        }
    }
    println!("{v}");
    Ok(())
}
