//! PostgreSQL side of segments (see the SQLite twin for the shape).

use super::PgStore;
use crate::sqlite::segments::{bucket, membership_view};
use crate::{
    sql, Compiled, MembershipChange, Result, SegmentRow, SegmentSize, SegmentStore, StepDone,
    StoreError,
};
use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Transaction};
use rapport_domain::resolve::ProfileId;
use rapport_domain::time::Millis;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use tokio_postgres::types::ToSql;

const SEGMENT_COLS: &str = sql::segments::SEGMENT_COLUMNS;

fn row(r: &tokio_postgres::Row) -> SegmentRow {
    SegmentRow {
        id: r.get(0),
        name: r.get(1),
        definition: r.get(2),
        description: r.get(3),
        kind: r.get(4),
        created_at: r.get(5),
        updated_at: r.get(6),
        refreshed_at: r.get(7),
        size: r.get(8),
    }
}

/// Every parameter goes as text; the compiled SQL casts it.
fn texts(c: &Compiled) -> Vec<String> {
    c.params.iter().map(|p| p.as_text()).collect()
}

fn refs(v: &[String]) -> Vec<&(dyn ToSql + Sync)> {
    v.iter().map(|s| s as &(dyn ToSql + Sync)).collect()
}

/// Applies entries and exits of several segments (only the real ones) and records them:
/// the segments locked in id order (concurrent writers cannot deadlock, and each reads
/// the size the previous one left), then one statement that adds and removes the member
/// rows and, for the rows it really changed, writes the timeline events (narrow rows, one
/// table per name) and size points. The member rows make a retried step a no-op.
/// A segment deleted meanwhile is skipped. Both statements go pipelined with the step's
/// other writes: no round trip waits on a read.
pub(super) async fn change_members(
    tx: &impl GenericClient,
    changes: Vec<(i64, MembershipChange)>,
    at: Millis,
) -> Result<StepDone> {
    if changes.is_empty() {
        return Ok(StepDone::default());
    }
    // Each (segment, person, direction) once; the statement applies at most one
    // direction per pair (entering who is in, or leaving who is out, is nothing).
    let mut asked: BTreeSet<(i64, ProfileId, bool)> = BTreeSet::new();
    for (id, c) in &changes {
        asked.extend(c.entered.iter().map(|p| (*id, *p, true)));
        asked.extend(c.exited.iter().map(|p| (*id, *p, false)));
    }
    let ids: Vec<i64> = changes
        .iter()
        .map(|c| c.0)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let n = asked.len();
    let (mut seg, mut who, mut inside) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for (id, p, entered) in asked {
        seg.push(id);
        who.push(p);
        inside.push(entered);
    }
    let (lock, apply) = tokio::try_join!(
        tx.prepare_cached("SELECT id FROM segments WHERE id = ANY($1) ORDER BY id FOR UPDATE"),
        // The timeline events go to `segment_entered_events` and `segment_exited_events`
        // (migration 17), shown by the view
        // `events` as full events.
        tx.prepare_cached(
            "WITH asked AS (
                 SELECT t.*, s.name FROM UNNEST($1::bigint[], $2::bigint[], $3::bool[]) AS t(s, p, entered)
                 JOIN segments s ON s.id = t.s),
             ins AS (
                 INSERT INTO segment_members (segment_id, profile_id, since)
                 SELECT s, p, $4 FROM asked WHERE entered
                 ON CONFLICT DO NOTHING RETURNING segment_id, profile_id),
             del AS (
                 DELETE FROM segment_members m USING asked a
                 WHERE NOT a.entered AND m.segment_id = a.s AND m.profile_id = a.p
                 RETURNING m.segment_id, m.profile_id),
             changed AS (
                 SELECT a.* FROM asked a JOIN ins ON ins.segment_id = a.s AND ins.profile_id = a.p WHERE a.entered
                 UNION ALL
                 SELECT a.* FROM asked a JOIN del ON del.segment_id = a.s AND del.profile_id = a.p WHERE NOT a.entered),
             entries AS (
                 INSERT INTO segment_entered_events (profile_id, segment_id, segment, at)
                 SELECT p, s, name, $4 FROM changed WHERE entered
                 RETURNING id, segment_id, profile_id, true AS entered),
             exits AS (
                 INSERT INTO segment_exited_events (profile_id, segment_id, segment, at)
                 SELECT p, s, name, $4 FROM changed WHERE NOT entered
                 RETURNING id, segment_id, profile_id, false AS entered),
             timeline AS (SELECT * FROM entries UNION ALL SELECT * FROM exits),
             counts AS (
                 SELECT s, COUNT(*) FILTER (WHERE entered) AS n_in, COUNT(*) FILTER (WHERE NOT entered) AS n_out
                 FROM changed GROUP BY s),
             sizes AS (
                 -- The statement's snapshot is before its own changes: the last size (or a
                 -- count where there is none yet) plus what it changed.
                 INSERT INTO segment_sizes (segment_id, at, size, entered, exited)
                 SELECT s, $5, COALESCE(
                     (SELECT size FROM segment_sizes WHERE segment_id = c.s ORDER BY at DESC LIMIT 1),
                     (SELECT COUNT(*) FROM segment_members WHERE segment_id = c.s)) + n_in - n_out, n_in, n_out
                 FROM counts c
                 ON CONFLICT (segment_id, at) DO UPDATE SET size = excluded.size,
                     entered = segment_sizes.entered + excluded.entered, exited = segment_sizes.exited + excluded.exited)
             SELECT c.s, c.p, c.entered, t.id, c.name,
                    -- The statement's snapshot, taken under the writer lock.
                    (SELECT COALESCE(MAX(id), 0) FROM events) FROM changed c
             JOIN timeline t ON t.segment_id = c.s AND t.profile_id = c.p AND t.entered = c.entered
             ORDER BY c.s, c.entered DESC, c.p"
        ),
    )?;
    let by_id: [&(dyn ToSql + Sync); 1] = [&ids];
    let bucket = bucket(at);
    let params: [&(dyn ToSql + Sync); 5] = [&seg, &who, &inside, &at, &bucket];
    // Locks in the order every writer takes them: segment rows, then the writer lock
    // (ingestion's), taken before the timeline events get their ids, so event ids are
    // committed in order and a follower of the log never passes one still in flight.
    let (_, (), rows) = tokio::try_join!(
        async { Ok(tx.query(&lock, &by_id).await?) },
        super::writer_lock(tx),
        async { Ok(tx.query(&apply, &params).await?) },
    )?;
    let mut out: BTreeMap<i64, MembershipChange> = BTreeMap::new();
    let mut events = Vec::new();
    let mut before = 0;
    for r in &rows {
        before = r.get(5);
        let (segment, person, entered) = (r.get(0), r.get(1), r.get::<_, bool>(2));
        let c = out.entry(segment).or_default();
        if entered {
            c.entered.push(person);
        } else {
            c.exited.push(person);
        }
        let name: &str = r.get(4);
        events.push(membership_view(
            r.get(3),
            segment,
            name,
            person,
            entered,
            at,
        ));
    }
    events.sort_by_key(|e| e.id);
    Ok(StepDone {
        memberships: out.into_iter().collect(),
        events,
        before,
    })
}

