//! SQLite: one file, WAL mode, `synchronous=FULL` so a committed transaction survives a
//! crash or power loss. One writer connection (SQLite allows one writer anyway) and a
//! few reader connections that read concurrently with it.

use crate::common::{self, ConsentRow, IdentityRow, MemberRow, MergeRow, MERGE_COLUMNS};
use crate::sql;
use crate::{
    ApiKeyRecord, IngestOutcome, Result, SourcedMessages, Store, StoreError, TimelineFilter,
};
use async_trait::async_trait;
use rapport_domain::apikey::Scope;
use rapport_domain::model::{EventView, MergeView, Page, ProfileSummary, ProfileView};
use rapport_domain::resolve::{
    self, clusters_needing_detail, lookup_keys, max_new_profiles, EventRow, Owner, Plan, ProfileId,
    Snapshot,
};
use rapport_domain::time::{to_datetime, Millis};
use rapport_domain::{IdentityKey, Message};
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Transaction};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

mod chain;
mod events;
mod graph;
mod ingest;
#[allow(unsafe_code)]
mod pcache;
mod profiles;
mod realtime;
mod rules;
mod scores;
pub(crate) mod segments;
mod settings;
mod staff;
pub(crate) mod text;

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
];
const READERS: usize = 4;

/// The writer's memory of who owns which identifier, so a known person's events skip
/// the identity lookups. Only the writer connection changes identities and clusters;
/// another process committing (an import while serving) changes `PRAGMA data_version`,
/// which empties the cache, as do merges and unmerges made by hand and failed writes.
#[derive(Default)]
struct IdentityCache {
    data_version: i64,
    owners: HashMap<IdentityKey, (ProfileId, Millis)>,
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
        let &(raw, last_seen) = self.owners.get(k)?;
        let &canonical = self.canon.get(&raw)?;
        Some(Owner {
            raw,
            canonical,
            last_seen,
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
                .insert(i.key.clone(), (i.profile_id, i.first_seen));
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
         PRAGMA journal_size_limit = 268435456;",
    )?;
    conn.set_prepared_statement_cache_capacity(64);
    register_regexp(conn)?;
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

/// A migrated in-memory database for tests, opened as every connection is: after the
/// page cache layer is installed (it must come before SQLite's first open).
#[cfg(test)]
pub(crate) fn test_connection() -> Result<Connection> {
    pcache::install();
    let mut conn = Connection::open_in_memory()?;
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
        pcache::install();
        let mut writer = Connection::open(path)?;
        configure(&writer)?;
        migrate(&mut writer)?;
        let readers = (0..READERS)
            .map(|_| {
                let c = Connection::open(path)?;
                configure(&c)?;
                Ok(Mutex::new(c))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(SqliteStore {
            writer: Arc::new(Mutex::new(Writer {
                conn: writer,
                cache: IdentityCache::default(),
            })),
            readers: Arc::new(readers),
            next_reader: AtomicUsize::new(0),
            path: path.to_path_buf(),
        })
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

/// The profiles of these ids; unknown ones are left out.
fn profiles_in(c: &Connection, ids: Vec<ProfileId>) -> Result<Vec<ProfileView>> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        match profile_read(c, id, false) {
            Ok(v) => out.push(v),
            Err(StoreError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Events in id order after `after`.
fn events_after_in(c: &Connection, after: i64, limit: usize) -> Result<Vec<EventView>> {
    Ok(c.prepare_cached(&format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE id > ?1 ORDER BY id LIMIT ?2"
    ))?
    .query_map(params![after, limit as i64], event_view)?
    .collect::<std::result::Result<_, _>>()?)
}

fn canonical_of(conn: &Connection, id: ProfileId) -> Result<ProfileId> {
    conn.prepare_cached(sql::rules::CANONICAL_ID)?
        .query_row([id], |r| r.get(0))
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("profile {id}")))
}

/// Merges a JSON patch into a person's traits.
fn patch_traits(tx: &Transaction<'_>, id: ProfileId, patch: &str, at: Millis) -> Result<()> {
    let c = canonical_of(tx, id)?;
    tx.prepare_cached(
        "UPDATE profiles SET traits = json_patch(traits, ?2), traits_updated_at = max(traits_updated_at, ?3), updated_at = ?3 WHERE id = ?1",
    )?
    .execute(params![c, patch, at])?;
    Ok(())
}

fn snapshot(tx: &Transaction<'_>, msgs: &[Message], cache: &mut IdentityCache) -> Result<Snapshot> {
    let mut snap = Snapshot::default();
    {
        let mut stmt = tx.prepare_cached(
            "SELECT i.profile_id, p.canonical_id, i.last_seen FROM identities i
             JOIN profiles p ON p.id = i.profile_id WHERE i.kind = ?1 AND i.value = ?2",
        )?;
        for k in lookup_keys(msgs) {
            if let Some(o) = cache.get(&k) {
                snap.owners.insert(k, o);
                continue;
            }
            let owner = stmt
                .query_row(params![k.kind.as_str(), k.value], |r| {
                    Ok(Owner {
                        raw: r.get(0)?,
                        canonical: r.get(1)?,
                        last_seen: r.get(2)?,
                    })
                })
                .optional()?;
            if let Some(o) = owner {
                cache.owners.insert(k.clone(), (o.raw, o.last_seen));
                cache.canon.insert(o.raw, o.canonical);
                snap.owners.insert(k, o);
            }
        }
    }
    let detail = clusters_needing_detail(msgs, &snap.owners);
    if !detail.is_empty() {
        let mut members = tx.prepare_cached(sql::profiles::CLUSTER_MEMBERS)?;
        let mut uids = tx.prepare_cached(
            // CROSS JOIN fixes the join order: from the cluster's few members to their
            // identities, never a scan of every user_id identity.
            "SELECT i.value FROM profiles p CROSS JOIN identities i ON i.profile_id = p.id
             WHERE p.canonical_id = ?1 AND i.kind = 'user_id'",
        )?;
        let mut blocks = tx.prepare_cached(
            "SELECT profile_a, profile_b FROM merge_blocks WHERE profile_a = ?1 OR profile_b = ?1",
        )?;
        for c in detail {
            let ms = members
                .query_map([c], |r| r.get(0))?
                .collect::<std::result::Result<Vec<i64>, _>>()?;
            snap.members.insert(c, ms);
            let us = uids
                .query_map([c], |r| r.get(0))?
                .collect::<std::result::Result<_, _>>()?;
            snap.user_ids.insert(c, us);
            for b in blocks.query_map([c], |r| Ok((r.get(0)?, r.get(1)?)))? {
                snap.blocked_pairs.insert(b?);
            }
        }
    }
    let mut exists = tx.prepare_cached("SELECT 1 FROM events WHERE message_id = ?1")?;
    for m in msgs {
        if exists.exists([&m.message_id])? {
            snap.existing_message_ids.insert(m.message_id.clone());
        }
    }
    Ok(snap)
}

fn insert_events(tx: &Transaction<'_>, rows: &[EventRow], source: &str) -> Result<()> {
    insert_events_sql(tx, rows, source, "INSERT")
}

/// For writers whose events are idempotent by message id (the chain sync after a crash).
fn insert_events_ignoring_known(
    tx: &Transaction<'_>,
    rows: &[EventRow],
    source: &str,
) -> Result<()> {
    insert_events_sql(tx, rows, source, "INSERT OR IGNORE")
}

fn insert_events_sql(
    tx: &Transaction<'_>,
    rows: &[EventRow],
    source: &str,
    verb: &str,
) -> Result<()> {
    let mut stmt = tx.prepare_cached(&format!(
        "{verb} INTO events (message_id, profile_id, type, name, channel, source, properties, context, text, occurred_at, received_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
    ))?;
    for e in rows {
        let m = &e.message;
        stmt.execute(params![
            m.message_id,
            e.profile_id,
            m.kind.as_str(),
            m.name,
            m.channel,
            source,
            m.properties_json,
            m.context_json,
            m.text,
            m.occurred_at,
            m.received_at
        ])?;
    }
    Ok(())
}

fn insert_merge(tx: &Transaction<'_>, m: &resolve::Merge, by: &str) -> Result<i64> {
    tx.prepare_cached(
        "INSERT INTO merges (survivor_id, merged_id, member_ids, cause, message_id, by_whom, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        m.survivor,
        m.merged,
        serde_json::to_string(&m.members).unwrap_or_default(),
        m.cause.to_string(),
        if m.message_id.is_empty() {
            None
        } else {
            Some(&m.message_id)
        },
        by,
        m.at
    ])?;
    Ok(tx.last_insert_rowid())
}

fn apply(tx: &Transaction<'_>, plan: &Plan, source: &str) -> Result<IngestOutcome> {
    let now = rapport_domain::time::now_millis();
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO profiles (id, canonical_id, created_at, updated_at) VALUES (?1, ?1, ?2, ?2)",
        )?;
        for (id, at) in &plan.new_profiles {
            stmt.execute(params![id, at])?;
        }
        let mut stmt = tx.prepare_cached(
            "INSERT INTO identities (kind, value, profile_id, source, first_seen, last_seen)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
        )?;
        for i in &plan.new_identities {
            stmt.execute(params![
                i.key.kind.as_str(),
                i.key.value,
                i.profile_id,
                source,
                i.first_seen
            ])?;
        }
        let mut stmt = tx.prepare_cached(
            "UPDATE identities SET last_seen = max(last_seen, ?3) WHERE kind = ?1 AND value = ?2",
        )?;
        for (k, at) in &plan.seen {
            stmt.execute(params![k.kind.as_str(), k.value, at])?;
        }
        let mut stmt = tx.prepare_cached(
            "UPDATE profiles SET canonical_id = ?2, updated_at = ?3 WHERE id = ?1",
        )?;
        for (raw, c) in plan.reassignments() {
            stmt.execute(params![raw, c, now])?;
        }
        for m in &plan.merges {
            insert_merge(tx, m, source)?;
        }
        let mut stmt = tx.prepare_cached(
            "INSERT INTO conflicts (profile_a, profile_b, identifier, reason, message_id, first_at, last_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)
             ON CONFLICT (profile_a, profile_b, identifier) DO UPDATE SET count = count + 1, last_at = excluded.last_at",
        )?;
        for c in &plan.conflicts {
            stmt.execute(params![
                c.profile_a,
                c.profile_b,
                c.key.to_string(),
                c.reason,
                c.message_id,
                c.at
            ])?;
        }
        let mut stmt = tx.prepare_cached(
            "UPDATE profiles SET traits = json_patch(traits, ?2), traits_updated_at = max(traits_updated_at, ?3), updated_at = ?4 WHERE id = ?1",
        )?;
        for round in plan.trait_patch_rounds() {
            for (id, patch, at) in round {
                stmt.execute(params![id, patch, at, now])?;
            }
        }
    }
    insert_events(tx, &plan.events, source)?;
    Ok(IngestOutcome {
        accepted: plan.events.len(),
        duplicates: plan.duplicates,
        profiles_created: plan.new_profiles.len(),
        identities_created: plan.new_identities.len(),
        merges: plan.merges.len(),
        conflicts: plan.conflicts.len(),
    })
}

fn ingest_group(
    tx: &Transaction<'_>,
    group: SourcedMessages,
    cache: &mut IdentityCache,
) -> Result<IngestOutcome> {
    let snap = snapshot(tx, &group.messages, cache)?;
    let bound = max_new_profiles(&group.messages, &snap.owners) as i64;
    let start: i64 = tx.query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM profiles", [], |r| {
        r.get(0)
    })?;
    let mut ids = start..start + bound;
    let plan = resolve::resolve_all(snap, &mut ids, group.messages);
    let outcome = apply(tx, &plan, &group.source)?;
    cache.learn(&plan);
    Ok(outcome)
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

