//! Test harness: the real server on a random port, on SQLite and, when
//! `RAPPORT_TEST_DATABASE_URL` is set, on PostgreSQL (one fresh schema per server).
#![allow(dead_code)]

pub mod dovecot;
pub mod sink;

use rapport_domain::apikey::Scope;
use rapport_store::DynStore;
use serde_json::Value;

pub struct TestServer {
    pub url: String,
    pub admin: String,
    pub write: String,
    pub store: DynStore,
    pub kind: &'static str,
    pub client: reqwest::Client,
    pg_schema: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

#[allow(unused_imports)]
pub use rapport_store::testing::{pg_url, unique_schema};

/// A fresh store of each kind under test, with its directory or schema
/// (`rapport_store::testing`).
pub async fn stores() -> Vec<(
    DynStore,
    Option<tempfile::TempDir>,
    Option<(String, String)>,
)> {
    rapport_store::testing::stores()
        .await
        .into_iter()
        .map(|t| (t.store, t.dir, t.pg))
        .collect()
}

pub async fn servers() -> Vec<TestServer> {
    let mut out = Vec::new();
    for (store, dir, pg) in stores().await {
        out.push(start(store, dir, pg).await);
    }
    out
}

pub async fn start(
    store: DynStore,
    dir: Option<tempfile::TempDir>,
    pg_schema: Option<(String, String)>,
) -> TestServer {
    start_with(store, dir, pg_schema, |_| {}).await
}

/// As [`start`], configuring the server's state first (a hot wallet, say).
pub async fn start_with(
    store: DynStore,
    dir: Option<tempfile::TempDir>,
    pg_schema: Option<(String, String)>,
    configure: impl FnOnce(&rapport_http::AppState),
) -> TestServer {
    let admin = rapport_app::keys::create(&store, Scope::Admin, "test", &Default::default())
        .await
        .expect("admin key")
        .secret;
    let write = rapport_app::keys::create(&store, Scope::Write, "test", &Default::default())
        .await
        .expect("write key")
        .secret;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (state, _writer) = rapport_http::AppState::new(store.clone());
    configure(&state);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = rapport_http::serve(listener, state, async {
            let _ = rx.await;
        })
        .await;
    });
    TestServer {
        url,
        admin,
        write,
        kind: store.kind(),
        store,
        client: reqwest::Client::new(),
        pg_schema,
        _dir: dir,
        stop: Some(tx),
    }
}

/// Status and JSON body (Null when the body is not JSON).
async fn respond(r: reqwest::RequestBuilder) -> (u16, Value) {
    let r = r.send().await.expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

impl TestServer {
    pub async fn post_v1(&self, path: &str, body: Value) -> (u16, Value) {
        respond(
            self.client
                .post(format!("{}{path}", self.url))
                .basic_auth(&self.write, Some(""))
                .json(&body),
        )
        .await
    }

    pub async fn batch(&self, msgs: Value) -> (u16, Value) {
        self.post_v1("/v1/batch", serde_json::json!({ "batch": msgs }))
            .await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        respond(
            self.client
                .get(format!("{}{path}", self.url))
                .bearer_auth(&self.admin),
        )
        .await
    }

    pub async fn send(&self, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
        respond(
            self.client
                .request(method, format!("{}{path}", self.url))
                .bearer_auth(&self.admin)
                .json(&body),
        )
        .await
    }

    /// A page as a browser without a session gets it: status and HTML.
    pub async fn page(&self, path: &str) -> (u16, String) {
        let r = self
            .client
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.text().await.unwrap_or_default())
    }

    pub async fn profile_of(&self, identifier: &str) -> Value {
        let (s, v) = self
            .get(&format!(
                "/api/profiles/lookup?identifier={}",
                urlencode(identifier)
            ))
            .await;
        assert_eq!(s, 200, "[{}] lookup {identifier}: {v}", self.kind);
        v
    }

    pub async fn stats(&self) -> Value {
        self.get("/api/stats").await.1
    }

    /// Stops the server and drops a PostgreSQL test schema.
    pub async fn finish(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some((url, schema)) = self.pg_schema.take() {
            drop_schema(&url, &schema).await;
        }
    }
}

pub async fn drop_schema(url: &str, schema: &str) {
    let _ = rapport_store::postgres::PgStore::drop_schema(url, schema).await;
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b':' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn identities(profile: &Value) -> Vec<String> {
    let mut v: Vec<String> = profile["identities"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|i| {
                    format!(
                        "{}:{}",
                        i["kind"].as_str().unwrap_or(""),
                        i["value"].as_str().unwrap_or("")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A venv under the build directory with `packages` installed (once; later calls find
/// `imports` already importable). Reference implementations run from such venvs.
#[allow(dead_code)]
pub fn python_venv(name: &str, imports: &str, packages: &[&str]) -> std::path::PathBuf {
    use std::process::Command;
    let venv = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let py = venv.join("bin/python");
    let ok = |c: &mut Command| c.status().map(|s| s.success()).unwrap_or(false);
    if !(py.exists() && ok(Command::new(&py).args(["-c", &format!("import {imports}")]))) {
        assert!(
            ok(Command::new("python3").args(["-m", "venv"]).arg(&venv)),
            "python3 -m venv failed"
        );
        assert!(
            ok(Command::new(&py)
                .args(["-m", "pip", "install", "--quiet"])
                .args(packages)),
            "pip install {packages:?} failed (PyPI must be reachable)"
        );
    }
    py
}

/// Polls `path` until `ok` accepts its body (workers run behind the API); panics with
/// the last body after 10 s.
#[allow(dead_code)]
pub async fn eventually(s: &TestServer, path: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..100 {
        let (_, v) = s.get(path).await;
        if ok(&v) {
            return v;
        }
        last = v;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{path} never satisfied the test: {last}");
}

/// Debian's Chromium (or `$CHROMIUM`) and `tools/e2e` with its npm packages
/// (playwright-core, the browser SDKs), installed on first use.
#[allow(dead_code)]
pub fn browser_tools() -> (String, std::path::PathBuf) {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "Debian's chromium is needed (apt-get install chromium; .ci/run does it)"
    );
    let tools = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tools/e2e");
    let installed = [
        "playwright-core",
        "@segment/analytics-next",
        "@rudderstack/analytics-js",
    ]
    .iter()
    .all(|m| tools.join("node_modules").join(m).exists());
    if !installed {
        let ok = std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&tools)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "npm ci in tools/e2e failed");
    }
    (chromium, tools)
}
