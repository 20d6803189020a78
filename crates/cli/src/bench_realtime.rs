//! `rapport bench realtime`: what real-time decisioning — segment membership, rules and
//! the next best offer, with many segments and rules active — adds to each ingested
//! event, and how much it slows core ingestion.
//!
//! People with a history are loaded and the engine caught up. Then, in the same run:
//! 1. latency, in `--passes` passes over the same people (first contact, a burst of
//!    membership changes, then settling): new events are ingested in groups of
//!    `--per-step` (the traffic one engine step sees) and the engine's steps run after
//!    each until it has caught up (an empty read that writes nothing is the idle poll,
//!    not counted); each
//!    ingested event's cost is its own work plus an equal share of everything else those
//!    steps did: their reads and writes, and deciding the `Segment Entered`/`Exited`
//!    events the engine wrote itself (derived, not ingested); then a returning pass
//!    (every held state older than the engine's TTL), a refreshed one (right after the
//!    score run and batch segment refresh `rapport serve` does every 15 minutes; then
//!    again with an idle moment after the refresh, in which the engine re-reads), a
//!    cold one (no state held) and a restarted one (a new engine that read the most
//!    recently active people ahead while idle, as `rapport serve` does after a start,
//!    each person then coming back after longer than the TTL);
//! 2. throughput: `--throughput-events` events ingested as fast as the store takes them
//!    (groups of 100), without the engine, then `--rounds` times with it running beside
//!    ingestion as in `rapport serve` (timed until it has caught up) and without it
//!    again; the drop compares the medians.

use anyhow::Result;
use rapport_domain::message::{parse_message, BatchContext, Message};
use rapport_domain::time::{now_millis, to_datetime};
use rapport_store::{DynStore, SourcedMessages};
use serde_json::{json, Value};
use std::time::Instant;

