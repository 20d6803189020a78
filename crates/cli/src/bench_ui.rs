//! `rapport bench ui`: server time of the staff web app's pages on the demo data set
//! (10,000 people, ~330,000 events, texts analysed, graph computed), signed in as an
//! admin, each page fetched `--runs` times over loopback.

use anyhow::{bail, Result};
use serde_json::json;
use std::time::Instant;

#[derive(clap::Args)]
pub struct UiBench {
    #[arg(long, default_value_t = 10_000)]
    people: usize,
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// PostgreSQL URL; SQLite in a temporary directory when absent.
    #[arg(long, env = "RAPPORT_BENCH_DATABASE_URL")]
    database_url: Option<String>,
    #[arg(long)]
    json: bool,
}

pub async fn run(a: UiBench) -> Result<()> {
    let target = crate::bench::fresh_target(a.database_url.as_deref(), "ui").await?;
    let store = target.store.clone();
    eprintln!("loading the demo set ({} people)…", a.people);
    crate::load_demo(&store, a.people).await?;
    rapport_app::users::create(&store, "bench@rapport.local", "bench password 1", "admin").await?;
    let seg = rapport_app::segments::create(
        &store,
        "Buyers",
        "count(track \"Order Completed\") >= 1",
        "",
    )
    .await?;
    rapport_app::segments::refresh(&store, seg.id).await?;
    // The person with the longest timeline.
    let busiest = store
        .top_graph_scores(rapport_store::ScoreOrder::Pagerank, None, 1)
        .await?
        .first()
        .map(|g| g.profile_id)
        .unwrap_or(1);
    let (url, client, cookie) =
        crate::bench::serve_signed_in(&store, "bench@rapport.local", "bench password 1").await?;
    let campaign = store.campaigns().await?.first().map_or(1, |c| c.id);
    let pages = [
        "/".to_string(),
        "/people".into(),
        "/people?q=gmail".into(),
        format!("/ui/search?q={}", "lucas"),
        // Matches nobody: the worst case, every path tried.
        "/ui/search?q=zq9nobody".into(),
        format!("/people/{busiest}"),
        "/segments".into(),
        format!("/segments/{}", seg.id),
        "/rules".into(),
        "/rules/new".into(),
        "/rules/new?name=Call%20unhappy%20big%20spenders".into(),
        "/offers/new".into(),
        "/scores".into(),
        "/network".into(),
        "/insights".into(),
        "/audience".into(),
        "/onchain".into(),
        "/email".into(),
        format!("/email/campaigns/{campaign}"),
        "/settings".into(),
        "/audit".into(),
    ];
    // The dry run of the demo's first rule (a form post: the page's CSRF token).
    let home = client
        .get(format!("{url}/rules"))
        .header("cookie", &cookie)
        .send()
        .await?
        .text()
        .await?;
    let csrf = home
        .split("name=\"csrf\" content=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_default()
        .to_string();
    let dry_run = "POST /rules/dry-run (7 days)".to_string();
    let mut out = Vec::new();
    for p in pages.iter().chain([&dry_run]) {
        let mut ms = Vec::with_capacity(a.runs);
        let mut bytes = 0;
        for _ in 0..a.runs {
            let t = Instant::now();
            let r = if p == &dry_run {
                client.post(format!("{url}/rules/dry-run")).form(&[
                    ("_csrf", csrf.as_str()),
                    ("rule", "Call unhappy big spenders"),
                ])
            } else {
                client.get(format!("{url}{p}"))
            }
            .header("cookie", &cookie)
            .send()
            .await?;
            let status = r.status();
            // The app sends pages uncompressed: the body is what goes over the wire.
            bytes = r.bytes().await?.len();
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
            if !status.is_success() {
                bail!("{p} answered {status}");
            }
        }
        let first = ms[0];
        let (p50, p95) = crate::bench::p50_p95(&mut ms);
        let kb = bytes as f64 / 1024.0;
        eprintln!("{p:<48} first {first:7.1} ms  p50 {p50:7.1} ms  p95 {p95:7.1} ms  {kb:6.1} KB");
        out.push(json!({"page": p, "first_ms": first, "p50_ms": p50, "p95_ms": p95, "kb": kb}));
    }
    if a.json {
        println!(
            "{}",
            json!({"store": target.kind, "people": a.people, "pages": out})
        );
    }
    target.cleanup().await;
    Ok(())
}
