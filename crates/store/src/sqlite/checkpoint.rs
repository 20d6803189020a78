//! WAL checkpoints off the writer's commit path.
//!
//! SQLite's automatic checkpoint runs inside the commit that takes the WAL past its
//! limit (64k pages here, see `configure`): that commit copies up to 256 MB into the
//! database file and syncs it, and whoever waits on it — an ingest batch, a real-time
//! step — pays hundreds of milliseconds once in a while (the p99 tail of the real-time
//! bench, docs/benchmarks.md). Here the writer's WAL hook only wakes a thread of its own,
//! which runs a passive checkpoint on its own connection: that never blocks the writer
//! or readers. If the thread falls behind and the WAL reaches [`HARD_FRAMES`], the
//! writer checkpoints inline as SQLite would, so the WAL stays bounded.

use rusqlite::{ffi, Connection};
use std::os::raw::{c_char, c_int, c_void};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

/// WAL frames (pages) after which the background checkpoint runs: the size the
/// automatic checkpoint had (`configure`), which ingestion was tuned for.
pub const SOFT_FRAMES: i32 = 65_536;
/// WAL frames after which the writer checkpoints inline.
pub const HARD_FRAMES: i32 = 4 * SOFT_FRAMES;

/// Shared by the writer's hook and the checkpoint thread. The hook holds a raw pointer
/// to it: the writer's connection must be closed before this is dropped.
pub struct Shared {
    wanted: Mutex<bool>,
    wake: Condvar,
    stop: AtomicBool,
    /// Frames at which the next checkpoint is asked for. Raised after a checkpoint that
    /// could not reset the WAL (readers still on it), so a stuck WAL does not wake the
    /// thread at every commit; back to [`SOFT_FRAMES`] once the WAL restarts.
    next_at: AtomicI32,
    last_frames: AtomicI32,
    /// Checkpoints run by the thread, for the tests.
    pub runs: AtomicU64,
}

/// Owns the checkpoint thread; stopping it is dropping this.
pub struct Checkpointer {
    pub shared: Arc<Shared>,
}

impl Checkpointer {
    /// Starts the thread on `conn`, a connection of its own to the writer's database.
    pub fn start(conn: Connection) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            wanted: Mutex::new(false),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
            next_at: AtomicI32::new(SOFT_FRAMES),
            last_frames: AtomicI32::new(0),
            runs: Default::default(),
        });
        let s = shared.clone();
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || run(conn, &s))?;
        Ok(Checkpointer { shared })
    }

    /// Replaces `writer`'s automatic checkpoint with a wake-up of the thread.
    ///
    /// # Safety contract
    /// `writer` must be closed before `self.shared` is dropped (the hook points at it):
    /// the store keeps both in one struct, the connection declared first.
    pub fn hook(&self, writer: &Connection) {
        let arg = Arc::as_ptr(&self.shared) as *mut c_void;
        // SAFETY: the handle is a live connection; `arg` outlives it (see above).
        unsafe {
            ffi::sqlite3_wal_hook(writer.handle(), Some(on_commit), arg);
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Ok(mut w) = self.shared.wanted.lock() {
            *w = true;
        }
        self.shared.wake.notify_one();
    }
}

/// Called by SQLite after each commit of the writer, with the WAL's size in frames.
unsafe extern "C" fn on_commit(
    arg: *mut c_void,
    db: *mut ffi::sqlite3,
    _name: *const c_char,
    frames: c_int,
) -> c_int {
    // SAFETY: `arg` is the `Shared` the hook was installed with, alive while the
    // connection is (see `Checkpointer::hook`).
    let shared = unsafe { &*(arg as *const Shared) };
    let last = shared.last_frames.swap(frames, Ordering::Relaxed);
    if frames < last {
        shared.next_at.store(SOFT_FRAMES, Ordering::Relaxed);
    }
    if frames >= HARD_FRAMES {
        // SAFETY: SQLite's own automatic checkpoint makes this same call from the hook.
        unsafe {
            ffi::sqlite3_wal_checkpoint_v2(
                db,
                std::ptr::null(),
                ffi::SQLITE_CHECKPOINT_PASSIVE,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            );
        }
    } else if frames >= shared.next_at.load(Ordering::Relaxed) {
        if let Ok(mut w) = shared.wanted.try_lock() {
            *w = true;
            shared.wake.notify_one();
        }
    }
    ffi::SQLITE_OK
}

fn run(conn: Connection, shared: &Shared) {
    loop {
        {
            let Ok(mut w) = shared.wanted.lock() else {
                return;
            };
            while !*w {
                w = match shared.wake.wait(w) {
                    Ok(w) => w,
                    Err(_) => return,
                };
            }
            *w = false;
        }
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        // (busy, frames in the WAL, frames copied); errors leave the WAL to the next try.
        if let Ok((_, log, done)) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((
                r.get::<_, i32>(0)?,
                r.get::<_, i32>(1)?,
                r.get::<_, i32>(2)?,
            ))
        }) {
            shared.runs.fetch_add(1, Ordering::Relaxed);
            if done < log {
                // Readers hold older frames: try again after a good part more.
                shared
                    .next_at
                    .store(log.saturating_add(SOFT_FRAMES / 4), Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The writer's commits past the limit are checkpointed by the thread, and the WAL
    /// restarts from its beginning at the next write instead of growing.
    #[test]
    fn the_thread_checkpoints_and_the_wal_restarts() -> rusqlite::Result<()> {
        // Before any database is opened in this process (see `pcache`).
        super::super::pcache::install();
        let dir = tempfile::tempdir()
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        let path = dir.path().join("t.db");
        let setup =
            |c: &Connection| c.execute_batch("PRAGMA page_size = 1024; PRAGMA journal_mode = WAL;");
        let writer = Connection::open(&path)?;
        setup(&writer)?;
        let reader = Connection::open(&path)?;
        setup(&reader)?;
        let ck = Checkpointer::start(reader)
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        ck.hook(&writer);
        writer.execute_batch("CREATE TABLE t (x BLOB)")?;
        // Each row fills about one 1 KiB page; commit in batches of 1,000.
        let blob = vec![7u8; 900];
        for _ in 0..(SOFT_FRAMES / 1000 + 5) {
            let tx = writer.unchecked_transaction()?;
            for _ in 0..1000 {
                tx.execute("INSERT INTO t VALUES (?1)", [&blob])?;
            }
            tx.commit()?;
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while ck.shared.runs.load(Ordering::Relaxed) == 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(
            ck.shared.runs.load(Ordering::Relaxed) >= 1,
            "no background checkpoint ran"
        );
        // Once the thread's checkpoint has copied everything, the next write restarts
        // the WAL from its beginning (as the hook sees it after that commit).
        loop {
            writer.execute("INSERT INTO t VALUES (?1)", [&blob])?;
            let n = ck.shared.last_frames.load(Ordering::Relaxed);
            if n < SOFT_FRAMES / 2 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the WAL kept growing: {n} frames"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        drop(writer);
        drop(ck);
        Ok(())
    }
}
