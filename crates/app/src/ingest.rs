//! The ingestion pipeline. Requests are parsed and validated on their own tasks; a
//! single writer then commits whatever has queued up as one transaction (group
//! commit), so the per-commit fsync is paid once per group, not once per request.
//! A request is answered only after its transaction commits: a 200 means durable.

use crate::metrics::metrics;
use rapport_domain::Message;
use rapport_store::{DynStore, IngestOutcome, SourcedMessages, StoreError};
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

/// Most messages committed in one transaction.
pub const MAX_GROUP: usize = 20_000;
/// Requests waiting for the writer before new ones wait to enqueue (back-pressure).
const QUEUE: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The transaction failed; nothing of the request was stored. Retrying is safe.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The database refused this request's data, alone: retrying it cannot work.
    #[error("the database refused this request's data: {0}")]
    Rejected(String),
    #[error("the ingestion writer has stopped")]
    Stopped,
}

struct Job {
    source: String,
    messages: Vec<Message>,
    enqueued: Instant,
    reply: oneshot::Sender<Result<(), IngestError>>,
}

#[derive(Clone)]
pub struct Ingestor {
    tx: mpsc::Sender<Job>,
}

impl Ingestor {
    /// Starts the writer task; it runs until every `Ingestor` clone is dropped.
    pub fn start(store: DynStore) -> (Ingestor, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let handle = tokio::spawn(writer(store, rx));
        (Ingestor { tx }, handle)
    }

    /// Queues messages and waits until they are committed.
    pub async fn submit(&self, source: &str, messages: Vec<Message>) -> Result<(), IngestError> {
        if messages.is_empty() {
            return Ok(());
        }
        let (reply, rx) = oneshot::channel();
        let job = Job {
            source: source.to_string(),
            messages,
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
        while n < MAX_GROUP {
            match rx.try_recv() {
                Ok(j) => {
                    n += j.messages.len();
                    jobs.push(j);
                }
                Err(_) => break,
            }
        }
        // Consecutive jobs from one source become one group. With several requests in
        // the transaction, each keeps a copy of its messages: if the database refuses the
        // data, the requests are retried one by one, so only the faulty one fails.
        let isolate = jobs.len() > 1;
        let mut alone: Vec<SourcedMessages> = Vec::new();
        let mut groups: Vec<SourcedMessages> = Vec::new();
        let mut waiting = Vec::with_capacity(jobs.len());
        for j in jobs {
            if isolate {
                alone.push(SourcedMessages {
                    source: j.source.clone(),
                    messages: j.messages.clone(),
                });
            }
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
        let result = store.ingest(groups).await;
        let results: Vec<Result<(), IngestError>> = match result {
            Ok(outcome) => {
                record(&outcome);
                waiting.iter().map(|_| Ok(())).collect()
            }
            Err(StoreError::Rejected(e)) if isolate => {
                tracing::warn!(error = %e, requests = alone.len(), "a group's data was refused; retrying its requests one by one");
                let mut out = Vec::with_capacity(alone.len());
                for one in alone {
                    out.push(match store.ingest(vec![one]).await {
                        Ok(outcome) => {
                            record(&outcome);
                            Ok(())
                        }
                        Err(e) => Err(failure(e)),
                    });
                }
                out
            }
            Err(e) => {
                tracing::error!(error = %e, messages = n, "ingest transaction failed; batches not acknowledged");
                waiting.iter().map(|_| Err(failure(e.clone()))).collect()
            }
        };
        for ((reply, enqueued), r) in waiting.into_iter().zip(results) {
            metrics()
                .ingest_seconds
                .observe(enqueued.elapsed().as_secs_f64());
            let _ = reply.send(r);
        }
    }
}

fn failure(e: StoreError) -> IngestError {
    match e {
        StoreError::Rejected(r) => IngestError::Rejected(r),
        other => IngestError::Unavailable(other.to_string()),
    }
}