fn merge_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<MergeRow> {
    Ok(MergeRow {
        id: r.get(0)?,
        survivor_id: r.get(1)?,
        merged_id: r.get(2)?,
        member_ids: r.get(3)?,
        cause: r.get(4)?,
        message_id: r.get(5)?,
        by_whom: r.get(6)?,
        at: r.get(7)?,
        undone_at: r.get(8)?,
        undone_by: r.get(9)?,
    })
}

fn merge_by_id(conn: &Connection, id: i64) -> Result<MergeView> {
    Ok(conn
        .query_row(
            &format!("SELECT {MERGE_COLUMNS} FROM merges WHERE id = ?1"),
            [id],
            merge_row,
        )?
        .view())
}

fn profile_sync(conn: &Connection, id: ProfileId) -> Result<ProfileView> {
    profile_read(conn, id, true)
}

/// A person's profile; `with_merges`: with their merge history (the API shows it; the
/// real-time engine does not read it).
fn profile_read(conn: &Connection, id: ProfileId, with_merges: bool) -> Result<ProfileView> {
    let c = canonical_of(conn, id)?;
    let members = conn
        .prepare_cached(
            "SELECT id, created_at, updated_at, traits, traits_updated_at FROM profiles WHERE canonical_id = ?1 ORDER BY id",
        )?
        .query_map([c], |r| {
            let t: String = r.get(3)?;
            Ok(MemberRow {
                id: r.get(0)?,
                created_at: r.get(1)?,
                updated_at: r.get(2)?,
                traits: serde_json::from_str(&t).unwrap_or(Value::Null),
                traits_updated_at: r.get(4)?,
            })
        })?
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let identities = conn
        .prepare_cached(
            "SELECT kind, value, profile_id, verified, source, first_seen, last_seen FROM identities
             WHERE profile_id IN (SELECT id FROM profiles WHERE canonical_id = ?1) ORDER BY kind, first_seen, id",
        )?
        .query_map([c], |r| {
            Ok(IdentityRow {
                kind: r.get(0)?,
                value: r.get(1)?,
                profile_id: r.get(2)?,
                verified: r.get::<_, i64>(3)? != 0,
                source: r.get(4)?,
                first_seen: r.get(5)?,
                last_seen: r.get(6)?,
            })
        })?
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let consents = conn
        .prepare_cached(
            "SELECT channel, purpose, status, source, proof, at FROM consents
             WHERE profile_id IN (SELECT id FROM profiles WHERE canonical_id = ?1) ORDER BY at DESC, id DESC",
        )?
        .query_map([c], |r| {
            Ok(ConsentRow {
                channel: r.get(0)?,
                purpose: r.get(1)?,
                status: r.get(2)?,
                source: r.get(3)?,
                proof: r.get(4)?,
                at: r.get(5)?,
            })
        })?
        .collect::<std::result::Result<Vec<_>, _>>()?;
    if !with_merges {
        return common::build_profile(c, members, identities, consents, Vec::new());
    }
    let merges = conn
        .prepare_cached(&format!(
            "SELECT {MERGE_COLUMNS} FROM merges WHERE survivor_id IN (SELECT id FROM profiles WHERE canonical_id = ?1)
             OR merged_id IN (SELECT id FROM profiles WHERE canonical_id = ?1) ORDER BY id DESC LIMIT 100"
        ))?
        .query_map([c], merge_row)?
        .collect::<std::result::Result<Vec<_>, _>>()?;
    common::build_profile(c, members, identities, consents, merges)
}

