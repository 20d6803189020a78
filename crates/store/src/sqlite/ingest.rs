use super::{ingest_group, insert_events, insert_events_ignoring_known, SqliteStore};
use crate::{IngestOutcome, IngestStore, Result, SourcedMessages};
use async_trait::async_trait;
use rapport_domain::resolve::EventRow;

#[async_trait]
impl IngestStore for SqliteStore {
    async fn ingest(&self, groups: Vec<SourcedMessages>) -> Result<IngestOutcome> {
        self.write_cached(false, move |tx, cache| {
            let mut total = IngestOutcome::default();
            for g in groups {
                total.add(&ingest_group(tx, g, cache)?);
            }
            Ok(total)
        })
        .await
    }

    async fn insert_events_once(&self, rows: Vec<EventRow>, source: &str) -> Result<()> {
        let source = source.to_string();
        self.write(move |tx| insert_events_ignoring_known(tx, &rows, &source))
            .await
    }

    async fn insert_events_raw(&self, rows: Vec<EventRow>, source: &str) -> Result<()> {
        let source = source.to_string();
        self.write(move |tx| insert_events(tx, &rows, &source))
            .await
    }
}
