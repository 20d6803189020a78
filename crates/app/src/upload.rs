//! Bulk uploads of Segment messages as JSON Lines (`POST /api/import/events`), in bounded
//! memory whatever the body: lines are read one at a time (each at most 32 KB), checked
//! as they stream and spooled to a temporary file; only when every line is valid is the
//! file read again and committed in chunks (of lines and of bytes). So an upload is
//! still all or nothing, and a request holds at most one chunk of parsed messages —
//! never the body, decompressed or parsed, in memory. Concurrent uploads are limited by
//! [`Uploads`]: past it, callers are told to retry later.

use crate::ingest::{IngestError, Ingestor};
use rapport_domain::import::content_id;
use rapport_domain::message::{parse_line, MAX_MESSAGE_BYTES};
use rapport_domain::time::now_millis;
use rapport_domain::FieldError;
use std::io::SeekFrom;
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncSeekExt, AsyncWriteExt, BufReader,
};

/// Largest decompressed upload.
pub const MAX_UPLOAD_BYTES: u64 = 256 * 1024 * 1024;
/// A chunk is committed at this many lines or bytes of JSON, whichever comes first.
pub const CHUNK_LINES: usize = 5_000;
pub const CHUNK_BYTES: usize = 4 * 1024 * 1024;
/// Uploads that may run at once (each holds a chunk in memory and a temporary file).
pub const CONCURRENT: usize = 2;

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// A line is invalid: nothing of the upload was stored.
    #[error("{0}")]
    Invalid(FieldError),
    #[error("the upload is over the limit of {MAX_UPLOAD_BYTES} bytes (decompressed)")]
    TooLarge,
    /// Reading the body (a broken connection, bad gzip) or the spool file failed.
    #[error("reading the upload: {0}")]
    Read(String),
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error(transparent)]
    Store(#[from] rapport_store::StoreError),
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct UploadSummary {
    pub lines: usize,
    pub accepted: usize,
    /// Placeholder identifiers dropped from resolution (their messages were stored).
    pub dropped_count: usize,
    /// The first [`MAX_LISTED_DROPS`] of them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dropped: Vec<rapport_domain::blocklist::Dropped>,
}

pub const MAX_LISTED_DROPS: usize = 100;

/// The budget of concurrent uploads, one per process.
pub struct Uploads(tokio::sync::Semaphore);

impl Default for Uploads {
    fn default() -> Self {
        Uploads(tokio::sync::Semaphore::new(CONCURRENT))
    }
}

impl Uploads {
    /// A place for one upload, or `None` when [`CONCURRENT`] are running.
    pub fn try_start(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        self.0.try_acquire().ok()
    }
}

/// Reads one line of at most `MAX_MESSAGE_BYTES` into `buf` (without its newline);
/// `Ok(false)` at the end. A longer line is an error naming it, and nothing more of it
/// is read into memory.
async fn read_line(
    input: &mut (impl AsyncBufRead + Unpin),
    buf: &mut Vec<u8>,
    line_no: usize,
) -> Result<bool, UploadError> {
    buf.clear();
    let n = (&mut *input)
        .take(MAX_MESSAGE_BYTES as u64 + 2)
        .read_until(b'\n', buf)
        .await
        .map_err(|e| UploadError::Read(e.to_string()))?;
    if n == 0 {
        return Ok(false);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
    }
    if buf.len() > MAX_MESSAGE_BYTES {
        return Err(UploadError::Invalid(FieldError::new(
            format!("line {line_no}"),
            format!("longer than the limit of {MAX_MESSAGE_BYTES} bytes (32 KB)"),
        )));
    }
    Ok(true)
}

fn text(buf: &[u8], line_no: usize) -> Result<&str, UploadError> {
    std::str::from_utf8(buf).map_err(|e| {
        UploadError::Invalid(FieldError::new(
            format!("line {line_no}"),
            format!("not UTF-8: {e}"),
        ))
    })
}

/// Checks every line of `input` while spooling it, then commits it in chunks.
pub async fn upload_jsonl(
    ingestor: &Ingestor,
    identity: &crate::identity::IdentityPolicy,
    source: &str,
    mut input: impl AsyncBufRead + Unpin,
) -> Result<UploadSummary, UploadError> {
    let now = now_millis();
    let spool =
        tempfile::tempfile().map_err(|e| UploadError::Read(format!("temporary file: {e}")))?;
    let mut spool = tokio::fs::File::from_std(spool);
    let mut out = tokio::io::BufWriter::new(&mut spool);
    let mut buf = Vec::new();
    let (mut line_no, mut total) = (0usize, 0u64);
    let mut summary = UploadSummary::default();
    // First pass: check each line; keep it (on disk) for the second.
    while read_line(&mut input, &mut buf, line_no + 1).await? {
        line_no += 1;
        total += buf.len() as u64 + 1;
        if total > MAX_UPLOAD_BYTES {
            return Err(UploadError::TooLarge);
        }
        let line = text(&buf, line_no)?;
        if line.trim().is_empty() {
            continue;
        }
        parse_line(line, line_no, now).map_err(UploadError::Invalid)?;
        summary.lines += 1;
        out.write_all(&buf)
            .await
            .and(out.write_all(b"\n").await)
            .map_err(|e| UploadError::Read(format!("temporary file: {e}")))?;
    }
    if summary.lines == 0 {
        return Err(UploadError::Invalid(FieldError::new(
            "body",
            "no messages: send one Segment message per line",
        )));
    }
    out.flush()
        .await
        .map_err(|e| UploadError::Read(e.to_string()))?;
    drop(out);
    spool
        .seek(SeekFrom::Start(0))
        .await
        .map_err(|e| UploadError::Read(e.to_string()))?;
    // Second pass: every line is valid; commit in chunks (idempotent by message id, so a
    // retried upload after a failure part-way doubles nothing).
    let mut input = BufReader::new(spool);
    let (mut chunk, mut chunk_bytes, mut n) = (Vec::new(), 0usize, 0usize);
    while read_line(&mut input, &mut buf, n + 1).await? {
        n += 1;
        let line = text(&buf, n)?;
        let mut m = parse_line(line, n, now).map_err(UploadError::Invalid)?;
        if !line.contains("\"messageId\"") {
            // Content-derived, so retrying the same upload never doubles an event.
            m.message_id = content_id("jsonl", &[line]);
        }
        chunk_bytes += buf.len();
        let dropped = identity
            .screen(std::slice::from_mut(&mut m), |_| format!("line {n}: "))
            .await?;
        summary.dropped_count += dropped.len();
        let room = MAX_LISTED_DROPS.saturating_sub(summary.dropped.len());
        summary.dropped.extend(dropped.into_iter().take(room));
        chunk.push(m);
        if chunk.len() >= CHUNK_LINES || chunk_bytes >= CHUNK_BYTES {
            summary.accepted += chunk.len();
            ingestor
                .submit_alone(source, std::mem::take(&mut chunk))
                .await?;
            chunk_bytes = 0;
        }
    }
    summary.accepted += chunk.len();
    ingestor.submit_alone(source, chunk).await?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn long_lines_are_refused_without_being_read_whole() {
        let mut long = vec![b'x'; 10 * MAX_MESSAGE_BYTES];
        long.push(b'\n');
        let mut r = BufReader::new(&long[..]);
        let mut buf = Vec::new();
        match read_line(&mut r, &mut buf, 7).await {
            Err(UploadError::Invalid(e)) => assert_eq!(e.field, "line 7"),
            other => panic!("{other:?}"),
        }
        assert!(
            buf.len() <= MAX_MESSAGE_BYTES + 2,
            "read {} bytes",
            buf.len()
        );
        let mut r = BufReader::new(&b"a\r\nb\nc"[..]);
        let mut lines = Vec::new();
        while read_line(&mut r, &mut buf, 1).await.unwrap() {
            lines.push(String::from_utf8(buf.clone()).unwrap());
        }
        assert_eq!(lines, ["a", "b", "c"]);
    }
}
