//! A thin layer over SQLite's own page cache that skips a useless scan at every commit.
//!
//! When a b-tree split puts its new pages in disk order, SQLite swaps page numbers
//! through a temporary one: the lock page, at 1 GiB (page 262,145 with 4 KiB pages). The
//! default cache then remembers that page number as its largest key. At the end of each
//! write transaction SQLite drops the cached pages past the database's end; with that
//! largest key more than a hash table's width away, the default cache walks its whole
//! hash table to find none. With the 64 MiB cache each connection keeps, that walk
//! touched ~16,000 page headers and took ~0.5 ms (up to 1.1 ms) at nearly every commit:
//! 15% of the CPU of a real-time step's writes and of ingestion (measured with `perf`,
//! docs/benchmarks.md).
//!
//! The layer tracks the largest key it has handed out apart from the lock page, and how
//! many pages sit at the lock page, and passes a truncation on only when some cached page
//! can be at or past the limit. Everything else goes straight to SQLite's cache.

use rusqlite::ffi;
use std::os::raw::{c_int, c_uint};
#[cfg(test)]
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// SQLite's default page cache, as it was before this layer went over it.
struct Inner(ffi::sqlite3_pcache_methods2);
// Function pointers and SQLite's own argument: shared read-only once set.
unsafe impl Send for Inner {}
unsafe impl Sync for Inner {}

/// Set before the layer is handed to SQLite, so before any callback can run.
static DEFAULT: OnceLock<Inner> = OnceLock::new();
static INSTALLED: OnceLock<bool> = OnceLock::new();
/// Truncations passed on and skipped, counted for the tests only (off the commit path).
#[cfg(test)]
static PASSED: AtomicU64 = AtomicU64::new(0);
#[cfg(test)]
static SKIPPED: AtomicU64 = AtomicU64::new(0);

/// SQLite's fixed lock byte (`PENDING_BYTE`): its page is never stored.
const PENDING_BYTE: u32 = 0x4000_0000;

struct Cache {
    inner: *mut ffi::sqlite3_pcache,
    lock_page: c_uint,
    /// At least the largest key of any cached page, the lock page aside.
    max_key: c_uint,
    /// Pages moved to the lock page and not yet moved away.
    at_lock_page: u32,
    /// A fetch returned a page at the lock page: truncations pass until one clears it.
    lock_fetched: bool,
}

fn methods() -> &'static ffi::sqlite3_pcache_methods2 {
    match DEFAULT.get() {
        Some(m) => &m.0,
        None => unreachable!("SQLite called the page cache layer before it was handed over"),
    }
}

/// Installs the layer, once per process, before SQLite is initialised. Returns whether it
/// is active: SQLite refuses a new page cache once initialised (another library opened a
/// database first), and then keeps its own, which is correct, only slower.
///
/// `RAPPORT_SQLITE_PAGE_CACHE=default` leaves SQLite's own cache alone: the A/B switch of
/// `docs/benchmarks.md`, and a way out should the layer ever be suspected.
pub(super) fn install() -> bool {
    *INSTALLED.get_or_init(|| {
        if std::env::var("RAPPORT_SQLITE_PAGE_CACHE").as_deref() == Ok("default") {
            return false;
        }
        // SAFETY: sqlite3_config with these two verbs reads or writes one
        // sqlite3_pcache_methods2; it fails (and touches nothing) once SQLite is
        // initialised.
        unsafe {
            let mut default: ffi::sqlite3_pcache_methods2 = std::mem::zeroed();
            if ffi::sqlite3_config(
                ffi::SQLITE_CONFIG_GETPCACHE2,
                &mut default as *mut ffi::sqlite3_pcache_methods2,
            ) != ffi::SQLITE_OK
                || default.xCreate.is_none()
            {
                return false;
            }
            DEFAULT.get_or_init(|| Inner(default));
            let layer = ffi::sqlite3_pcache_methods2 {
                iVersion: default.iVersion,
                pArg: default.pArg,
                xInit: default.xInit,
                xShutdown: default.xShutdown,
                xCreate: Some(create),
                xCachesize: Some(cachesize),
                xPagecount: Some(pagecount),
                xFetch: Some(fetch),
                xUnpin: Some(unpin),
                xRekey: Some(rekey),
                xTruncate: Some(truncate),
                xDestroy: Some(destroy),
                xShrink: Some(shrink),
            };
            // SQLite copies the struct.
            ffi::sqlite3_config(
                ffi::SQLITE_CONFIG_PCACHE2,
                &layer as *const ffi::sqlite3_pcache_methods2,
            ) == ffi::SQLITE_OK
        }
    })
}

/// (passed on, skipped) truncations so far in this process.
#[cfg(test)]
pub(super) fn truncations() -> (u64, u64) {
    (
        PASSED.load(Ordering::Relaxed),
        SKIPPED.load(Ordering::Relaxed),
    )
}

fn cache<'a>(p: *mut ffi::sqlite3_pcache) -> &'a mut Cache {
    // SAFETY: every sqlite3_pcache SQLite hands back came from `create`, and SQLite
    // calls a cache from one connection at a time.
    unsafe { &mut *(p as *mut Cache) }
}

