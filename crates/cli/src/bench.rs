//! Benchmarks that drive the real server over loopback.
//!
//! `rapport bench ingest` starts `rapport serve` as a child process on a fresh database
//! (a temporary SQLite directory, or a fresh schema when `--database-url` names
//! PostgreSQL), posts pre-generated Segment batches to `/v1/batch` from several
//! connections, and reports accepted events/s, batch latency and the server's peak
//! memory. In the same run it measures the baseline: the same event rows inserted
//! straight into another fresh database of the same kind, with no HTTP, parsing or
//! identity resolution.

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rapport_domain::apikey::Scope;
use rapport_domain::message::parse_body;
use rapport_domain::resolve::EventRow;
use rapport_store::DynStore;
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Ingestion throughput through POST /v1/batch.
    Ingest {
        #[arg(long, default_value_t = 1_000_000)]
        events: usize,
        /// Give every message a `properties.text` of this many characters (text
        /// analysis load); the report then says how long the analysis worker took to
        /// catch up after the last batch.
        #[arg(long, default_value_t = 0)]
        text_chars: usize,
        /// Messages per batch (the Segment SDKs' default flush size is 100).
        #[arg(long, default_value_t = 100)]
        batch: usize,
        /// Concurrent HTTP connections (SDK clients sending at once).
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// PostgreSQL URL; SQLite in a temporary directory when absent.
        #[arg(long, env = "RAPPORT_BENCH_DATABASE_URL")]
        database_url: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Graph analytics on a 1M-node power-law graph and a real one, against igraph.
    Graph(crate::bench_graph::GraphBench),
    /// Sentiment throughput and accuracy against vaderSentiment.
    Text(crate::bench_text::TextBench),
    /// The segment evaluator on 1M profiles / 20M events against hand-written SQL.
    Segments(crate::bench_segments::SegmentBench),
    /// The added cost per event of real-time segments, rules and next best offer.
    Realtime(crate::bench_realtime::RealtimeBench),
    /// Back-fill of Transfer logs from a local EVM node (ganache), against the node's own
    /// eth_getLogs time.
    Chain(crate::bench_chain::ChainBench),
    /// SIGKILL at random points during heavy ingestion and real-time steps on a SQLite
    /// database past 1 GiB: integrity and every acknowledged event checked after each.
    Crash(crate::bench_crash::CrashBench),
    /// Server time of the web app's pages on the demo data.
    Ui(crate::bench_ui::UiBench),
    /// The agent inbox (API and app) with N tickets.
    Support(crate::bench_support::SupportBench),
    /// Knowledge-base and community search beside a million community posts.
    Kb(crate::bench_kb::KbBench),
    /// Rendering and DKIM signing of e-mail on one core (Ed25519, RSA-2048, both).
    Email(crate::bench_email::EmailBench),
    /// A campaign to N people planned and queued (segment, address, render, store).
    Campaign(crate::bench_campaign::CampaignBench),
    /// A person with 10,000 events exported and erased; insight breakdowns over N people.
    Privacy(crate::bench_privacy::PrivacyBench),
    /// Loyalty: a balance with 10,000 entries, 1,000,000 expired lots written off.
    Loyalty(crate::bench_loyalty::LoyaltyBench),
    /// Latency of the open pixel and click redirect at a fixed request rate.
    Tracking(crate::bench_tracking::TrackingBench),
    /// End to end to a local SMTP sink, against the sink's own ceiling.
    Delivery(crate::bench_delivery::DeliveryBench),
    /// Internal: one graph measurement in its own process (used by `bench graph`).
    #[command(hide = true)]
    GraphMeasure(crate::bench_graph::MeasureArgs),
    /// Profile lookup by e-mail through GET /api/profiles/lookup.
    Lookup {
        #[arg(long, default_value_t = 1_000_000)]
        profiles: usize,
        #[arg(long, default_value_t = 10_000)]
        lookups: usize,
        #[arg(long, env = "RAPPORT_BENCH_DATABASE_URL")]
        database_url: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

/// The server in this process on loopback over `store` (without the inference and
/// analysis workers): its URL and a client that does not follow redirects.
pub(crate) async fn serve_here(store: &DynStore) -> Result<(String, reqwest::Client)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let (state, _writer) = rapport_http::AppState::with_workers(store.clone(), false, false);
    tokio::spawn(async move {
        let _ = rapport_http::serve(listener, state, std::future::pending()).await;
    });
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    Ok((url, client))
}

/// [`serve_here`] and the client signed in to the web app as `email`: the URL, the
/// client and the session cookie.
pub(crate) async fn serve_signed_in(
    store: &DynStore,
    email: &str,
    password: &str,
) -> Result<(String, reqwest::Client, String)> {
    let (url, client) = serve_here(store).await?;
    let r = client
        .post(format!("{url}/login"))
        .form(&[("email", email), ("password", password)])
        .send()
        .await?;
    let Some(cookie) = r
        .headers()
        .get("set-cookie")
        .and_then(|c| c.to_str().ok())
        .and_then(|c| c.split(';').next())
        .map(str::to_string)
    else {
        bail!("sign-in failed: {}", r.status());
    };
    Ok((url, client, cookie))
}

/// The median and 95th percentile of timings (sorted in place).
pub(crate) fn p50_p95(ms: &mut [f64]) -> (f64, f64) {
    ms.sort_by(f64::total_cmp);
    let p95 = ms[((ms.len() as f64 - 1.0) * 0.95).round() as usize];
    (ms[ms.len() / 2], p95)
}

/// A fresh, empty database for one benchmark phase, and how a child process reaches it.
pub(crate) struct Target {
    pub(crate) store: DynStore,
    /// Arguments for `rapport serve`.
    args: Vec<String>,
    pub(crate) kind: &'static str,
    pg_schema: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl Target {
    /// Drops a PostgreSQL benchmark schema (a SQLite directory goes with `_dir`).
    pub(crate) async fn cleanup(self) {
        if let Some((url, schema)) = &self.pg_schema {
            if let Err(e) = rapport_store::postgres::PgStore::drop_schema(url, schema).await {
                eprintln!("could not drop benchmark schema {schema}: {e}");
            }
        }
    }
}

pub(crate) async fn fresh_target(database_url: Option<&str>, tag: &str) -> Result<Target> {
    match database_url {
        Some(url) => {
            let schema = format!(
                "bench_{tag}_{}_{}",
                std::process::id(),
                rapport_domain::time::now_millis()
            );
            let store: DynStore = Arc::new(
                rapport_store::postgres::PgStore::connect_schema(url, Some(&schema)).await?,
            );
            let sep = if url.contains('?') { '&' } else { '?' };
            let child_url = format!("{url}{sep}options=-csearch_path%3D{schema}");
            // The server's data directory (first-start credentials) is temporary too.
            let dir = tempfile::Builder::new().prefix("rapport-bench").tempdir()?;
            Ok(Target {
                store,
                args: vec![
                    "--database-url".into(),
                    child_url,
                    "--data-dir".into(),
                    dir.path().display().to_string(),
                ],
                kind: "postgres",
                pg_schema: Some((url.to_string(), schema)),
                _dir: Some(dir),
            })
        }
        None => {
            let dir = tempfile::Builder::new().prefix("rapport-bench").tempdir()?;
            let store = rapport_store::open(None, dir.path()).await?;
            let args = vec!["--data-dir".into(), dir.path().display().to_string()];
            Ok(Target {
                store,
                args,
                kind: "sqlite",
                pg_schema: None,
                _dir: Some(dir),
            })
        }
    }
}

pub(crate) struct Server {
    child: Child,
    pub(crate) url: String,
}

impl Server {
    pub(crate) async fn start(target: &Target) -> Result<Server> {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            l.local_addr()?.port()
        };
        let exe = std::env::current_exe()?;
        let child = Command::new(exe)
            .arg("serve")
            .args(&target.args)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .env("RAPPORT_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting rapport serve")?;
        let url = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        for _ in 0..300 {
            if client
                .get(format!("{url}/healthz"))
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false)
            {
                return Ok(Server { child, url });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("the server did not become healthy")
    }

    /// Peak resident memory of the server process (VmHWM), in MB.
    fn peak_rss_mb(&self) -> f64 {
        peak_rss_mb(&self.child.id().to_string())
    }
    pub(crate) fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Realistic traffic for `users` people: 60% tracks by user id, 15% anonymous
/// browsing, 25% identifies that tie a device (anonymous id) and an e-mail to the user
/// id, so a third of messages carry a second identifier and anonymous profiles merge.
fn message(rng: &mut StdRng, i: usize, users: usize, base: i64) -> Value {
    let k = rng.gen_range(0..users);
    let device = rng.gen_range(0..3);
    let ts = rapport_domain::time::to_datetime(base + i as i64).to_rfc3339();
    let ctx = json!({"library": {"name": "analytics-python", "version": "2.3.3"}, "ip": "203.0.113.7",
        "userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"});
    let roll: f64 = rng.gen();
    // Random UUIDs, as the SDKs send (seeded, so runs are comparable): their index has
    // no locality, which is part of the real cost.
    let id = {
        let b: [u8; 16] = rng.gen();
        let h = hex_string(&b);
        format!(
            "{}-{}-4{}-a{}-{}",
            &h[0..8],
            &h[8..12],
            &h[13..16],
            &h[17..20],
            &h[20..32]
        )
    };
    if roll < 0.60 {
        const PRODUCTS: [&str; 4] = [
            "Aurora Headphones",
            "Nimbus Sneakers",
            "Pulse Smartwatch",
            "Drift Backpack",
        ];
        const EVENTS: [&str; 4] = [
            "Product Viewed",
            "Product Added",
            "Order Completed",
            "Email Opened",
        ];
        let product = PRODUCTS[rng.gen_range(0..4)];
        let event = EVENTS[rng.gen_range(0..4)];
        let mut m = json!({"type": "track", "userId": format!("user-{k}"), "event": event, "messageId": id, "timestamp": ts, "context": ctx,
            "properties": {"product": product, "price": rng.gen_range(10..300), "currency": "USD", "url": format!("https://shop.example/p/{k}")}});
        // One track in ten mentions another customer, so relationship inference has work.
        if rng.gen_bool(0.1) {
            m["properties"]["mentions"] = json!([format!("user-{}", rng.gen_range(0..users))]);
        }
        m
    } else if roll < 0.75 {
        json!({"type": "page", "anonymousId": format!("anon-{k}-{device}"), "name": "Catalogue", "messageId": id, "timestamp": ts, "context": ctx,
            "properties": {"url": "https://shop.example/catalogue", "referrer": "https://www.google.com/", "title": "Catalogue"}})
    } else {
        let plan = if k % 2 == 0 { "free" } else { "pro" };
        json!({"type": "identify", "userId": format!("user-{k}"), "anonymousId": format!("anon-{k}-{device}"), "messageId": id, "timestamp": ts, "context": ctx,
            "traits": {"email": format!("person{k}@example.com"), "name": format!("Person {k}"), "plan": plan, "logins": rng.gen_range(1..100)}})
    }
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

const SAMPLE_TEXTS: [&str; 6] = [
    "Absolutely love the new headphones, the sound is amazing and the battery lasts all week! ",
    "My order never arrived and support has not answered in three days. I want a refund now. ",
    "How do I pair the watch with my phone? The app keeps asking for a code I never received. ",
    "Thinking about cancelling, the price went up again and the competitor is cheaper. ",
    "Great service from @support today, thanks #happy https://shop.example/p/1 ",
    "It is fine I guess, nothing special but it works as described most of the time. ",
];

fn text_of(rng: &mut StdRng, chars: usize) -> String {
    let mut t = String::with_capacity(chars + 100);
    while t.len() < chars {
        t.push_str(SAMPLE_TEXTS[rng.gen_range(0..SAMPLE_TEXTS.len())]);
    }
    t.truncate(chars);
    t
}

fn batches(events: usize, batch: usize, text_chars: usize) -> Vec<Vec<u8>> {
    let mut rng = StdRng::seed_from_u64(7);
    let users = (events / 20).max(10);
    let base = rapport_domain::time::now_millis() - events as i64;
    let mut out = Vec::with_capacity(events / batch + 1);
    let mut i = 0;
    while i < events {
        let n = batch.min(events - i);
        let msgs: Vec<Value> = (i..i + n)
            .map(|j| {
                let mut m = message(&mut rng, j, users, base);
                if text_chars > 0 {
                    m["properties"]["text"] = json!(text_of(&mut rng, text_chars));
                }
                m
            })
            .collect();
        let sent_at =
            rapport_domain::time::to_datetime(rapport_domain::time::now_millis()).to_rfc3339();
        out.push(
            serde_json::to_vec(&json!({"batch": msgs, "sentAt": sent_at})).unwrap_or_default(),
        );
        i += n;
    }
    out
}

/// Peak resident memory (VmHWM) of a process (`self` or a pid), in MB.
pub fn peak_rss_mb(pid: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// A venv under the temp directory with `package` installed, made once; returns its
/// python. Baselines are measured with reference implementations installed this way.
pub fn python_venv(name: &str, module: &str, package: &str) -> Result<std::path::PathBuf> {
    let venv = std::env::temp_dir().join(format!("rapport-bench-{name}-venv"));
    let py = venv.join("bin/python");
    let ok = |c: &mut Command| c.status().map(|s| s.success()).unwrap_or(false);
    if !(py.exists() && ok(Command::new(&py).args(["-c", &format!("import {module}")]))) {
        eprintln!("installing {package} into {}", venv.display());
        if !ok(Command::new("python3").args(["-m", "venv"]).arg(&venv)) {
            bail!("python3 -m venv failed");
        }
        if !ok(Command::new(&py).args(["-m", "pip", "install", "--quiet", package])) {
            bail!("pip install {package} failed (PyPI must be reachable)");
        }
    }
    Ok(py)
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

async fn drive(
    url: &str,
    write_key: &str,
    bodies: Arc<Vec<Vec<u8>>>,
    concurrency: usize,
) -> Result<(Duration, Vec<f64>)> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, next, bodies) = (client.clone(), next.clone(), bodies.clone());
        let endpoint = format!("{url}/v1/batch");
        let key = write_key.to_string();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(i) else { break };
                let t = Instant::now();
                let resp = client
                    .post(&endpoint)
                    .basic_auth(&key, Some(""))
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await?;
                if !resp.status().is_success() {
                    let status = resp.status();
                    bail!(
                        "batch {i} refused: {status} {}",
                        resp.text().await.unwrap_or_default()
                    );
                }
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            Ok(lat)
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await??);
    }
    let elapsed = start.elapsed();
    lat.sort_by(|a, b| a.total_cmp(b));
    Ok((elapsed, lat))
}

/// The baseline: the same event rows the HTTP run stored (same profile ids, so the
/// same index locality), inserted straight into a fresh store of the same kind, 1,000
/// per transaction, with no HTTP, parsing or identity resolution.
async fn baseline(stored: &DynStore, target: &Target, bodies: &[Vec<u8>]) -> Result<f64> {
    let mut owner = std::collections::HashMap::new();
    let mut after = 0;
    loop {
        let evs = stored.events_after(after, 20_000).await?;
        let Some(last) = evs.last() else { break };
        after = last.id;
        for e in evs {
            owner.insert(e.message_id, e.profile_id);
        }
    }
    let mut rows = Vec::new();
    for b in bodies {
        for m in parse_body(b, None, rapport_domain::time::now_millis(), None)
            .map_err(|e| anyhow::anyhow!("{:?}", e))?
        {
            let profile_id = owner.get(&m.message_id).copied().unwrap_or(1);
            rows.push(EventRow {
                profile_id,
                message: m,
            });
        }
    }
    let n = rows.len();
    let start = Instant::now();
    let mut it = rows.into_iter().peekable();
    while it.peek().is_some() {
        let chunk: Vec<EventRow> = it.by_ref().take(1000).collect();
        target.store.insert_events_raw(chunk, "baseline").await?;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

pub(crate) fn report(json_out: bool, v: Value) {
    if !json_out {
        if let Some(o) = v.as_object() {
            for (k, val) in o {
                eprintln!("{k:>28}: {val}");
            }
        }
    }
    println!("{v}");
}

async fn admin_get(url: &str, admin: &str, path: &str) -> Result<Value> {
    Ok(reqwest::Client::new()
        .get(format!("{url}{path}"))
        .bearer_auth(admin)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}

pub async fn run(cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Graph(args) => {
            tokio::task::spawn_blocking(move || crate::bench_graph::run(args)).await?
        }
        BenchCommand::Segments(args) => crate::bench_segments::run(args).await,
        BenchCommand::Realtime(args) => crate::bench_realtime::run(args).await,
        BenchCommand::Chain(args) => crate::bench_chain::run(args).await,
        BenchCommand::Ui(args) => crate::bench_ui::run(args).await,
        BenchCommand::Support(args) => crate::bench_support::run(args).await,
        BenchCommand::Kb(args) => crate::bench_kb::run(args).await,
        BenchCommand::Email(args) => {
            tokio::task::spawn_blocking(move || crate::bench_email::run(args)).await?
        }
        BenchCommand::Campaign(args) => crate::bench_campaign::run(args).await,
        BenchCommand::Privacy(args) => crate::bench_privacy::run(args).await,
        BenchCommand::Loyalty(args) => crate::bench_loyalty::run(args).await,
        BenchCommand::Tracking(args) => crate::bench_tracking::run(args).await,
        BenchCommand::Delivery(args) => crate::bench_delivery::run(args).await,
        BenchCommand::Crash(args) => crate::bench_crash::run(args).await,
        BenchCommand::Text(args) => {
            tokio::task::spawn_blocking(move || crate::bench_text::run(args)).await?
        }
        BenchCommand::GraphMeasure(args) => {
            tokio::task::spawn_blocking(move || crate::bench_graph::measure_file(args)).await?
        }
        BenchCommand::Ingest {
            events,
            text_chars,
            batch,
            concurrency,
            database_url,
            json,
        } => {
            eprintln!("generating {events} events in batches of {batch}…");
            let bodies = Arc::new(batches(events, batch, text_chars));
            let target = fresh_target(database_url.as_deref(), "ingest").await?;
            let write = rapport_app::keys::create(
                &target.store,
                Scope::Write,
                "bench",
                &Default::default(),
            )
            .await?;
            let admin = rapport_app::keys::create(
                &target.store,
                Scope::Admin,
                "bench",
                &Default::default(),
            )
            .await?;
            let server = Server::start(&target).await?;
            eprintln!("driving {} with {concurrency} connections…", server.url);
            let run = drive(&server.url, &write.secret, bodies.clone(), concurrency).await;
            // With texts: how long until the analysis worker has read every event.
            let mut catch_up = None;
            if text_chars > 0 && std::env::var("RAPPORT_TEXT_ANALYSIS").as_deref() != Ok("false") {
                let t = std::time::Instant::now();
                while target
                    .store
                    .counter(rapport_app::text::ANALYSIS_CURSOR)
                    .await?
                    < events as i64
                {
                    if t.elapsed() > Duration::from_secs(600) {
                        bail!("the analysis worker did not catch up within 10 minutes");
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                catch_up = Some(t.elapsed().as_secs_f64());
            }
            // SQLite: how far the event number index (segment sums) trails ingestion.
            let mut numbers_lag = None;
            if target.kind == "sqlite"
                && std::env::var("RAPPORT_EVENT_NUMBERS").as_deref() != Ok("false")
            {
                let t = std::time::Instant::now();
                while target.store.event_numbers_position().await?.0 < events as i64 {
                    if t.elapsed() > Duration::from_secs(600) {
                        bail!("the event number index did not catch up within 10 minutes");
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                numbers_lag = Some(t.elapsed().as_secs_f64());
            }
            let rss = server.peak_rss_mb();
            let stats = admin_get(&server.url, &admin.secret, "/api/stats").await;
            server.stop();
            let (elapsed, lat) = run?;
            let stats = stats?;
            let stored = stats["events"].as_u64().unwrap_or(0) as usize;
            if stored != events {
                bail!("{stored} events stored, {events} sent");
            }
            let eps = events as f64 / elapsed.as_secs_f64();
            eprintln!("baseline: raw inserts of the same rows…");
            let base_target = fresh_target(database_url.as_deref(), "baseline").await?;
            let base = baseline(&target.store, &base_target, &bodies).await?;
            let kind = target.kind;
            target.cleanup().await;
            base_target.cleanup().await;
            report(
                json,
                json!({
                    "bench": "ingest", "store": kind, "events": events, "batch_size": batch, "concurrency": concurrency,
                    "seconds": (elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
                    "events_per_sec": eps.round(), "p50_ms": (percentile(&lat, 0.5) * 100.0).round() / 100.0,
                    "p99_ms": (percentile(&lat, 0.99) * 100.0).round() / 100.0,
                    "baseline_events_per_sec": base.round(), "slowdown_vs_baseline": ((base / eps) * 100.0).round() / 100.0,
                    "peak_rss_mb": rss.round(), "profiles": stats["profiles"], "identities": stats["identities"], "merges": stats["merges"],
                    "durable": "fsync per commit (SQLite synchronous=FULL; PostgreSQL synchronous_commit=on)",
                    "text_chars": text_chars, "analysis_caught_up_after_s": catch_up,
                    "event_numbers_caught_up_after_s": numbers_lag,
                }),
            );
            Ok(())
        }
        BenchCommand::Lookup {
            profiles,
            lookups,
            database_url,
            json,
        } => {
            let target = fresh_target(database_url.as_deref(), "lookup").await?;
            eprintln!("loading {profiles} profiles…");
            let t = Instant::now();
            let now = rapport_domain::time::now_millis();
            let chunk = 10_000;
            let mut i = 0;
            while i < profiles {
                let n = chunk.min(profiles - i);
                let msgs: Vec<Value> = (i..i + n)
                    .map(|k| json!({"type": "identify", "userId": format!("user-{k}"), "messageId": format!("lk-{k}"),
                        "traits": {"email": format!("person{k}@example.com"), "name": format!("Person {k}")}}))
                    .collect();
                // Straight to the store: loading is set-up, not what is measured.
                let ctx = rapport_domain::message::BatchContext {
                    received_at: now,
                    ..Default::default()
                };
                let parsed = msgs
                    .iter()
                    .map(|m| rapport_domain::message::parse_message(m, "", None, &ctx, String::new))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                target
                    .store
                    .ingest(vec![rapport_store::SourcedMessages {
                        source: "bench".into(),
                        messages: parsed,
                    }])
                    .await?;
                i += n;
            }
            let load_s = t.elapsed().as_secs_f64();
            let admin = rapport_app::keys::create(
                &target.store,
                Scope::Admin,
                "bench",
                &Default::default(),
            )
            .await?;
            let server = Server::start(&target).await?;
            let client = reqwest::Client::new();
            let mut rng = StdRng::seed_from_u64(11);
            let mut lat = Vec::with_capacity(lookups);
            for _ in 0..lookups {
                let k = rng.gen_range(0..profiles);
                let t = Instant::now();
                let resp = client
                    .get(format!(
                        "{}/api/profiles/lookup?identifier=email:person{k}@example.com",
                        server.url
                    ))
                    .bearer_auth(&admin.secret)
                    .send()
                    .await?;
                if !resp.status().is_success() {
                    server.stop();
                    bail!("lookup of person{k} failed: {}", resp.status());
                }
                let _ = resp.bytes().await?;
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            server.stop();
            lat.sort_by(|a, b| a.total_cmp(b));
            report(
                json,
                json!({
                    "bench": "lookup", "store": target.kind, "profiles": profiles, "lookups": lookups, "load_seconds": load_s.round(),
                    "p50_ms": (percentile(&lat, 0.5) * 1000.0).round() / 1000.0, "p99_ms": (percentile(&lat, 0.99) * 1000.0).round() / 1000.0,
                    "max_ms": (lat.last().copied().unwrap_or(0.0) * 1000.0).round() / 1000.0,
                }),
            );
            Ok(())
        }
    }
}
