//! PostgreSQL side of segments (see the SQLite twin for the shape).

use super::{event_view, PgStore};
use crate::sqlite::segments::{bucket, membership_view};
use crate::{
    reread_persons, Compiled, MembershipChange, PersonLoad, PersonReads, PurchaseStats, Result,
    ScoreRow, SegmentRow, SegmentSize, StepDone, StepInputs, StepQuery, StepWrites, StoreError,
};
use deadpool_postgres::{GenericClient, Transaction};
use rapport_domain::model::EventView;
use rapport_domain::resolve::ProfileId;
use rapport_domain::time::Millis;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use tokio_postgres::types::ToSql;

const SEGMENT_COLS: &str =
    "s.id, s.name, s.definition, s.description, s.kind, s.created_at, s.updated_at, s.refreshed_at,
    (SELECT COUNT(*) FROM segment_members sm WHERE sm.segment_id = s.id)";

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
async fn change_members(
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
fn in_order(names: &[String], rows: &[tokio_postgres::Row]) -> Vec<i64> {
    let found: HashMap<String, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    names
        .iter()
        .map(|n| found.get(n).copied().unwrap_or(0))
        .collect()
}

async fn set_counters(tx: &impl GenericClient, values: &[(String, i64)]) -> Result<()> {
    if values.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = values.iter().map(|v| v.0.as_str()).collect();
    let nums: Vec<i64> = values.iter().map(|v| v.1).collect();
    let stmt = tx
        .prepare_cached(
            "INSERT INTO counters (name, value) SELECT * FROM UNNEST($1::text[], $2::bigint[])
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .await?;
    tx.execute(&stmt, &[&names, &nums]).await?;
    Ok(())
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
    async fn over_matches(&self, c: &Compiled, sql: &str) -> Result<Vec<tokio_postgres::Row>> {
        let mut client = self.client().await?;
        let v = texts(c);
        let tx = client.transaction().await?;
        // JIT compiling a segment query took ~170 ms of a 2 s run and won nothing back.
        tx.batch_execute("SET LOCAL work_mem = '256MB'; SET LOCAL jit = off")
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
            .await?;
        tx.commit().await?;
        Ok(rows)
    }

    /// Count and sample in one pass (a window count), so the conditions run once.
    pub(super) async fn s_matches(
        &self,
        c: Compiled,
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

    pub(super) async fn s_all_matches(&self, c: Compiled) -> Result<Vec<ProfileId>> {
        let sql =
            "SELECT p.id FROM profiles p WHERE p.id = p.canonical_id AND {cond} ORDER BY p.id";
        Ok(self
            .over_matches(&c, sql)
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    pub(super) async fn s_create(
        &self,
        name: String,
        definition: String,
        description: String,
        kind: String,
        at: Millis,
    ) -> Result<SegmentRow> {
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
        self.s_get(r.get(0)).await
    }

    pub(super) async fn s_update(
        &self,
        id: i64,
        definition: String,
        description: String,
        at: Millis,
    ) -> Result<SegmentRow> {
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
        self.s_get(id).await
    }

    pub(super) async fn s_list(&self) -> Result<Vec<SegmentRow>> {
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

    pub(super) async fn s_definitions(&self) -> Result<Vec<SegmentRow>> {
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

    pub(super) async fn s_get(&self, id: i64) -> Result<SegmentRow> {
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

    pub(super) async fn s_by_name(&self, name: String) -> Result<Option<SegmentRow>> {
        let client = self.client().await?;
        Ok(client
            .query_opt(
                &format!("SELECT {SEGMENT_COLS} FROM segments s WHERE s.name = $1"),
                &[&name],
            )
            .await?
            .map(|r| row(&r)))
    }

    pub(super) async fn s_delete(&self, id: i64) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let n = tx
            .execute("DELETE FROM segments WHERE id = $1", &[&id])
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("segment {id}")));
        }
        tx.execute("DELETE FROM segment_members WHERE segment_id = $1", &[&id])
            .await?;
        tx.execute("DELETE FROM segment_sizes WHERE segment_id = $1", &[&id])
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn s_set_members(
        &self,
        id: i64,
        members: Vec<ProfileId>,
        at: Millis,
    ) -> Result<MembershipChange> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // One refresh of a segment at a time.
        lock_segment(&tx, id).await?;
        let current: HashSet<ProfileId> = tx
            .query(
                "SELECT profile_id FROM segment_members WHERE segment_id = $1",
                &[&id],
            )
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

    /// A step's writes in two round trips whatever their number: `BEGIN` and the
    /// step's statements pipelined (one connection runs them in order, so each follows
    /// the locks before it), then the commit.
    pub(super) async fn s_commit_step(&self, w: StepWrites, at: Millis) -> Result<StepDone> {
        let tx = super::PipelinedTx::new(self.client().await?);
        let c = tx.client()?;
        // Derived from stored events: the commit need not wait for the WAL flush. A
        // server crash may lose the last such commits (never a later synchronous one),
        // and the engine's position with them, so it decides those events again. The
        // step's statements use generic plans (see `s_step_inputs`).
        let begin = tx.begin(
            "BEGIN; SET LOCAL synchronous_commit = off; SET LOCAL plan_cache_mode = force_generic_plan",
        );
        let members = change_members(c, w.memberships, at);
        let firings = super::rules::record_firings(c, &w.firings);
        let patches = futures_util::future::try_join_all(
            w.patches
                .iter()
                .map(|(id, patch)| super::patch_traits(c, *id, patch, at)),
        );
        let counters = set_counters(c, &w.counters);
        // `begin` first: polled in order, so it is sent first.
        let out = tokio::try_join!(begin, members, firings, patches, counters)
            .map(|((), out, (), _, ())| out);
        tx.finish(out).await
    }

    pub(super) async fn s_segment_stamps(&self) -> Result<Vec<(i64, Millis)>> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("SELECT id, updated_at FROM segments ORDER BY id")
            .await?;
        Ok(client
            .query(&stmt, &[])
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    /// One REPEATABLE READ snapshot, so the events, texts and persons agree: the
    /// positions are read inside the queries that use them, and so are the persons to
    /// re-read (those of the events of `reread_after`'s types). Everything, the commit
    /// included, goes pipelined: one round trip (two the first time a connection
    /// prepares the statements). A read-only transaction has nothing to undo, so its
    /// `COMMIT` need not wait for the reads.
    pub(super) async fn s_step_inputs(&self, q: StepQuery) -> Result<StepInputs> {
        let (events_at, texts_at) = q.position_names()?;
        let tx = super::PipelinedTx::new(self.client().await?);
        let c = tx.client()?;
        // Rows past a position, the position read in the same statement ($n: its
        // counter's name, $m: the limit, $k: the ids left out).
        let events = |cols: &str, n: u8, m: u8, k: u8| {
            format!("SELECT {cols} FROM events WHERE id > COALESCE((SELECT value FROM counters WHERE name = ${n}), 0) AND id <> ALL(${k}::bigint[]) ORDER BY id LIMIT ${m}")
        };
        let texts = |n: u8, m: u8| {
            format!("SELECT event_id, profile_id FROM text_analyses WHERE event_id > COALESCE((SELECT value FROM counters WHERE name = ${n}), 0) ORDER BY event_id LIMIT ${m}")
        };
        let reread = super::person_sql(&format!(
            "ARRAY(SELECT e.profile_id FROM ({}) e WHERE e.type = ANY($4::text[]))",
            events("profile_id, type", 1, 2, 3)
        ));
        let sql = [
            events(super::EVENT_COLUMNS, 1, 2, 3),
            texts(1, 2),
            format!(
                "SELECT id, canonical_id FROM profiles WHERE id = ANY(ARRAY(
                     SELECT e.profile_id FROM ({}) e UNION SELECT t.profile_id FROM ({}) t))",
                events("id, profile_id", 1, 3, 4),
                texts(2, 3)
            ),
        ];
        let (counters, events, texts, stamps, canonical) = tokio::try_join!(
            c.prepare_cached("SELECT name, value FROM counters WHERE name = ANY($1)"),
            c.prepare_cached(&sql[0]),
            c.prepare_cached(&sql[1]),
            c.prepare_cached("SELECT id, updated_at FROM segments ORDER BY id"),
            c.prepare_cached(&sql[2]),
        )?;
        let (members, identities, consents, merges) = tokio::try_join!(
            c.prepare_cached(&reread[0]),
            c.prepare_cached(&reread[1]),
            c.prepare_cached(&reread[2]),
            c.prepare_cached(&reread[3]),
        )?;
        let limit = q.limit as i64;
        let names: [&(dyn ToSql + Sync); 1] = [&q.counters];
        let events_p: [&(dyn ToSql + Sync); 3] = [events_at, &limit, &q.skip];
        let texts_p: [&(dyn ToSql + Sync); 2] = [texts_at, &limit];
        let both: [&(dyn ToSql + Sync); 4] = [events_at, texts_at, &limit, &q.skip];
        let persons_p: [&(dyn ToSql + Sync); 4] = [events_at, &limit, &q.skip, &q.reread_after];
        // The step's statements are planned once per connection: re-planning them for
        // each step's parameters (PostgreSQL's choice here) cost ~0.2 ms per statement.
        // `BEGIN` goes first in the pipeline, `COMMIT` last: the statements above are
        // prepared, so each is sent when first polled, in order.
        let begin = tx.begin(
            "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET LOCAL plan_cache_mode = force_generic_plan",
        );
        let read = async {
            tokio::try_join!(
                begin,
                async { Ok(c.query(&counters, &names).await?) },
                async { Ok(c.query(&events, &events_p).await?) },
                async { Ok(c.query(&texts, &texts_p).await?) },
                async { Ok(c.query(&stamps, &[]).await?) },
                async { Ok(c.query(&canonical, &both).await?) },
                async {
                    Ok(tokio::try_join!(
                        c.query(&members, &persons_p),
                        c.query(&identities, &persons_p),
                        c.query(&consents, &persons_p),
                        c.query(&merges, &persons_p),
                    )?)
                },
            )
        };
        let ((), counters, events, texts, stamps, canonical, persons) =
            tx.read_and_commit(read).await?;
        let counters = in_order(&q.counters, &counters);
        let events: Vec<EventView> = events.iter().map(event_view).collect();
        let texts: Vec<(i64, ProfileId)> = texts.iter().map(|r| (r.get(0), r.get(1))).collect();
        let stamps = stamps.iter().map(|r| (r.get(0), r.get(1))).collect();
        let canonical = canonical
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect::<Vec<_>>();
        // The same persons the statements read, in the order the engine expects.
        let mut rows = super::PersonRows::new(persons.into());
        let mut profiles = Vec::new();
        for cid in reread_persons(&events, &canonical, &q.reread_after) {
            profiles.extend(rows.take(cid)?);
        }
        Ok(StepInputs {
            counters,
            events,
            texts,
            stamps,
            canonical,
            profiles,
        })
    }

    pub(super) async fn s_member_ids(
        &self,
        id: i64,
        after: ProfileId,
        limit: usize,
    ) -> Result<Vec<ProfileId>> {
        let client = self.client().await?;
        Ok(client
            .query(
                "SELECT profile_id FROM segment_members WHERE segment_id = $1 AND profile_id > $2 ORDER BY profile_id LIMIT $3",
                &[&id, &after, &(limit as i64)],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    pub(super) async fn s_sizes(&self, id: i64, since: Millis) -> Result<Vec<SegmentSize>> {
        let client = self.client().await?;
        Ok(client
            .query(
                "SELECT at, size, entered, exited FROM segment_sizes WHERE segment_id = $1 AND at >= $2 ORDER BY at",
                &[&id, &since],
            )
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

    pub(super) async fn s_person_activity(
        &self,
        id: ProfileId,
    ) -> Result<(Vec<EventView>, Vec<(Millis, f64, f64)>)> {
        let client = self.client().await?;
        // Prepared once per connection: the events view is a union of three tables, and
        // planning it took longer (1.4 ms) than running it; the two reads go out together.
        let (events, texts) = tokio::try_join!(
            client.prepare_cached(
                // Context, text and message id are not read by the evaluator: left out,
                // which halves the cost of loading a person for the real-time engine.
                // `= ANY(ARRAY(…))`: the members first, then the events index; the `IN`
                // form let a generic plan on stale statistics scan every event (measured:
                // 100 ms a person on 1.1M events).
                "SELECT id, '', profile_id, type, name, channel, source, properties, '{}'::jsonb, NULL::text, occurred_at, received_at
                 FROM events WHERE profile_id = ANY(ARRAY(SELECT id FROM profiles WHERE canonical_id = $1)) ORDER BY occurred_at, id",
            ),
            client.prepare_cached(
                "SELECT occurred_at, compound, complaint::float8 FROM text_analyses WHERE profile_id = ANY(ARRAY(SELECT id FROM profiles WHERE canonical_id = $1)) ORDER BY occurred_at, event_id",
            ),
        )?;
        let p: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&id];
        let (events, texts) =
            tokio::try_join!(client.query(&events, &p), client.query(&texts, &p))?;
        let events = events.iter().map(event_view).collect();
        let texts = texts
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        Ok((events, texts))
    }

    pub(super) async fn s_person_loads(
        &self,
        ids: Vec<ProfileId>,
        reads: PersonReads,
    ) -> Result<Vec<PersonLoad>> {
        let client = self.client().await?;
        // The engine does not read the merge history.
        let mut views = super::profiles_of(&client, &ids, false).await?;
        let mut seen = HashSet::new();
        views.retain(|v| seen.insert(v.id));
        if views.is_empty() {
            return Ok(Vec::new());
        }
        let persons: Vec<ProfileId> = views.iter().map(|v| v.id).collect();
        let mut person_of: HashMap<ProfileId, usize> = HashMap::new();
        for (i, v) in views.iter().enumerate() {
            for m in &v.member_ids {
                person_of.insert(*m, i);
            }
        }
        let members: Vec<ProfileId> = person_of.keys().copied().collect();
        // Everyone's rows in one statement per table, sent together, sorted out by
        // person here: five statements for a step's people instead of six per person.
        let (events, texts, segments, scores, firings) = tokio::try_join!(
            client.prepare_cached(if reads.membership_events() {
                "SELECT id, '', profile_id, type, name, channel, source, properties, '{}'::jsonb, NULL::text, occurred_at, received_at
                 FROM events WHERE profile_id = ANY($1) ORDER BY occurred_at, id"
            } else {
                // The view's membership parts have a constant source: planned away.
                "SELECT id, '', profile_id, type, name, channel, source, properties, '{}'::jsonb, NULL::text, occurred_at, received_at
                 FROM events WHERE profile_id = ANY($1)
                   AND NOT (source = 'segments' AND type = 'track' AND name IN ('Segment Entered', 'Segment Exited'))
                 ORDER BY occurred_at, id"
            }),
            client.prepare_cached(
                "SELECT profile_id, occurred_at, compound, complaint::float8 FROM text_analyses WHERE profile_id = ANY($1) ORDER BY occurred_at, event_id",
            ),
            client.prepare_cached(
                "SELECT sm.profile_id, s.name FROM segment_members sm JOIN segments s ON s.id = sm.segment_id WHERE sm.profile_id = ANY($1) ORDER BY s.name",
            ),
            client.prepare_cached(
                "SELECT name, profile_id, value FROM profile_scores WHERE profile_id = ANY($1) ORDER BY name",
            ),
            client.prepare_cached(
                "SELECT profile_id, rule, at FROM rule_firings WHERE profile_id = ANY($1) AND at >= $2",
            ),
        )?;
        let since = reads.firings_since();
        let m: [&(dyn ToSql + Sync); 1] = [&members];
        let p: [&(dyn ToSql + Sync); 1] = [&persons];
        let f: [&(dyn ToSql + Sync); 2] = [&persons, &since];
        // Without the history, two statements.
        let run = reads.history();
        let (events, texts, segments, scores, firings) = tokio::try_join!(
            async {
                if run {
                    client.query(&events, &m).await
                } else {
                    Ok(Vec::new())
                }
            },
            async {
                if run {
                    client.query(&texts, &m).await
                } else {
                    Ok(Vec::new())
                }
            },
            client.query(&segments, &p),
            client.query(&scores, &p),
            async {
                if run {
                    client.query(&firings, &f).await
                } else {
                    Ok(Vec::new())
                }
            },
        )?;
        let index: HashMap<ProfileId, usize> =
            persons.iter().enumerate().map(|(i, p)| (*p, i)).collect();
        let mut out: Vec<PersonLoad> = views
            .into_iter()
            .map(|view| PersonLoad {
                view,
                events: Vec::new(),
                texts: Vec::new(),
                segments: Vec::new(),
                scores: Vec::new(),
                firings: Vec::new(),
            })
            .collect();
        for r in &events {
            let e = event_view(r);
            if let Some(&i) = person_of.get(&e.profile_id) {
                out[i].events.push(e);
            }
        }
        for r in &texts {
            if let Some(&i) = person_of.get(&r.get::<_, i64>(0)) {
                out[i].texts.push((r.get(1), r.get(2), r.get(3)));
            }
        }
        for r in &segments {
            if let Some(&i) = index.get(&r.get::<_, i64>(0)) {
                out[i].segments.push(r.get(1));
            }
        }
        for r in &scores {
            if let Some(&i) = index.get(&r.get::<_, i64>(1)) {
                out[i]
                    .scores
                    .push(ScoreRow::value_only(r.get(0), r.get(1), r.get(2)));
            }
        }
        for r in &firings {
            if let Some(&i) = index.get(&r.get::<_, i64>(0)) {
                out[i].firings.push((r.get(1), r.get(2)));
            }
        }
        Ok(out)
    }

    pub(super) async fn s_replace_scores(
        &self,
        names: Vec<String>,
        rows: Vec<ScoreRow>,
    ) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute("DELETE FROM profile_scores WHERE name = ANY($1)", &[&names])
            .await?;
        for chunk in rows.chunks(10_000) {
            let n: Vec<&str> = chunk.iter().map(|r| r.name.as_str()).collect();
            let p: Vec<i64> = chunk.iter().map(|r| r.profile_id).collect();
            let v: Vec<f64> = chunk.iter().map(|r| r.value).collect();
            let e: Vec<String> = chunk.iter().map(|r| r.explanation.to_string()).collect();
            let at: Vec<i64> = chunk.iter().map(|r| r.computed_at).collect();
            tx.execute(
                "INSERT INTO profile_scores (name, profile_id, value, explanation, computed_at)
                 SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::float8[], $4::text[], $5::bigint[])
                 ON CONFLICT (name, profile_id) DO UPDATE SET value = excluded.value, explanation = excluded.explanation, computed_at = excluded.computed_at",
                &[&n, &p, &v, &e, &at],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn s_scores_of(&self, ids: Vec<ProfileId>) -> Result<Vec<ScoreRow>> {
        let client = self.client().await?;
        let stmt = client.prepare_cached("SELECT name, profile_id, value FROM profile_scores WHERE profile_id = ANY($1) ORDER BY profile_id, name").await?;
        Ok(client
            .query(&stmt, &[&ids])
            .await?
            .iter()
            .map(|r| ScoreRow::value_only(r.get(0), r.get(1), r.get(2)))
            .collect())
    }

    pub(super) async fn s_recent_people(
        &self,
        before: i64,
        limit: usize,
    ) -> Result<crate::RecentPeople> {
        let client = self.client().await?;
        // Backwards along the primary key: the newest events first, whatever their time.
        // The engine's membership events have tables of their own (migration 0017).
        let stmt = client
            .prepare_cached(
                "SELECT e.id, (e.source = 'segments' AND e.type = 'track' AND e.name IN ('Segment Entered', 'Segment Exited')), p.canonical_id
                 FROM event_rows e JOIN profiles p ON p.id = e.profile_id
                 WHERE e.id < $1 ORDER BY e.id DESC LIMIT $2",
            )
            .await?;
        let rows = client
            .query(&stmt, &[&before, &(limit as i64)])
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        Ok(crate::common::recent_people(rows, limit))
    }

    pub(super) async fn s_profile_scores(&self, id: ProfileId) -> Result<Vec<ScoreRow>> {
        let client = self.client().await?;
        let stmt = client.prepare_cached("SELECT name, profile_id, value, explanation, computed_at FROM profile_scores WHERE profile_id = $1 ORDER BY name").await?;
        Ok(client
            .query(&stmt, &[&id])
            .await?
            .iter()
            .map(|r| ScoreRow {
                name: r.get(0),
                profile_id: r.get(1),
                value: r.get(2),
                explanation: serde_json::from_str(r.get::<_, &str>(3)).unwrap_or_default(),
                computed_at: r.get(4),
            })
            .collect())
    }

    pub(super) async fn s_purchase_stats(
        &self,
        event: String,
        prop: String,
        since: Millis,
        until: Millis,
    ) -> Result<Vec<PurchaseStats>> {
        if !prop.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') || prop.is_empty() {
            return Err(StoreError::invalid(
                "revenue",
                "a property name is letters, digits and _",
            ));
        }
        let client = self.client().await?;
        let sql = format!(
            "SELECT pr.canonical_id, MAX(e.occurred_at),
                SUM(CASE WHEN e.occurred_at >= $2 THEN 1 ELSE 0 END)::bigint,
                COALESCE(SUM(CASE WHEN e.occurred_at >= $2 AND jsonb_typeof(e.properties -> '{prop}') = 'number'
                    THEN (e.properties ->> '{prop}')::float8 ELSE 0 END), 0)::float8
             FROM events e JOIN profiles pr ON pr.id = e.profile_id
             WHERE e.name = $1 AND e.type = 'track' AND e.occurred_at <= $3 GROUP BY pr.canonical_id"
        );
        Ok(client
            .query(&sql, &[&event, &since, &until])
            .await?
            .iter()
            .map(|r| PurchaseStats {
                profile_id: r.get(0),
                last_at: r.get(1),
                count: r.get(2),
                sum: r.get(3),
            })
            .collect())
    }

    pub(super) async fn s_analyses_after(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, ProfileId)>> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT event_id, profile_id FROM text_analyses WHERE event_id > $1 ORDER BY event_id LIMIT $2",
            )
            .await?;
        Ok(client
            .query(&stmt, &[&after, &(limit as i64)])
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    pub(super) async fn s_score_values(&self, name: String) -> Result<Vec<(ProfileId, f64)>> {
        let client = self.client().await?;
        Ok(client
            .query(
                "SELECT profile_id, value FROM profile_scores WHERE name = $1",
                &[&name],
            )
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    pub(super) async fn s_set_counters(&self, values: Vec<(String, i64)>) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        set_counters(&tx, &values).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn s_counters(&self, names: Vec<String>) -> Result<Vec<i64>> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("SELECT name, value FROM counters WHERE name = ANY($1)")
            .await?;
        Ok(in_order(&names, &client.query(&stmt, &[&names]).await?))
    }

    pub(super) async fn s_profile_segments(&self, id: ProfileId) -> Result<Vec<String>> {
        let client = self.client().await?;
        // Prepared once per connection: the real-time engine reads it with every load.
        let stmt = client.prepare_cached("SELECT s.name FROM segment_members sm JOIN segments s ON s.id = sm.segment_id WHERE sm.profile_id = $1 ORDER BY s.name").await?;
        Ok(client
            .query(&stmt, &[&id])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }
}
