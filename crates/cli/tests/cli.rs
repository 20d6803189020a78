//! The `rapport` binary: keys, import/export, demo data, and durability under SIGKILL,
//! on SQLite and (with RAPPORT_TEST_DATABASE_URL) PostgreSQL.

mod common;

use serde_json::{json, Value};
use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_rapport");

/// Store arguments for each store under test, and how to reopen that store here.
struct Target {
    args: Vec<String>,
    kind: &'static str,
    pg: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl Target {
    async fn store(&self) -> rapport_store::DynStore {
        match &self.pg {
            Some((url, schema)) => Arc::new(
                rapport_store::postgres::PgStore::connect_schema(url, Some(schema))
                    .await
                    .expect("pg"),
            ),
            None => rapport_store::open(None, std::path::Path::new(&self.args[1]))
                .await
                .expect("sqlite"),
        }
    }

    async fn finish(self) {
        if let Some((url, schema)) = &self.pg {
            common::drop_schema(url, schema).await;
        }
    }
}

fn targets() -> Vec<Target> {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut out = vec![Target {
        args: vec!["--data-dir".into(), dir.path().display().to_string()],
        kind: "sqlite",
        pg: None,
        _dir: Some(dir),
    }];
    if let Some(url) = common::pg_url() {
        let schema = common::unique_schema();
        let sep = if url.contains('?') { '&' } else { '?' };
        // Its own data directory too: first-start credentials are written there.
        let dir = tempfile::tempdir().expect("tempdir");
        out.push(Target {
            args: vec![
                "--database-url".into(),
                format!("{url}{sep}options=-csearch_path%3D{schema}"),
                "--data-dir".into(),
                dir.path().display().to_string(),
            ],
            kind: "postgres",
            pg: Some((url, schema)),
            _dir: Some(dir),
        });
    }
    out
}

fn rapport(args: &[&str], target: &Target) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .args(&target.args)
        .env("RAPPORT_LOG", "warn")
        .output()
        .expect("run rapport")
}

async fn ensure_schema(t: &Target) {
    // Creates the PostgreSQL schema (the binary only sets search_path).
    if t.pg.is_some() {
        t.store().await;
    }
}

#[tokio::test]
async fn keys_create_prints_the_key_alone() {
    for t in targets() {
        ensure_schema(&t).await;
        let out = rapport(
            &["keys", "create", "--scope", "admin", "--label", "ops"],
            &t,
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert_eq!(stdout.lines().count(), 1);
        assert!(stdout.trim().starts_with("rk_a_"), "{stdout}");
        let out = rapport(&["keys", "create", "--scope", "root"], &t);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr)
            .contains("--scope must be write, admin or insight"));
        let out = rapport(
            &["keys", "create", "--scope", "insight", "--label", "partner"],
            &t,
        );
        assert!(
            String::from_utf8(out.stdout)
                .unwrap()
                .trim()
                .starts_with("rk_i_"),
            "[{}]",
            t.kind
        );
        let out = rapport(&["keys", "list"], &t);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("admin\tserver\tactive\tops"),
            "[{}]",
            t.kind
        );
        // A browser key for a web page, held to its origins; an admin key cannot be one.
        let out = rapport(
            &[
                "keys",
                "create",
                "--scope",
                "write",
                "--browser",
                "--origin",
                "https://Shop.example/",
                "--label",
                "site",
            ],
            &t,
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = rapport(&["keys", "list"], &t);
        assert!(
            String::from_utf8_lossy(&out.stdout)
                .contains("write\tbrowser\tactive\tsite\thttps://shop.example"),
            "[{}] {}",
            t.kind,
            String::from_utf8_lossy(&out.stdout)
        );
        let out = rapport(
            &[
                "keys",
                "create",
                "--scope",
                "write",
                "--browser",
                "--origin",
                "shop.example",
            ],
            &t,
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--origin"),
            "[{}]",
            t.kind
        );
        let out = rapport(&["keys", "create", "--scope", "admin", "--browser"], &t);
        assert!(!out.status.success(), "[{}]", t.kind);
        t.finish().await;
    }
}

