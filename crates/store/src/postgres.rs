//! PostgreSQL: the production store. Writes of one group go in a few set-based
//! statements (`UNNEST` arrays), so a group of thousands of events costs a handful of
//! round trips. Writers serialise on a transaction-scoped advisory lock, so several
//! Rapport processes can share one database safely.

use crate::common::{self, ConsentRow, IdentityRow, MemberRow, MergeRow, MERGE_COLUMNS};
use crate::{
    Activity, ApiKeyRecord, ConsentInput, IngestOutcome, RelScope, Result, ScoreOrder,
    SourcedMessages, Store, StoreError, TimelineFilter, TouchQuery, UnmergeTarget,
};
use async_trait::async_trait;
use deadpool_postgres::{
    GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod, Transaction,
};
use rapport_domain::apikey::Scope;
use rapport_domain::model::{
    ConflictView, EventView, MergeView, Page, ProfileSummary, ProfileView, Stats,
};
use rapport_domain::relationship::{
    GraphRun, GraphScores, RelationshipView, RelationshipWrite, TouchView,
};
use rapport_domain::resolve::{
    self, clusters_needing_detail, lookup_keys, max_new_profiles, EventRow, Owner, Plan, ProfileId,
    Snapshot,
};
use rapport_domain::time::{to_datetime, Millis};
use rapport_domain::{IdentityKey, Message};
use serde_json::Value;
use std::collections::HashMap;
use std::str::FromStr;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

mod chain;
mod graph;
mod rules;
mod segments;
mod text;
mod users;

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/postgres/0001_core.sql")),
    (2, include_str!("../migrations/postgres/0002_graph.sql")),
    (3, include_str!("../migrations/postgres/0003_text.sql")),
    (4, include_str!("../migrations/postgres/0004_catalogue.sql")),
    (
        5,
        include_str!("../migrations/postgres/0005_tags_settings.sql"),
    ),
    (6, include_str!("../migrations/postgres/0006_segments.sql")),
    (7, include_str!("../migrations/postgres/0007_scores.sql")),
    (8, include_str!("../migrations/postgres/0008_rules.sql")),
    (9, include_str!("../migrations/postgres/0009_outbox.sql")),
    (10, include_str!("../migrations/postgres/0010_chain.sql")),
    (11, include_str!("../migrations/postgres/0011_users.sql")),
    (12, include_str!("../migrations/postgres/0012_search.sql")),
    (
        13,
        include_str!("../migrations/postgres/0013_firings_by_person.sql"),
    ),
    (
        14,
        include_str!("../migrations/postgres/0014_event_numbers.sql"),
    ),
    (
        15,
        include_str!("../migrations/postgres/0015_merged_profiles.sql"),
    ),
    (
        16,
        include_str!("../migrations/postgres/0016_identity_trigrams.sql"),
    ),
    (
        17,
        include_str!("../migrations/postgres/0017_segment_events.sql"),
    ),
];

pub struct PgStore {
    pool: Pool,
}

type Param<'a> = &'a (dyn ToSql + Sync);

impl PgStore {
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_schema(url, None).await
    }

    /// Connects with `search_path` set to `schema` (created if missing): tests use one
    /// schema each so they can run in parallel on one database.
    pub async fn connect_schema(url: &str, schema: Option<&str>) -> Result<Self> {
        let mut cfg = tokio_postgres::Config::from_str(url).map_err(|e| {
            StoreError::invalid("database_url", format!("{} ({e})", crate::redact(url)))
        })?;
        if let Some(s) = schema {
            if !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(StoreError::invalid("schema", "must be [A-Za-z0-9_]"));
            }
            let (client, conn) = cfg.connect(NoTls).await?;
            let task = tokio::spawn(conn);
            client
                .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {s}"))
                .await?;
            drop(client);
            let _ = task.await;
            cfg.options(format!("-csearch_path={s}"));
        }
        let mgr = Manager::from_config(
            cfg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(mgr)
            .max_size(16)
            // The connection used last goes out first: its backend's caches are warm, and
            // its statements prepared (first-in-first-out rotates through all sixteen).
            .queue_mode(deadpool_postgres::QueueMode::Lifo)
            .build()
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        let store = PgStore { pool };
        store.migrate().await?;
        Ok(store)
    }

    /// Drops a schema made by [`PgStore::connect_schema`] (tests and benchmarks).
    pub async fn drop_schema(url: &str, schema: &str) -> Result<()> {
        if !schema
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(StoreError::invalid("schema", "must be [A-Za-z0-9_]"));
        }
        let (client, conn) = tokio_postgres::connect(url, NoTls).await?;
        let task = tokio::spawn(conn);
        client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .await?;
        drop(client);
        let _ = task.await;
        Ok(())
    }

    async fn migrate(&self) -> Result<()> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.batch_execute(
            "SELECT pg_advisory_xact_lock(hashtext(current_schema()) + 1);
             CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )
        .await?;
        for (version, sql) in MIGRATIONS {
            let done = tx
                .query_opt(
                    "SELECT version FROM schema_migrations WHERE version = $1",
                    &[version],
                )
                .await?;
            if done.is_none() {
                tx.batch_execute(sql).await?;
                tx.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
                    &[version, &rapport_domain::time::now_millis()],
                )
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        Ok(self.pool.get().await?)
    }
}

/// Every writer of events (and of identities) holds this transaction-scoped lock: writes
/// stay consistent across several Rapport processes, and event ids are committed in id
/// order, so the followers of the log (real-time engine, text and graph workers), which
/// read past a position, never pass an event still in flight. Writers that also lock
/// segment rows take those first.
async fn writer_lock(c: &impl GenericClient) -> Result<()> {
    let stmt = c
        .prepare_cached("SELECT pg_advisory_xact_lock(hashtext(current_schema()))")
        .await?;
    c.execute(&stmt, &[]).await?;
    Ok(())
}

/// A pooled connection for one transaction whose `BEGIN` (with its `SET LOCAL`s) goes
/// out pipelined with the first statements: one round trip fewer than
/// `Client::transaction`, which waits for `BEGIN`. Statements must be sent after
/// [`PipelinedTx::begin`] (poll it first) and `COMMIT` by [`PipelinedTx::finish`]. If the
/// work is dropped halfway, the connection is closed, not returned to the pool inside
/// an open transaction.
pub(crate) struct PipelinedTx {
    conn: Option<deadpool_postgres::Object>,
    ended: std::sync::atomic::AtomicBool,
}