unsafe extern "C" fn create(
    sz_page: c_int,
    sz_extra: c_int,
    purgeable: c_int,
) -> *mut ffi::sqlite3_pcache {
    let Some(f) = methods().xCreate else {
        return std::ptr::null_mut();
    };
    let inner = f(sz_page, sz_extra, purgeable);
    if inner.is_null() {
        return inner;
    }
    let lock_page = PENDING_BYTE / (sz_page.max(1) as u32) + 1;
    Box::into_raw(Box::new(Cache {
        inner,
        lock_page,
        max_key: 0,
        at_lock_page: 0,
        lock_fetched: false,
    })) as *mut ffi::sqlite3_pcache
}

unsafe extern "C" fn cachesize(p: *mut ffi::sqlite3_pcache, n: c_int) {
    if let Some(f) = methods().xCachesize {
        f(cache(p).inner, n)
    }
}

unsafe extern "C" fn pagecount(p: *mut ffi::sqlite3_pcache) -> c_int {
    methods().xPagecount.map_or(0, |f| f(cache(p).inner))
}

unsafe extern "C" fn fetch(
    p: *mut ffi::sqlite3_pcache,
    key: c_uint,
    create: c_int,
) -> *mut ffi::sqlite3_pcache_page {
    let c = cache(p);
    let Some(f) = methods().xFetch else {
        return std::ptr::null_mut();
    };
    let page = f(c.inner, key, create);
    if !page.is_null() {
        if key == c.lock_page {
            c.lock_fetched = true;
        } else {
            c.max_key = c.max_key.max(key);
        }
    }
    page
}

unsafe extern "C" fn unpin(
    p: *mut ffi::sqlite3_pcache,
    page: *mut ffi::sqlite3_pcache_page,
    discard: c_int,
) {
    if let Some(f) = methods().xUnpin {
        f(cache(p).inner, page, discard)
    }
}

unsafe extern "C" fn rekey(
    p: *mut ffi::sqlite3_pcache,
    page: *mut ffi::sqlite3_pcache_page,
    old: c_uint,
    new: c_uint,
) {
    let c = cache(p);
    if let Some(f) = methods().xRekey {
        f(c.inner, page, old, new)
    }
    if old == c.lock_page {
        c.at_lock_page = c.at_lock_page.saturating_sub(1);
    }
    if new == c.lock_page {
        c.at_lock_page += 1;
    } else {
        c.max_key = c.max_key.max(new);
    }
}

unsafe extern "C" fn truncate(p: *mut ffi::sqlite3_pcache, limit: c_uint) {
    let c = cache(p);
    let lock_held = c.at_lock_page > 0 || c.lock_fetched;
    // No cached page can be at or past `limit`: nothing to drop, so no walk.
    if limit > c.max_key && !(lock_held && limit <= c.lock_page) {
        #[cfg(test)]
        SKIPPED.fetch_add(1, Ordering::Relaxed);
        return;
    }
    #[cfg(test)]
    PASSED.fetch_add(1, Ordering::Relaxed);
    if let Some(f) = methods().xTruncate {
        f(c.inner, limit)
    }
    c.max_key = c.max_key.min(limit.saturating_sub(1));
    if limit <= c.lock_page {
        c.at_lock_page = 0;
        c.lock_fetched = false;
    }
}

unsafe extern "C" fn destroy(p: *mut ffi::sqlite3_pcache) {
    // SAFETY: `p` came from Box::into_raw in `create`; SQLite destroys a cache once.
    let c = Box::from_raw(p as *mut Cache);
    if let Some(f) = methods().xDestroy {
        f(c.inner)
    }
}

unsafe extern "C" fn shrink(p: *mut ffi::sqlite3_pcache) {
    if let Some(f) = methods().xShrink {
        f(cache(p).inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    /// Commits whose pages all lie inside the database skip the walk; a rolled-back
    /// growth leaves pages past the end, and its truncation goes through. Whatever the
    /// splits, rollbacks and skips, the table reads back exactly what was committed.
    #[test]
    fn truncations_pass_only_when_a_page_can_lie_past_the_end() {
        assert!(
            install(),
            "the layer installs before any database is opened"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = Connection::open(dir.path().join("p.db")).expect("open");
        c.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA cache_size = -8192;
             CREATE TABLE t (k TEXT PRIMARY KEY, v TEXT);",
        )
        .expect("schema");
        let (passed0, skipped0) = truncations();
        let mut model = std::collections::BTreeMap::new();
        for round in 0..30u32 {
            let tx = c.transaction().expect("tx");
            let mut written = Vec::new();
            // Random keys: splits all over the index, which swap page numbers.
            for i in 0..400u32 {
                let k = format!(
                    "{:08x}",
                    i.wrapping_mul(2_654_435_761) ^ round.wrapping_mul(40_503)
                );
                let v = format!("{round}:{i}:{}", "x".repeat(300));
                tx.execute("INSERT OR REPLACE INTO t VALUES (?1, ?2)", [&k, &v])
                    .expect("insert");
                written.push((k, v));
            }
            if round % 3 == 2 {
                tx.rollback().expect("rollback");
            } else {
                tx.commit().expect("commit");
                model.extend(written);
            }
        }
        let ok: String = c
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .expect("check");
        assert_eq!(ok, "ok");
        let stored: std::collections::BTreeMap<String, String> = c
            .prepare("SELECT k, v FROM t")
            .expect("prepare")
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert_eq!(stored, model);
        let (passed, skipped) = truncations();
        assert!(skipped > skipped0, "commits skipped the walk");
        assert!(passed > passed0, "rolled-back growth was truncated");
    }
}
