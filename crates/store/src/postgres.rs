//! PostgreSQL: the production store. Writes of one group go in a few set-based
//! statements (`UNNEST` arrays), so a group of thousands of events costs a handful of
//! round trips. Writers serialise on a transaction-scoped advisory lock, so several
//! Rapport processes can share one database safely.

use crate::common::{self, ConsentRow, IdentityRow, MemberRow, MergeRow, MERGE_COLUMNS};
use crate::sql;
use crate::{Result, Store, StoreError};
use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod};
use ingest::{add_events_ignoring_known, insert_merge, Pipeline};
use profiles::{canonical_of, patch_traits};
use rapport_domain::model::{EventView, ProfileView};
use rapport_domain::resolve::ProfileId;
use rapport_domain::time::to_datetime;
use std::collections::HashMap;
use std::str::FromStr;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

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
mod segments;
mod settings;
mod staff;
mod text;
mod tickets;

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
    (
        18,
        include_str!("../migrations/postgres/0018_browser_keys.sql"),
    ),
    (
        19,
        include_str!("../migrations/postgres/0019_trait_times.sql"),
    ),
    (20, include_str!("../migrations/postgres/0020_email.sql")),
    (21, include_str!("../migrations/postgres/0021_email_ab.sql")),
    (22, include_str!("../migrations/postgres/0022_privacy.sql")),
    (
        23,
        include_str!("../migrations/postgres/0023_consent_frequency.sql"),
    ),
    (24, include_str!("../migrations/postgres/0024_tickets.sql")),
    (
        25,
        include_str!("../migrations/postgres/0025_community.sql"),
    ),
    (
        26,
        include_str!("../migrations/postgres/0026_ticket_teams.sql"),
    ),
    (27, include_str!("../migrations/postgres/0027_kb_rank.sql")),
    (
        28,
        include_str!("../migrations/postgres/0028_posts_by_topic.sql"),
    ),
    (29, include_str!("../migrations/postgres/0029_loyalty.sql")),
    (
        30,
        include_str!("../migrations/postgres/0030_referrals.sql"),
    ),
];

pub struct PgStore {
    pool: Pool,
    /// Turns for analytical reads (two at once), so they never take the whole pool.
    analysts: tokio::sync::Semaphore,
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
            // While the server is down a request fails within seconds (503, retry)
            // instead of waiting for a connection that is not coming.
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .create_timeout(Some(std::time::Duration::from_secs(5)))
            .wait_timeout(Some(std::time::Duration::from_secs(10)))
            .build()
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        let store = PgStore {
            pool,
            analysts: tokio::sync::Semaphore::new(2),
        };
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
                .query_opt(sql::schema::MIGRATION_APPLIED, &[version])
                .await?;
            if done.is_none() {
                tx.batch_execute(sql).await?;
                tx.execute(
                    sql::schema::RECORD_MIGRATION,
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
pub(crate) async fn writer_lock(c: &impl GenericClient) -> Result<()> {
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

/// Owned-by-reference parameters of one pipelined statement.
type Params<'a> = Vec<Box<dyn ToSql + Sync + Send + 'a>>;

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
            "SELECT id, created_at, updated_at, traits, traits_updated_at, canonical_id, trait_times FROM profiles
             WHERE canonical_id = ANY({persons}) ORDER BY id"
        ),
        format!(
            "SELECT kind, value, profile_id, verified, source, first_seen, last_seen FROM identities
             WHERE profile_id = ANY({members}) ORDER BY kind, first_seen, id"
        ),
        format!(
            "SELECT channel, purpose, status, source, proof, at, profile_id, frequency FROM consents
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
                trait_times: r.get(6),
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
                    frequency: r.get(7),
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

#[async_trait]
impl Store for PgStore {
    fn kind(&self) -> &'static str {
        "postgres"
    }
    async fn refresh_statistics(&self) -> Result<()> {
        let c = self.client().await?;
        // The tables bulk loads fill; `ANALYZE` alone would visit every schema.
        c.batch_execute(
            "ANALYZE profiles; ANALYZE identities; ANALYZE event_rows; ANALYZE segment_entered_events; ANALYZE segment_exited_events; ANALYZE consents;
             ANALYZE relationships; ANALYZE text_analyses; ANALYZE tickets; ANALYZE ticket_tags",
        )
        .await?;
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