/// Counter values in the order of `names` (0 when unset), from (name, value) rows.
pub(super) fn in_order(names: &[String], rows: &[tokio_postgres::Row]) -> Vec<i64> {
    let found: HashMap<String, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    names
        .iter()
        .map(|n| found.get(n).copied().unwrap_or(0))
        .collect()
}

/// Locks the segment's row (changes to one segment's members are serialised, so each
/// reads the size the previous one left), or says it is gone.
async fn lock_segment(tx: &Transaction<'_>, id: i64) -> Result<()> {
    tx.query_opt("SELECT id FROM segments WHERE id = $1 FOR UPDATE", &[&id])
        .await?
        .map(|_| ())
        .ok_or_else(|| StoreError::NotFound(format!("segment {id}")))
}

impl PgStore {
    /// Runs a query over the people a compiled condition selects (`{cond}` in `sql`),
    /// with room for the set conditions' hashed subqueries.
    pub(super) async fn over_matches(
        &self,
        c: &Compiled,
        sql: &str,
    ) -> Result<Vec<tokio_postgres::Row>> {
        // At most two at once, so the pool keeps connections for everything else.
        let _turn = self
            .analysts
            .acquire()
            .await
            .map_err(|_| StoreError::Backend("analysts closed".into()))?;
        // If the caller goes away (a client disconnected), the server stops the query.
        let mut guard = CancelQuery {
            client: Some(self.client().await?),
            running: true,
        };
        let v = texts(c);
        let Some(client) = guard.client.as_mut() else {
            return Err(StoreError::Backend("no connection".into()));
        };
        let tx = client.transaction().await?;
        // JIT compiling a segment query took ~170 ms of a 2 s run and won nothing back.
        tx.batch_execute(&format!(
            "SET LOCAL work_mem = '256MB'; SET LOCAL jit = off; SET LOCAL statement_timeout = {}",
            crate::heavy_read_timeout().as_millis()
        ))
        .await?;
        // The planner cannot estimate JSON and aggregate conditions: with several event
        // sets it multiplies small guesses into "one row" and loops over a set per
        // candidate (the two-aggregate example never finished at 1M people, nor
        // did the same query written by hand). Nested loops off, each set is computed
        // once and hashed. With one set, its guess is usually right and probing people
        // by index from it is faster (1.7 s against 2.8 s for the five-condition bench).
        if c.event_sets >= 2 {
            tx.batch_execute("SET LOCAL enable_nestloop = off").await?;
        }
        let rows = tx
            .query(&sql.replace("{cond}", &c.condition), &refs(&v))
            .await;
        // Ended, well or not (a timeout too): a later cancel would hit the connection's
        // next user.
        guard.running = false;
        let rows = rows.map_err(|e| match e.code() {
            Some(&tokio_postgres::error::SqlState::QUERY_CANCELED) => StoreError::TimedOut,
            _ => e.into(),
        })?;
        tx.commit().await?;
        Ok(rows)
    }
}

