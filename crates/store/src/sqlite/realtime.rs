//! SQLite side of the real-time engine: a step's inputs in one read transaction, its writes
//! in one commit, people loaded whole or by standing.

use super::scores::score_values_in;
use super::segments::{change_members, person_activity_in, profile_segments_in, stamps_in};
use super::settings::{counters_in, set_counters};
use super::text::analyses_after_in;
use super::SqliteStore;
use crate::{
    reread_persons, step_profiles, PersonLoad, RealtimeStore, Result, StepInputs, StepQuery,
    StoreError,
};
use async_trait::async_trait;
use rapport_domain::model::EventView;
use rapport_domain::resolve::ProfileId;
use rapport_domain::time::Millis;
use rusqlite::params;

#[async_trait]
impl RealtimeStore for SqliteStore {
    async fn commit_step(&self, mut w: crate::StepWrites, at: Millis) -> Result<crate::StepDone> {
        if !w.ledger.is_empty() {
            crate::LoyaltyStore::write_entries(self, std::mem::take(&mut w.ledger)).await?;
        }
        self.write_derived(move |tx| {
            let out = change_members(tx, w.memberships, at)?;
            super::rules::record_firings(tx, &w.firings)?;
            for (id, patch) in &w.patches {
                super::patch_traits(tx, *id, &patch.to_string(), at)?;
            }
            set_counters(tx, &w.counters)?;
            Ok(out)
        })
        .await
    }

    // One read transaction on one reader: after a write, each reader's first read
    // reloads the pages it touches, so five reads on up to five readers cost several
    // times this one.
    async fn step_inputs(&self, q: crate::StepQuery) -> Result<crate::StepInputs> {
        self.read(move |c| {
            let tx = c.unchecked_transaction()?;
            let counters = counters_in(&tx, &q.counters)?;
            let (events_pos, texts_pos) = StepQuery::positions(&counters)?;
            let events = q.unskipped(super::events_after_in(
                &tx,
                events_pos,
                q.limit + q.skip.len(),
            )?);
            let texts = analyses_after_in(&tx, texts_pos, q.limit)?;
            let stamps = stamps_in(&tx)?;
            let canonical =
                super::profiles::canonical_ids_in(&tx, &step_profiles(&events, &texts))?;
            let profiles =
                super::profiles_in(&tx, reread_persons(&events, &canonical, &q.reread_after))?;
            Ok(StepInputs {
                counters,
                events,
                texts,
                stamps,
                canonical,
                profiles,
            })
        })
        .await
    }

    async fn person_activity(
        &self,
        id: ProfileId,
    ) -> Result<(Vec<EventView>, Vec<(Millis, f64, f64)>)> {
        self.read(move |c| person_activity_in(c, id, true)).await
    }

    async fn person_loads(
        &self,
        ids: Vec<ProfileId>,
        reads: crate::PersonReads,
    ) -> Result<Vec<crate::PersonLoad>> {
        self.read(move |c| {
            let mut out = Vec::with_capacity(ids.len());
            let mut seen = std::collections::HashSet::new();
            for id in ids {
                // The engine does not read the merge history.
                let view = match super::profile_read(c, id, false) {
                    Ok(v) => v,
                    Err(StoreError::NotFound(_)) => continue,
                    Err(e) => return Err(e),
                };
                if !seen.insert(view.id) {
                    continue;
                }
                let ((events, texts), firings) = if reads.history() {
                    (
                        person_activity_in(c, view.id, reads.membership_events())?,
                        super::rules::firing_times_in(c, view.id, reads.firings_since())?,
                    )
                } else {
                    Default::default()
                };
                out.push(PersonLoad {
                    events,
                    texts,
                    segments: profile_segments_in(c, view.id)?,
                    scores: score_values_in(c, view.id)?,
                    firings,
                    view,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn recent_people(&self, before: i64, limit: usize) -> Result<crate::RecentPeople> {
        self.read(move |c| {
            // Backwards along the rowid: the newest events first, whatever their time.
            let rows = c
                .prepare_cached(
                    "SELECT e.id, (e.source = 'segments' AND e.type = 'track' AND e.name IN ('Segment Entered', 'Segment Exited')), p.canonical_id
                     FROM events e JOIN profiles p ON p.id = e.profile_id
                     WHERE e.id < ?1 ORDER BY e.id DESC LIMIT ?2",
                )?
                .query_map(params![before, limit as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?
                .collect::<std::result::Result<_, _>>()?;
            Ok(crate::common::recent_people(rows, limit))
        })
        .await
    }
}
