//! What the app's integration tests share: the stores they run on.

use rapport_domain::message::Message;
use rapport_domain::time::now_millis;
use rapport_store::{DynStore, SourcedMessages};
use std::sync::Arc;

/// A PostgreSQL test schema to drop afterwards: (url, schema).
pub type Pg = Option<(String, String)>;

/// SQLite in a temporary directory and, when `RAPPORT_TEST_DATABASE_URL` is set,
/// PostgreSQL in a fresh schema.
pub async fn stores() -> Vec<(DynStore, Option<tempfile::TempDir>, Pg)> {
    let mut out = Vec::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let s = rapport_store::open(None, dir.path()).await.expect("sqlite");
    out.push((s, Some(dir), None));
    if let Some(url) = std::env::var("RAPPORT_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
    {
        // Tests of one binary run in parallel: the counter keeps two started in the same
        // millisecond apart.
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let schema = format!("t_{}_{}_{n}", std::process::id(), now_millis());
        let s: DynStore = Arc::new(
            rapport_store::postgres::PgStore::connect_schema(&url, Some(&schema))
                .await
                .expect("postgres"),
        );
        out.push((s, None, Some((url, schema))));
    }
    out
}

/// Ingests parsed messages as one group from source `test`.
pub async fn ingest(store: &DynStore, messages: Vec<Message>) {
    store
        .ingest(vec![SourcedMessages {
            source: "test".into(),
            messages,
        }])
        .await
        .expect("ingest");
}

/// Drops the PostgreSQL schema a test ran in, if it ran in one.
pub async fn drop_pg(pg: Pg) {
    if let Some((url, schema)) = pg {
        let _ = rapport_store::postgres::PgStore::drop_schema(&url, &schema).await;
    }
}