impl PipelinedTx {
    pub(crate) fn new(conn: deadpool_postgres::Object) -> Self {
        Self {
            conn: Some(conn),
            ended: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub(crate) fn client(&self) -> Result<&deadpool_postgres::Object> {
        self.conn
            .as_ref()
            .ok_or_else(|| StoreError::Backend("transaction already ended".into()))
    }

    /// `sql`: the `BEGIN` (with its modes) and any `SET LOCAL`s, as one simple query.
    pub(crate) async fn begin(&self, sql: &str) -> Result<()> {
        Ok(self.client()?.batch_execute(sql).await?)
    }

    /// For a read-only transaction: runs `reads` with `COMMIT` sent right behind them,
    /// so ending the transaction costs no round trip of its own. (After a failed
    /// statement the server rolls back instead; a read-only transaction has nothing to
    /// undo either way.) `reads` must send every statement when first polled.
    pub(crate) async fn read_and_commit<T>(
        &self,
        reads: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let c = self.client()?;
        let (out, ended) = futures_util::future::join(reads, c.batch_execute("COMMIT")).await;
        // A failed COMMIT leaves `ended` false: the connection is closed.
        self.ended
            .store(ended.is_ok(), std::sync::atomic::Ordering::Relaxed);
        let v = out?;
        ended?;
        Ok(v)
    }

    /// Commits when `outcome` is a success, rolls back otherwise; returns `outcome` (or
    /// the commit's error).
    pub(crate) async fn finish<T>(self, outcome: Result<T>) -> Result<T> {
        let end = if outcome.is_ok() {
            "COMMIT"
        } else {
            "ROLLBACK"
        };
        let ended = self.client()?.batch_execute(end).await;
        // A failed COMMIT or ROLLBACK leaves `ended` false: the connection is closed.
        self.ended
            .store(ended.is_ok(), std::sync::atomic::Ordering::Relaxed);
        let v = outcome?;
        ended?;
        Ok(v)
    }
}

impl Drop for PipelinedTx {
    fn drop(&mut self) {
        if !self.ended.load(std::sync::atomic::Ordering::Relaxed) {
            if let Some(conn) = self.conn.take() {
                // Detached from the pool, the client is dropped and its connection closed.
                drop(deadpool_postgres::Object::take(conn));
            }
        }
    }
}

async fn canonical_of(c: &impl GenericClient, id: ProfileId) -> Result<ProfileId> {
    c.query_opt("SELECT canonical_id FROM profiles WHERE id = $1", &[&id])
        .await?
        .map(|r| r.get(0))
        .ok_or_else(|| StoreError::NotFound(format!("profile {id}")))
}

/// Merges a JSON patch into a person's traits (one statement: the canonical id looked up
/// in it).
async fn patch_traits(
    tx: &impl GenericClient,
    id: ProfileId,
    patch: &Value,
    at: Millis,
) -> Result<()> {
    let stmt = tx
        .prepare_cached(
            "UPDATE profiles SET traits = rapport_merge_patch(traits, $2), traits_updated_at = GREATEST(traits_updated_at, $3), updated_at = $3
             WHERE id = (SELECT canonical_id FROM profiles WHERE id = $1)",
        )
        .await?;
    if tx.execute(&stmt, &[&id, patch, &at]).await? == 0 {
        return Err(StoreError::NotFound(format!("profile {id}")));
    }
    Ok(())
}

async fn snapshot(tx: &Transaction<'_>, msgs: &[Message]) -> Result<Snapshot> {
    let mut snap = Snapshot::default();
    let keys = lookup_keys(msgs);
    let kinds: Vec<&str> = keys.iter().map(|k| k.kind.as_str()).collect();
    let values: Vec<&str> = keys.iter().map(|k| k.value.as_str()).collect();
    let ids: Vec<&str> = msgs.iter().map(|m| m.message_id.as_str()).collect();
    // Independent reads, pipelined on the connection: one round trip for both.
    let owner_params: [Param<'_>; 2] = [&kinds, &values];
    let id_params: [Param<'_>; 1] = [&ids];
    let (owners_stmt, ids_stmt) = tokio::try_join!(
        tx.prepare_cached(
            "SELECT i.kind, i.value, i.profile_id, p.canonical_id, i.last_seen
             FROM UNNEST($1::text[], $2::text[]) AS k(kind, value)
             JOIN identities i ON i.kind = k.kind AND i.value = k.value
             JOIN profiles p ON p.id = i.profile_id"
        ),
        tx.prepare_cached("SELECT message_id FROM event_rows WHERE message_id = ANY($1)"),
    )?;
    let (rows, existing) = tokio::try_join!(
        tx.query(&owners_stmt, &owner_params),
        tx.query(&ids_stmt, &id_params),
    )?;
    for r in existing {
        snap.existing_message_ids.insert(r.get(0));
    }
    for r in rows {
        let key = IdentityKey {
            kind: common::kind(r.get(0))?,
            value: r.get(1),
        };
        snap.owners.insert(
            key,
            Owner {
                raw: r.get(2),
                canonical: r.get(3),
                last_seen: r.get(4),
            },
        );
    }
    let detail = clusters_needing_detail(msgs, &snap.owners);
    if !detail.is_empty() {
        for r in tx
            .query(
                "SELECT canonical_id, id FROM profiles WHERE canonical_id = ANY($1) ORDER BY id",
                &[&detail],
            )
            .await?
        {
            snap.members.entry(r.get(0)).or_default().push(r.get(1));
        }
        for c in &detail {
            snap.user_ids.entry(*c).or_default();
        }
        // By member id array: an index scan on identities(profile_id) whatever the
        // planner's statistics say.
        let mut canon_of = std::collections::HashMap::new();
        for (c, ms) in &snap.members {
            for m in ms {
                canon_of.insert(*m, *c);
            }
        }
        let member_ids: Vec<i64> = canon_of.keys().copied().collect();
        for r in tx
            .query(
                "SELECT profile_id, value FROM identities WHERE profile_id = ANY($1) AND kind = 'user_id'",
                &[&member_ids],
            )
            .await?
        {
            let raw: i64 = r.get(0);
            if let Some(c) = canon_of.get(&raw) {
                snap.user_ids.entry(*c).or_default().insert(r.get(1));
            }
        }
        for r in tx
            .query("SELECT profile_a, profile_b FROM merge_blocks WHERE profile_a = ANY($1) OR profile_b = ANY($1)", &[&detail])
            .await?
        {
            snap.blocked_pairs.insert((r.get(0), r.get(1)));
        }
    }
    Ok(snap)
}

/// Owned-by-reference parameters of one pipelined statement.
type Params<'a> = Vec<Box<dyn ToSql + Sync + Send + 'a>>;

/// Statements sent back to back on one connection without waiting for each reply
/// (tokio-postgres pipelines concurrent requests): a group's writes cost about one
/// round trip instead of one per statement. The server runs them in order.
#[derive(Default)]
struct Pipeline<'a> {
    stmts: Vec<(&'static str, Params<'a>)>,
}

impl<'a> Pipeline<'a> {
    fn add(&mut self, sql: &'static str, params: Params<'a>) {
        self.stmts.push((sql, params));
    }

    async fn run(self, tx: &Transaction<'_>) -> Result<()> {
        let prepared = futures_util::future::try_join_all(
            self.stmts.iter().map(|(sql, _)| tx.prepare_cached(sql)),
        )
        .await?;
        let refs: Vec<Vec<Param<'_>>> = self
            .stmts
            .iter()
            .map(|(_, ps)| ps.iter().map(|p| p.as_ref() as Param<'_>).collect())
            .collect();
        futures_util::future::try_join_all(
            prepared.iter().zip(&refs).map(|(st, r)| tx.execute(st, r)),
        )
        .await?;
        Ok(())
    }
}

macro_rules! insert_events {
    () => {
        "INSERT INTO event_rows (message_id, profile_id, type, name, channel, source, properties, context, text, occurred_at, received_at)
         SELECT m, p, ty, n, ch, $6, pr::jsonb, cx::jsonb, tx, oa, ra
         FROM UNNEST($1::text[], $2::int8[], $3::text[], $4::text[], $5::text[], $7::text[], $8::text[], $9::text[], $10::int8[], $11::int8[])
           AS t(m, p, ty, n, ch, pr, cx, tx, oa, ra)"
    };
}

fn add_events<'a>(p: &mut Pipeline<'a>, rows: &'a [EventRow], source: &'a str) {
    add_events_sql(p, rows, source, insert_events!())
}

/// For writers whose events are idempotent by message id (the chain sync after a crash).
fn add_events_ignoring_known<'a>(p: &mut Pipeline<'a>, rows: &'a [EventRow], source: &'a str) {
    add_events_sql(
        p,
        rows,
        source,
        concat!(insert_events!(), " ON CONFLICT (message_id) DO NOTHING"),
    )
}

fn add_events_sql<'a>(
    p: &mut Pipeline<'a>,
    rows: &'a [EventRow],
    source: &'a str,
    sql: &'static str,
) {
    if rows.is_empty() {
        return;
    }
    let m = || rows.iter().map(|e| &e.message);
    p.add(
        sql,
        vec![
            Box::new(m().map(|m| m.message_id.as_str()).collect::<Vec<_>>()),
            Box::new(rows.iter().map(|e| e.profile_id).collect::<Vec<_>>()),
            Box::new(m().map(|m| m.kind.as_str()).collect::<Vec<_>>()),
            Box::new(m().map(|m| m.name.as_deref()).collect::<Vec<_>>()),
            Box::new(m().map(|m| m.channel.as_str()).collect::<Vec<_>>()),
            Box::new(source),
            Box::new(m().map(|m| m.properties_json.as_str()).collect::<Vec<_>>()),
            Box::new(m().map(|m| m.context_json.as_str()).collect::<Vec<_>>()),
            Box::new(m().map(|m| m.text.as_deref()).collect::<Vec<_>>()),
            Box::new(m().map(|m| m.occurred_at).collect::<Vec<_>>()),
            Box::new(m().map(|m| m.received_at).collect::<Vec<_>>()),
        ],
    );
}

async fn insert_merge(tx: &Transaction<'_>, m: &resolve::Merge, by: &str) -> Result<i64> {
    let members = serde_json::to_string(&m.members).unwrap_or_default();
    let message_id = if m.message_id.is_empty() {
        None
    } else {
        Some(m.message_id.as_str())
    };
    let row = tx
        .query_one(
            "INSERT INTO merges (survivor_id, merged_id, member_ids, cause, message_id, by_whom, at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            &[&m.survivor, &m.merged, &members, &m.cause.to_string(), &message_id, &by, &m.at],
        )
        .await?;
    Ok(row.get(0))
}

async fn apply(tx: &Transaction<'_>, plan: Plan, source: &str) -> Result<IngestOutcome> {
    let now = rapport_domain::time::now_millis();
    let mut p = Pipeline::default();
    if !plan.new_profiles.is_empty() {
        p.add(
            "INSERT INTO profiles (id, canonical_id, created_at, updated_at)
             SELECT id, id, at, at FROM UNNEST($1::int8[], $2::int8[]) AS t(id, at)",
            vec![
                Box::new(plan.new_profiles.iter().map(|p| p.0).collect::<Vec<i64>>()),
                Box::new(plan.new_profiles.iter().map(|p| p.1).collect::<Vec<i64>>()),
            ],
        );
    }
    let ni = &plan.new_identities;
    if !ni.is_empty() {
        p.add(
            "INSERT INTO identities (kind, value, profile_id, source, first_seen, last_seen)
             SELECT kind, value, pid, $4, fs, fs FROM UNNEST($1::text[], $2::text[], $3::int8[], $5::int8[]) AS t(kind, value, pid, fs)",
            vec![
                Box::new(ni.iter().map(|i| i.key.kind.as_str()).collect::<Vec<_>>()),
                Box::new(ni.iter().map(|i| i.key.value.as_str()).collect::<Vec<_>>()),
                Box::new(ni.iter().map(|i| i.profile_id).collect::<Vec<i64>>()),
                Box::new(source),
                Box::new(ni.iter().map(|i| i.first_seen).collect::<Vec<i64>>()),
            ],
        );
    }
    let mut seen: Vec<_> = plan.seen.iter().collect();
    seen.sort(); // a stable row order avoids deadlocks between concurrent writers
    if !seen.is_empty() {
        p.add(
            "UPDATE identities i SET last_seen = GREATEST(i.last_seen, t.at)
             FROM UNNEST($1::text[], $2::text[], $3::int8[]) AS t(kind, value, at)
             WHERE i.kind = t.kind AND i.value = t.value",
            vec![
                Box::new(
                    seen.iter()
                        .map(|(k, _)| k.kind.as_str())
                        .collect::<Vec<_>>(),
                ),
                Box::new(
                    seen.iter()
                        .map(|(k, _)| k.value.as_str())
                        .collect::<Vec<_>>(),
                ),
                Box::new(seen.iter().map(|(_, at)| **at).collect::<Vec<i64>>()),
            ],
        );
    }
    let re = plan.reassignments();
    if !re.is_empty() {
        p.add(
            "UPDATE profiles p SET canonical_id = t.c, updated_at = $3
             FROM UNNEST($1::int8[], $2::int8[]) AS t(id, c) WHERE p.id = t.id",
            vec![
                Box::new(re.iter().map(|r| r.0).collect::<Vec<i64>>()),
                Box::new(re.iter().map(|r| r.1).collect::<Vec<i64>>()),
                Box::new(now),
            ],
        );
    }
    let ms = &plan.merges;
    if !ms.is_empty() {
        // All merges of the group (about one per 30 events in busy traffic) at once.
        p.add(
            "INSERT INTO merges (survivor_id, merged_id, member_ids, cause, message_id, by_whom, at)
             SELECT s, m, mem, c, mid, $6, at
             FROM UNNEST($1::int8[], $2::int8[], $3::text[], $4::text[], $5::text[], $7::int8[])
               WITH ORDINALITY AS t(s, m, mem, c, mid, at, n) ORDER BY n",
            vec![
                Box::new(ms.iter().map(|m| m.survivor).collect::<Vec<i64>>()),
                Box::new(ms.iter().map(|m| m.merged).collect::<Vec<i64>>()),
                Box::new(ms.iter().map(|m| serde_json::to_string(&m.members).unwrap_or_default()).collect::<Vec<String>>()),
                Box::new(ms.iter().map(|m| m.cause.to_string()).collect::<Vec<String>>()),
                Box::new(
                    ms.iter()
                        .map(|m| if m.message_id.is_empty() { None } else { Some(m.message_id.as_str()) })
                        .collect::<Vec<_>>(),
                ),
                Box::new(source),
                Box::new(ms.iter().map(|m| m.at).collect::<Vec<i64>>()),
            ],
        );
    }
    for c in &plan.conflicts {
        p.add(
            "INSERT INTO conflicts (profile_a, profile_b, identifier, reason, message_id, first_at, last_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6)
             ON CONFLICT (profile_a, profile_b, identifier) DO UPDATE SET count = conflicts.count + 1, last_at = excluded.last_at",
            vec![
                Box::new(c.profile_a),
                Box::new(c.profile_b),
                Box::new(c.key.to_string()),
                Box::new(c.reason.as_str()),
                Box::new(c.message_id.as_str()),
                Box::new(c.at),
            ],
        );
    }
    for patches in plan.trait_patch_rounds() {
        // A patch with no nulls and no nested objects is a plain jsonb concatenation;
        // only the others need the (slower) recursive merge-patch function.
        let flat: Vec<bool> = patches
            .iter()
            .map(|p| rapport_domain::traits::is_flat_patch(&p.1))
            .collect();
        p.add(
            "UPDATE profiles p SET traits = CASE WHEN t.flat THEN p.traits || t.patch::jsonb
                                               ELSE rapport_merge_patch(p.traits, t.patch::jsonb) END,
                    traits_updated_at = GREATEST(p.traits_updated_at, t.at), updated_at = $4
             FROM UNNEST($1::int8[], $2::text[], $3::int8[], $5::bool[]) AS t(id, patch, at, flat) WHERE p.id = t.id",
            vec![
                Box::new(patches.iter().map(|p| p.0).collect::<Vec<i64>>()),
                Box::new(patches.iter().map(|p| p.1.clone()).collect::<Vec<String>>()),
                Box::new(patches.iter().map(|p| p.2).collect::<Vec<i64>>()),
                Box::new(now),
                Box::new(flat),
            ],
        );
    }
    add_events(&mut p, &plan.events, source);
    p.run(tx).await?;
    Ok(IngestOutcome {
        accepted: plan.events.len(),
        duplicates: plan.duplicates,
        profiles_created: plan.new_profiles.len(),
        identities_created: plan.new_identities.len(),
        merges: plan.merges.len(),
        conflicts: plan.conflicts.len(),
    })
}

pub(crate) const EVENT_COLUMNS: &str = "id, message_id, profile_id, type, name, channel, source, properties, context, text, occurred_at, received_at";

fn event_view(r: &Row) -> EventView {
    EventView {
        id: r.get(0),
        message_id: r.get(1),
        profile_id: r.get(2),
        kind: r.get(3),
        name: r.get(4),
        channel: r.get(5),
        source: r.get(6),
        properties: r.get(7),
        context: r.get(8),
        text: r.get(9),
        occurred_at: to_datetime(r.get(10)),
        received_at: to_datetime(r.get(11)),
    }
}

fn merge_row(r: &Row) -> MergeRow {
    MergeRow {
        id: r.get(0),
        survivor_id: r.get(1),
        merged_id: r.get(2),
        member_ids: r.get(3),
        cause: r.get(4),
        message_id: r.get(5),
        by_whom: r.get(6),
        at: r.get(7),
        undone_at: r.get(8),
        undone_by: r.get(9),
    }
}

/// The statements reading whole persons (profiles, identities, consents, merges) for
/// `ids`, an SQL array of raw or canonical profile ids. Arrays from subqueries are
/// computed once and probe the indexes whatever the planner's statistics say.
pub(crate) fn person_sql(ids: &str) -> [String; 4] {
    let persons = format!("ARRAY(SELECT canonical_id FROM profiles WHERE id = ANY({ids}))");
    let members = format!("ARRAY(SELECT id FROM profiles WHERE canonical_id = ANY({persons}))");
    [
        format!(
            "SELECT id, created_at, updated_at, traits, traits_updated_at, canonical_id FROM profiles
             WHERE canonical_id = ANY({persons}) ORDER BY id"
        ),
        format!(
            "SELECT kind, value, profile_id, verified, source, first_seen, last_seen FROM identities
             WHERE profile_id = ANY({members}) ORDER BY kind, first_seen, id"
        ),
        format!(
            "SELECT channel, purpose, status, source, proof, at, profile_id FROM consents
             WHERE profile_id = ANY({members}) ORDER BY at DESC, id DESC"
        ),
        format!(
            "SELECT m.*, p.cid FROM (SELECT DISTINCT canonical_id AS cid FROM profiles WHERE id = ANY({ids})) p
             CROSS JOIN LATERAL (
                 SELECT {MERGE_COLUMNS} FROM merges
                 WHERE survivor_id = ANY(ARRAY(SELECT id FROM profiles WHERE canonical_id = p.cid))
                    OR merged_id = ANY(ARRAY(SELECT id FROM profiles WHERE canonical_id = p.cid))
                 ORDER BY id DESC LIMIT 100) m"
        ),
    ]
}

/// Persons by canonical id, from the rows of the [`person_sql`] statements.
#[derive(Default)]
pub(crate) struct PersonRows {
    parts: HashMap<ProfileId, PersonParts>,
}

#[derive(Default)]
struct PersonParts {
    members: Vec<MemberRow>,
    identities: Vec<IdentityRow>,
    consents: Vec<ConsentRow>,
    merges: Vec<MergeRow>,
}

impl PersonRows {
    pub(crate) fn new([members, identities, consents, merges]: [Vec<Row>; 4]) -> Self {
        let mut parts: HashMap<ProfileId, PersonParts> = HashMap::new();
        let mut member_of = HashMap::new();
        for r in &members {
            let cid: ProfileId = r.get(5);
            member_of.insert(r.get::<_, ProfileId>(0), cid);
            parts.entry(cid).or_default().members.push(MemberRow {
                id: r.get(0),
                created_at: r.get(1),
                updated_at: r.get(2),
                traits: r.get(3),
                traits_updated_at: r.get(4),
            });
        }
        for r in &identities {
            let row = IdentityRow {
                kind: r.get(0),
                value: r.get(1),
                profile_id: r.get(2),
                verified: r.get(3),
                source: r.get(4),
                first_seen: r.get(5),
                last_seen: r.get(6),
            };
            if let Some(part) = member_of
                .get(&row.profile_id)
                .and_then(|c| parts.get_mut(c))
            {
                part.identities.push(row);
            }
        }
        for r in &consents {
            if let Some(part) = member_of.get(&r.get(6)).and_then(|c| parts.get_mut(c)) {
                part.consents.push(ConsentRow {
                    channel: r.get(0),
                    purpose: r.get(1),
                    status: r.get(2),
                    source: r.get(3),
                    proof: r.get(4),
                    at: r.get(5),
                });
            }
        }
        for r in &merges {
            if let Some(part) = parts.get_mut(&r.get(r.len() - 1)) {
                part.merges.push(merge_row(r));
            }
        }
        Self { parts }
    }

    /// The person with canonical id `cid`, once (None if unknown or already taken).
    pub(crate) fn take(&mut self, cid: ProfileId) -> Result<Option<ProfileView>> {
        let Some(part) = self.parts.remove(&cid) else {
            return Ok(None);
        };
        Ok(Some(common::build_profile(
            cid,
            part.members,
            part.identities,
            part.consents,
            part.merges,
        )?))
    }
}

/// The profiles of the persons `ids` (raw or canonical) belong to, one per id in its
/// order (unknown ids left out). Five statements pipelined on one connection, so a
/// step's re-read of many persons costs one round trip, not five per person.
pub(crate) async fn profiles_of(
    c: &impl GenericClient,
    ids: &[ProfileId],
    with_merges: bool,
) -> Result<Vec<ProfileView>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let [a, b, d, e] = person_sql("$1");
    let (canon, members, identities, consents, merges) = tokio::try_join!(
        c.prepare_cached("SELECT id, canonical_id FROM profiles WHERE id = ANY($1)"),
        c.prepare_cached(&a),
        c.prepare_cached(&b),
        c.prepare_cached(&d),
        async {
            match with_merges {
                true => c.prepare_cached(&e).await.map(Some),
                false => Ok(None),
            }
        },
    )?;
    let p: [&(dyn ToSql + Sync); 1] = [&ids];
    let (canon, members, identities, consents, merges) = tokio::try_join!(
        c.query(&canon, &p),
        c.query(&members, &p),
        c.query(&identities, &p),
        c.query(&consents, &p),
        async {
            match &merges {
                Some(m) => c.query(m, &p).await,
                None => Ok(Vec::new()),
            }
        },
    )?;
    let person_of: HashMap<ProfileId, ProfileId> =
        canon.iter().map(|r| (r.get(0), r.get(1))).collect();
    let mut rows = PersonRows::new([members, identities, consents, merges]);
    let mut built: HashMap<ProfileId, ProfileView> = HashMap::new();
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let Some(&cid) = person_of.get(id) else {
            continue;
        };
        if let Some(v) = built.get(&cid) {
            out.push(v.clone());
        } else if let Some(v) = rows.take(cid)? {
            built.insert(cid, v.clone());
            out.push(v);
        }
    }
    Ok(out)
}