/// Holds a heavy read's connection. Dropped before the query finished (the caller went
/// away), it cancels the query and closes the connection instead of returning it to the
/// pool: the cancel arrives later, and on a recycled connection it would stop its next
/// user's query.
struct CancelQuery {
    client: Option<deadpool_postgres::Object>,
    running: bool,
}

impl Drop for CancelQuery {
    fn drop(&mut self) {
        if !self.running {
            return;
        }
        if let Some(client) = self.client.take() {
            let token = client.cancel_token();
            let detached = deadpool_postgres::Object::take(client);
            tokio::spawn(async move {
                let _ = token.cancel_query(tokio_postgres::NoTls).await;
                drop(detached);
            });
        }
    }
}

#[async_trait]
impl SegmentStore for PgStore {
    fn dialect(&self) -> crate::Dialect {
        crate::Dialect::Postgres
    }

    // Count and sample in one pass (a window count), so the conditions run once.
    async fn segment_matches(
        &self,
        c: crate::Compiled,
        sample: usize,
    ) -> Result<(i64, Vec<ProfileId>)> {
        let sql = format!(
            "SELECT p.id, COUNT(*) OVER () FROM profiles p WHERE p.id = p.canonical_id AND {{cond}} ORDER BY p.id LIMIT {}",
            sample.max(1)
        );
        let rows = self.over_matches(&c, &sql).await?;
        let count: i64 = rows.first().map(|r| r.get(1)).unwrap_or(0);
        Ok((count, rows.iter().take(sample).map(|r| r.get(0)).collect()))
    }

