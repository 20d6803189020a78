//! `rapport bench privacy`: on a fresh store of N people (generated in SQL as `bench
//! segments` does), one person with 10,000 events exported and erased, and insight
//! breakdowns over everyone — the targets of the privacy issue (export < 1 s, erasure
//! < 2 s, a breakdown over 1,000,000 profiles < 2 s).

use anyhow::Result;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct PrivacyBench {
    #[arg(long, default_value_t = 1_000_000)]
    people: i64,
    /// Events of the person exported and erased.
    #[arg(long, default_value_t = 10_000)]
    events: i64,
    /// PostgreSQL URL (schema `bench_privacy`, dropped first); SQLite in --data-dir
    /// (emptied first) otherwise.
    #[arg(long, env = "RAPPORT_BENCH_DATABASE_URL")]
    database_url: Option<String>,
    #[arg(long, default_value = "/tmp/rapport-bench-privacy")]
    data_dir: PathBuf,
    #[arg(long)]
    json: bool,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub async fn run(a: PrivacyBench) -> Result<()> {
    const SCHEMA: &str = "bench_privacy";
    let t0 = Instant::now();
    let pg = a.database_url.is_some();
    let store =
        crate::bench_segments::fresh_store(a.database_url.as_deref(), SCHEMA, &a.data_dir).await?;
    let now = rapport_domain::time::now_millis();
    let mut sql: Vec<String> = crate::bench_segments::generation(pg, a.people, 0, now)
        .into_iter()
        .take(4)
        .collect();
    // Persons 1 to 5 get the events, with properties and text to anonymise.
    let (series, obj, events) = if pg {
        (
            format!("generate_series(1::bigint, {}) AS c(x)", a.events * 5),
            "jsonb_build_object",
            "event_rows",
        )
    } else {
        (
            format!(
                "(WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {}) SELECT x FROM c)",
                a.events * 5
            ),
            "json_object",
            "events",
        )
    };
    sql.push(format!(
        "INSERT INTO {events} (message_id, profile_id, type, name, channel, source, properties, context, text, occurred_at, received_at)
         SELECT 'p' || x, (x % 5) + 1, 'track', 'Product Viewed', 'web', 'bench', {obj}('sku', 'SKU-' || x, 'note', 'a note'),
                {obj}('ip', '203.0.113.' || (x % 250)), 'I looked at item ' || x, {now} - x * 1000, {now} FROM {series}"
    ));
    crate::bench_segments::run_generation(a.database_url.as_deref(), SCHEMA, &a.data_dir, &sql)
        .await?;
    eprintln!(
        "{} people generated in {:.0} s",
        a.people,
        t0.elapsed().as_secs_f64()
    );

    // Export: persons 1..5, each with `events` events.
    let mut export = Vec::new();
    let mut exported_events = 0;
    for p in 1..=5 {
        let t = Instant::now();
        let doc = rapport_app::privacy::export(&store, p).await?;
        export.push(t.elapsed().as_secs_f64());
        exported_events = doc["events"].as_array().map_or(0, Vec::len);
    }
    // Insight: breakdowns over everyone and over a segment, by a trait.
    rapport_app::insight::set_settings(
        &store,
        rapport_app::insight::InsightSettings {
            min_group: 50,
            epsilon: 1.0,
            daily_budget: 10.0,
        },
    )
    .await?;
    let mut everyone = Vec::new();
    let mut segment = Vec::new();
    for key in 1..=3 {
        let t = Instant::now();
        rapport_app::insight::breakdown(&store, key, "", "traits.plan").await?;
        everyone.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        rapport_app::insight::breakdown(&store, key, r#"traits.plan = "pro""#, "traits.title")
            .await?;
        segment.push(t.elapsed().as_secs_f64());
    }
    let t = Instant::now();
    rapport_app::insight::audience(&store, 9, r#"traits.plan = "pro""#).await?;
    let audience = t.elapsed().as_secs_f64();
    // Erasure, each in one transaction (with the SQLite WAL truncated after).
    let erased = rapport_app::privacy::Erased::new(store.clone());
    let mut erase = Vec::new();
    for p in 1..=5 {
        let t = Instant::now();
        erased.erase(p, true, "bench", now).await?;
        erase.push(t.elapsed().as_secs_f64());
    }
    let out = serde_json::json!({
        "store": store.kind(),
        "people": a.people,
        "events_per_person": exported_events,
        "export_median_s": median(export.clone()),
        "export_max_s": export.iter().cloned().fold(0.0, f64::max),
        "erase_median_s": median(erase.clone()),
        "erase_max_s": erase.iter().cloned().fold(0.0, f64::max),
        "breakdown_everyone_median_s": median(everyone),
        "breakdown_segment_median_s": median(segment),
        "audience_s": audience,
    });
    if a.json {
        println!("{out}");
    } else {
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(())
}
