//! [`RealtimeStore`] and the shapes it speaks; implemented in `sqlite/realtime.rs` and
//! `postgres/realtime.rs`.

use crate::Firing;
use crate::MembershipChange;
use crate::Result;
use crate::ScoreRow;
use crate::StoreError;
use async_trait::async_trait;
use rapport_domain::model::{EventView, ProfileView};
use rapport_domain::resolve::ProfileId;
use rapport_domain::time::Millis;

/// What a real-time step's commit did.
#[derive(Debug, Clone, Default)]
pub struct StepDone {
    /// The membership changes that were real, per segment.
    pub memberships: Vec<(i64, MembershipChange)>,
    /// Their `Segment Entered` / `Segment Exited` events, with the ids they were written
    /// at (ascending).
    pub events: Vec<EventView>,
    /// The newest event id in the log just before those events were written (under the
    /// writer lock, so every id below it was committed): a reader that had read up to it
    /// has missed nothing before them.
    pub before: i64,
}

/// A real-time step's writes, applied in one transaction: one commit per step, and a
/// crash leaves all of them or none (the step is then decided again).
#[derive(Debug, Clone, Default)]
pub struct StepWrites {
    /// Entries and exits per segment; segments deleted meanwhile are skipped.
    pub memberships: Vec<(i64, MembershipChange)>,
    pub firings: Vec<Firing>,
    /// JSON merge patches of people's traits.
    pub patches: Vec<(ProfileId, serde_json::Value)>,
    /// The worker's positions.
    pub counters: Vec<(String, i64)>,
    /// Loyalty points earned by rules: written first, in a transaction of their own
    /// (idempotent by key: a step decided again after a crash writes nothing twice).
    pub ledger: Vec<crate::LedgerWrite>,
}

/// What [`RealtimeStore::step_inputs`] reads.
#[derive(Debug, Clone, Default)]
pub struct StepQuery {
    /// Counter names; the first is the event position, the second the text position.
    pub counters: Vec<String>,
    pub limit: usize,
    /// Event types (`identify`, …) after which the person's profile is read as well.
    pub reread_after: Vec<String>,
    /// Ids of events past the position already decided (the membership events a step
    /// wrote and decided at once), in ascending order: left out of `events`.
    pub skip: Vec<i64>,
}

impl StepQuery {
    fn no_positions() -> StoreError {
        StoreError::Backend("step_inputs: the event and text positions are needed".into())
    }

    /// `events` (read with a limit of `limit + skip.len()`) without the skipped ids, at
    /// most `limit` of them.
    pub fn unskipped(&self, mut events: Vec<EventView>) -> Vec<EventView> {
        if !self.skip.is_empty() {
            events.retain(|e| self.skip.binary_search(&e.id).is_err());
        }
        events.truncate(self.limit);
        events
    }

    /// The event and text positions among the counters read.
    pub fn positions(counters: &[i64]) -> Result<(i64, i64)> {
        match counters {
            [events, texts, ..] => Ok((*events, *texts)),
            _ => Err(Self::no_positions()),
        }
    }

    /// The names of the event and text position counters.
    pub fn position_names(&self) -> Result<(&String, &String)> {
        match self.counters.as_slice() {
            [events, texts, ..] => Ok((events, texts)),
            _ => Err(Self::no_positions()),
        }
    }
}

/// A real-time step's inputs, read together.
#[derive(Debug, Clone, Default)]
pub struct StepInputs {
    /// In the order asked (0 when unset).
    pub counters: Vec<i64>,
    pub events: Vec<EventView>,
    /// (event id, raw profile id) of texts analysed after the text position.
    pub texts: Vec<(i64, ProfileId)>,
    pub stamps: Vec<(i64, Millis)>,
    /// (raw profile, person) for every profile of `events` and `texts`; unknown ones are
    /// left out.
    pub canonical: Vec<(ProfileId, ProfileId)>,
    /// The profiles of the persons of events whose type `reread_after` names, read with
    /// the events (at least as new as each).
    pub profiles: Vec<ProfileView>,
}

/// The persons whose profiles a step re-reads: those of events of the given types.
pub fn reread_persons(
    events: &[EventView],
    canonical: &[(ProfileId, ProfileId)],
    types: &[String],
) -> Vec<ProfileId> {
    let person: std::collections::HashMap<ProfileId, ProfileId> =
        canonical.iter().copied().collect();
    let mut out: Vec<ProfileId> = events
        .iter()
        .filter(|e| types.contains(&e.kind))
        .filter_map(|e| person.get(&e.profile_id).copied())
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// The distinct raw profiles of a step's events and texts, sorted.
pub fn step_profiles(events: &[EventView], texts: &[(i64, ProfileId)]) -> Vec<ProfileId> {
    let mut raw: Vec<ProfileId> = events
        .iter()
        .map(|e| e.profile_id)
        .chain(texts.iter().map(|t| t.1))
        .collect();
    raw.sort_unstable();
    raw.dedup();
    raw
}

/// What [`RealtimeStore::recent_people`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecentPeople {
    /// `(event id, canonical id)`, newest event first; the engine's own membership
    /// events are left out.
    pub people: Vec<(i64, ProfileId)>,
    /// The lowest event id scanned, where the next scan starts below; `None` when no
    /// event is left below what was scanned.
    pub next: Option<i64>,
}

