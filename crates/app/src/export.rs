//! Export to JSON Lines: one profile (with identities, traits, consents and merges) or
//! one event per line.

use rapport_store::{DynStore, StoreError};
use std::io::Write;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("writing output: {0}")]
    Io(#[from] std::io::Error),
}

pub async fn profiles(store: &DynStore, out: &mut dyn Write) -> Result<usize, ExportError> {
    let mut after = None;
    let mut n = 0;
    loop {
        let page = store.search(None, 500, after).await?;
        for s in &page.items {
            let p = store.profile(s.id).await?;
            serde_json::to_writer(&mut *out, &p).map_err(std::io::Error::from)?;
            out.write_all(b"\n")?;
            n += 1;
        }
        match page.next_cursor.and_then(|c| c.parse().ok()) {
            Some(c) => after = Some(c),
            None => break,
        }
    }
    out.flush()?;
    Ok(n)
}

pub async fn events(store: &DynStore, out: &mut dyn Write) -> Result<usize, ExportError> {
    let mut after = 0;
    let mut n = 0;
    loop {
        let batch = store.events_after(after, 2_000).await?;
        let Some(last) = batch.last() else { break };
        after = last.id;
        for e in &batch {
            serde_json::to_writer(&mut *out, e).map_err(std::io::Error::from)?;
            out.write_all(b"\n")?;
            n += 1;
        }
    }
    out.flush()?;
    Ok(n)
}
