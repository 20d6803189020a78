//! PostgreSQL side of the real-time engine: a step's inputs in one REPEATABLE READ
//! snapshot, its writes in one pipelined transaction, people loaded in a few pipelined
//! statements.

use super::segments::{change_members, in_order};
use super::settings::set_counters;
use super::{event_view, PgStore};
use crate::{reread_persons, sql, PersonLoad, RealtimeStore, Result, ScoreRow, StepInputs};
use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use rapport_domain::model::EventView;
use rapport_domain::resolve::ProfileId;
use rapport_domain::time::Millis;
use std::collections::{HashMap, HashSet};
use tokio_postgres::types::ToSql;

#[async_trait]
impl RealtimeStore for PgStore {
    // A step's writes in two round trips whatever their number: `BEGIN` and the
    // step's statements pipelined (one connection runs them in order, so each follows
    // the locks before it), then the commit.
    async fn commit_step(&self, mut w: crate::StepWrites, at: Millis) -> Result<crate::StepDone> {
        if !w.ledger.is_empty() {
            crate::LoyaltyStore::write_entries(self, std::mem::take(&mut w.ledger)).await?;
        }
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

    // One REPEATABLE READ snapshot, so the events, texts and persons agree: the
    // positions are read inside the queries that use them, and so are the persons to
    // re-read (those of the events of `reread_after`'s types). Everything, the commit
    // included, goes pipelined: one round trip (two the first time a connection
    // prepares the statements). A read-only transaction has nothing to undo, so its
    // `COMMIT` need not wait for the reads.
    async fn step_inputs(&self, q: crate::StepQuery) -> Result<crate::StepInputs> {
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
            c.prepare_cached(sql::segments::SEGMENT_STAMPS),
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

    async fn person_activity(
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

    async fn person_loads(
        &self,
        ids: Vec<ProfileId>,
        reads: crate::PersonReads,
    ) -> Result<Vec<crate::PersonLoad>> {
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

    async fn recent_people(&self, before: i64, limit: usize) -> Result<crate::RecentPeople> {
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
}
