//! SQLite: one file, WAL mode, `synchronous=FULL` so a committed transaction survives a
//! crash or power loss. One writer connection (SQLite allows one writer anyway) and a
//! few reader connections that read concurrently with it.

use crate::sql;
use crate::{Result, Store, StoreError};
use async_trait::async_trait;
use events::events_after_in;
use ingest::{insert_events_ignoring_known, insert_merge};
use profiles::{patch_traits, profile_read, profiles_in};
use rapport_domain::model::EventView;
use rapport_domain::resolve::{Owner, Plan, ProfileId};
use rapport_domain::time::{to_datetime, Millis};
use rapport_domain::IdentityKey;
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

mod chain;
mod community;
mod email;
mod events;
mod graph;
mod ingest;
mod insight;
mod kb;
mod loyalty;
mod portal;
mod privacy;
mod profiles;
mod realtime;
mod referrals;
mod rules;
mod scores;
pub(crate) mod segments;
mod settings;
mod staff;
pub(crate) mod text;
mod tickets;

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/sqlite/0001_core.sql")),
    (2, include_str!("../migrations/sqlite/0002_graph.sql")),
    (3, include_str!("../migrations/sqlite/0003_text.sql")),
    (4, include_str!("../migrations/sqlite/0004_catalogue.sql")),
    (
        5,
        include_str!("../migrations/sqlite/0005_tags_settings.sql"),
    ),
    (6, include_str!("../migrations/sqlite/0006_segments.sql")),
    (7, include_str!("../migrations/sqlite/0007_scores.sql")),
    (8, include_str!("../migrations/sqlite/0008_rules.sql")),
    (9, include_str!("../migrations/sqlite/0009_outbox.sql")),
    (10, include_str!("../migrations/sqlite/0010_chain.sql")),
    (11, include_str!("../migrations/sqlite/0011_users.sql")),
    (
        12,
        include_str!("../migrations/sqlite/0012_firings_by_person.sql"),
    ),
    (
        13,
        include_str!("../migrations/sqlite/0013_event_numbers.sql"),
    ),
    (
        14,
        include_str!("../migrations/sqlite/0014_event_numbers_deferred.sql"),
    ),
    (
        15,
        include_str!("../migrations/sqlite/0015_members_without_rowid.sql"),
    ),
    (
        16,
        include_str!("../migrations/sqlite/0016_scores_by_person.sql"),
    ),
    (
        17,
        include_str!("../migrations/sqlite/0017_browser_keys.sql"),
    ),
    (
        18,
        include_str!("../migrations/sqlite/0018_trait_times.sql"),
    ),
    (19, include_str!("../migrations/sqlite/0019_email.sql")),
    (20, include_str!("../migrations/sqlite/0020_email_ab.sql")),
    (21, include_str!("../migrations/sqlite/0021_privacy.sql")),
    (
        22,
        include_str!("../migrations/sqlite/0022_consent_frequency.sql"),
    ),
    (23, include_str!("../migrations/sqlite/0023_tickets.sql")),
    (24, include_str!("../migrations/sqlite/0024_community.sql")),
    (
        25,
        include_str!("../migrations/sqlite/0025_ticket_teams.sql"),
    ),
    (
        26,
        include_str!("../migrations/sqlite/0026_posts_by_topic.sql"),
    ),
    (27, include_str!("../migrations/sqlite/0027_loyalty.sql")),
    (28, include_str!("../migrations/sqlite/0028_referrals.sql")),
];
const READERS: usize = 4;
/// Connections of their own for analytical reads (segment members and previews), so a
/// slow one never queues the health check, key look-ups or profile reads behind it.
const ANALYSTS: usize = 2;

/// The writer's memory of who owns which identifier, so a known person's events skip
/// the identity lookups. Only the writer connection changes identities and clusters;
/// another process committing (an import while serving) changes `PRAGMA data_version`,
/// which empties the cache, as do merges and unmerges made by hand and failed writes.
#[derive(Default)]
struct IdentityCache {
    data_version: i64,
    /// key → (raw profile, last seen, unconfirmed device link)
    owners: HashMap<IdentityKey, (ProfileId, Millis, bool)>,
    canon: HashMap<ProfileId, ProfileId>,
}

/// Past this many identifiers the cache starts over (about 200 MB).
const CACHE_MAX: usize = 2_000_000;

impl IdentityCache {
    fn clear(&mut self) {
        self.owners.clear();
        self.canon.clear();
    }

    fn get(&self, k: &IdentityKey) -> Option<Owner> {
        let &(raw, last_seen, unconfirmed) = self.owners.get(k)?;
        let &canonical = self.canon.get(&raw)?;
        Some(Owner {
            raw,
            canonical,
            last_seen,
            unconfirmed,
        })
    }

