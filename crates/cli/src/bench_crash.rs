//! `rapport bench crash`: is SQLite still sound when the server is killed at random
//! points? A database grown past a size (default 1.1 GiB: past SQLite's lock page at
//! 1 GiB, which page numbering must skip) takes heavy ingestion while the real-time engine
//! decides segments and rules; the server is killed with SIGKILL at a random moment,
//! several times. After each kill: `PRAGMA integrity_check` must say `ok`, and every event
//! the server acknowledged (a 200 means committed) must be stored. Too slow for the test
//! suite (growing the database takes a minute); run it after a change to SQLite's
//! settings or the write path, and record the result in docs/benchmarks.md.

use anyhow::{bail, Context, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rapport_domain::apikey::Scope;
use rapport_domain::time::now_millis;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
pub struct CrashBench {
    /// Grow the database to at least this size first (GiB).
    #[arg(long, default_value_t = 1.1)]
    grow_gib: f64,
    /// How many times the server is killed.
    #[arg(long, default_value_t = 5)]
    kills: usize,
    /// Traffic runs a random time up to this before each kill (seconds).
    #[arg(long, default_value_t = 10.0)]
    max_run_s: f64,
    /// Concurrent clients posting batches of 50.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Keep (and reuse) the grown database here instead of a temporary directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    #[arg(long)]
    json: bool,
}

const PEOPLE: usize = 20_000;

fn db_bytes(dir: &Path) -> u64 {
    ["rapport.db", "rapport.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum()
}

/// Fills the database with old events carrying a 2 KB property, past `bytes`, and
/// defines the segments and rules the engine decides; the engine's and workers'
/// positions are set past this history, as on a server that had long caught up.
async fn prepare(dir: &Path, bytes: u64) -> Result<String> {
    let store = rapport_store::open(None, dir).await?;
    let padding = "x".repeat(2_000);
    let mut n = 0usize;
    let started = Instant::now();
    while db_bytes(dir) < bytes {
        let now = now_millis();
        let msgs: Vec<Value> = (0..5_000)
            .map(|i| {
                let k = n + i;
                let u = format!("u{}", k % PEOPLE);
                if k < PEOPLE {
                    json!({"type": "identify", "userId": u, "traits": {"email": format!("{u}@crash.test")}})
                } else {
                    json!({"type": "track", "userId": u, "event": "Viewed", "properties": {"padding": padding}})
                }
            })
            .collect();
        let parsed = crate::bench_realtime::parse_all(&msgs, &format!("grow{n}-"), now)?;
        crate::bench_realtime::ingest(&store, parsed).await?;
        n += 5_000;
        if n.is_multiple_of(100_000) {
            eprintln!(
                "grown to {:.2} GiB ({n} events, {:.0} s)",
                db_bytes(dir) as f64 / (1u64 << 30) as f64,
                started.elapsed().as_secs_f64()
            );
        }
    }
    for s in 0..20 {
        let def = match s % 4 {
            0 => format!("count(track \"Order Completed\", 30d) >= {}", 1 + s % 3),
            1 => format!(
                "sum(track \"Order Completed\".revenue, 90d) > {}",
                50 * (1 + s)
            ),
            2 => format!("count(track \"Viewed\", 7d) >= {}", 2 + s),
            _ => "has email".to_string(),
        };
        if store.segment_by_name(&format!("c{s}")).await?.is_none() {
            rapport_app::segments::create(&store, &format!("c{s}"), &def, "").await?;
        }
    }
    let rules: Vec<Value> = (0..10)
        .map(|r| json!({"name": format!("cr{r}"), "when": "track \"Order Completed\"",
            "where": format!("count(track \"Order Completed\") >= {}", 1 + r % 3),
            "then": [{"action": "add_tag", "tag": format!("t{r}")}], "cap": {"max": 1, "per_hours": 1}}))
        .collect();
    rapport_app::rules::set_rules(&store, &json!({ "rules": rules })).await?;
    // Positions past the history (event ids are dense from 1 on a fresh database), set
    // once: a reused database keeps the positions its servers reached.
    let top = store.stats().await?.events;
    let names = [
        rapport_app::segments::SEGMENT_CURSOR,
        rapport_app::graph::INFERENCE_CURSOR,
    ];
    let have = store
        .counters(names.iter().map(|s| s.to_string()).collect())
        .await?;
    let unset: Vec<(String, i64)> = names
        .iter()
        .zip(have)
        .filter(|(_, v)| *v == 0)
        .map(|(n, _)| (n.to_string(), top))
        .collect();
    store.set_counters(unset).await?;
    let key = rapport_app::keys::create(&store, Scope::Write, "crash", &Default::default()).await?;
    Ok(key.secret)
}

fn start(dir: &Path, port: u16) -> Result<Child> {
    Command::new(std::env::current_exe()?)
        .args(["serve", "--data-dir"])
        .arg(dir)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("RAPPORT_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting rapport serve")
}

async fn wait_healthy(url: &str) -> Result<()> {
    let client = reqwest::Client::new();
    for _ in 0..1200 {
        if let Ok(r) = client.get(format!("{url}/healthz")).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("the server did not become healthy")
}

fn batch(round: usize, task: usize, n: usize) -> Value {
    let msgs: Vec<Value> = (0..50)
        .map(|j| {
            let u = format!("u{}", (task * 7919 + n * 131 + j * 17) % PEOPLE);
            let id = format!("c{round}-{task}-{n}-{j}");
            match j % 5 {
                0 => json!({"type": "identify", "userId": u, "messageId": id, "traits": {"last_round": round}}),
                1 | 2 => json!({"type": "track", "userId": u, "messageId": id, "event": "Order Completed", "properties": {"revenue": 10 + (n + j) % 200}}),
                _ => json!({"type": "track", "userId": u, "messageId": id, "event": "Viewed", "properties": {"page": j}}),
            }
        })
        .collect();
    json!({ "batch": msgs })
}

/// `PRAGMA integrity_check`, acknowledged events missing, and the engine's membership
/// events so far (to show it ran).
fn check(dir: &Path, acked: &HashSet<String>) -> Result<(String, usize, i64)> {
    let c = rusqlite::Connection::open(dir.join("rapport.db"))?;
    let integrity: String = c.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    c.execute_batch("CREATE TEMP TABLE acked (id TEXT PRIMARY KEY)")?;
    {
        let mut ins = c.prepare("INSERT INTO temp.acked (id) VALUES (?1)")?;
        for id in acked {
            ins.execute([id])?;
        }
    }
    let stored: i64 = c.query_row(
        "SELECT COUNT(*) FROM temp.acked a JOIN events e ON e.message_id = a.id",
        [],
        |r| r.get(0),
    )?;
    let memberships: i64 = c.query_row(
        "SELECT COUNT(*) FROM events WHERE name IN ('Segment Entered', 'Segment Exited')",
        [],
        |r| r.get(0),
    )?;
    Ok((integrity, acked.len() - stored as usize, memberships))
}

pub async fn run(a: CrashBench) -> Result<()> {
    let tmp;
    let dir = match &a.data_dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            tmp = tempfile::Builder::new().prefix("rapport-crash").tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let grow_started = Instant::now();
    let key = prepare(&dir, (a.grow_gib * (1u64 << 30) as f64) as u64).await?;
    let grow_s = grow_started.elapsed().as_secs_f64();
    eprintln!(
        "database {:.2} GiB after {grow_s:.0} s",
        db_bytes(&dir) as f64 / (1u64 << 30) as f64
    );
    let mut rng = StdRng::seed_from_u64(a.seed);
    let client = reqwest::Client::new();
    let mut rounds = Vec::new();
    let mut all_acked: HashSet<String> = HashSet::new();
    for round in 0..a.kills {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let url = format!("http://127.0.0.1:{port}");
        let restarted = Instant::now();
        let mut child = start(&dir, port)?;
        wait_healthy(&url).await?;
        let restart_s = restarted.elapsed().as_secs_f64();
        let acked: Arc<Mutex<HashSet<String>>> = Default::default();
        let mut tasks = Vec::new();
        for task in 0..a.clients {
            let (acked, client, url, key) =
                (acked.clone(), client.clone(), url.clone(), key.clone());
            tasks.push(tokio::spawn(async move {
                for n in 0.. {
                    let body = batch(round, task, n);
                    let r = client
                        .post(format!("{url}/v1/batch"))
                        .basic_auth(&key, Some(""))
                        .json(&body)
                        .send()
                        .await;
                    match r {
                        Ok(r) if r.status().is_success() => {
                            let mut a = acked.lock().unwrap_or_else(|e| e.into_inner());
                            for j in 0..50 {
                                a.insert(format!("c{round}-{task}-{n}-{j}"));
                            }
                        }
                        _ => break,
                    }
                }
            }));
        }
        let run_s = rng.gen_range(1.0..a.max_run_s.max(1.5));
        tokio::time::sleep(Duration::from_secs_f64(run_s)).await;
        child.kill().context("SIGKILL")?;
        child.wait()?;
        for t in tasks {
            let _ = t.await;
        }
        let acked = acked.lock().unwrap_or_else(|e| e.into_inner()).clone();
        all_acked.extend(acked.iter().cloned());
        let checked = Instant::now();
        let (integrity, missing, memberships) = check(&dir, &all_acked)?;
        let r = json!({
            "round": round, "run_s": run_s, "restart_s": restart_s,
            "acked_events": acked.len(), "integrity": integrity, "missing": missing,
            "membership_events": memberships, "db_gib": db_bytes(&dir) as f64 / (1u64 << 30) as f64,
            "check_s": checked.elapsed().as_secs_f64(),
        });
        eprintln!("{r}");
        let bad = integrity != "ok" || missing > 0;
        rounds.push(r);
        if bad {
            bail!("round {round}: integrity {integrity}, {missing} acknowledged events missing");
        }
    }
    let out = json!({"bench": "crash", "grow_s": grow_s, "kills": a.kills,
        "acked_events": all_acked.len(), "rounds": rounds});
    if a.json {
        println!("{out}");
    } else {
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(())
}