#[derive(clap::Args)]
pub struct RealtimeBench {
    #[arg(long, default_value_t = 10_000)]
    people: usize,
    /// History per person before the measured events.
    #[arg(long, default_value_t = 20)]
    history: usize,
    #[arg(long, default_value_t = 200)]
    segments: usize,
    #[arg(long, default_value_t = 50)]
    rules: usize,
    /// Events measured for latency.
    #[arg(long, default_value_t = 5_000)]
    events: usize,
    /// Latency passes over the same people (at least 2): first contact, second contact,
    /// …, the last reported as settled.
    #[arg(long, default_value_t = 5)]
    passes: usize,
    /// Events per engine step in the latency phase.
    #[arg(long, default_value_t = 50)]
    per_step: usize,
    /// Events per throughput phase.
    #[arg(long, default_value_t = 50_000)]
    throughput_events: usize,
    /// Throughput phases with the engine, each between two without; the drop compares
    /// the medians (one pair of phases varies by up to 30% on a shared machine).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// PostgreSQL URL; SQLite in a temporary directory when absent.
    #[arg(long, env = "RAPPORT_BENCH_DATABASE_URL")]
    database_url: Option<String>,
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

/// Live traffic: mostly purchases and page views, some identifies (which make the engine
/// reload the person).
fn live_event(e: usize, people: usize) -> Value {
    let u = format!("u{}", (e * 7919) % people);
    match e % 20 {
        0 => {
            json!({"type": "identify", "userId": u, "traits": {"last_seen_plan": if e.is_multiple_of(3) { "pro" } else { "free" }}})
        }
        1..=6 => {
            json!({"type": "page", "userId": u, "name": if e.is_multiple_of(2) { "Pricing" } else { "Home" }})
        }
        _ => {
            json!({"type": "track", "userId": u, "event": "Order Completed", "properties": {"revenue": 10 + e % 500}})
        }
    }
}

pub(crate) fn parse_all(values: &[Value], tag: &str, received_at: i64) -> Result<Vec<Message>> {
    let batch = BatchContext {
        received_at,
        ..Default::default()
    };
    values
        .iter()
        .enumerate()
        .map(|(i, m)| {
            parse_message(m, "", None, &batch, || format!("{tag}{i}"))
                .map_err(|e| anyhow::anyhow!("{e}"))
        })
        .collect()
}

pub(crate) async fn ingest(store: &DynStore, msgs: Vec<Message>) -> Result<()> {
    store
        .ingest(vec![SourcedMessages {
            source: "bench".into(),
            messages: msgs,
        }])
        .await?;
    Ok(())
}

/// Ingests `values` in groups of 100; with `engine`, the engine runs beside ingestion
/// as `rapport serve` runs it. Events per second of ingestion alone, and (with the
/// engine) until the engine has decided on all of them.
pub(crate) async fn throughput(
    store: &DynStore,
    values: &[Value],
    tag: &str,
    engine: Option<&mut rapport_app::realtime::Engine>,
) -> Result<(f64, f64)> {
    let msgs = parse_all(values, tag, now_millis())?;
    let n = values.len() as f64;
    let t = Instant::now();
    match engine {
        None => {
            for chunk in msgs.chunks(100) {
                ingest(store, chunk.to_vec()).await?;
            }
            let rate = n / t.elapsed().as_secs_f64();
            Ok((rate, rate))
        }
        Some(engine) => {
            let (done_tx, mut done_rx) = tokio::sync::watch::channel(false);
            let producer = {
                let store = store.clone();
                tokio::spawn(async move {
                    for chunk in msgs.chunks(100) {
                        ingest(&store, chunk.to_vec()).await?;
                    }
                    let took = t.elapsed().as_secs_f64();
                    let _ = done_tx.send(true);
                    anyhow::Ok(took)
                })
            };
            loop {
                let finished = *done_rx.borrow_and_update();
                let r = engine.step(store, 1_000).await?;
                if std::env::var_os("RAPPORT_BENCH_TRACE").is_some() && r.events > 0 {
                    let sum: f64 = r.per_event_us.iter().sum();
                    eprintln!(
                        "step: {} events, {:.1} ms, reads {:.1} ms, loads {} ({:.1} ms), writes {:.1} ms, changes {}, firings {}",
                        r.events, sum / 1000.0, r.read_us / 1000.0, r.loads, r.load_us / 1000.0, r.write_us / 1000.0,
                        r.membership_changes, r.firings
                    );
                }
                if r.events + r.texts == 0 {
                    // A producer that failed never says it is done: its error ends the run.
                    if finished || producer.is_finished() {
                        break;
                    }
                    // As the serve worker does when caught up (it waits 200 ms; a short
                    // wait here only makes the engine's share look larger).
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                } else {
                    // As the serve worker paces itself under load.
                    tokio::time::sleep(r.pause()).await;
                }
            }
            let ingest_took = producer.await??;
            Ok((n / ingest_took, n / t.elapsed().as_secs_f64()))
        }
    }
}

/// What the serve worker does at its idle polls, until nothing is left: people read (or
/// re-read) and the time it took.
async fn idle(
    store: &DynStore,
    engine: &mut rapport_app::realtime::Engine,
) -> Result<(usize, f64)> {
    let t = Instant::now();
    let mut read = 0;
    while let Some(n) = engine
        .warm(store, rapport_app::realtime::WARM_PEOPLE)
        .await?
    {
        read += n;
    }
    Ok((read, t.elapsed().as_secs_f64()))
}

/// Ingests `a.events` live events in groups of `a.per_step`, running the engine after
/// each group; returns the per-event costs and what the steps did.
async fn latency(
    store: &DynStore,
    engine: &mut rapport_app::realtime::Engine,
    a: &RealtimeBench,
    pass: usize,
) -> Result<Value> {
    let live: Vec<Value> = (0..a.events)
        // The same people, and kinds of event, in every pass.
        .map(|e| live_event(pass * a.people * 20 + e, a.people))
        .collect();
    // Per ingested event: its own work plus an equal share of everything else the engine
    // did until it had caught up on the group, including deciding the membership events
    // it wrote itself (derived events are not ingested events: their cost is shared out).
    let mut per_event = Vec::with_capacity(a.events);
    let mut own = Vec::with_capacity(a.events);
    // Per decided event (ingested and derived), each step's cost shared over its events:
    // the figure earlier runs reported, kept for comparison.
    let mut per_decided = Vec::with_capacity(a.events * 4);
    let mut ingest_us = Vec::new();
    let (mut loads, mut checks, mut changes, mut firings, mut steps, mut decided) =
        (0, 0, 0, 0, 0, 0);
    for (k, group) in live.chunks(a.per_step.max(1)).enumerate() {
        let m = parse_all(group, &format!("l{pass}.{k}."), now_millis())?;
        let t = Instant::now();
        ingest(store, m).await?;
        ingest_us.push(t.elapsed().as_secs_f64() * 1e6 / group.len() as f64);
        let (mut cycle_us, mut group_own) = (0.0, Vec::new());
        loop {
            let r = engine.step(store, 1_000).await?;
            if r.events + r.texts == 0 {
                // Finding nothing is the idle poll, not the group's cost, unless it had
                // to move the position past the engine's own events.
                if r.write_us > 0.0 {
                    cycle_us += r.took_us;
                }
                break;
            }
            cycle_us += r.took_us;
            if std::env::var_os("RAPPORT_BENCH_TRACE").is_some() {
                eprintln!(
                    "step: {} events (+{} own), {:.1} ms, reads {:.1} ms, loads {} ({:.1} ms), writes {:.1} ms, changes {}, firings {}",
                    r.events, r.derived, r.took_us / 1000.0, r.read_us / 1000.0, r.loads, r.load_us / 1000.0, r.write_us / 1000.0,
                    r.membership_changes, r.firings
                );
            }
            // The engine was caught up before the group: its first step's events are the
            // group's, in order.
            if group_own.is_empty() {
                group_own = r.own_us.iter().take(group.len()).copied().collect();
            }
            steps += 1;
            loads += r.loads;
            checks += r.checks;
            changes += r.membership_changes;
            firings += r.firings;
            decided += r.events + r.derived;
            per_decided.extend(r.per_event_us);
        }
        let own_sum: f64 = group_own.iter().sum();
        let shared = (cycle_us - own_sum).max(0.0) / group_own.len().max(1) as f64;
        per_event.extend(group_own.iter().map(|t| t + shared));
        own.extend(group_own);
    }
    per_event.sort_by(f64::total_cmp);
    own.sort_by(f64::total_cmp);
    per_decided.sort_by(f64::total_cmp);
    ingest_us.sort_by(f64::total_cmp);
    eprintln!(
        "latency (pass {pass}): per ingested event p50 {:.1} µs, p99 {:.1} µs, mean {:.1} µs (own work p50 {:.1}, p99 {:.1}) over {} events; {} events decided in {} steps ({} derived; per decided event p99 {:.1} µs), {} reloads, {} profile checks, {} membership changes ({:.2} per event), {} firings",
        percentile(&per_event, 0.5),
        percentile(&per_event, 0.99),
        per_event.iter().sum::<f64>() / per_event.len().max(1) as f64,
        percentile(&own, 0.5),
        percentile(&own, 0.99),
        per_event.len(),
        decided,
        steps,
        decided.saturating_sub(per_event.len()),
        percentile(&per_decided, 0.99),
        loads,
        checks,
        changes,
        changes as f64 / per_event.len().max(1) as f64,
        firings
    );
    Ok(json!({
        "events_ingested": per_event.len(), "events_decided": decided, "steps": steps,
        "added_us_p50": percentile(&per_event, 0.5), "added_us_p99": percentile(&per_event, 0.99),
        "added_us_max": per_event.last().copied().unwrap_or(0.0),
        "mean_added_us": per_event.iter().sum::<f64>() / per_event.len().max(1) as f64,
        "own_us_p50": percentile(&own, 0.5), "own_us_p99": percentile(&own, 0.99),
        "per_decided_event_us_p99": percentile(&per_decided, 0.99),
        "reloads": loads, "profile_checks": checks, "membership_changes": changes, "firings": firings,
        "membership_changes_per_event": changes as f64 / per_event.len().max(1) as f64,
        "ingest_us_per_event_p50": percentile(&ingest_us, 0.5),
    }))
}

pub async fn run(a: RealtimeBench) -> Result<()> {
    let target = crate::bench::fresh_target(a.database_url.as_deref(), "realtime").await?;
    let store = target.store.clone();
    let now = now_millis();
    let day = 86_400_000i64;
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
    eprintln!("loading {} people × {} events…", a.people, a.history);
    let parsed = parse_all(&msgs, "h", now)?;
    for chunk in parsed.chunks(5_000) {
        ingest(&store, chunk.to_vec()).await?;
    }
    drop(parsed);
    // As after an import: the planner sees the loaded data.
    store.refresh_statistics().await?;
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
    // Catch the engine up on the history, as a running server would be.
    let mut engine = rapport_app::realtime::Engine::default();
    let mut steps = 0;
    while engine.step(&store, 10_000).await?.events > 0 {
        steps += 1;
        // The catch-up writes about 90 membership events per person. Autovacuum would
        // analyze them as they grow; where it is off (as on the test machine's
        // PostgreSQL), the planner's stale estimate turns each person's load into a
        // parallel scan of 12 ms instead of a fraction of one, and a catch-up of 10,000
        // people into tens of minutes.
        if steps % 20 == 0 {
            store.refresh_statistics().await?;
        }
    }
    store.refresh_statistics().await?;
    eprintln!(
        "{} people, {} segments, {} rules; measuring {} events, {} per step",
        a.people, a.segments, a.rules, a.events, a.per_step
    );
    // Passes over the same people (each pass gives each of them the same number of live
    // events). The first is everyone's first event since the rules were saved: every
    // capped rule fires. The second is a burst of membership changes: a recent order
    // after a history spread over 300 days moves a person into every short-window
    // segment at once (2.85 changes per event). From then on memberships settle, as
    // they do for a live audience; the last pass is reported as settled. Time does not
    // pass in the bench, so no window expires: the settled churn is a low one, and the
    // figures are read beside each pass's changes per event.
    let n_passes = a.passes.max(2);
    let mut passes = Vec::new();
    for pass in 0..n_passes {
        passes.push(latency(&store, &mut engine, &a, pass).await?);
    }
    // Two more passes over the settled people, as live traffic meets them. Returning:
    // each person's next event comes longer than the engine's TTL after their last (most
    // people's do), so every held state is checked again. Cold: no state is held, as
    // after a restart or for people evicted from memory, so each is loaded whole.
    let ttl = rapport_app::realtime::TTL;
    engine.age(ttl);
    eprintln!("returning: every held state older than the TTL");
    let returning = latency(&store, &mut engine, &a, n_passes).await?;
    // Refreshed: what `rapport serve` does every 15 minutes (every score recomputed,
    // every segment refreshed in batch, each telling the engine) has just run, so every
    // held state's standing is re-read at the person's next event.
    let t = Instant::now();
    rapport_app::scores::recompute(&store).await?;
    let refresh_changes = rapport_app::segments::refresh_all(&store).await?;
    let refresh_s = t.elapsed().as_secs_f64();
    eprintln!("refreshed: scores and segments recomputed in {refresh_s:.1} s ({refresh_changes} membership changes)");
    let mut refreshed = latency(&store, &mut engine, &a, n_passes + 1).await?;
    refreshed["refresh_s"] = json!(refresh_s);
    refreshed["refresh_membership_changes"] = json!(refresh_changes);
    // Refreshed, then idle: the same, but the engine had an idle moment after the
    // refresh (as `rapport serve` has between bursts) and re-read what it marked then.
    rapport_app::scores::recompute(&store).await?;
    rapport_app::segments::refresh_all(&store).await?;
    let (reread, idle_s) = idle(&store, &mut engine).await?;
    eprintln!("refreshed, then idle: {reread} people re-read in {idle_s:.1} s");
    let mut refreshed_idle = latency(&store, &mut engine, &a, n_passes + 4).await?;
    refreshed_idle["reread"] = json!(reread);
    refreshed_idle["idle_s"] = json!(idle_s);
    engine.release();
    eprintln!("cold: no state held");
    let cold = latency(&store, &mut engine, &a, n_passes + 2).await?;
    // Restarted: a new engine, as after `rapport serve` restarts (the old one flushed, as
    // on shutdown); while no events wait it reads ahead the most recently active people,
    // as the serve worker does; then each comes back longer than the TTL after (so each
    // state is checked, as in the returning pass).
    engine.flush(&store).await?;
    let mut engine = rapport_app::realtime::Engine::default();
    let (warmed, warm_s) = idle(&store, &mut engine).await?;
    eprintln!("restarted: {warmed} people read ahead in {warm_s:.1} s");
    engine.age(ttl);
    let mut restarted = latency(&store, &mut engine, &a, n_passes + 3).await?;
    restarted["warmed"] = json!(warmed);
    restarted["warm_s"] = json!(warm_s);
    let n_passes = n_passes + 5;
    // Throughput: without, with, without.
    let n = a.throughput_events;
    let phase = |k: usize| -> Vec<Value> {
        (0..n)
            .map(|e| live_event(n_passes * a.people * 20 + k * n + e, a.people))
            .collect()
    };
    let (first_without, _) = throughput(&store, &phase(0), "t0.", None).await?;
    let mut without = vec![first_without];
    let mut with = Vec::new();
    let mut decided = Vec::new();
    for r in 0..a.rounds.max(1) {
        // The engine starts at the end of the log, as a server that was running would.
        while engine.step(&store, 10_000).await?.events > 0 {}
        let k = 1 + 2 * r;
        let (w, d) = throughput(&store, &phase(k), &format!("t{k}."), Some(&mut engine)).await?;
        with.push(w);
        decided.push(d);
        let (wo, _) = throughput(&store, &phase(k + 1), &format!("t{}.", k + 1), None).await?;
        without.push(wo);
        eprintln!(
            "throughput round {r}: {w:.0} ev/s with the engine beside, {wo:.0} without after"
        );
    }
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        percentile(&v, 0.5)
    };
    let (baseline, with_median, decided_median) =
        (median(&without), median(&with), median(&decided));
    let drop = 1.0 - with_median / baseline;
    eprintln!(
        "throughput (medians): {baseline:.0} ev/s without, {with_median:.0} with the engine beside ({decided_median:.0} ev/s until all decided) → ingest drop {:.1}%",
        drop * 100.0
    );
    let out = json!({
        "bench": "realtime", "store": target.kind,
        "people": a.people, "history_per_person": a.history, "segments": a.segments, "rules": a.rules,
        "per_step": a.per_step,
        "first_contact": passes[0], "second_contact": passes[1],
        "settled": passes.last(), "passes": passes,
        "returning": returning, "refreshed": refreshed, "refreshed_idle": refreshed_idle,
        "cold": cold, "restarted": restarted,
        "throughput_without_runs": without, "throughput_with_runs": with,
        "throughput_without": baseline, "throughput_with": with_median,
        "throughput_until_decided": decided_median,
        "throughput_drop": drop,
    });
    if !a.json {
        eprintln!("{}", serde_json::to_string_pretty(&out)?);
    }
    println!("{out}");
    target.cleanup().await;
    Ok(())
}