fn lookup_sync(conn: &Connection, key: &IdentityKey) -> Result<Option<ProfileId>> {
    Ok(conn
        .prepare_cached(sql::profiles::LOOKUP_MANY)?
        .query_row(params![key.kind.as_str(), key.value], |r| r.get(0))
        .optional()?)
}

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(",")
}

fn summaries(conn: &Connection, ids: &[ProfileId]) -> Result<Vec<ProfileSummary>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let ph = placeholders(ids.len());
    let mut rows: std::collections::HashMap<i64, Vec<(Value, Millis, Millis)>> = Default::default();
    let mut stmt = conn.prepare(&format!(
        "SELECT canonical_id, traits, traits_updated_at, created_at FROM profiles WHERE canonical_id IN ({ph})"
    ))?;
    let mut q = stmt.query(params_from_iter(ids))?;
    while let Some(r) = q.next()? {
        let t: String = r.get(1)?;
        rows.entry(r.get(0)?).or_default().push((
            serde_json::from_str(&t).unwrap_or(Value::Null),
            r.get(2)?,
            r.get(3)?,
        ));
    }
    let mut emails: std::collections::HashMap<i64, String> = Default::default();
    let mut stmt = conn.prepare(&format!(
        "SELECT p.canonical_id, i.value FROM profiles p CROSS JOIN identities i ON i.profile_id = p.id
         WHERE i.kind = 'email' AND p.canonical_id IN ({ph}) ORDER BY i.first_seen DESC, i.id DESC"
    ))?;
    let mut q = stmt.query(params_from_iter(ids))?;
    while let Some(r) = q.next()? {
        emails.insert(r.get(0)?, r.get(1)?);
    }
    Ok(ids
        .iter()
        .map(|id| common::summary(*id, rows.remove(id).unwrap_or_default(), emails.remove(id)))
        .collect())
}