/// What the real-time engine reads to hold a person (a canonical id) in memory, beside
/// their network scores and holdings (read for many at once by their own calls).
#[derive(Debug, Clone)]
pub struct PersonLoad {
    /// Their profile, without the merge history (`merges` empty).
    pub view: ProfileView,
    /// Their events, oldest first, as [`RealtimeStore::person_activity`] reads them.
    pub events: Vec<EventView>,
    /// Their analysed texts, `(occurred_at, compound, complaint confidence)`.
    pub texts: Vec<(Millis, f64, f64)>,
    /// Names of the segments they are in.
    pub segments: Vec<String>,
    pub scores: Vec<ScoreRow>,
    /// Rule firings since the time asked, `(rule, at)`.
    pub firings: Vec<(String, Millis)>,
}

/// How much of each person [`RealtimeStore::person_loads`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PersonReads {
    /// Everything, with the rule firings since `firings_since`; the `Segment Entered`/
    /// `Exited` events the engine wrote only with `membership_events` (they are most of
    /// a settled person's history, and most definitions never read them).
    Whole {
        firings_since: Millis,
        membership_events: bool,
    },
    /// What can change outside the event stream: the profile, memberships and scores;
    /// `events`, `texts` and `firings` come back empty (the engine re-reads this for
    /// people it holds after a score run, a batch refresh or an edit, without their
    /// history, which it saw event by event).
    Standing,
}

impl PersonReads {
    /// Whether events, texts and firings are read.
    pub fn history(self) -> bool {
        matches!(self, PersonReads::Whole { .. })
    }

    /// Firings since when (none read for [`PersonReads::Standing`]).
    pub fn firings_since(self) -> Millis {
        match self {
            PersonReads::Whole { firings_since, .. } => firings_since,
            PersonReads::Standing => Millis::MAX,
        }
    }

    /// Whether the history read has the membership events.
    pub fn membership_events(self) -> bool {
        matches!(
            self,
            PersonReads::Whole {
                membership_events: true,
                ..
            }
        )
    }
}

/// The real-time engine's reads and writes: a step's inputs, its one-transaction commit, people loaded whole.
#[async_trait]
pub trait RealtimeStore: Send + Sync {
    /// What a real-time step reads before deciding: the counters `q.counters` names (the
    /// first two are its event and text positions), up to `q.limit` events and analysed
    /// texts after them, the segments' stamps, and the person of each raw profile those
    /// events and texts belong to. Stores that can answer in one read override this.
    async fn step_inputs(&self, q: StepQuery) -> Result<StepInputs>;
    /// A real-time step's writes in one transaction; returns the membership changes that
    /// were real, per segment, and the events written for them.
    async fn commit_step(&self, w: StepWrites, at: Millis) -> Result<StepDone>;
    /// Everything a person (canonical id) did and wrote, oldest first: their events (without
    /// context, text or message id, which the evaluator does not read) and their analysed
    /// texts as (occurred_at, compound, complaint confidence). One person's part of what
    /// [`RealtimeStore::person_loads`] reads for many.
    async fn person_activity(
        &self,
        id: ProfileId,
    ) -> Result<(Vec<EventView>, Vec<(Millis, f64, f64)>)>;
    /// Several people's state for the real-time engine, one [`PersonLoad`] per person
    /// (ids of the same person, and unknown ids, give one or none), whole or only what
    /// can change outside the event stream (see [`PersonReads`]). The stores read them
    /// together: one thread hop (SQLite), a few pipelined statements for all of them
    /// (PostgreSQL).
    async fn person_loads(
        &self,
        ids: Vec<ProfileId>,
        reads: PersonReads,
    ) -> Result<Vec<PersonLoad>>;
    /// The people behind the `limit` newest events with ids below `before`, newest first:
    /// `(event id, canonical id)` per event, the engine's own `Segment Entered`/`Exited`
    /// events left out (a batch refresh writes them for everyone). Fewer than `limit`
    /// rows scanned means no events are left below the last. For the real-time engine
    /// to read ahead the people most likely to come next (after a restart).
    async fn recent_people(&self, before: i64, limit: usize) -> Result<RecentPeople>;
}

#[cfg(test)]
mod tests {
    #[test]
    fn skipped_events_are_left_out_and_the_limit_kept() {
        let ev = |id| super::EventView {
            id,
            message_id: id.to_string(),
            profile_id: 1,
            kind: "track".into(),
            name: None,
            channel: "api".into(),
            source: "test".into(),
            properties: serde_json::json!({}),
            context: serde_json::json!({}),
            text: None,
            occurred_at: rapport_domain::time::to_datetime(0),
            received_at: rapport_domain::time::to_datetime(0),
        };
        let q = super::StepQuery {
            limit: 3,
            skip: vec![2, 4],
            ..Default::default()
        };
        let ids: Vec<i64> = q
            .unskipped((1..=5).map(ev).collect())
            .iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(ids, [1, 3, 5]);
        let q = super::StepQuery { limit: 2, ..q };
        let ids: Vec<i64> = q
            .unskipped((1..=5).map(ev).collect())
            .iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(ids, [1, 3]);
    }
}
