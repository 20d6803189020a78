//! [`IngestStore`] and the shapes it speaks; implemented in `sqlite/ingest.rs` and
//! `postgres/ingest.rs`.

use crate::Result;
use async_trait::async_trait;
use rapport_domain::resolve::EventRow;
use rapport_domain::Message;

/// What one ingested group did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestOutcome {
    pub accepted: usize,
    pub duplicates: usize,
    pub profiles_created: usize,
    pub identities_created: usize,
    pub merges: usize,
    pub conflicts: usize,
}

impl IngestOutcome {
    pub fn add(&mut self, o: &IngestOutcome) {
        self.accepted += o.accepted;
        self.duplicates += o.duplicates;
        self.profiles_created += o.profiles_created;
        self.identities_created += o.identities_created;
        self.merges += o.merges;
        self.conflicts += o.conflicts;
    }
}

/// Messages from one source (an API key prefix, `cli`, `import`…).
#[derive(Debug, Clone)]
pub struct SourcedMessages {
    pub source: String,
    pub messages: Vec<Message>,
}

/// Ingestion: messages resolved to people and stored as events, in one transaction per group.
#[async_trait]
pub trait IngestStore: Send + Sync {
    async fn ingest(&self, groups: Vec<SourcedMessages>) -> Result<IngestOutcome>;
    /// Baseline for benchmarks: the same event rows, inserted with no resolution.
    async fn insert_events_raw(&self, rows: Vec<EventRow>, source: &str) -> Result<()>;
    /// As `insert_events_raw`, skipping events whose message id is already stored.
    async fn insert_events_once(&self, rows: Vec<EventRow>, source: &str) -> Result<()>;
}