    async fn segment_all_matches(&self, c: crate::Compiled) -> Result<Vec<ProfileId>> {
        let sql =
            "SELECT p.id FROM profiles p WHERE p.id = p.canonical_id AND {cond} ORDER BY p.id";
        Ok(self
            .over_matches(&c, sql)
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    async fn create_segment(
        &self,
        name: &str,
        definition: &str,
        description: &str,
        kind: &str,
        at: Millis,
    ) -> Result<crate::SegmentRow> {
        let client = self.client().await?;
        let r = client
            .query_opt(
                "INSERT INTO segments (name, definition, description, kind, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)
                 ON CONFLICT (name) DO NOTHING RETURNING id",
                &[&name, &definition, &description, &kind, &at],
            )
            .await?;
        let Some(r) = r else {
            return Err(StoreError::Conflict(format!(
                "a segment named '{name}' exists"
            )));
        };
        self.segment(r.get(0)).await
    }

    async fn update_segment(
        &self,
        id: i64,
        definition: &str,
        description: &str,
        at: Millis,
    ) -> Result<crate::SegmentRow> {
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE segments SET definition = $2, description = $3, updated_at = $4 WHERE id = $1",
                &[&id, &definition, &description, &at],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("segment {id}")));
        }
        self.segment(id).await
    }

    async fn segments(&self) -> Result<Vec<crate::SegmentRow>> {
        let client = self.client().await?;
        Ok(client
            .query(
                &format!("SELECT {SEGMENT_COLS} FROM segments s ORDER BY s.name"),
                &[],
            )
            .await?
            .iter()
            .map(row)
            .collect())
    }

    async fn segment_definitions(&self) -> Result<Vec<crate::SegmentRow>> {
        let client = self.client().await?;
        Ok(client
            .query(
                "SELECT s.id, s.name, s.definition, s.description, s.kind, s.created_at, s.updated_at, s.refreshed_at, -1::bigint FROM segments s ORDER BY s.name",
                &[],
            )
            .await?
            .iter()
            .map(row)
            .collect())
    }

    async fn segment(&self, id: i64) -> Result<crate::SegmentRow> {
        let client = self.client().await?;
        client
            .query_opt(
                &format!("SELECT {SEGMENT_COLS} FROM segments s WHERE s.id = $1"),
                &[&id],
            )
            .await?
            .map(|r| row(&r))
            .ok_or_else(|| StoreError::NotFound(format!("segment {id}")))
    }

    async fn segment_by_name(&self, name: &str) -> Result<Option<crate::SegmentRow>> {
        let client = self.client().await?;
        Ok(client
            .query_opt(
                &format!("SELECT {SEGMENT_COLS} FROM segments s WHERE s.name = $1"),
                &[&name],
            )
            .await?
            .map(|r| row(&r)))
    }

    async fn delete_segment(&self, id: i64) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let n = tx.execute(sql::segments::DELETE_SEGMENT, &[&id]).await?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("segment {id}")));
        }
        tx.execute(sql::segments::DELETE_SEGMENT_MEMBERS, &[&id])
            .await?;
        tx.execute(sql::segments::DELETE_SEGMENT_SIZES, &[&id])
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_segment_members(
        &self,
        id: i64,
        members: Vec<ProfileId>,
        at: Millis,
    ) -> Result<crate::MembershipChange> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // One refresh of a segment at a time.
        lock_segment(&tx, id).await?;
        let current: HashSet<ProfileId> = tx
            .query(sql::segments::SEGMENT_MEMBERS, &[&id])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let next: HashSet<ProfileId> = members.into_iter().collect();
        let entered: Vec<ProfileId> = next.difference(&current).copied().collect();
        let exited: Vec<ProfileId> = current.difference(&next).copied().collect();
        // The real-time step's writer (in person order): the diff is real under the
        // lock, so it comes back whole.
        let done = change_members(&tx, vec![(id, MembershipChange { entered, exited })], at)
            .await?
            .memberships
            .pop()
            .map(|(_, c)| c)
            .unwrap_or_default();
        tx.execute(
            "UPDATE segments SET refreshed_at = $2 WHERE id = $1",
            &[&id, &at],
        )
        .await?;
        tx.commit().await?;
        Ok(done)
    }

    async fn segment_stamps(&self) -> Result<Vec<(i64, Millis)>> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(sql::segments::SEGMENT_STAMPS).await?;
        Ok(client
            .query(&stmt, &[])
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
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
        let client = self.client().await?;
        Ok(client
            .query(
                sql::segments::SEGMENT_MEMBER_IDS,
                &[&id, &after, &(limit as i64)],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    async fn segment_sizes(&self, id: i64, since: Millis) -> Result<Vec<crate::SegmentSize>> {
        let client = self.client().await?;
        Ok(client
            .query(sql::segments::SEGMENT_SIZES, &[&id, &since])
            .await?
            .iter()
            .map(|r| SegmentSize {
                at: r.get(0),
                size: r.get(1),
                entered: r.get(2),
                exited: r.get(3),
            })
            .collect())
    }

    async fn profile_segments(&self, id: ProfileId) -> Result<Vec<String>> {
        let client = self.client().await?;
        // Prepared once per connection: the real-time engine reads it with every load.
        let stmt = client
            .prepare_cached(sql::segments::PROFILE_SEGMENTS)
            .await?;
        Ok(client
            .query(&stmt, &[&id])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }
}
