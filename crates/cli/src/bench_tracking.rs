//! `rapport bench tracking`: the open pixel and click redirect of `rapport serve` under an
//! open-loop load (requests started on a fixed schedule, `--rate` a second, whether or not
//! earlier ones answered), half opens and half clicks on messages of 1,000 people; the
//! latency of each, p50/p99/max.

use crate::bench::{fresh_target, percentile, report, Server};
use anyhow::{bail, Result};
use rapport_app::email::{Email, SendRequest};
use rapport_email::token::Action;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct TrackingBench {
    /// Requests a second.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Seconds of load.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    #[arg(long, default_value_t = 1000)]
    people: usize,
    #[arg(long, env = "RAPPORT_BENCH_DATABASE_URL")]
    database_url: Option<String>,
    #[arg(long)]
    json: bool,
}

pub async fn run(a: TrackingBench) -> Result<()> {
    let target = fresh_target(a.database_url.as_deref(), "tracking").await?;
    let email = Email::new(target.store.clone());
    email
        .add_domain("example.com", Some(&["ed25519".to_string()]))
        .await?;
    email
        .save_template(
            0,
            "offer",
            rapport_email::template::Source {
                subject: "An offer".into(),
                html: "<p>Hi</p><a href=\"https://shop.example/a\">A</a> <a href=\"https://shop.example/b\">B</a>".into(),
                text: None,
            },
        )
        .await?;
    let mut ids = Vec::with_capacity(a.people);
    for k in 0..a.people {
        let m = email
            .send(SendRequest {
                template: "offer".into(),
                to: json!(format!("email:person{k}@example.com")),
                from: "news@example.com".into(),
                from_name: None,
                data: json!({}),
                idempotency_key: None,
                kind: Some("transactional".into()),
                not_before: None,
                untracked: false,
                thread: None,
            })
            .await?;
        ids.push(m.public_id);
    }
    let mut urls = Vec::with_capacity(2 * ids.len());
    let server = Server::start(&target).await?;
    for id in &ids {
        urls.push(format!(
            "{}/e/o/{}",
            server.url,
            email.token(id, Action::Open, 0).await?
        ));
        urls.push(format!(
            "{}/e/c/{}",
            server.url,
            email.token(id, Action::Click, 1).await?
        ));
    }
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(256)
        .build()?;
    // Warm the connections and the server.
    for u in urls.iter().take(200) {
        client.get(u).send().await?;
    }
    let urls = Arc::new(urls);
    let total = (a.rate * a.seconds) as usize;
    let gap = Duration::from_secs_f64(1.0 / a.rate.max(1) as f64);
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..total {
        let due = start + gap * i as u32;
        tokio::time::sleep_until(due.into()).await;
        let (client, urls) = (client.clone(), urls.clone());
        tasks.spawn(async move {
            let t = Instant::now();
            let r = client.get(&urls[i % urls.len()]).send().await;
            let ok =
                matches!(&r, Ok(r) if r.status().as_u16() == 200 || r.status().as_u16() == 302);
            (t.elapsed().as_secs_f64() * 1000.0, ok)
        });
    }
    let sent_in = start.elapsed().as_secs_f64();
    let mut lat = Vec::with_capacity(total);
    let mut errors = 0;
    while let Some(r) = tasks.join_next().await {
        let (ms, ok) = r?;
        lat.push(ms);
        errors += usize::from(!ok);
    }
    server.stop();
    let kind = target.kind;
    target.cleanup().await;
    if errors > 0 {
        bail!("{errors} of {total} tracking requests failed");
    }
    lat.sort_by(f64::total_cmp);
    let r3 = |x: f64| (x * 1000.0).round() / 1000.0;
    report(
        a.json,
        json!({
            "bench": "tracking", "store": kind, "requests": total, "target_rate": a.rate,
            "achieved_rate": (total as f64 / sent_in).round(),
            "p50_ms": r3(percentile(&lat, 0.5)), "p99_ms": r3(percentile(&lat, 0.99)),
            "max_ms": r3(lat.last().copied().unwrap_or(0.0)), "target_p99_ms": 5,
        }),
    );
    Ok(())
}