    fn learn(&mut self, plan: &Plan) {
        if self.owners.len() > CACHE_MAX {
            self.clear();
        }
        for (id, _) in &plan.new_profiles {
            self.canon.insert(*id, *id);
        }
        for i in &plan.new_identities {
            self.owners
                .insert(i.key.clone(), (i.profile_id, i.first_seen, i.unconfirmed));
        }
        for k in &plan.confirmed {
            if let Some(e) = self.owners.get_mut(k) {
                e.2 = false;
            }
        }
        for (k, at) in &plan.seen {
            if let Some(e) = self.owners.get_mut(k) {
                e.1 = e.1.max(*at);
            }
        }
        for (raw, c) in plan.reassignments() {
            self.canon.insert(raw, c);
        }
    }
}

struct Writer {
    conn: Connection,
    cache: IdentityCache,
}

pub struct SqliteStore {
    writer: Arc<Mutex<Writer>>,
    readers: Arc<Vec<Mutex<Connection>>>,
    next_reader: AtomicUsize,
    analysts: Arc<Vec<Mutex<Connection>>>,
    next_analyst: AtomicUsize,
    pub path: PathBuf,
}

/// `wal_autocheckpoint` at 64k pages (256 MB): with random-key indexes (client UUID
/// message ids, per-profile timelines) a page is rewritten many times between
/// checkpoints, and each checkpoint copies it to the database file once. Measured
/// +40% ingest at 1M events against the 1,000-page default (docs/benchmarks.md).
/// The checkpoint stays inline in the commit that crosses the limit: a background
/// checkpointer was tried (docs/benchmarks.md, twelfth session) and cost 10% of HTTP ingestion and a third
/// of raw insert speed on two cores, for a shorter tail only in the heaviest write burst.
fn configure(conn: &Connection) -> Result<()> {
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA busy_timeout = 10000;
         PRAGMA cache_size = -65536;
         PRAGMA temp_store = MEMORY;
         PRAGMA mmap_size = 268435456;
         PRAGMA wal_autocheckpoint = 65536;
         PRAGMA journal_size_limit = 268435456;
         PRAGMA secure_delete = ON;",
    )?;
    conn.set_prepared_statement_cache_capacity(64);
    register_regexp(conn)?;
    register_trait_times(conn)?;
    Ok(())
}

/// `regexp(pattern, text)` for segment definitions (`matches "…"`), with the `regex`
/// crate the in-memory evaluator uses; compiled patterns are cached per statement.
fn register_regexp(conn: &Connection) -> Result<()> {
    use rusqlite::functions::FunctionFlags;
    conn.create_scalar_function(
        "regexp",
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let re: std::sync::Arc<regex::Regex> = ctx.get_or_create_aux(0, |v| {
                regex::Regex::new(v.as_str()?)
                    .map_err(|e| rusqlite::Error::UserFunctionError(Box::new(e)))
            })?;
            Ok(match ctx.get_raw(1) {
                rusqlite::types::ValueRef::Text(t) => {
                    std::str::from_utf8(t).is_ok_and(|s| re.is_match(s))
                }
                _ => false,
            })
        },
    )?;
    Ok(())
}

/// `rapport_fresh_patch(stored_times, patch, times)` and
/// `rapport_later_times(stored_times, times)`: per-key trait precedence by event time,
/// the domain's own functions (`traits::fresh_patch`, `traits::later_times`), so both
/// stores and the in-memory view agree.
fn register_trait_times(conn: &Connection) -> Result<()> {
    use rapport_domain::traits::{fresh_patch, later_times};
    use rusqlite::functions::{Context, FunctionFlags};
    use serde_json::{Map, Value};
    fn obj(ctx: &Context<'_>, i: usize) -> rusqlite::Result<Map<String, Value>> {
        let text = ctx.get::<String>(i)?;
        match serde_json::from_str(&text) {
            Ok(Value::Object(o)) => Ok(o),
            _ => Ok(Map::new()),
        }
    }
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    conn.create_scalar_function("rapport_fresh_patch", 3, flags, |ctx| {
        let fresh = fresh_patch(&obj(ctx, 0)?, &obj(ctx, 1)?, &obj(ctx, 2)?);
        Ok(Value::Object(fresh).to_string())
    })?;
    conn.create_scalar_function("rapport_later_times", 2, flags, |ctx| {
        let mut stored = obj(ctx, 0)?;
        later_times(&mut stored, &obj(ctx, 1)?);
        Ok(Value::Object(stored).to_string())
    })?;
    Ok(())
}

