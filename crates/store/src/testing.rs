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