/// The first start's credentials go to a file only the owner can read, not to a stdout
/// that is not a terminal (where logs go under systemd or docker).
#[tokio::test]
async fn first_start_credentials_go_to_an_owner_only_file() {
    use std::io::{BufRead, BufReader};
    for t in targets() {
        ensure_schema(&t).await;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let mut child = Command::new(BIN)
            .arg("serve")
            .args(&t.args)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("RAPPORT_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn server");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut seen = Vec::new();
        for line in lines.by_ref() {
            let line = line.expect("line");
            let done = line.starts_with("Rapport is listening");
            seen.push(line);
            if done {
                break;
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        let out = seen.join("\n");
        assert!(
            !out.contains("rk_a_") && !out.contains("rk_w_"),
            "[{}] keys on stdout: {out}",
            t.kind
        );
        let dir = &t.args[t
            .args
            .iter()
            .position(|a| a == "--data-dir")
            .expect("data dir")
            + 1];
        let file = std::path::Path::new(dir).join("first-start-credentials.txt");
        assert!(
            out.contains(&file.display().to_string()),
            "[{}] {out}",
            t.kind
        );
        let text = std::fs::read_to_string(&file).expect("credentials file");
        assert!(
            text.contains("admin key: rk_a_") && text.contains("staff sign-in"),
            "{text}"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "[{}]", t.kind);
        }
        t.finish().await;
    }
}

fn last_json(out: &std::process::Output) -> Value {
    let s = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(s.lines().last().unwrap_or("null")).unwrap_or(Value::Null)
}

#[tokio::test]
async fn csv_and_jsonl_import_then_export() {
    for t in targets() {
        ensure_schema(&t).await;
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("people.csv");
        std::fs::write(
            &csv,
            "Id,Email,Mobile,Twitter,Job Title\r\n\
             1,ann@example.com,+14155552671,@ann,CMO\r\n\
             2,not-an-email,,,Engineer\r\n\
             3,\"bob@example.com\",+1 000,,Designer\r\n\
             4,cara@example.com,,@cara,\"Head of Growth, EMEA\"\r\n\
             ,,,,Nobody\r\n",
        )
        .unwrap();
        let out = rapport(
            &[
                "import",
                csv.to_str().unwrap(),
                "--map",
                "user_id=Id,email=Email,phone=Mobile,social:x=Twitter,traits.title=Job Title",
            ],
            &t,
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let s = last_json(&out);
        assert_eq!(s["rows"], 5, "[{}] {s}", t.kind);
        // Rows 3 and 4 have a user id: imported, their bad e-mail and phone dropped and
        // reported by column (docs/identity.md, "Bad identifiers do not lose events").
        assert_eq!(s["imported"], 4);
        assert_eq!(s["profiles_created"], 4);
        assert_eq!(s["dropped_count"], 2);
        let dropped: Vec<&str> = s["dropped"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|d| d["field"].as_str())
            .collect();
        assert_eq!(
            dropped,
            ["line 3: column 'Email'", "line 4: column 'Mobile'"],
            "{s}"
        );
        let rejected: Vec<(u64, String)> = s["rejected"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["line"].as_u64().unwrap(),
                    r["reason"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(
            rejected.iter().map(|r| r.0).collect::<Vec<_>>(),
            vec![6],
            "{rejected:?}"
        );
        assert!(rejected[0].1.contains("has no identifier"), "{rejected:?}");
        // Re-importing the same file changes nothing.
        let again = last_json(&rapport(
            &[
                "import",
                csv.to_str().unwrap(),
                "--map",
                "user_id=Id,email=Email,phone=Mobile,social:x=Twitter,traits.title=Job Title",
            ],
            &t,
        ));
        assert_eq!(again["imported"], 0);
        assert_eq!(again["duplicates"], 4);

        let jsonl = dir.path().join("events.jsonl");
        std::fs::write(&jsonl, "{\"type\":\"track\",\"userId\":\"1\",\"event\":\"Order Completed\",\"properties\":{\"revenue\":30}}\n\n{\"type\":\"track\",\"event\":\"x\"}\n{\"type\":\"identify\",\"anonymousId\":\"d\",\"traits\":{\"email\":\"cara@example.com\"}}\n").unwrap();
        let s = last_json(&rapport(&["import", jsonl.to_str().unwrap()], &t));
        assert_eq!(
            (
                s["rows"].as_u64(),
                s["imported"].as_u64(),
                s["rejected_count"].as_u64()
            ),
            (Some(3), Some(2), Some(1)),
            "{s}"
        );
        assert_eq!(s["rejected"][0]["line"], 3);

        let out_file = dir.path().join("profiles.jsonl");
        let out = rapport(&["export", "--out", out_file.to_str().unwrap()], &t);
        assert!(out.status.success());
        let text = std::fs::read_to_string(&out_file).unwrap();
        let profiles: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(profiles.len(), 4, "[{}]", t.kind);
        let ann = profiles
            .iter()
            .find(|p| p["traits"]["title"] == "CMO")
            .unwrap();
        assert_eq!(
            common::identities(ann),
            vec![
                "email:ann@example.com",
                "phone:+14155552671",
                "social:x:ann",
                "user_id:1"
            ]
        );
        let cara = profiles
            .iter()
            .find(|p| p["traits"]["title"] == "Head of Growth, EMEA")
            .unwrap();
        assert!(common::identities(cara).contains(&"anonymous_id:d".to_string()));
        let out = rapport(&["export", "--what", "events"], &t);
        assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 6);
        let out = rapport(
            &["import", csv.to_str().unwrap(), "--map", "email=Nope"],
            &t,
        );
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("'Nope', which is not in the header"));
        t.finish().await;
    }
}

#[tokio::test]
async fn demo_data_is_a_living_crm() {
    for t in targets() {
        ensure_schema(&t).await;
        let out = rapport(&["demo", "--people", "300"], &t);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stats = t.store().await.stats().await.unwrap();
        // 300 people and 75 anonymous visitors who never identified.
        assert_eq!(stats.profiles, 375, "[{}] {stats:?}", t.kind);
        assert!(stats.events > 300 * 15, "{stats:?}");
        assert!(stats.merges >= 15, "second devices merge: {stats:?}");
        assert!(
            stats.open_conflicts >= 5,
            "households are held for review: {stats:?}"
        );
        assert!(stats.identities > 300 * 5, "{stats:?}");
        // Relationships were inferred from mentions, referrals and answers, and scored.
        let store = t.store().await;
        let run = store
            .latest_graph_run()
            .await
            .unwrap()
            .expect("a graph run");
        assert!(
            run.summary["nodes"].as_u64().unwrap() > 250,
            "[{}] {}",
            t.kind,
            run.summary
        );
        assert!(run.summary["communities"]["count"].as_u64().unwrap() > 1);
        let top = store
            .top_graph_scores(rapport_store::ScoreOrder::Pagerank, None, 1)
            .await
            .unwrap();
        assert_eq!(top.len(), 1);
        // Texts were analysed and tagged with the demo shop's products and topics.
        let now = rapport_domain::time::now_millis();
        let topics = store.tag_voice("topic", 0, now).await.unwrap();
        assert!(topics.len() >= 3, "[{}] {topics:?}", t.kind);
        let products = store.tag_voice("product", 0, now).await.unwrap();
        assert!(products.len() >= 5, "[{}] {products:?}", t.kind);
        // The story: named segments with members, micro-segments, scores, offers, rules.
        let segments = store.segments().await.unwrap();
        let named: Vec<_> = segments
            .iter()
            .filter(|s| !s.name.starts_with("Micro "))
            .collect();
        assert_eq!(named.len(), 8, "[{}] {segments:?}", t.kind);
        assert!(
            named.iter().filter(|s| s.size > 0).count() >= 6,
            "[{}] most named segments have members: {named:?}",
            t.kind
        );
        assert!(segments.iter().any(|s| s.name == "Micro 1"), "[{}]", t.kind);
        let dynstore = t.store().await;
        assert_eq!(
            rapport_app::offers::offers(&dynstore).await.unwrap().len(),
            3
        );
        assert_eq!(rapport_app::rules::rules(&dynstore).await.unwrap().len(), 6);
        // E-mail: the shop's domain, two templates (and the one voters of ideas hear
        // from), the win-back campaign as a draft.
        assert_eq!(dynstore.templates().await.unwrap().len(), 3);
        // The help centre and the community: published articles, a proposal, answered
        // questions, ideas in every state, one rude answer held for review.
        let published = dynstore
            .articles(Some("published".into()), None, 100)
            .await
            .unwrap();
        assert_eq!(published.len(), 10, "[{}]", t.kind);
        assert_eq!(dynstore.proposed_revisions(10).await.unwrap().len(), 1);
        let posts = |kind: &str, flagged: bool| rapport_store::PostFilter {
            kind: Some(kind.into()),
            flagged,
            with_hidden: true,
            limit: 100,
            ..Default::default()
        };
        let questions = dynstore.posts(posts("question", false)).await.unwrap();
        assert_eq!(questions.len(), 6, "[{}]", t.kind);
        assert_eq!(
            questions.iter().filter(|q| q.accepted_id.is_some()).count(),
            4
        );
        let held = dynstore.posts(posts("answer", true)).await.unwrap();
        assert_eq!(held.len(), 1, "[{}] {held:?}", t.kind);
        let ideas = dynstore.posts(posts("idea", false)).await.unwrap();
        assert!(ideas.iter().any(|i| i.status == "completed") && ideas.iter().all(|i| i.score > 0));
        let campaigns = dynstore.campaigns().await.unwrap();
        assert_eq!(
            campaigns
                .iter()
                .map(|c| (c.name.as_str(), c.status.as_str()))
                .collect::<Vec<_>>(),
            [("December win-back", "draft")]
        );
        assert!(!rapport_app::scores::custom_scores(&dynstore)
            .await
            .unwrap()
            .is_empty());
        // Tickets come with their teams, tagged by what they say.
        let returns = t
            .store()
            .await
            .tickets(rapport_store::TicketFilter {
                team: Some("Returns".into()),
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(
            !returns.is_empty()
                && returns
                    .iter()
                    .all(|x| x.tags.contains(&"damaged".to_string())),
            "[{}] {returns:?}",
            t.kind
        );
        // Idempotent: loading again adds nothing.
        rapport(&["demo", "--people", "300"], &t);
        assert_eq!(t.store().await.stats().await.unwrap().events, stats.events);
        assert_eq!(
            t.store().await.segments().await.unwrap().len(),
            segments.len(),
            "[{}] the story twice",
            t.kind
        );
        // Served, the real-time engine fires the story's rule on today's tickets: the
        // task list has something to do.
        let (mut child, url) = start_server(&t);
        wait_healthy(&url).await;
        let (mut tasks, mut shadow) = (Vec::new(), Vec::new());
        let reward = "Reward helpers with a wallet (shadow mode)";
        for _ in 0..600 {
            tasks = t.store().await.tasks(50).await.unwrap();
            shadow = t
                .store()
                .await
                .firings(Some(reward.into()), 50)
                .await
                .unwrap();
            if !tasks.is_empty() && !shadow.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // The token reward rule in shadow mode: it fired on today's accepted answers by
        // people with a wallet, and recorded what it would have paid; nothing was asked of
        // the chain.
        assert!(
            shadow.iter().all(|f| f.actions[0]["dry_run"] == true),
            "[{}] {shadow:?}",
            t.kind
        );
        assert!(
            !shadow.is_empty(),
            "[{}] the shadow rule never fired",
            t.kind
        );
        assert!(
            t.store().await.rewards(None, 10).await.unwrap().is_empty(),
            "[{}] a reward was asked for",
            t.kind
        );
        let _ = child.kill();
        let _ = child.wait();
        assert!(
            tasks.iter().any(|x| x.rule == "Call unhappy big spenders"),
            "[{}] no task opened: {tasks:?}",
            t.kind
        );
        t.finish().await;
    }
}

fn start_server(t: &Target) -> (std::process::Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(BIN)
        .arg("serve")
        .args(&t.args)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("RAPPORT_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn server");
    (child, format!("http://127.0.0.1:{port}"))
}

async fn wait_healthy(url: &str) {
    for _ in 0..200 {
        if let Ok(r) = reqwest::get(format!("{url}/healthz")).await {
            if r.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("server at {url} never became healthy");
}

fn batch_body(task: usize, n: usize) -> Value {
    let msgs: Vec<Value> = (0..50)
        .map(|j| {
            let user = (task * 7919 + n * 31 + j) % 500;
            if j % 3 == 0 {
                json!({"type": "identify", "userId": format!("u{user}"), "anonymousId": format!("a{}", (user + n) % 700), "messageId": format!("k-{task}-{n}-{j}"), "traits": {"email": format!("p{user}@example.com")}})
            } else {
                json!({"type": "track", "userId": format!("u{user}"), "event": "Viewed", "messageId": format!("k-{task}-{n}-{j}"), "properties": {"n": n}})
            }
        })
        .collect();
    json!({ "batch": msgs })
}

/// A 200 means committed: SIGKILL the server during heavy ingest, restart, and every
/// acknowledged event is there exactly once; retrying the rest leaves no duplicates.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_mid_ingest_loses_no_acknowledged_event() {
    for t in targets() {
        ensure_schema(&t).await;
        let key_out = rapport(&["keys", "create", "--scope", "write"], &t);
        let key = String::from_utf8(key_out.stdout)
            .unwrap()
            .trim()
            .to_string();
        let (mut child, url) = start_server(&t);
        wait_healthy(&url).await;
        let acked: Arc<Mutex<HashSet<(usize, usize)>>> = Default::default();
        let attempted: Arc<Mutex<HashSet<(usize, usize)>>> = Default::default();
        let client = reqwest::Client::new();
        let mut tasks = Vec::new();
        for task in 0..8 {
            let (acked, attempted, client, url, key) = (
                acked.clone(),
                attempted.clone(),
                client.clone(),
                url.clone(),
                key.clone(),
            );
            tasks.push(tokio::spawn(async move {
                for n in 0.. {
                    attempted.lock().unwrap().insert((task, n));
                    let r = client
                        .post(format!("{url}/v1/batch"))
                        .basic_auth(&key, Some(""))
                        .json(&batch_body(task, n))
                        .send()
                        .await;
                    match r {
                        Ok(r) if r.status().is_success() => {
                            acked.lock().unwrap().insert((task, n));
                        }
                        _ => break,
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        child.kill().expect("SIGKILL"); // std's kill is SIGKILL on Unix
        child.wait().unwrap();
        for task in tasks {
            let _ = task.await;
        }
        let acked = acked.lock().unwrap().clone();
        let attempted = attempted.lock().unwrap().clone();
        assert!(
            acked.len() >= 10,
            "[{}] only {} batches acknowledged before the kill",
            t.kind,
            acked.len()
        );

        let stored: HashSet<String> = {
            let store = t.store().await;
            let mut ids = HashSet::new();
            let mut after = 0;
            loop {
                let evs = store.events_after(after, 5000).await.unwrap();
                let Some(last) = evs.last() else { break };
                after = last.id;
                for e in evs {
                    assert!(
                        ids.insert(e.message_id.clone()),
                        "duplicate {}",
                        e.message_id
                    );
                }
            }
            ids
        };
        for (task, n) in &acked {
            for j in 0..50 {
                assert!(
                    stored.contains(&format!("k-{task}-{n}-{j}")),
                    "[{}] acknowledged k-{task}-{n}-{j} lost",
                    t.kind
                );
            }
        }
        // Retry every batch that was attempted (acknowledged or not): no duplicates.
        let (mut child, url) = start_server(&t);
        wait_healthy(&url).await;
        for (task, n) in &attempted {
            let r = client
                .post(format!("{url}/v1/batch"))
                .basic_auth(&key, Some(""))
                .json(&batch_body(*task, *n))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success());
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let stats = t.store().await.stats().await.unwrap();
        assert_eq!(
            stats.events as usize,
            attempted.len() * 50,
            "[{}] every attempted event exactly once",
            t.kind
        );
        t.finish().await;
    }
}

fn graph_python() -> std::path::PathBuf {
    common::python_venv(
        "graph-venv",
        "networkx, scipy",
        &["networkx==3.6.1", "scipy==1.17.1", "numpy==2.4.6"],
    )
}

/// `rapport graph import-edges | recompute | export` on the real ego-Facebook graph;
/// networkx recomputes PageRank from the original file and reads the GraphML back.
#[tokio::test]
async fn graph_import_recompute_export_match_networkx() {
    let edges = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/data/graphs/facebook_combined.txt"
    );
    if !std::path::Path::new(edges).exists() {
        eprintln!("skipping: {edges} is absent");
        return;
    }
    for t in targets() {
        ensure_schema(&t).await;
        let k = t.kind;
        let dir = tempfile::tempdir().unwrap();
        // A bad line refuses the whole file, naming the line, and changes nothing.
        let bad = dir.path().join("bad.txt");
        std::fs::write(&bad, "# friends\nann bob\ncat dan x\n").unwrap();
        let out = rapport(&["graph", "import-edges", bad.to_str().unwrap()], &t);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("line 3: weight"), "[{k}] {err}");
        assert_eq!(t.store().await.stats().await.unwrap().profiles, 0, "[{k}]");

        let out = rapport(&["graph", "import-edges", edges, "--kind", "friend"], &t);
        assert!(
            out.status.success(),
            "[{k}] {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["relationships"], 176_468, "[{k}] {report}");
        assert_eq!(report["profiles_created"], 4039);
        // Idempotent: importing again creates nobody.
        let out = rapport(&["graph", "import-edges", edges, "--kind", "friend"], &t);
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["profiles_created"], 0, "[{k}] {report}");

        let out = rapport(&["graph", "recompute"], &t);
        assert!(
            out.status.success(),
            "[{k}] {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let run: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(run["summary"]["nodes"], 4039);
        assert!(
            run["summary"]["communities"]["modularity"]
                .as_f64()
                .unwrap()
                > 0.8,
            "[{k}] {run}"
        );

        let csv = dir.path().join("nodes.csv");
        let graphml = dir.path().join("graph.graphml");
        let out = rapport(
            &[
                "graph",
                "export",
                "--format",
                "csv",
                "--out",
                csv.to_str().unwrap(),
            ],
            &t,
        );
        assert!(
            out.status.success(),
            "[{k}] {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(&csv).unwrap();
        assert_eq!(
            text.lines().next(),
            Some("user_id,pagerank,betweenness,community,core,reach1,reach2")
        );
        let out = rapport(
            &[
                "graph",
                "export",
                "--format",
                "graphml",
                "--out",
                graphml.to_str().unwrap(),
            ],
            &t,
        );
        assert!(
            out.status.success(),
            "[{k}] {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = rapport(&["graph", "export", "--format", "csv", "--edges"], &t);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).lines().count(),
            176_469,
            "[{k}]"
        );

        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/graph/check_export.py");
        let out = Command::new(graph_python())
            .args([script, edges])
            .arg(&csv)
            .arg(&graphml)
            .output()
            .unwrap();
        let summary = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "[{k}] {summary} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_str(summary.trim()).unwrap();
        assert_eq!(v["rows"], 4039);
        assert_eq!(v["graphml_edges"], 176_468);
        eprintln!("[{k}] export vs networkx: {summary}");
        t.finish().await;
    }
}

/// `rapport text analyse`: one JSON object per stdin line with compound, label,
/// language, intents and entities; brand lexicon and product catalogue from files.
#[test]
fn text_analyse_reads_lines_and_writes_json_lines() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let products = dir.path().join("products.txt");
    std::fs::write(&products, "Pulse Smartwatch\nAurora Headphones\n").unwrap();
    let lexicon = dir.path().join("lexicon.tsv");
    std::fs::write(&lexicon, "# brand terms\nrapportly\t3.0\n").unwrap();
    let mut child = Command::new(BIN)
        .args([
            "text",
            "analyse",
            "--products",
            products.to_str().unwrap(),
            "--lexicon",
            lexicon.to_str().unwrap(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all("My Pulse Smartwatch stopped working, I want a refund!!\r\nHow do I pair the aurora headphones? @support\nThis is rapportly\n😍😍 love it\n".as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let rows: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0]["label"], "negative");
    assert_eq!(rows[0]["language"], "en");
    assert!(
        rows[0]["intents"]["complaint"].as_f64().unwrap() > 0.5,
        "{}",
        rows[0]
    );
    assert_eq!(
        rows[0]["entities"][0],
        json!({"kind": "product", "value": "Pulse Smartwatch", "start": 3, "end": 19})
    );
    assert!(rows[1]["intents"]["question"].as_f64().unwrap() > 0.9);
    let kinds: Vec<&str> = rows[1]["entities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["product", "mention"]);
    assert!(
        rows[2]["compound"].as_f64().unwrap() > 0.5,
        "brand term: {}",
        rows[2]
    );
    assert_eq!(rows[3]["label"], "positive");
    // Arguments instead of stdin; a bad lexicon line is refused by number.
    let out = Command::new(BIN)
        .args(["text", "analyse", "not good at all"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["label"], "negative");
    std::fs::write(&lexicon, "good\tvery\n").unwrap();
    let out = Command::new(BIN)
        .args([
            "text",
            "analyse",
            "--lexicon",
            lexicon.to_str().unwrap(),
            "x",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 1: valence must be a number"));
}

/// Peak resident memory of a process, in MB (Linux).
fn peak_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    kb / 1024.0
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

/// Hostile uploads to `POST /api/import/events` (which a write key may call) keep the
/// server's peak memory bounded: the body is streamed line by line, checked before
/// anything is stored, and at most two uploads run at once (docs/reliability.md).
#[tokio::test]
async fn hostile_uploads_keep_memory_bounded() {
    let t = &targets()[0];
    let key = String::from_utf8(rapport(&["keys", "create", "--scope", "write"], t).stdout)
        .expect("key")
        .trim()
        .to_string();
    let (mut child, url) = start_server(t);
    wait_healthy(&url).await;
    let pid = child.id();
    let client = reqwest::Client::new();
    let upload = |body: Vec<u8>| {
        client
            .post(format!("{url}/api/import/events"))
            .basic_auth(&key, Some(""))
            .header("Content-Encoding", "gzip")
            .body(body)
            .send()
    };
    let before = peak_mb(pid);
    // 32 MB of valid lines (a 0.3 MB gzip body) whose last line is bad: refused, naming
    // the line, nothing stored.
    let mut lines = String::new();
    let mut n = 0;
    while lines.len() < 32 * 1024 * 1024 {
        n += 1;
        lines.push_str(&format!(
            "{{\"type\":\"track\",\"userId\":\"u{}\",\"event\":\"Viewed\",\"messageId\":\"m{n}\"}}\n",
            n % 1000
        ));
    }
    lines.push_str("{\"type\":\"track\",\"userId\":\"u\"}\n");
    let body = gzip(lines.as_bytes());
    assert!(body.len() * 10 < lines.len(), "{} bytes", body.len());
    let r = upload(body).await.expect("upload");
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.expect("problem");
    assert_eq!(e["field"], format!("line {}: event", n + 1), "{e}");
    // One line of 100 MB (no newline): refused at 32 KB.
    let r = upload(gzip(&vec![b'x'; 100 * 1024 * 1024]))
        .await
        .expect("upload");
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.expect("problem")["field"], "line 1");
    // Several at once: two run, the others are told to retry.
    let small = gzip(lines.as_bytes());
    let all = futures_util::future::join_all((0..5).map(|_| upload(small.clone()))).await;
    let codes: Vec<u16> = all
        .iter()
        .map(|r| r.as_ref().map(|r| r.status().as_u16()).unwrap_or(0))
        .collect();
    // A refused upload is answered before its body is read: the server may close the
    // connection while the client still sends, which the client sees as an error (0)
    // rather than the 429 (an HTTP/1.1 race, seen once under CI load).
    assert!(codes.iter().all(|c| [0, 400, 429].contains(c)), "{codes:?}");
    assert!(codes.contains(&400), "{codes:?}: the two that ran");
    assert!(codes.contains(&429), "{codes:?}");
    let growth = peak_mb(pid) - before;
    let _ = child.kill();
    let _ = child.wait();
    // The bound documented in docs/reliability.md: 100 MB over the idle server, for
    // uploads that decompress to 32 MB each (the old code held them whole and parsed).
    assert!(growth < 100.0, "peak memory grew by {growth:.0} MB");
    eprintln!("peak memory growth under hostile uploads: {growth:.1} MB");
}
