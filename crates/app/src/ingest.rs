//! The ingestion pipeline. Requests are parsed and validated on their own tasks; a
//! single writer then commits whatever has queued up as one transaction (group
//! commit), so the per-commit fsync is paid once per group, not once per request.
//! A request is answered only after its transaction commits: a 200 means durable.

use crate::metrics::metrics;
use crate::privacy::Erased;
use rapport_domain::Message;
use rapport_store::{DynStore, IngestOutcome, SourcedMessages, StoreError};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

/// Most messages committed in one transaction.
pub const MAX_GROUP: usize = 20_000;
/// Requests waiting for the writer before new ones wait to enqueue (back-pressure).
const QUEUE: usize = 512;

#[derive(Debug, Clone, thiserror::Error)]
pub enum IngestError {
    /// The transaction failed; nothing of the request was stored. Retrying is safe.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The database refused this request's data, alone: retrying it cannot work.
    #[error("the database refused this request's data: {0}")]
    Rejected(String),
    /// The database refused the data of a group this request was committed with; nothing
    /// of it was stored. Submit it again with [`Ingestor::submit_alone`], which commits
    /// it by itself: then it is stored, or refused as [`Rejected`](Self::Rejected).
    #[error("the group this request was committed with was refused; submit it alone")]
    Refused,
    #[error("the ingestion writer has stopped")]
    Stopped,
}

struct Job {
    source: String,
    messages: Vec<Message>,
    /// Committed in a transaction of its own, never grouped.
    alone: bool,
    enqueued: Instant,
    reply: oneshot::Sender<Result<(), IngestError>>,
}

#[derive(Clone)]
pub struct Ingestor {
    tx: mpsc::Sender<Job>,
    /// Messages carrying an erased person's identifier are left out before queueing.
    erased: Arc<Erased>,
}

impl Ingestor {
    /// Starts the writer task; it runs until every `Ingestor` clone is dropped.
    pub fn start(store: DynStore) -> (Ingestor, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let erased = Arc::new(Erased::new(store.clone()));
        let handle = tokio::spawn(writer(store, rx));
        (Ingestor { tx, erased }, handle)
    }

    /// Erased identifiers and erasure (shared with the privacy routes, so an erasure is
    /// in force for this process's ingestion at once).
    pub fn erased(&self) -> Arc<Erased> {
        Arc::clone(&self.erased)
    }

    /// Queues messages and waits until they are committed, grouped with whatever else
    /// is waiting. [`IngestError::Refused`]: the group was refused, the caller submits
    /// the messages again alone (it still has the request to rebuild them from, so the
    /// writer keeps no copies).
    pub async fn submit(&self, source: &str, messages: Vec<Message>) -> Result<(), IngestError> {
        self.send(source, messages, false).await
    }

    /// As [`submit`](Self::submit), committed in a transaction of its own: for bulk
    /// chunks (already large), and for requests whose group was refused.
    pub async fn submit_alone(
        &self,
        source: &str,
        messages: Vec<Message>,
    ) -> Result<(), IngestError> {
        self.send(source, messages, true).await
    }

    async fn send(
        &self,
        source: &str,
        mut messages: Vec<Message>,
        alone: bool,
    ) -> Result<(), IngestError> {
        self.erased
            .screen(&mut messages)
            .await
            .map_err(|e| IngestError::Unavailable(e.to_string()))?;
        if messages.is_empty() {
            return Ok(());
        }
        let (reply, rx) = oneshot::channel();
        let job = Job {
            source: source.to_string(),
            messages,
            alone,
            enqueued: Instant::now(),
            reply,
        };
        self.tx.send(job).await.map_err(|_| IngestError::Stopped)?;
        rx.await.map_err(|_| IngestError::Stopped)?
    }
}

fn record(outcome: &IngestOutcome) {
    let m = metrics();
    m.events_accepted.inc_by(outcome.accepted as u64);
    m.events_duplicate.inc_by(outcome.duplicates as u64);
    m.profiles_created.inc_by(outcome.profiles_created as u64);
    m.merges.inc_by(outcome.merges as u64);
    m.conflicts.inc_by(outcome.conflicts as u64);
}

async fn writer(store: DynStore, mut rx: mpsc::Receiver<Job>) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        let mut n = jobs[0].messages.len();
        while n < MAX_GROUP && !jobs[0].alone {
            match rx.try_recv() {
                // A job to commit alone waits for the next round.
                Ok(j) if j.alone => {
                    commit(&store, vec![j]).await;
                }
                Ok(j) => {
                    n += j.messages.len();
                    jobs.push(j);
                }
                Err(_) => break,
            }
        }
        commit(&store, jobs).await;
    }
}

/// Commits `jobs` as one transaction and answers each.
async fn commit(store: &DynStore, jobs: Vec<Job>) {
    let n: usize = jobs.iter().map(|j| j.messages.len()).sum();
    let several = jobs.len() > 1;
    // Consecutive jobs from one source become one group.
    let mut groups: Vec<SourcedMessages> = Vec::new();
    let mut waiting = Vec::with_capacity(jobs.len());
    for j in jobs {
        match groups.last_mut() {
            Some(g) if g.source == j.source => g.messages.extend(j.messages),
            _ => groups.push(SourcedMessages {
                source: j.source,
                messages: j.messages,
            }),
        }
        waiting.push((j.reply, j.enqueued));
    }
    metrics().group_size.observe(n as f64);
    let result = match store.ingest(groups).await {
        Ok(outcome) => {
            record(&outcome);
            Ok(())
        }
        // One request's data spoils the group: each submits again alone, so only the
        // faulty one fails.
        Err(StoreError::Rejected(e)) if several => {
            tracing::warn!(error = %e, requests = waiting.len(), "a group's data was refused; its requests resubmit alone");
            Err(IngestError::Refused)
        }
        Err(StoreError::Rejected(e)) => Err(IngestError::Rejected(e)),
        Err(e) => {
            tracing::error!(error = %e, messages = n, "ingest transaction failed; batches not acknowledged");
            Err(IngestError::Unavailable(e.to_string()))
        }
    };
    for (reply, enqueued) in waiting {
        metrics()
            .ingest_seconds
            .observe(enqueued.elapsed().as_secs_f64());
        let _ = reply.send(result.clone());
    }
}