fn search_sync(
    conn: &Connection,
    q: Option<&str>,
    limit: usize,
    after: Option<ProfileId>,
) -> Result<Page<ProfileSummary>> {
    let after = after.unwrap_or(0);
    let fetch = (limit + 1) as i64;
    let mut ids: Vec<i64> = match q.map(str::trim).filter(|q| !q.is_empty()) {
        None => conn
            .prepare_cached(sql::profiles::PEOPLE_AFTER)?
            .query_map(params![after, fetch], |r| r.get(0))?
            .collect::<std::result::Result<_, _>>()?,
        Some(q) => match common::exact_identifier(q) {
            Some(key) => lookup_sync(conn, &key)?
                .filter(|id| *id > after)
                .into_iter()
                .collect(),
            None => {
                let like = common::like_pattern(q);
                conn.prepare_cached(
                    "SELECT DISTINCT canonical_id FROM (
                       SELECT canonical_id FROM profiles WHERE traits LIKE ?1 ESCAPE '\\'
                       UNION ALL
                       SELECT p.canonical_id FROM identities i JOIN profiles p ON p.id = i.profile_id WHERE i.value LIKE ?1 ESCAPE '\\'
                     ) WHERE canonical_id > ?2 ORDER BY canonical_id LIMIT ?3",
                )?
                .query_map(params![like, after, fetch], |r| r.get(0))?
                .collect::<std::result::Result<_, _>>()?
            }
        },
    };
    let next_cursor = common::trim_page(&mut ids, limit, |id| id.to_string());
    Ok(Page {
        items: summaries(conn, &ids)?,
        next_cursor,
    })
}