/// A migrated in-memory database for tests.
#[cfg(test)]
pub(crate) fn test_connection() -> Result<Connection> {
    let mut conn = Connection::open_in_memory()?;
    register_regexp(&conn)?;
    register_trait_times(&conn)?;
    migrate(&mut conn)?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
    )?;
    for (version, sql) in MIGRATIONS {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let done: Option<i64> = tx
            .query_row(sql::schema::MIGRATION_APPLIED, [version], |r| r.get(0))
            .optional()?;
        if done.is_none() {
            tx.execute_batch(sql)?;
            tx.execute(
                sql::schema::RECORD_MIGRATION,
                params![version, rapport_domain::time::now_millis()],
            )?;
        }
        tx.commit()?;
    }
    Ok(())
}

fn blocking_err(e: tokio::task::JoinError) -> StoreError {
    StoreError::Backend(format!("worker thread failed: {e}"))
}

impl SqliteStore {
    pub fn open(path: &Path) -> Result<Self> {
        // Before SQLite initialises, which the first open does.
        let mut writer = Connection::open(path)?;
        configure(&writer)?;
        migrate(&mut writer)?;
        let open = |n: usize| {
            (0..n)
                .map(|_| {
                    let c = Connection::open(path)?;
                    configure(&c)?;
                    Ok(Mutex::new(c))
                })
                .collect::<Result<Vec<_>>>()
        };
        let (readers, analysts) = (open(READERS)?, open(ANALYSTS)?);
        Ok(SqliteStore {
            writer: Arc::new(Mutex::new(Writer {
                conn: writer,
                cache: IdentityCache::default(),
            })),
            readers: Arc::new(readers),
            next_reader: AtomicUsize::new(0),
            analysts: Arc::new(analysts),
            next_analyst: AtomicUsize::new(0),
            path: path.to_path_buf(),
        })
    }

    /// Copies the WAL into the database file and truncates it to nothing, so content
    /// deleted since (erasure) is left in neither file. Retried while readers hold
    /// older snapshots.
    async fn truncate_wal(&self) -> Result<()> {
        let writer = self.writer.clone();
        tokio::task::spawn_blocking(move || {
            for _ in 0..100 {
                let busy: i64 = {
                    let guard = writer
                        .lock()
                        .map_err(|_| StoreError::Backend("writer lock poisoned".into()))?;
                    guard
                        .conn
                        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?
                };
                if busy == 0 {
                    return Ok(());
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(StoreError::Backend(
                "the WAL could not be truncated: readers kept it busy for 2 s".into(),
            ))
        })
        .await
        .map_err(blocking_err)?
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let readers = self.readers.clone();
        let i = self.next_reader.fetch_add(1, Ordering::Relaxed) % READERS;
        tokio::task::spawn_blocking(move || {
            let conn = readers[i]
                .lock()
                .map_err(|_| StoreError::Backend("reader lock poisoned".into()))?;
            f(&conn)
        })
        .await
        .map_err(blocking_err)?
    }

    /// An analytical read, on a connection of its own: stopped (SQLite's progress
    /// handler) after [`heavy_read_timeout`](crate::heavy_read_timeout), or as soon as
    /// the caller goes away.
    async fn read_heavy<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        use std::sync::atomic::AtomicBool;
        let analysts = self.analysts.clone();
        let i = self.next_analyst.fetch_add(1, Ordering::Relaxed) % ANALYSTS;
        let gone = Arc::new(AtomicBool::new(false));
        let _cancel = crate::CancelOnDrop(gone.clone());
        let stopped = Arc::new(AtomicBool::new(false));
        let stopped_here = stopped.clone();
        let result = tokio::task::spawn_blocking(move || {
            let conn = analysts[i]
                .lock()
                .map_err(|_| StoreError::Backend("reader lock poisoned".into()))?;
            let deadline = std::time::Instant::now() + crate::heavy_read_timeout();
            // Checked every 10,000 virtual-machine steps (well under a millisecond).
            conn.progress_handler(
                10_000,
                Some(move || {
                    let stop = gone.load(Ordering::Relaxed) || std::time::Instant::now() > deadline;
                    if stop {
                        stopped_here.store(true, Ordering::Relaxed);
                    }
                    stop
                }),
            );
            let r = f(&conn);
            conn.progress_handler(0, None::<fn() -> bool>);
            r
        })
        .await
        .map_err(blocking_err)?;
        match result {
            Err(_) if stopped.load(Ordering::Relaxed) => Err(StoreError::TimedOut),
            r => r,
        }
    }

    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.write_cached(false, move |tx, _| f(tx)).await
    }

    /// Runs `f` in a write transaction with the identity cache; `invalidates` empties
    /// the cache afterwards (for writes that move profiles between clusters).
    async fn write_cached<T: Send + 'static>(
        &self,
        invalidates: bool,
        f: impl FnOnce(&Transaction<'_>, &mut IdentityCache) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.write_inner(invalidates, true, f).await
    }

