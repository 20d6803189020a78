//! Faults of the database under the release path (the `rapport` binary serving HTTP):
//! PostgreSQL crashed and restarted during ingestion, and SQLite's disk full. In both,
//! clients get 503 with `Retry-After` (never a 500), the server recovers by itself, and
//! every acknowledged event is stored exactly once however often clients retried.
//!
//! PostgreSQL runs in a cluster of the test's own (initdb in a temporary directory),
//! since the test stops it; it runs when `RAPPORT_TEST_DATABASE_URL` is set (the
//! PostgreSQL tests are on) and `initdb` is on the PATH. The full disk is a small tmpfs,
//! which needs root; elsewhere the test says it skipped.

mod common;

use serde_json::{json, Value};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_rapport");

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Runs a PostgreSQL tool as the `postgres` user when we are root (initdb refuses root).
fn pg_tool(tool: &str) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", tool]);
        c
    } else {
        Command::new(tool)
    }
}

/// A PostgreSQL cluster of this test's own, stopped when dropped.
struct Cluster {
    dir: tempfile::TempDir,
    port: u16,
}

impl Cluster {
    fn init() -> Option<Cluster> {
        let dir = tempfile::tempdir().ok()?;
        if is_root() {
            let ok = Command::new("chown")
                .args(["-R", "postgres", &dir.path().display().to_string()])
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                return None;
            }
        }
        let out = pg_tool("initdb")
            .args(["-A", "trust", "-U", "postgres", "-D"])
            .arg(dir.path().join("data"))
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!("initdb: {}", String::from_utf8_lossy(&out.stderr));
            return None;
        }
        Some(Cluster {
            dir,
            port: free_port(),
        })
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn start(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        let out = pg_tool("pg_ctl")
            .args(["-w", "-D"])
            .arg(self.data())
            .args(["-o", &opts, "-l"])
            .arg(self.dir.path().join("log"))
            .arg("start")
            .output()
            .expect("pg_ctl start");
        assert!(
            out.status.success(),
            "pg_ctl start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `immediate`: the server's processes quit without a checkpoint, as in a crash;
    /// the next start replays the WAL.
    fn stop(&self, mode: &str) {
        let _ = pg_tool("pg_ctl")
            .args(["-w", "-m", mode, "-D"])
            .arg(self.data())
            .arg("stop")
            .output();
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop("immediate");
    }
}

fn rapport(args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .env("RAPPORT_LOG", "warn")
        .output()
        .expect("run rapport");
    assert!(
        out.status.success(),
        "rapport {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

struct Server {
    child: Child,
    url: String,
}

impl Server {
    async fn start(store_args: &[&str]) -> Server {
        let port = free_port();
        let child = Command::new(BIN)
            .arg("serve")
            .args(store_args)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("RAPPORT_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn server");
        // Owned before waiting, so a panic below still kills it (Drop).
        let server = Server {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        for _ in 0..200 {
            if let Ok(r) = reqwest::get(format!("{}/healthz", server.url)).await {
                if r.status().is_success() {
                    return server;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("server at {} never became healthy", server.url);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn batch(task: usize, n: usize) -> Value {
    let msgs: Vec<Value> = (0..20)
        .map(|j| {
            let user = (task * 7919 + n * 31 + j) % 300;
            let id = format!("f-{task}-{n}-{j}");
            if j % 4 == 0 {
                json!({"type": "identify", "userId": format!("u{user}"), "messageId": id,
                       "traits": {"email": format!("p{user}@example.com"), "bio": "x".repeat(200)}})
            } else {
                json!({"type": "track", "userId": format!("u{user}"), "event": "Viewed", "messageId": id,
                       "properties": {"n": n, "pad": "y".repeat(200)}})
            }
        })
        .collect();
    json!({ "batch": msgs })
}

/// What clients saw: batches acknowledged, 503s (all with `Retry-After`), and anything
/// else (which must not happen).
#[derive(Default)]
struct Seen {
    acked: Mutex<HashSet<(usize, usize)>>,
    unavailable: AtomicUsize,
    without_retry_after: AtomicUsize,
    other: Mutex<Vec<String>>,
}

/// `tasks` clients, each sending its batches in order and retrying a batch (as an SDK
/// does) until it is acknowledged; they stop after their current batch once `stop` is set.
fn clients(
    url: &str,
    key: &str,
    tasks: usize,
    seen: Arc<Seen>,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    (0..tasks)
        .map(|task| {
            let (client, url, key, seen, stop) = (
                client.clone(),
                url.to_string(),
                key.to_string(),
                seen.clone(),
                stop.clone(),
            );
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let r = client
                        .post(format!("{url}/v1/batch"))
                        .basic_auth(&key, Some(""))
                        .json(&batch(task, n))
                        .send()
                        .await;
                    match r {
                        Ok(r) if r.status().is_success() => {
                            seen.acked.lock().unwrap().insert((task, n));
                            n += 1;
                        }
                        Ok(r) if r.status() == 503 => {
                            seen.unavailable.fetch_add(1, Ordering::Relaxed);
                            if !r.headers().contains_key("retry-after") {
                                seen.without_retry_after.fetch_add(1, Ordering::Relaxed);
                            }
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        Ok(r) => {
                            let s = r.status();
                            let body = r.text().await.unwrap_or_default();
                            seen.other.lock().unwrap().push(format!("{s}: {body}"));
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        Err(e) => {
                            seen.other.lock().unwrap().push(format!("transport: {e}"));
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            })
        })
        .collect()
}

/// Every acknowledged event is in the store once, and nothing is there twice.
async fn check_stored(store: rapport_store::DynStore, seen: &Seen, kind: &str) -> usize {
    let mut ids = HashSet::new();
    let mut after = 0;
    loop {
        let evs = store.events_after(after, 5000).await.expect("events");
        let Some(last) = evs.last() else { break };
        after = last.id;
        for e in evs {
            assert!(
                ids.insert(e.message_id.clone()),
                "[{kind}] {} stored twice",
                e.message_id
            );
        }
    }
    let acked = seen.acked.lock().unwrap().clone();
    for (task, n) in &acked {
        for j in 0..20 {
            assert!(
                ids.contains(&format!("f-{task}-{n}-{j}")),
                "[{kind}] acknowledged f-{task}-{n}-{j} lost"
            );
        }
    }
    ids.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_crash_and_restart_mid_ingest() {
    if common::pg_url().is_none() {
        eprintln!("skipped: RAPPORT_TEST_DATABASE_URL is not set");
        return;
    }
    let Some(pg) = Cluster::init() else {
        eprintln!("skipped: no initdb/pg_ctl to run a PostgreSQL of the test's own");
        return;
    };
    pg.start();
    let data = tempfile::tempdir().expect("tempdir");
    let db = pg.url();
    let args = [
        "--database-url",
        db.as_str(),
        "--data-dir",
        data.path().to_str().expect("utf-8 path"),
    ];
    let key = rapport(&[&["keys", "create", "--scope", "write"][..], &args[..]].concat());
    let admin = rapport(&[&["keys", "create", "--scope", "admin"][..], &args[..]].concat());
    let server = Server::start(&args).await;
    let seen = Arc::new(Seen::default());
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = clients(&server.url, &key, 4, seen.clone(), stop.clone());

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = seen.acked.lock().unwrap().len();
    pg.stop("immediate");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = seen.unavailable.load(Ordering::Relaxed);
    // The staff API too: 503 with Retry-After, not a 500.
    let (status, retry, body) = admin_call(
        &server.url,
        &admin,
        reqwest::Method::GET,
        "/api/profiles?limit=1",
        None,
    )
    .await;
    assert_eq!(
        (status, retry),
        (503, true),
        "reading profiles while PostgreSQL is down: {body}"
    );
    pg.start();
    // The server reconnects by itself: clients' retries get through.
    let restarted = seen.acked.lock().unwrap().len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .expect("clients finish")
            .expect("client task");
    }
    let after = seen.acked.lock().unwrap().len();
    let other = seen.other.lock().unwrap().clone();
    assert!(before >= 5, "only {before} batches before the crash");
    assert!(during > 0, "no 503 while PostgreSQL was down");
    assert_eq!(seen.without_retry_after.load(Ordering::Relaxed), 0);
    assert!(other.is_empty(), "answers other than 200/503: {other:?}");
    assert!(
        after > restarted + 5,
        "ingestion did not resume after the restart ({restarted} → {after})"
    );
    let store: rapport_store::DynStore = Arc::new(
        rapport_store::postgres::PgStore::connect_schema(&db, None)
            .await
            .expect("pg"),
    );
    let n = check_stored(store, &seen, "postgres").await;
    eprintln!(
        "postgres: {before} batches before the crash, {during} answers 503 while down, \
         {after} acknowledged in all, {n} events stored once each"
    );
}

/// A tmpfs mounted for the test, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        if !is_root() {
            return None;
        }
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(SmallDisk { dir })
    }

    fn resize(&self, size: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.dir.path())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "remount {size}");
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_disk_full_then_space_returns() {
    let Some(disk) = SmallDisk::mount("6m") else {
        eprintln!("skipped: mounting a small tmpfs needs root");
        return;
    };
    let dir = disk.path().to_str().expect("utf-8 path").to_string();
    let args = ["--data-dir", dir.as_str()];
    let key = rapport(&[&["keys", "create", "--scope", "write"][..], &args[..]].concat());
    let admin = rapport(&[&["keys", "create", "--scope", "admin"][..], &args[..]].concat());
    let server = Server::start(&args).await;
    let seen = Arc::new(Seen::default());
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = clients(&server.url, &key, 2, seen.clone(), stop.clone());

    // Until the disk is full and the server has refused for a while.
    let mut waited = 0;
    while seen.unavailable.load(Ordering::Relaxed) < 10 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
        assert!(waited < 600, "the 6 MB disk never filled");
    }
    let full_at = seen.acked.lock().unwrap().len();
    // Reads still work while writes cannot.
    let (s, _) = get(&server.url, "/healthz").await;
    assert_eq!(s, 200);
    let (status, _, body) = admin_call(
        &server.url,
        &admin,
        reqwest::Method::GET,
        "/api/profiles?limit=1",
        None,
    )
    .await;
    assert_eq!(status, 200, "reading profiles on a full disk: {body}");
    // Take the last free pages too, then staff writes are refused the same way as
    // ingestion: 503, retry later. (A small write may still fit where a failed one's
    // frames were in SQLite's WAL; growing ones cannot.)
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=16k"])
        .arg(format!("of={}", disk.path().join("filler").display()))
        .stderr(Stdio::null())
        .status();
    let mut answers = Vec::new();
    for size in [10_000, 200_000, 600_000, 1_500_000] {
        let (status, retry, body) = admin_call(
            &server.url,
            &admin,
            reqwest::Method::PATCH,
            "/api/profiles/1/traits",
            Some(json!({ format!("blob{size}"): "x".repeat(size) })),
        )
        .await;
        assert!(
            status == 200 || (status == 503 && retry),
            "a staff write on a full disk: {status} {body}"
        );
        answers.push(status);
    }
    assert!(
        answers.contains(&503),
        "no staff write was refused on a full disk: {answers:?}"
    );
    let _ = std::fs::remove_file(disk.path().join("filler"));
    disk.resize("64m");
    let mut waited = 0;
    while seen.acked.lock().unwrap().len() < full_at + 20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
        assert!(
            waited < 300,
            "ingestion did not resume once space returned ({full_at} → {})",
            seen.acked.lock().unwrap().len()
        );
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .expect("clients finish")
            .expect("client task");
    }
    drop(server);
    let other = seen.other.lock().unwrap().clone();
    assert!(other.is_empty(), "answers other than 200/503: {other:?}");
    assert_eq!(seen.without_retry_after.load(Ordering::Relaxed), 0);
    let db = disk.path().join("rapport.db");
    let check = Command::new("sqlite3")
        .arg(&db)
        .arg("PRAGMA integrity_check;")
        .output();
    if let Ok(out) = check {
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "ok",
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let store = rapport_store::open(None, disk.path())
        .await
        .expect("sqlite reopens");
    let n = check_stored(store, &seen, "sqlite").await;
    eprintln!(
        "sqlite: full after {full_at} batches, {} answers 503, {} acknowledged in all, \
         {n} events stored once each",
        seen.unavailable.load(Ordering::Relaxed),
        seen.acked.lock().unwrap().len()
    );
}

async fn get(url: &str, path: &str) -> (u16, String) {
    let r = reqwest::get(format!("{url}{path}")).await.expect("request");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

/// Status, whether `Retry-After` came, and the body.
async fn admin_call(
    url: &str,
    key: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, bool, String) {
    let mut r = reqwest::Client::new()
        .request(method, format!("{url}{path}"))
        .bearer_auth(key);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.expect("request");
    let retry = r.headers().contains_key("retry-after");
    (
        r.status().as_u16(),
        retry,
        r.text().await.unwrap_or_default(),
    )
}
