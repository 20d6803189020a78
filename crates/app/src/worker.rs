//! What every background worker does between steps: log a failure, then wait — briefly
//! while there is work, longer when caught up or after an error — unless told to stop.

use std::fmt::Display;
use std::time::Duration;
use tokio::sync::watch::Receiver;

/// Waits after a step that handled `Ok(n)` items (`idle` when 0, `busy` otherwise) or
/// failed (logged, 2 s). Returns false when the worker should stop.
pub async fn pause_after<E: Display>(
    what: &str,
    step: Result<usize, E>,
    idle: Duration,
    busy: Duration,
    shutdown: &mut Receiver<bool>,
) -> bool {
    let pause = match step {
        Ok(0) => idle,
        Ok(_) => busy,
        Err(e) => {
            tracing::warn!(error = %e, "{what} failed; retrying");
            Duration::from_secs(2)
        }
    };
    if *shutdown.borrow() {
        return false;
    }
    tokio::select! {
        _ = tokio::time::sleep(pause) => true,
        _ = shutdown.changed() => false,
    }
}
