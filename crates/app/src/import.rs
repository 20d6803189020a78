//! Bulk import: profiles from CSV (RFC 4180) and events from JSON Lines. Every row goes
//! through the same validation and identity resolution as the Segment API. A bad row
//! is rejected with its line number and reason and stores nothing; good rows are
//! committed in chunks. Each row's message id is derived from its content, so
//! re-running an import does not double anything.

use crate::identity::IdentityPolicy;
use rapport_domain::import::{column_of, content_id, mapping, row_message, MappingError};
use rapport_domain::message::parse_line;
use rapport_domain::time::now_millis;
use rapport_domain::Message;
use rapport_store::{DynStore, IngestOutcome, SourcedMessages, StoreError};
use std::io::BufRead;

const CHUNK: usize = 2_000;
/// Rejected rows listed in a summary; the count covers all of them.
const MAX_LISTED: usize = 1_000;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Mapping(#[from] MappingError),
    #[error("reading input: {0}")]
    Io(#[from] std::io::Error),
    #[error("CSV: {0}")]
    Csv(#[from] csv::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Rejected {
    pub line: usize,
    pub reason: String,
}

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ImportSummary {
    pub rows: usize,
    pub imported: usize,
    pub duplicates: usize,
    pub profiles_created: usize,
    pub identities_created: usize,
    pub merged: usize,
    pub conflicts: usize,
    pub rejected_count: usize,
    pub rejected: Vec<Rejected>,
    /// Placeholder identifiers dropped from resolution (their rows were imported).
    pub dropped_count: usize,
    /// The first [`MAX_LISTED`] of them.
    pub dropped: Vec<rapport_domain::blocklist::Dropped>,
}

impl ImportSummary {
    fn add(&mut self, o: &IngestOutcome) {
        self.imported += o.accepted;
        self.duplicates += o.duplicates;
        self.profiles_created += o.profiles_created;
        self.identities_created += o.identities_created;
        self.merged += o.merges;
        self.conflicts += o.conflicts;
    }

    /// Screens a row's message for placeholder identifiers before it is stored.
    async fn screen(
        &mut self,
        identity: &IdentityPolicy,
        m: &mut Message,
        line: usize,
        column: Option<&(dyn Fn(&str) -> String + Sync)>,
    ) -> Result<(), StoreError> {
        let mut dropped = identity
            .screen(std::slice::from_mut(m), |_| format!("line {line}: "))
            .await?;
        if let Some(column) = column {
            for d in &mut dropped {
                d.field = format!("line {line}: {}", column(d.general_field()));
            }
        }
        self.dropped_count += dropped.len();
        let room = MAX_LISTED.saturating_sub(self.dropped.len());
        self.dropped.extend(dropped.into_iter().take(room));
        Ok(())
    }

    fn reject(&mut self, line: usize, reason: String) {
        self.rejected_count += 1;
        if self.rejected.len() < MAX_LISTED {
            self.rejected.push(Rejected { line, reason });
        }
    }
}

async fn flush(
    store: &DynStore,
    source: &str,
    buf: &mut Vec<Message>,
    summary: &mut ImportSummary,
) -> Result<(), ImportError> {
    if buf.is_empty() {
        return Ok(());
    }
    let mut messages = std::mem::take(buf);
    // Imports, like tracking, do not bring erased people back.
    crate::privacy::Erased::new(store.clone())
        .screen(&mut messages)
        .await?;
    let o = store
        .ingest(vec![SourcedMessages {
            source: source.to_string(),
            messages,
        }])
        .await?;
    summary.add(&o);
    Ok(())
}

/// Imports profiles from CSV. `progress` is called with bytes read so far.
pub async fn import_csv(
    store: &DynStore,
    input: impl std::io::Read,
    map_spec: Option<&str>,
    source: &str,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<ImportSummary, ImportError> {
    let mut rdr = csv::ReaderBuilder::new().flexible(true).from_reader(input);
    let headers: Vec<String> = rdr.headers()?.iter().map(str::to_string).collect();
    let map = mapping(map_spec, &headers)?;
    let mut summary = ImportSummary::default();
    let identity = IdentityPolicy::new(store.clone());
    let mut buf = Vec::with_capacity(CHUNK);
    let now = now_millis();
    let mut record = csv::StringRecord::new();
    loop {
        // The file line of the next record (the reader counts lines already ended).
        let line = rdr.position().line() as usize + 1;
        match rdr.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                summary.rows += 1;
                summary.reject(line, format!("unreadable CSV record: {e}"));
                continue;
            }
        }
        summary.rows += 1;
        let fields: Vec<&str> = record.iter().collect();
        match row_message(&map, &fields, now) {
            Ok(mut m) => {
                // Named by column, as rejections are.
                let name = |f: &str| column_of(f, &map, &headers);
                summary.screen(&identity, &mut m, line, Some(&name)).await?;
                buf.push(m)
            }
            Err(e) => summary.reject(
                line,
                format!("{}: {}", column_of(&e.field, &map, &headers), e.reason),
            ),
        }
        if buf.len() >= CHUNK {
            flush(store, source, &mut buf, &mut summary).await?;
            progress(rdr.position().byte());
        }
    }
    flush(store, source, &mut buf, &mut summary).await?;
    progress(rdr.position().byte());
    store.refresh_statistics().await?;
    Ok(summary)
}

/// Imports Segment messages, one JSON object per line.
pub async fn import_jsonl(
    store: &DynStore,
    input: impl BufRead,
    source: &str,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<ImportSummary, ImportError> {
    let mut summary = ImportSummary::default();
    let identity = IdentityPolicy::new(store.clone());
    let mut buf = Vec::with_capacity(CHUNK);
    let now = now_millis();
    let mut bytes = 0u64;
    for (i, line) in input.lines().enumerate() {
        let line = line?;
        bytes += line.len() as u64 + 1;
        if line.trim().is_empty() {
            continue;
        }
        summary.rows += 1;
        match parse_line(&line, i + 1, now) {
            Ok(mut m) => {
                // Lines without a messageId get one from their content, so a re-run of
                // the same file is idempotent.
                if !line.contains("\"messageId\"") {
                    m.message_id = content_id("jsonl", &[&line]);
                }
                summary.screen(&identity, &mut m, i + 1, None).await?;
                buf.push(m)
            }
            Err(e) => summary.reject(i + 1, format!("{}: {}", e.field, e.reason)),
        }
        if buf.len() >= CHUNK {
            flush(store, source, &mut buf, &mut summary).await?;
            progress(bytes);
        }
    }
    flush(store, source, &mut buf, &mut summary).await?;
    progress(bytes);
    store.refresh_statistics().await?;
    Ok(summary)
}
