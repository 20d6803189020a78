//! [`IngestStore`] and the shapes it speaks; implemented in `sqlite/ingest.rs` and
//! `postgres/ingest.rs`.

use crate::Result;
use async_trait::async_trait;
use rapport_domain::resolve::EventRow;
use rapport_domain::time::Millis;
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

/// Identifiers dropped from resolution, counted per message field and kind.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct IngestionIssue {
    /// The message field, e.g. `traits.email`, `anonymousId`.
    pub field: String,
    /// `invalid` (not an identifier of its kind) or `blocked` (a placeholder).
    pub kind: String,
    pub count: i64,
    pub first_at: Millis,
    pub last_at: Millis,
    /// The latest value dropped there, and why.
    pub example_value: String,
    pub example_reason: String,
}

/// Issue counts to add for the messages of a group: per (field, kind), how many and the
/// latest example.
pub(crate) fn issue_counts(
    messages: &[&Message],
    at: Millis,
) -> Vec<(String, &'static str, i64, String, String, Millis)> {
    let mut by: std::collections::BTreeMap<(String, &'static str), (i64, String, String)> =
        Default::default();
    for m in messages {
        for d in &m.dropped {
            let e = by
                .entry((d.general_field().to_string(), d.kind.as_str()))
                .or_insert((0, String::new(), String::new()));
            e.0 += 1;
            e.1 = d.value.clone();
            e.2 = d.reason.clone();
        }
    }
    by.into_iter()
        .map(|((f, k), (n, v, r))| (f, k, n, v, r, at))
        .collect()
}

/// Ingestion: messages resolved to people and stored as events, in one transaction per group.
#[async_trait]
pub trait IngestStore: Send + Sync {
    async fn ingest(&self, groups: Vec<SourcedMessages>) -> Result<IngestOutcome>;
    /// What ingestion dropped from identity resolution, most frequent first.
    async fn ingestion_issues(&self, limit: usize) -> Result<Vec<IngestionIssue>>;
    /// Baseline for benchmarks: the same event rows, inserted with no resolution.
    async fn insert_events_raw(&self, rows: Vec<EventRow>, source: &str) -> Result<()>;
    /// As `insert_events_raw`, skipping events whose message id is already stored.
    async fn insert_events_once(&self, rows: Vec<EventRow>, source: &str) -> Result<()>;
}