async fn merge_by_id(c: &impl GenericClient, id: i64) -> Result<MergeView> {
    let r = c
        .query_one(
            &format!("SELECT {MERGE_COLUMNS} FROM merges WHERE id = $1"),
            &[&id],
        )
        .await?;
    Ok(merge_row(&r).view())
}

async fn lookup_c(c: &impl GenericClient, key: &IdentityKey) -> Result<Option<ProfileId>> {
    Ok(c.query_opt(
        "SELECT p.canonical_id FROM identities i JOIN profiles p ON p.id = i.profile_id WHERE i.kind = $1 AND i.value = $2",
        &[&key.kind.as_str(), &key.value],
    )
    .await?
    .map(|r| r.get(0)))
}

fn api_key_row(r: &Row) -> ApiKeyRecord {
    let scope: String = r.get(2);
    ApiKeyRecord {
        id: r.get(0),
        prefix: r.get(1),
        scope: Scope::parse(&scope).unwrap_or(Scope::Write),
        label: r.get(3),
        created_at: r.get(4),
        revoked: r.get::<_, Option<i64>>(5).is_some(),
    }
}

#[async_trait]
impl Store for PgStore {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    async fn ingest(&self, groups: Vec<SourcedMessages>) -> Result<IngestOutcome> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        writer_lock(&tx).await?;
        let mut total = IngestOutcome::default();
        for g in groups {
            let snap = snapshot(&tx, &g.messages).await?;
            let bound = max_new_profiles(&g.messages, &snap.owners) as i64;
            let ids: Vec<i64> = if bound > 0 {
                tx.query(
                    "SELECT nextval('profiles_id_seq') FROM generate_series(1, $1::int8)",
                    &[&bound],
                )
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect()
            } else {
                Vec::new()
            };
            let mut ids = ids.into_iter();
            let plan = resolve::resolve_all(snap, &mut ids, g.messages);
            total.add(&apply(&tx, plan, &g.source).await?);
        }
        tx.commit().await?;
        Ok(total)
    }

    async fn insert_events_once(&self, rows: Vec<EventRow>, source: &str) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        writer_lock(&tx).await?;
        let mut p = Pipeline::default();
        add_events_ignoring_known(&mut p, &rows, source);
        p.run(&tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn insert_events_raw(&self, rows: Vec<EventRow>, source: &str) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // Event ids commit in order (see `writer_lock`).
        writer_lock(&tx).await?;
        let mut p = Pipeline::default();
        add_events(&mut p, &rows, source);
        p.run(&tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn profiles(&self, ids: Vec<ProfileId>) -> Result<Vec<ProfileView>> {
        let c = self.client().await?;
        profiles_of(&c, &ids, false).await
    }

    async fn profile(&self, id: ProfileId) -> Result<ProfileView> {
        let c = self.client().await?;
        profiles_of(&c, &[id], true)
            .await?
            .pop()
            .ok_or_else(|| StoreError::NotFound(format!("profile {id}")))
    }

    async fn lookup(&self, key: &IdentityKey) -> Result<Option<ProfileId>> {
        let c = self.client().await?;
        lookup_c(&c, key).await
    }

    async fn search(
        &self,
        q: Option<&str>,
        limit: usize,
        after: Option<ProfileId>,
    ) -> Result<Page<ProfileSummary>> {
        let mut c = self.client().await?;
        let after = after.unwrap_or(0);
        let fetch = (limit + 1) as i64;
        let mut ids: Vec<i64> = match q.map(str::trim).filter(|q| !q.is_empty()) {
            None => c
                .query("SELECT id FROM profiles WHERE id = canonical_id AND id > $1 ORDER BY id LIMIT $2", &[&after, &fetch])
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect(),
            Some(q) => match common::exact_identifier(q) {
                Some(key) => lookup_c(&c, &key).await?.filter(|id| *id > after).into_iter().collect(),
                None => {
                    let like = common::like_pattern(q);
                    // The trigram indexes (migration 12) find the matches; the planner
                    // prices a scan of every profile's traits as text too low (it does not
                    // count the conversion), and pushes the page cursor into that branch,
                    // so the matches are gathered first (MATERIALIZED) with scans off.
                    let tx = c.transaction().await?;
                    // A common term ("gmail") matches most people: the next profiles in id
                    // order hold a page of matches, found without gathering them all.
                    let first: Vec<i64> = tx
                        .query(
                            "SELECT n.id FROM (
                               SELECT id FROM profiles WHERE id = canonical_id AND id > $2 ORDER BY id LIMIT 2000
                             ) n
                             WHERE EXISTS (SELECT 1 FROM profiles m WHERE m.canonical_id = n.id AND m.traits::text ILIKE $1)
                                OR EXISTS (SELECT 1 FROM profiles m JOIN identities i ON i.profile_id = m.id
                                           WHERE m.canonical_id = n.id AND lower(i.value) LIKE lower($1))
                             ORDER BY n.id LIMIT $3",
                            &[&like, &after, &fetch],
                        )
                        .await?
                        .iter()
                        .map(|r| r.get(0))
                        .collect();
                    if first.len() as i64 == fetch {
                        tx.commit().await?;
                        first
                    } else {
                    tx.batch_execute("SET LOCAL enable_seqscan = off").await?;
                    let ids = tx
                        .query(
                            "WITH hits AS MATERIALIZED (
                               SELECT canonical_id FROM profiles WHERE traits::text ILIKE $1
                               UNION ALL
                               SELECT p.canonical_id FROM identities i JOIN profiles p ON p.id = i.profile_id WHERE lower(i.value) LIKE lower($1)
                             ) SELECT DISTINCT canonical_id FROM hits WHERE canonical_id > $2 ORDER BY canonical_id LIMIT $3",
                            &[&like, &after, &fetch],
                        )
                        .await?
                        .iter()
                        .map(|r| r.get(0))
                        .collect();
                    tx.commit().await?;
                    ids
                    }
                }
            },
        };
        let next_cursor = common::trim_page(&mut ids, limit, |id| id.to_string());
        let mut rows: std::collections::HashMap<i64, Vec<(Value, Millis, Millis)>> =
            Default::default();
        let mut emails: std::collections::HashMap<i64, String> = Default::default();
        if !ids.is_empty() {
            for r in c
                .query(
                    "SELECT canonical_id, traits, traits_updated_at, created_at FROM profiles WHERE canonical_id = ANY($1)",
                    &[&ids],
                )
                .await?
            {
                rows.entry(r.get(0)).or_default().push((r.get(1), r.get(2), r.get(3)));
            }
            for r in c
                .query(
                    "SELECT p.canonical_id, i.value FROM identities i JOIN profiles p ON p.id = i.profile_id
                     WHERE i.kind = 'email' AND p.canonical_id = ANY($1) ORDER BY i.first_seen DESC, i.id DESC",
                    &[&ids],
                )
                .await?
            {
                emails.insert(r.get(0), r.get(1));
            }
        }
        let items = ids
            .iter()
            .map(|id| common::summary(*id, rows.remove(id).unwrap_or_default(), emails.remove(id)))
            .collect();
        Ok(Page { items, next_cursor })
    }

    async fn timeline(&self, id: ProfileId, f: &TimelineFilter) -> Result<Page<EventView>> {
        let c = self.client().await?;
        let cid = canonical_of(&c, id).await?;
        let members: Vec<i64> = c
            .query("SELECT id FROM profiles WHERE canonical_id = $1", &[&cid])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE profile_id = ANY($1)");
        let mut args: Vec<Box<dyn ToSql + Sync + Send>> = vec![Box::new(members)];
        for (col, vals) in [
            ("type", &f.types),
            ("channel", &f.channels),
            ("name", &f.names),
        ] {
            if !vals.is_empty() {
                args.push(Box::new(vals.clone()));
                sql.push_str(&format!(" AND {col} = ANY(${})", args.len()));
            }
        }
        if let Some(s) = f.since {
            args.push(Box::new(s));
            sql.push_str(&format!(" AND occurred_at >= ${}", args.len()));
        }
        if let Some(u) = f.until {
            args.push(Box::new(u));
            sql.push_str(&format!(" AND occurred_at < ${}", args.len()));
        }
        if let Some((t, eid)) = f.before {
            args.push(Box::new(t));
            args.push(Box::new(eid));
            sql.push_str(&format!(
                " AND (occurred_at, id) < (${}, ${})",
                args.len() - 1,
                args.len()
            ));
        }
        args.push(Box::new((f.limit + 1) as i64));
        sql.push_str(&format!(
            " ORDER BY occurred_at DESC, id DESC LIMIT ${}",
            args.len()
        ));
        let params: Vec<Param<'_>> = args.iter().map(|a| a.as_ref() as Param<'_>).collect();
        let mut items: Vec<EventView> = c
            .query(&sql, &params)
            .await?
            .iter()
            .map(event_view)
            .collect();
        let next_cursor = common::trim_page(&mut items, f.limit, common::event_cursor);
        Ok(Page { items, next_cursor })
    }

    async fn patch_traits(&self, id: ProfileId, patch: &Value, at: Millis) -> Result<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        patch_traits(&tx, id, patch, at).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_consent(&self, id: ProfileId, ci: &ConsentInput) -> Result<()> {
        let c = self.client().await?;
        let cid = canonical_of(&c, id).await?;
        c.execute(
            "INSERT INTO consents (profile_id, channel, purpose, status, source, proof, at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[&cid, &ci.channel, &ci.purpose, &ci.status.as_str(), &ci.source, &ci.proof, &ci.at],
        )
        .await?;
        Ok(())
    }

    async fn merge(&self, a: ProfileId, b: ProfileId, by: &str, at: Millis) -> Result<MergeView> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        writer_lock(&tx).await?;
        let (ca, cb) = (canonical_of(&tx, a).await?, canonical_of(&tx, b).await?);
        if ca == cb {
            return Err(StoreError::Conflict(format!(
                "profiles {a} and {b} are already one profile ({ca})"
            )));
        }
        let (survivor, merged) = (ca.min(cb), ca.max(cb));
        let members: Vec<i64> = tx
            .query(
                "SELECT id FROM profiles WHERE canonical_id = $1 ORDER BY id",
                &[&merged],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        tx.execute(
            "UPDATE profiles SET canonical_id = $1, updated_at = $3 WHERE canonical_id = $2",
            &[&survivor, &merged, &at],
        )
        .await?;
        tx.execute(
            "DELETE FROM merge_blocks WHERE profile_a = $1 AND profile_b = $2",
            &[&survivor, &merged],
        )
        .await?;
        tx.execute(
            "UPDATE conflicts SET resolved_at = $3 WHERE resolved_at IS NULL AND profile_a = $1 AND profile_b = $2",
            &[&survivor, &merged, &at],
        )
        .await?;
        let id = insert_merge(
            &tx,
            &resolve::Merge {
                survivor,
                merged,
                members,
                cause: IdentityKey {
                    kind: rapport_domain::IdentityKind::External,
                    value: "manual".into(),
                },
                message_id: String::new(),
                at,
            },
            by,
        )
        .await?;
        let view = merge_by_id(&tx, id).await?;
        tx.commit().await?;
        Ok(view)
    }

    async fn unmerge(&self, target: UnmergeTarget, by: &str, at: Millis) -> Result<MergeView> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        writer_lock(&tx).await?;
        let row = match target {
            UnmergeTarget::Merge(id) => tx
                .query_opt(
                    &format!("SELECT {MERGE_COLUMNS} FROM merges WHERE id = $1"),
                    &[&id],
                )
                .await?
                .map(|r| merge_row(&r))
                .ok_or_else(|| StoreError::NotFound(format!("merge {id}")))?,
            UnmergeTarget::MergedProfile(p) => {
                canonical_of(&tx, p).await?;
                tx.query_opt(
                    &format!("SELECT {MERGE_COLUMNS} FROM merges WHERE merged_id = $1 AND undone_at IS NULL ORDER BY id DESC LIMIT 1"),
                    &[&p],
                )
                .await?
                .map(|r| merge_row(&r))
                .ok_or_else(|| common::not_merged(p))?
            }
        };
        if row.undone_at.is_some() {
            return Err(StoreError::Conflict(format!(
                "merge {} was already undone",
                row.id
            )));
        }
        let current = canonical_of(&tx, row.survivor_id).await?;
        let members: Vec<i64> = serde_json::from_str(&row.member_ids).unwrap_or_default();
        tx.execute(
            "UPDATE profiles SET canonical_id = $2, updated_at = $4 WHERE id = ANY($1) AND canonical_id = $3",
            &[&members, &row.merged_id, &current, &at],
        )
        .await?;
        tx.execute(
            "UPDATE merges SET undone_at = $2, undone_by = $3 WHERE id = $1",
            &[&row.id, &at, &by],
        )
        .await?;
        tx.execute(
            "INSERT INTO merge_blocks (profile_a, profile_b, at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            &[&current.min(row.merged_id), &current.max(row.merged_id), &at],
        )
        .await?;
        let view = merge_by_id(&tx, row.id).await?;
        tx.commit().await?;
        Ok(view)
    }

    async fn conflicts(&self, limit: usize) -> Result<Vec<ConflictView>> {
        let c = self.client().await?;
        Ok(c.query(
            "SELECT id, profile_a, profile_b, identifier, reason, message_id, count, first_at, last_at
             FROM conflicts WHERE resolved_at IS NULL ORDER BY last_at DESC, id DESC LIMIT $1",
            &[&(limit as i64)],
        )
        .await?
        .iter()
        .map(|r| ConflictView {
            id: r.get(0),
            profile_a: r.get(1),
            profile_b: r.get(2),
            identifier: r.get(3),
            reason: r.get(4),
            message_id: r.get(5),
            count: r.get(6),
            first_at: to_datetime(r.get(7)),
            last_at: to_datetime(r.get(8)),
        })
        .collect())
    }

    async fn merges(&self, limit: usize) -> Result<Vec<MergeView>> {
        let c = self.client().await?;
        Ok(c.query(
            &format!("SELECT {MERGE_COLUMNS} FROM merges ORDER BY id DESC LIMIT $1"),
            &[&(limit as i64)],
        )
        .await?
        .iter()
        .map(|r| merge_row(r).view())
        .collect())
    }

    async fn events_after(&self, after: i64, limit: usize) -> Result<Vec<EventView>> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE id > $1 ORDER BY id LIMIT $2"
            ))
            .await?;
        Ok(c.query(&stmt, &[&after, &(limit as i64)])
            .await?
            .iter()
            .map(event_view)
            .collect())
    }

    async fn stats(&self) -> Result<Stats> {
        let c = self.client().await?;
        let r = c
            .query_one(
                "SELECT (SELECT COUNT(*) FROM profiles WHERE id = canonical_id),
                        (SELECT COUNT(*) FROM profiles),
                        (SELECT COUNT(*) FROM identities),
                        (SELECT COUNT(*) FROM events),
                        (SELECT COUNT(*) FROM merges WHERE undone_at IS NULL),
                        (SELECT COUNT(*) FROM conflicts WHERE resolved_at IS NULL)",
                &[],
            )
            .await?;
        Ok(Stats {
            profiles: r.get(0),
            raw_profiles: r.get(1),
            identities: r.get(2),
            events: r.get(3),
            merges: r.get(4),
            open_conflicts: r.get(5),
        })
    }

    async fn upsert_relationships(
        &self,
        writes: Vec<RelationshipWrite>,
        cursor: Option<(String, i64)>,
    ) -> Result<()> {
        self.g_upsert(writes, cursor).await
    }
    async fn lookup_many(&self, keys: Vec<IdentityKey>) -> Result<Vec<Option<ProfileId>>> {
        self.g_lookup_many(keys).await
    }
    async fn graph_edges(&self) -> Result<Vec<(ProfileId, ProfileId, f64)>> {
        self.g_edges().await
    }
    async fn relationships(&self, scope: RelScope, limit: usize) -> Result<Vec<RelationshipView>> {
        self.g_relationships(scope, limit).await
    }
    async fn touches(&self, q: TouchQuery) -> Result<Vec<TouchView>> {
        self.g_touches(q).await
    }
    async fn counter(&self, name: &str) -> Result<i64> {
        self.g_counter(name).await
    }
    async fn save_graph_run(
        &self,
        started_at: Millis,
        finished_at: Millis,
        graph_version: i64,
        summary: Value,
        scores: Vec<GraphScores>,
    ) -> Result<i64> {
        self.g_save_run(started_at, finished_at, graph_version, summary, scores)
            .await
    }
    async fn latest_graph_run(&self) -> Result<Option<GraphRun>> {
        self.g_latest_run().await
    }
    async fn graph_scores(&self, ids: Vec<ProfileId>) -> Result<Vec<GraphScores>> {
        self.g_scores(ids).await
    }
    async fn top_graph_scores(
        &self,
        by: ScoreOrder,
        community: Option<i64>,
        limit: usize,
    ) -> Result<Vec<GraphScores>> {
        self.g_top(by, community, limit).await
    }
    async fn communities(&self, limit: usize) -> Result<Vec<(i64, i64)>> {
        self.g_communities(limit).await
    }
    async fn event(&self, id: i64) -> Result<EventView> {
        self.g_event(id).await
    }
    async fn named_events(
        &self,
        people: Vec<ProfileId>,
        names: Vec<String>,
        since: Millis,
        until: Millis,
        limit: usize,
    ) -> Result<Vec<EventView>> {
        self.g_named_events(people, names, since, until, limit)
            .await
    }
    async fn activity(&self, id: ProfileId, since: Millis) -> Result<Activity> {
        self.g_activity(id, since).await
    }
    async fn relationship_candidates(
        &self,
        after: i64,
        span: i64,
    ) -> Result<(Vec<EventView>, i64)> {
        self.g_candidates(after, span).await
    }
    async fn text_candidates(&self, after: i64, span: i64) -> Result<(Vec<crate::TextRow>, i64)> {
        self.t_candidates(after, span).await
    }
    async fn save_text_analyses(
        &self,
        rows: Vec<rapport_domain::model::TextAnalysisView>,
        cursor: (String, i64),
    ) -> Result<()> {
        self.t_save(rows, cursor).await
    }
    async fn text_analysis(
        &self,
        event_id: i64,
    ) -> Result<Option<rapport_domain::model::TextAnalysisView>> {
        self.t_get(event_id).await
    }
    async fn sentiment_series(
        &self,
        people: Option<Vec<ProfileId>>,
        since: Millis,
        until: Millis,
    ) -> Result<Vec<rapport_domain::model::SentimentDay>> {
        self.t_series(people, since, until).await
    }
    async fn text_stats(&self, id: ProfileId, since: Millis) -> Result<crate::TextStats> {
        self.t_stats(id, since).await
    }
    async fn set_catalogue(&self, names: Vec<String>, at: Millis) -> Result<()> {
        self.t_set_catalogue(names, at).await
    }
    async fn catalogue(&self) -> Result<Vec<String>> {
        self.t_catalogue().await
    }
    async fn tag_voice(
        &self,
        kind: &str,
        since: Millis,
        until: Millis,
    ) -> Result<Vec<(String, i64, f64)>> {
        self.t_tag_voice(kind.to_string(), since, until).await
    }
    async fn tag_series(
        &self,
        kind: &str,
        name: &str,
        since: Millis,
        until: Millis,
    ) -> Result<Vec<rapport_domain::model::SentimentDay>> {
        self.t_tag_series(kind.to_string(), name.to_string(), since, until)
            .await
    }
    fn dialect(&self) -> crate::Dialect {
        crate::Dialect::Postgres
    }
    async fn segment_matches(
        &self,
        c: crate::Compiled,
        sample: usize,
    ) -> Result<(i64, Vec<ProfileId>)> {
        self.s_matches(c, sample).await
    }
    async fn segment_all_matches(&self, c: crate::Compiled) -> Result<Vec<ProfileId>> {
        self.s_all_matches(c).await
    }
    async fn create_segment(
        &self,
        name: &str,
        definition: &str,
        description: &str,
        kind: &str,
        at: Millis,
    ) -> Result<crate::SegmentRow> {
        self.s_create(
            name.to_string(),
            definition.to_string(),
            description.to_string(),
            kind.to_string(),
            at,
        )
        .await
    }
    async fn update_segment(
        &self,
        id: i64,
        definition: &str,
        description: &str,
        at: Millis,
    ) -> Result<crate::SegmentRow> {
        self.s_update(id, definition.to_string(), description.to_string(), at)
            .await
    }
    async fn segments(&self) -> Result<Vec<crate::SegmentRow>> {
        self.s_list().await
    }
    async fn segment_definitions(&self) -> Result<Vec<crate::SegmentRow>> {
        self.s_definitions().await
    }
    async fn segment(&self, id: i64) -> Result<crate::SegmentRow> {
        self.s_get(id).await
    }
    async fn segment_by_name(&self, name: &str) -> Result<Option<crate::SegmentRow>> {
        self.s_by_name(name.to_string()).await
    }
    async fn delete_segment(&self, id: i64) -> Result<()> {
        self.s_delete(id).await
    }
    async fn set_segment_members(
        &self,
        id: i64,
        members: Vec<ProfileId>,
        at: Millis,
    ) -> Result<crate::MembershipChange> {
        self.s_set_members(id, members, at).await
    }
    async fn commit_step(&self, w: crate::StepWrites, at: Millis) -> Result<crate::StepDone> {
        self.s_commit_step(w, at).await
    }
    async fn segment_stamps(&self) -> Result<Vec<(i64, Millis)>> {
        self.s_segment_stamps().await
    }
    async fn step_inputs(&self, q: crate::StepQuery) -> Result<crate::StepInputs> {
        self.s_step_inputs(q).await
    }
    async fn counters(&self, names: Vec<String>) -> Result<Vec<i64>> {
        self.s_counters(names).await
    }
    async fn index_event_numbers(&self, _max_events: usize) -> Result<usize> {
        // Statement triggers with transition tables keep `event_numbers` at write time:
        // through HTTP they cost PostgreSQL ingestion nothing measurable (docs/segments.md).
        Ok(0)
    }
    async fn event_numbers_position(&self) -> Result<(i64, i64)> {
        Ok((0, 0))
    }
    async fn segment_member_ids(
        &self,
        id: i64,
        after: ProfileId,
        limit: usize,
    ) -> Result<Vec<ProfileId>> {
        self.s_member_ids(id, after, limit).await
    }
    async fn segment_sizes(&self, id: i64, since: Millis) -> Result<Vec<crate::SegmentSize>> {
        self.s_sizes(id, since).await
    }
    async fn person_activity(
        &self,
        id: ProfileId,
    ) -> Result<(Vec<EventView>, Vec<(Millis, f64, f64)>)> {
        self.s_person_activity(id).await
    }
    async fn person_loads(
        &self,
        ids: Vec<ProfileId>,
        reads: crate::PersonReads,
    ) -> Result<Vec<crate::PersonLoad>> {
        self.s_person_loads(ids, reads).await
    }
    async fn set_counters(&self, values: Vec<(String, i64)>) -> Result<()> {
        self.s_set_counters(values).await
    }
    async fn replace_scores(&self, names: Vec<String>, rows: Vec<crate::ScoreRow>) -> Result<()> {
        self.s_replace_scores(names, rows).await
    }
    async fn profile_scores(&self, id: ProfileId) -> Result<Vec<crate::ScoreRow>> {
        self.s_profile_scores(id).await
    }
    async fn scores_of(&self, ids: Vec<ProfileId>) -> Result<Vec<crate::ScoreRow>> {
        self.s_scores_of(ids).await
    }
    async fn recent_people(&self, before: i64, limit: usize) -> Result<crate::RecentPeople> {
        self.s_recent_people(before, limit).await
    }
    async fn purchase_stats(
        &self,
        event: &str,
        prop: &str,
        since: Millis,
        until: Millis,
    ) -> Result<Vec<crate::PurchaseStats>> {
        self.s_purchase_stats(event.to_string(), prop.to_string(), since, until)
            .await
    }
    async fn analyses_after(&self, after: i64, limit: usize) -> Result<Vec<(i64, ProfileId)>> {
        self.s_analyses_after(after, limit).await
    }
    async fn score_values(&self, name: &str) -> Result<Vec<(ProfileId, f64)>> {
        self.s_score_values(name.to_string()).await
    }
    async fn record_firing(&self, f: crate::Firing) -> Result<i64> {
        self.r_record(f).await
    }
    async fn firings(&self, rule: Option<String>, limit: usize) -> Result<Vec<crate::Firing>> {
        self.r_firings(rule, limit).await
    }
    async fn count_firings(&self, rule: &str, profile: ProfileId, since: Millis) -> Result<i64> {
        self.r_count(rule.to_string(), profile, since).await
    }
    async fn firing_times(
        &self,
        profile: ProfileId,
        since: Millis,
    ) -> Result<Vec<(String, Millis)>> {
        self.r_times(profile, since).await
    }
    async fn canonical_ids(&self, ids: Vec<ProfileId>) -> Result<Vec<(ProfileId, ProfileId)>> {
        self.r_canonical_ids(ids).await
    }
    async fn create_task(&self, t: crate::Task) -> Result<i64> {
        self.r_create_task(t).await
    }
    async fn tasks(&self, limit: usize) -> Result<Vec<crate::Task>> {
        self.r_tasks(limit).await
    }
    async fn chains(&self) -> Result<Vec<crate::ChainRow>> {
        self.c_chains().await
    }
    async fn upsert_chain(&self, c: crate::ChainRow) -> Result<()> {
        self.c_upsert_chain(c).await
    }
    async fn delete_chain(&self, id: &str) -> Result<()> {
        self.c_delete_chain(id.to_string()).await
    }
    async fn set_chain_status(
        &self,
        id: &str,
        head: Option<i64>,
        error: Option<String>,
        at: Millis,
    ) -> Result<()> {
        self.c_status(id.to_string(), head, error, at).await
    }
    async fn contracts(&self) -> Result<Vec<crate::ContractRow>> {
        self.c_contracts().await
    }
    async fn upsert_contract(&self, c: crate::ContractRow) -> Result<()> {
        self.c_upsert_contract(c).await
    }
    async fn chain_blocks(&self, chain: &str, limit: usize) -> Result<Vec<(i64, String)>> {
        self.c_blocks(chain.to_string(), limit).await
    }
    async fn holdings_get(
        &self,
        chain: &str,
        keys: Vec<(String, String)>,
    ) -> Result<Vec<crate::HoldingRow>> {
        self.c_holdings_get(chain.to_string(), keys).await
    }
    async fn apply_chain_batch(&self, b: crate::ChainBatch) -> Result<()> {
        self.c_apply(b).await
    }
    async fn chain_logs_after(&self, chain: &str, block: i64) -> Result<Vec<crate::LogRow>> {
        self.c_logs_after(chain.to_string(), block).await
    }
    async fn chain_logs_for(
        &self,
        chain: &str,
        keys: Vec<(String, String)>,
        block: i64,
    ) -> Result<Vec<crate::LogRow>> {
        self.c_logs_for(chain.to_string(), keys, block).await
    }
    async fn rollback_chain(&self, r: crate::ChainRollback) -> Result<()> {
        self.c_rollback(r).await
    }
    async fn wallet_holdings(&self, wallets: Vec<String>) -> Result<Vec<crate::HoldingRow>> {
        self.c_wallet_holdings(wallets).await
    }
    async fn holders(
        &self,
        chain: &str,
        contract: &str,
        limit: usize,
    ) -> Result<Vec<crate::HoldingRow>> {
        self.c_holders(chain.to_string(), contract.to_string(), limit)
            .await
    }
    async fn create_siwe_nonce(&self, nonce: &str, at: Millis, expires: Millis) -> Result<()> {
        self.c_nonce(nonce.to_string(), at, expires).await
    }
    async fn use_siwe_nonce(&self, nonce: &str, at: Millis) -> Result<bool> {
        self.c_use_nonce(nonce.to_string(), at).await
    }
    async fn verify_identity(&self, key: &IdentityKey, proof: String, at: Millis) -> Result<()> {
        self.c_verify_identity(key.clone(), proof, at).await
    }
    async fn create_reward(&self, r: crate::RewardRow) -> Result<(crate::RewardRow, bool)> {
        self.c_create_reward(r).await
    }
    async fn update_reward(&self, r: crate::RewardRow) -> Result<()> {
        self.c_update_reward(r).await
    }
    async fn rewards(&self, status: Option<String>, limit: usize) -> Result<Vec<crate::RewardRow>> {
        self.c_rewards(status, limit).await
    }
    async fn reward(&self, id: i64) -> Result<crate::RewardRow> {
        self.c_reward(id).await
    }
    async fn create_user(
        &self,
        email: &str,
        password_hash: &str,
        role: &str,
        at: Millis,
    ) -> Result<crate::UserRow> {
        self.u_create(
            email.to_string(),
            password_hash.to_string(),
            role.to_string(),
            at,
        )
        .await
    }
    async fn users(&self) -> Result<Vec<crate::UserRow>> {
        self.u_list().await
    }
    async fn user_by_email(&self, email: &str) -> Result<Option<crate::UserRow>> {
        self.u_by_email(email.to_string()).await
    }
    async fn delete_user(&self, id: i64) -> Result<()> {
        self.u_delete(id).await
    }
    async fn create_session(
        &self,
        token_hash: &str,
        user_id: i64,
        csrf: &str,
        at: Millis,
        expires: Millis,
    ) -> Result<()> {
        self.sess_create(
            token_hash.to_string(),
            user_id,
            csrf.to_string(),
            at,
            expires,
        )
        .await
    }
    async fn session(
        &self,
        token_hash: &str,
        now: Millis,
    ) -> Result<Option<(crate::UserRow, String)>> {
        self.sess_get(token_hash.to_string(), now).await
    }
    async fn delete_session(&self, token_hash: &str) -> Result<()> {
        self.sess_delete(token_hash.to_string()).await
    }
    async fn refresh_statistics(&self) -> Result<()> {
        let c = self.client().await?;
        // The tables bulk loads fill; `ANALYZE` alone would visit every schema.
        c.batch_execute(
            "ANALYZE profiles; ANALYZE identities; ANALYZE event_rows; ANALYZE segment_entered_events; ANALYZE segment_exited_events; ANALYZE consents;
             ANALYZE relationships; ANALYZE text_analyses",
        )
        .await?;
        Ok(())
    }
    async fn overview(&self, since: Millis, week_ago: Millis) -> Result<crate::Overview> {
        use crate::overview_sql as q;
        let c = self.client().await?;
        let mut o = crate::Overview::default();
        let rows = c
            .query(&q::events(since), &[])
            .await?
            .iter()
            .map(|r| {
                (
                    r.get::<_, i64>(0),
                    r.get::<_, String>(1),
                    r.get::<_, i64>(2),
                )
            })
            .collect();
        q::fold(rows, &mut o);
        let r = c.query_one(q::PEOPLE, &[]).await?;
        o.identified = r.get(1);
        (o.web2_only, o.web3_only, o.both) = (r.get(2), r.get(3), r.get(4));
        o.people = c.query_one(q::ALL_PEOPLE, &[]).await?.get(0);
        o.new_this_week = c.query_one(&q::new_people(week_ago), &[]).await?.get(0);
        Ok(o)
    }
    async fn enqueue(&self, o: crate::Outbound) -> Result<i64> {
        self.o_enqueue(o).await
    }
    async fn due_outbound(&self, now: Millis, limit: usize) -> Result<Vec<crate::Outbound>> {
        self.o_due(now, limit).await
    }
    async fn update_outbound(&self, o: crate::Outbound) -> Result<()> {
        self.o_update(o).await
    }
    async fn outbound(&self, status: Option<String>, limit: usize) -> Result<Vec<crate::Outbound>> {
        self.o_list(status, limit).await
    }
    async fn profile_segments(&self, id: ProfileId) -> Result<Vec<String>> {
        self.s_profile_segments(id).await
    }
    async fn setting(&self, key: &str) -> Result<Option<serde_json::Value>> {
        self.t_setting(key.to_string()).await
    }
    async fn set_setting(&self, key: &str, value: serde_json::Value, at: Millis) -> Result<()> {
        self.t_set_setting(key.to_string(), value, at).await
    }
    async fn texts_between(
        &self,
        since: Millis,
        until: Millis,
        limit: usize,
    ) -> Result<Vec<(i64, Millis, String)>> {
        self.t_between(since, until, limit).await
    }
    async fn last_intent_at(&self, id: ProfileId, intent: &str) -> Result<Option<Millis>> {
        self.t_last_intent(id, intent).await
    }
    async fn active_days_all(&self, since: Millis) -> Result<Vec<(ProfileId, i64)>> {
        self.g_active_days_all(since).await
    }
    async fn all_identifiers(&self) -> Result<Vec<(ProfileId, IdentityKey)>> {
        self.g_all_identifiers().await
    }

    async fn create_api_key(
        &self,
        prefix: &str,
        hash: &str,
        scope: Scope,
        label: &str,
        at: Millis,
    ) -> Result<ApiKeyRecord> {
        let c = self.client().await?;
        let r = c
            .query_one(
                "INSERT INTO api_keys (prefix, hash, scope, label, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
                &[&prefix, &hash, &scope.as_str(), &label, &at],
            )
            .await?;
        Ok(ApiKeyRecord {
            id: r.get(0),
            prefix: prefix.into(),
            scope,
            label: label.into(),
            created_at: at,
            revoked: false,
        })
    }

    async fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKeyRecord>> {
        let c = self.client().await?;
        Ok(c.query_opt(
            "SELECT id, prefix, scope, label, created_at, revoked_at FROM api_keys WHERE hash = $1",
            &[&hash],
        )
        .await?
        .map(|r| api_key_row(&r)))
    }

    async fn api_keys(&self) -> Result<Vec<ApiKeyRecord>> {
        let c = self.client().await?;
        Ok(c.query(
            "SELECT id, prefix, scope, label, created_at, revoked_at FROM api_keys ORDER BY id",
            &[],
        )
        .await?
        .iter()
        .map(api_key_row)
        .collect())
    }

    async fn revoke_api_key(&self, id: i64, at: Millis) -> Result<()> {
        let c = self.client().await?;
        let n = c
            .execute(
                "UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                &[&id, &at],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("active API key {id}")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{PgStore, PipelinedTx};
    use deadpool_postgres::GenericClient;

    async fn count(store: &PgStore) -> i64 {
        let c = store.client().await.expect("client");
        c.query_one("SELECT COUNT(*) FROM pipelined_probe", &[])
            .await
            .expect("count")
            .get(0)
    }

    /// Runs `sql` on a pooled connection (outside any transaction of the test's own).
    async fn exec(store: &PgStore, sql: &str) -> std::result::Result<(), tokio_postgres::Error> {
        store
            .client()
            .await
            .expect("client")
            .batch_execute(sql)
            .await
    }

    /// The pipelined `BEGIN` really comes first: a failing statement takes the rows
    /// before it with it, a dropped transaction commits nothing, and the pool's
    /// connections stay usable (never left inside a transaction).
    #[tokio::test]
    async fn pipelined_transactions_are_all_or_nothing() {
        let Ok(url) = std::env::var("RAPPORT_TEST_DATABASE_URL") else {
            return;
        };
        let schema = format!("t_pipelined_{}", std::process::id());
        let store = PgStore::connect_schema(&url, Some(&schema))
            .await
            .expect("connect");
        exec(&store, "CREATE TABLE pipelined_probe (n INT)")
            .await
            .expect("table");
        let insert = "INSERT INTO pipelined_probe VALUES (1)";

        let tx = PipelinedTx::new(store.client().await.expect("client"));
        let c = tx.client().expect("open");
        let r = tokio::try_join!(
            tx.begin("BEGIN"),
            async { Ok(c.execute(insert, &[]).await?) },
            async { Ok(c.execute("SELECT 1 / 0", &[]).await?) },
        );
        assert!(tx.finish(r).await.is_err());
        assert_eq!(count(&store).await, 0, "rolled back with the failure");

        let tx = PipelinedTx::new(store.client().await.expect("client"));
        let c = tx.client().expect("open");
        let r = tokio::try_join!(tx.begin("BEGIN"), async {
            Ok(c.execute(insert, &[]).await?)
        });
        drop(r);
        drop(tx);
        assert_eq!(count(&store).await, 0, "dropped before its commit");

        for _ in 0..20 {
            let tx = PipelinedTx::new(store.client().await.expect("client"));
            let c = tx.client().expect("open");
            let r = tokio::try_join!(tx.begin("BEGIN"), async {
                Ok(c.execute(insert, &[]).await?)
            });
            tx.finish(r).await.expect("commit");
        }
        assert_eq!(count(&store).await, 20, "each committed on its own");

        // Reads with their COMMIT pipelined: a failing read is reported, and every
        // connection goes back to the pool outside any transaction (a statement run
        // inside a leftover one would fail after the failed read).
        for fail in [true, false, true, false] {
            let tx = PipelinedTx::new(store.client().await.expect("client"));
            let c = tx.client().expect("open");
            let stmt = c
                .prepare_cached("SELECT count(*) FROM pipelined_probe")
                .await
                .expect("prepare");
            let reads = async {
                tokio::try_join!(
                    tx.begin("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"),
                    async { Ok(c.query_one(&stmt, &[]).await?.get::<_, i64>(0)) },
                    async {
                        if fail {
                            c.execute("SELECT 1 / 0", &[]).await?;
                        }
                        Ok(())
                    },
                )
            };
            let r = tx.read_and_commit(reads).await;
            assert_eq!(r.is_err(), fail, "{r:?}");
            if let Ok(((), n, ())) = r {
                assert_eq!(n, 20);
            }
        }
        for _ in 0..4 {
            exec(
                &store,
                "BEGIN; INSERT INTO pipelined_probe VALUES (2); COMMIT",
            )
            .await
            .expect("no transaction left open");
        }
        assert_eq!(count(&store).await, 24);
        let _ = PgStore::drop_schema(&url, &schema).await;
    }
}
