//! The bounce mailbox: `rapport serve` polls the IMAP mailbox in the `bounce_mailbox`
//! setting every `bounce_poll_seconds`, reads each unseen message as a DSN or an ARF
//! report ([`Email::inbound`]) and flags it seen. A message is flagged only after it was
//! handled, so a crash in between reads it again on the next poll (a bounce counted
//! twice at worst; never one lost).

use super::{invalid, Email};
use rapport_email::imap::{Mailbox, MailboxUrl};
use rapport_store::StoreError;
use std::sync::Arc;
use std::time::Duration;

/// Messages read per poll (the rest wait for the next).
const PER_POLL: usize = 200;

impl Email {
    /// One poll of the bounce mailbox; returns the messages read (0 without a mailbox).
    pub async fn poll_mailbox(&self) -> Result<usize, StoreError> {
        self.ready().await?;
        let Some(url) = self.settings().bounce_mailbox else {
            return Ok(0);
        };
        read_unseen(&url, "bounce_mailbox", PER_POLL, |raw| async move {
            let v = self.inbound(&raw).await?;
            tracing::debug!(report = %v["report"], "bounce mailbox message read");
            Ok(())
        })
        .await
    }
}

/// One pass over an IMAP mailbox (`field` names the setting it came from): each unseen
/// message, up to `limit`, is handed to `handle` and flagged seen only once handled. At
/// the first error what was handled is flagged and the rest is left for the next pass.
/// Returns how many were handled.
pub(crate) async fn read_unseen<F, Fut>(
    url: &str,
    field: &str,
    limit: usize,
    mut handle: F,
) -> Result<usize, StoreError>
where
    F: FnMut(Vec<u8>) -> Fut,
    Fut: std::future::Future<Output = Result<(), StoreError>>,
{
    let url = MailboxUrl::parse(url).map_err(|e| invalid(field, e.0))?;
    let mailbox_error =
        |e: rapport_email::imap::ImapError| StoreError::Backend(format!("{field} {url:?}: {e}"));
    let mut mb = Mailbox::open(&url).await.map_err(mailbox_error)?;
    let unseen = mb.unseen(limit).await.map_err(mailbox_error)?;
    let mut done = Vec::with_capacity(unseen.len());
    for (uid, raw) in unseen {
        if let Err(e) = handle(raw).await {
            let _ = mb.mark_seen(&done).await;
            mb.close().await;
            return Err(e);
        }
        done.push(uid);
    }
    mb.mark_seen(&done).await.map_err(mailbox_error)?;
    mb.close().await;
    Ok(done.len())
}

/// The mailbox worker `rapport serve` runs: it looks every second whether a poll is due,
/// so a mailbox set (or an interval shortened) takes effect at once.
pub async fn run(email: Arc<Email>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let mut last: Option<std::time::Instant> = None;
    loop {
        let every = Duration::from_secs(u64::from(email.settings().bounce_poll_seconds.max(1)));
        let step = if last.is_none_or(|t| t.elapsed() >= every) {
            last = Some(std::time::Instant::now());
            email.poll_mailbox().await
        } else {
            Ok(0)
        };
        // A full poll may have left more: look again at once.
        let busy = match &step {
            Ok(n) if *n >= PER_POLL => {
                last = None;
                Duration::ZERO
            }
            _ => Duration::from_secs(1),
        };
        let idle = Duration::from_secs(1);
        if !crate::worker::pause_after("bounce mailbox", step, idle, busy, &mut shutdown).await {
            return;
        }
    }
}
