//! Stores for tests (feature `testing`): SQLite in a temporary directory and, when
//! `RAPPORT_TEST_DATABASE_URL` is set, PostgreSQL in a fresh schema — the one place every
//! crate's tests get "each store under test" from.

use crate::postgres::PgStore;
use crate::DynStore;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// A store under test and what it lives in; [`TestStore::cleanup`] drops a PostgreSQL
/// schema (a temporary directory goes with the value).
pub struct TestStore {
    pub store: DynStore,
    pub dir: Option<tempfile::TempDir>,
    /// (url, schema) of a PostgreSQL store.
    pub pg: Option<(String, String)>,
}

impl TestStore {
    /// Drops the PostgreSQL schema the store ran in, if any.
    pub async fn cleanup(self) {
        if let Some((url, schema)) = self.pg {
            let _ = PgStore::drop_schema(&url, &schema).await;
        }
    }
}

/// The PostgreSQL URL tests run against, when configured.
pub fn pg_url() -> Option<String> {
    std::env::var("RAPPORT_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// A schema name no other test uses: process, a counter (tests of one binary run in
/// parallel) and the time.
pub fn unique_schema() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "t_{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        rapport_domain::time::now_millis()
    )
}

/// A fresh store of each kind under test.
pub async fn stores() -> Vec<TestStore> {
    let mut out = Vec::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let store = crate::open(None, dir.path()).await.expect("sqlite store");
    out.push(TestStore {
        store,
        dir: Some(dir),
        pg: None,
    });
    if let Some(url) = pg_url() {
        let schema = unique_schema();
        let store: DynStore = Arc::new(
            PgStore::connect_schema(&url, Some(&schema))
                .await
                .expect("postgres store (RAPPORT_TEST_DATABASE_URL)"),
        );
        out.push(TestStore {
            store,
            dir: None,
            pg: Some((url, schema)),
        });
    }
    out
}

/// Every value of every table of a SQLite database, as text, a line per row: what a
/// test searches for data that must no longer be stored.
pub fn sqlite_text(path: &std::path::Path) -> String {
    let c = rusqlite::Connection::open(path).expect("open sqlite");
    let tables: Vec<String> = c
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("tables");
    let mut out = String::new();
    for t in tables {
        let mut stmt = c
            .prepare(&format!("SELECT * FROM \"{t}\""))
            .expect("select");
        let n = stmt.column_count();
        let mut rows = stmt.query([]).expect("rows");
        while let Some(r) = rows.next().expect("row") {
            out.push_str(&t);
            for i in 0..n {
                out.push('\t');
                match r.get_ref(i).expect("value") {
                    rusqlite::types::ValueRef::Text(b) | rusqlite::types::ValueRef::Blob(b) => {
                        out.push_str(&String::from_utf8_lossy(b))
                    }
                    rusqlite::types::ValueRef::Integer(v) => out.push_str(&v.to_string()),
                    rusqlite::types::ValueRef::Real(v) => out.push_str(&v.to_string()),
                    rusqlite::types::ValueRef::Null => {}
                }
            }
            out.push('\n');
        }
    }
    out
}

/// As [`sqlite_text`] for a PostgreSQL schema: each row of each table (and the rows
/// behind views) in its text form.
pub async fn pg_text(url: &str, schema: &str) -> String {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    let tables = client
        .query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1 AND table_type = 'BASE TABLE'",
            &[&schema],
        )
        .await
        .expect("tables");
    let mut out = String::new();
    for t in tables {
        let t: String = t.get(0);
        let rows = client
            .query(&format!("SELECT t::text FROM \"{schema}\".\"{t}\" t"), &[])
            .await
            .expect("rows");
        for r in rows {
            out.push_str(&t);
            out.push('\t');
            out.push_str(&r.get::<_, String>(0));
            out.push('\n');
        }
    }
    out
}