fn timeline_sync(conn: &Connection, id: ProfileId, f: &TimelineFilter) -> Result<Page<EventView>> {
    let c = canonical_of(conn, id)?;
    let mut sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE profile_id IN (SELECT id FROM profiles WHERE canonical_id = ?)"
    );
    let mut args: Vec<rusqlite::types::Value> = vec![c.into()];
    let mut any_of = |sql: &mut String, col: &str, vals: &[String]| {
        if !vals.is_empty() {
            sql.push_str(&format!(" AND {col} IN ({})", placeholders(vals.len())));
            args.extend(vals.iter().map(|v| rusqlite::types::Value::from(v.clone())));
        }
    };
    any_of(&mut sql, "type", &f.types);
    any_of(&mut sql, "channel", &f.channels);
    any_of(&mut sql, "name", &f.names);
    if let Some(s) = f.since {
        sql.push_str(" AND occurred_at >= ?");
        args.push(s.into());
    }
    if let Some(u) = f.until {
        sql.push_str(" AND occurred_at < ?");
        args.push(u.into());
    }
    if let Some((t, eid)) = f.before {
        sql.push_str(" AND (occurred_at < ? OR (occurred_at = ? AND id < ?))");
        args.extend([t.into(), t.into(), eid.into()]);
    }
    sql.push_str(" ORDER BY occurred_at DESC, id DESC LIMIT ?");
    args.push(((f.limit + 1) as i64).into());
    let mut items = conn
        .prepare_cached(&sql)?
        .query_map(params_from_iter(args), event_view)?
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let next_cursor = common::trim_page(&mut items, f.limit, common::event_cursor);
    Ok(Page { items, next_cursor })
}

fn api_key_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ApiKeyRecord> {
    let scope: String = r.get(2)?;
    Ok(ApiKeyRecord {
        id: r.get(0)?,
        prefix: r.get(1)?,
        scope: Scope::parse(&scope).unwrap_or(Scope::Write),
        label: r.get(3)?,
        created_at: r.get(4)?,
        revoked: r.get::<_, Option<i64>>(5)?.is_some(),
    })
}

#[async_trait]
impl Store for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }
    async fn release_memory(&self) -> Result<()> {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            for r in readers.iter() {
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
        pcache::install();
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
