//! What the app's integration tests share: the stores they run on.

use rapport_domain::message::Message;
use rapport_store::{DynStore, SourcedMessages};

/// A PostgreSQL test schema to drop afterwards: (url, schema).
pub type Pg = Option<(String, String)>;

/// SQLite in a temporary directory and, when `RAPPORT_TEST_DATABASE_URL` is set,
/// PostgreSQL in a fresh schema (`rapport_store::testing`).
pub async fn stores() -> Vec<(DynStore, Option<tempfile::TempDir>, Pg)> {
    rapport_store::testing::stores()
        .await
        .into_iter()
        .map(|t| (t.store, t.dir, t.pg))
        .collect()
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
