//! `rapport bench realtime`: the added cost per ingested event of real-time decisioning —
//! segment membership, rules and the next best offer — with many segments and rules
//! active. People with a history are loaded, then each new event is ingested and the
//! real-time step run for it alone; the step's time per event is the added cost.

use anyhow::Result;
use rapport_domain::message::{parse_message, BatchContext};
use rapport_domain::time::{now_millis, to_datetime};
use rapport_store::SourcedMessages;
use serde_json::json;
use std::time::Instant;

#[derive(clap::Args)]
pub struct RealtimeBench {
    #[arg(long, default_value_t = 2_000)]
    people: usize,
    /// History per person before the measured events.
    #[arg(long, default_value_t = 20)]
    history: usize,
    #[arg(long, default_value_t = 200)]
    segments: usize,
    #[arg(long, default_value_t = 50)]
    rules: usize,
    /// Events measured.
    #[arg(long, default_value_t = 2_000)]
    events: usize,
    #[arg(long)]
    json: bool,
}

const TEMPLATES: [&str; 8] = [
    "count(track \"Order Completed\", {w}d) >= {n}",
    "sum(track \"Order Completed\".revenue, {w}d) > {m}",
    "traits.plan = \"pro\" and count(page, {w}d) >= {n}",
    "days_since(track \"Order Completed\") <= {w}",
    "has email and not count(track \"Order Completed\", {w}d) >= {n}",
    "traits.title ~ \"market\" or count(page \"Pricing\", {w}d) >= {n}",
    "avg(track \"Order Completed\".revenue) > {m}",
    "complaints({w}d) >= 1 or sentiment({w}d) < -0.2",
];

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

pub async fn run(a: RealtimeBench) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store = rapport_store::open(None, dir.path()).await?;
    let now = now_millis();
    let day = 86_400_000i64;
    let batch = BatchContext {
        received_at: now,
        ..Default::default()
    };
    let mut n = 0u64;
    let mut msgs = Vec::new();
    for i in 0..a.people {
        let u = format!("u{i}");
        msgs.push(json!({"type": "identify", "userId": u, "traits": {"email": format!("{u}@x.io"), "plan": if i % 3 == 0 { "pro" } else { "free" }, "title": if i % 4 == 0 { "Marketing lead" } else { "Engineer" }}}));
        for h in 0..a.history {
            let at = to_datetime(now - ((i * 31 + h * 17) % 300) as i64 * day).to_rfc3339();
            msgs.push(if h % 3 == 0 {
                json!({"type": "track", "userId": u, "event": "Order Completed", "properties": {"revenue": 20 + (i * h) % 300}, "timestamp": at})
            } else {
                json!({"type": "page", "userId": u, "name": if h % 2 == 0 { "Pricing" } else { "Home" }, "timestamp": at})
            });
        }
    }
    let parsed = msgs
        .iter()
        .map(|m| {
            n += 1;
            parse_message(m, "", None, &batch, || format!("h{n}"))
                .map_err(|e| anyhow::anyhow!("{e}"))
        })
        .collect::<Result<Vec<_>>>()?;
    for chunk in parsed.chunks(5_000) {
        store
            .ingest(vec![SourcedMessages {
                source: "bench".into(),
                messages: chunk.to_vec(),
            }])
            .await?;
    }
    for s in 0..a.segments {
        let t = TEMPLATES[s % TEMPLATES.len()];
        let def = t
            .replace("{w}", &(7 + (s * 13) % 360).to_string())
            .replace("{n}", &(1 + s % 4).to_string())
            .replace("{m}", &(50 + (s * 37) % 900).to_string());
        rapport_app::segments::create(&store, &format!("s{s}"), &def, "").await?;
    }
    let rules: Vec<_> = (0..a.rules)
        .map(|r| {
            json!({"name": format!("r{r}"), "when": if r % 2 == 0 { "track \"Order Completed\"".to_string() } else { format!("track \"Segment Entered\" where segment = \"s{}\"", r % a.segments.max(1)) },
                "where": format!("count(track \"Order Completed\") >= {}", 1 + r % 5),
                "then": [{"action": "add_tag", "tag": format!("t{}", r % 7)}], "cap": {"max": 1, "per_hours": 24}})
        })
        .collect();
    rapport_app::rules::set_rules(&store, &json!({"rules": rules})).await?;
    // Catch the worker up on the history, as a running server would be.
    while rapport_app::segments::realtime_step(&store, 10_000).await? > 0 {}
    eprintln!(
        "{} people, {} segments, {} rules; measuring {} events",
        a.people, a.segments, a.rules, a.events
    );
    let mut per_event = Vec::with_capacity(a.events);
    let mut ingest = Vec::with_capacity(a.events);
    for e in 0..a.events {
        let u = format!("u{}", (e * 7919) % a.people);
        let m = json!({"type": "track", "userId": u, "event": "Order Completed", "properties": {"revenue": 10 + e % 500}});
        n += 1;
        let msg = parse_message(&m, "", None, &batch, || format!("m{n}"))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let t = Instant::now();
        store
            .ingest(vec![SourcedMessages {
                source: "bench".into(),
                messages: vec![msg],
            }])
            .await?;
        ingest.push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        while rapport_app::segments::realtime_step(&store, 1_000).await? > 0 {}
        per_event.push(t.elapsed().as_secs_f64() * 1e6);
    }
    per_event.sort_by(f64::total_cmp);
    ingest.sort_by(f64::total_cmp);
    let out = json!({
        "bench": "realtime",
        "people": a.people, "history_per_person": a.history, "segments": a.segments, "rules": a.rules, "events": a.events,
        "added_us_p50": percentile(&per_event, 0.5), "added_us_p99": percentile(&per_event, 0.99),
        "ingest_us_p50": percentile(&ingest, 0.5), "ingest_us_p99": percentile(&ingest, 0.99),
        "store": "sqlite",
        "note": "added = the real-time step (segments, rules, next best offer) run for each single event",
    });
    if !a.json {
        eprintln!("{}", serde_json::to_string_pretty(&out)?);
    }
    println!("{out}");
    Ok(())
}