    /// Runs `f` in a write transaction whose commit is not synced to disk: for what the
    /// real-time engine derives from stored events. A process crash loses nothing (the
    /// commit is in the WAL); a power loss may lose the last such commits, never a synced
    /// one after them (the WAL is synced in order), and the engine's position goes back
    /// with them, so it decides those events again.
    async fn write_derived<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.write_inner(false, false, move |tx, _| f(tx)).await
    }

    async fn write_inner<T: Send + 'static>(
        &self,
        invalidates: bool,
        durable: bool,
        f: impl FnOnce(&Transaction<'_>, &mut IdentityCache) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let writer = self.writer.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = writer
                .lock()
                .map_err(|_| StoreError::Backend("writer lock poisoned".into()))?;
            let Writer { conn, cache } = &mut *guard;
            let version: i64 = conn.query_row("PRAGMA data_version", [], |r| r.get(0))?;
            if version != cache.data_version {
                cache.clear();
                cache.data_version = version;
            }
            if !durable {
                conn.execute_batch("PRAGMA synchronous = NORMAL")?;
            }
            let run = || -> Result<T> {
                let tx =
                    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                let out = f(&tx, cache)?;
                tx.commit()?;
                Ok(out)
            };
            let result = run();
            if !durable {
                // Every other write on this connection stays synced.
                conn.execute_batch("PRAGMA synchronous = FULL")?;
            }
            if invalidates || result.is_err() {
                cache.clear();
            }
            result
        })
        .await
        .map_err(blocking_err)?
    }
}

fn event_view(r: &rusqlite::Row<'_>) -> rusqlite::Result<EventView> {
    let props: String = r.get(7)?;
    let ctx: String = r.get(8)?;
    Ok(EventView {
        id: r.get(0)?,
        message_id: r.get(1)?,
        profile_id: r.get(2)?,
        kind: r.get(3)?,
        name: r.get(4)?,
        channel: r.get(5)?,
        source: r.get(6)?,
        properties: serde_json::from_str(&props).unwrap_or(Value::Null),
        context: serde_json::from_str(&ctx).unwrap_or(Value::Null),
        text: r.get(9)?,
        occurred_at: to_datetime(r.get(10)?),
        received_at: to_datetime(r.get(11)?),
    })
}

const EVENT_COLUMNS: &str =
    "id, message_id, profile_id, type, name, channel, source, properties, context, text, occurred_at, received_at";

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(",")
}

#[async_trait]
impl Store for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }
    async fn release_memory(&self) -> Result<()> {
        let readers = self.readers.clone();
        let analysts = self.analysts.clone();
        tokio::task::spawn_blocking(move || {
            for r in readers.iter().chain(analysts.iter()) {
                let conn = r
                    .lock()
                    .map_err(|_| StoreError::Backend("reader lock poisoned".into()))?;
                // The mapping too: the first read after a commit unmaps it whole, at a
                // cost that grows with the pages touched through it. Mapped again as read.
                conn.execute_batch(
                    "PRAGMA shrink_memory; PRAGMA mmap_size = 0; PRAGMA mmap_size = 268435456;",
                )?;
            }
            Ok(())
        })
        .await
        .map_err(blocking_err)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store made before a migration keeps its rows through it (0015 rebuilds the
    /// member and size tables).
    #[test]
    fn member_rows_survive_the_rebuild() -> Result<()> {
        let mut conn = Connection::open_in_memory()?;
        for (_, sql) in &MIGRATIONS[..14] {
            conn.execute_batch(sql)?;
        }
        conn.execute_batch(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
        )?;
        for (version, _) in &MIGRATIONS[..14] {
            conn.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, 0)",
                [version],
            )?;
        }
        conn.execute_batch(
            "INSERT INTO segment_members (segment_id, profile_id, since) VALUES (2, 7, 100), (1, 9, 50), (1, 3, 60);
             INSERT INTO segment_sizes (segment_id, at, size, entered, exited) VALUES (1, 0, 2, 2, 0), (2, 0, 1, 1, 0);",
        )?;
        migrate(&mut conn)?;
        let members: Vec<(i64, i64, i64)> = conn
            .prepare("SELECT segment_id, profile_id, since FROM segment_members ORDER BY 1, 2")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<std::result::Result<_, _>>()?;
        assert_eq!(members, vec![(1, 3, 60), (1, 9, 50), (2, 7, 100)]);
        let sizes: i64 = conn.query_row("SELECT SUM(size) FROM segment_sizes", [], |r| r.get(0))?;
        assert_eq!(sizes, 3);
        // Keyed: a duplicate member is refused, and the profile index is back.
        assert!(conn
            .execute(
                "INSERT INTO segment_members (segment_id, profile_id, since) VALUES (1, 3, 1)",
                []
            )
            .is_err());
        let indexed: i64 = conn.query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'segment_members_profile'",
            [],
            |r| r.get(0),
        )?;
        assert_eq!(indexed, 1);
        Ok(())
    }
}
