//! The real-time engine: segment membership, the next best offer and decision rules,
//! decided for each event as it arrives.
//!
//! Why it is built this way: loading a person's whole state from the store costs about a
//! millisecond, so the engine keeps the state of active people in memory and updates it
//! with each new event; definitions, rules and offers are compiled once per version;
//! frequency caps are counted in memory; and a step's writes (memberships, firings, trait
//! changes, positions) are one transaction at its end. `Segment Entered`/`Exited` events
//! the engine wrote are decided at once, not read back, and rules still see them.
//!
//! A held state is re-read when it may be stale: after an `identify`, `alias` or `group`
//! (the profile; the whole person when identities changed or people merged), an event
//! from a raw profile the state did not include, a text analysis, or history retracted
//! (`Change::Retracted`: a chain re-org). A change made outside the event stream to what
//! a person *is* rather than did (`Change::Standing`: a trait edit, consent, merge, batch
//! refresh, chain holdings; `Change::Scores`: the score and graph runs) has held states'
//! standing re-read without their history, at the person's next event or earlier while
//! the engine is idle. A state older than [`TTL`] has its profile re-read, a safety net
//! for a write that forgot to announce; not its history, which the engine saw event by
//! event.
//!
//! Files: `mod.rs` the engine's public face (`Engine`, `step`, `run`); `cache` the held
//! states and their re-reads; `config` the compiled definitions; `decide` deciding a
//! step's events; `commit` writing a step's decisions; `warm` work done while idle.

mod cache;
mod commit;
mod config;
mod decide;
mod warm;

use crate::changes::Change;
use crate::offers::{self, CompiledOffer};
use crate::rules::{self, CompiledRule, Effects};
use crate::segments::{self, SEGMENT_CURSOR, SEGMENT_TEXT_CURSOR};
use cache::*;
use commit::*;
use config::*;
use decide::*;
use rapport_domain::model::{EventView, ProfileView};
use rapport_domain::resolve::ProfileId;
use rapport_domain::time::{now_millis, Millis};
use rapport_segment::ast::{Cond, EventSel};
use rapport_segment::eval::{self, Person};
use rapport_segment::{assign_slots, referenced_segments, referenced_selectors, Expr};
use rapport_store::{
    DynStore, MembershipChange, PersonReads, SegmentRow, StepQuery, StepWrites, StoreError,
    SETTINGS_VERSION,
};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

/// The counters that carry the announcements the engine follows ([`crate::changes`]).
const GENERATION: &str = Change::Standing.counter();
const RESET: &str = Change::Retracted.counter();
const SCORES: &str = Change::Scores.counter();
/// A held state older than this has its profile re-read at the person's next event.
pub const TTL: Duration = Duration::from_secs(60);
/// People kept in memory by default (a state is a few KB for a typical history).
pub const DEFAULT_CAPACITY: usize = 100_000;
/// At most this many of the engine's own events are left out of a read (each read
/// compares every event against them).
const MAX_SKIP: usize = 4_096;
/// Events scanned per call of [`Engine::warm`], newest first, for the people behind them.
const WARM_SCAN: usize = 2_000;
/// People `rapport serve` reads ahead per idle poll (~50–100 ms of reads on SQLite).
pub const WARM_PEOPLE: usize = 64;

/// What one step did, for the benchmark and logs.
#[derive(Debug, Default, Clone)]
pub struct StepReport {
    pub events: usize,
    pub texts: usize,
    /// Each event's cost in microseconds: its own work (including a reload when its
    /// person was not in memory) plus an equal share of the step's shared reads and writes.
    pub per_event_us: Vec<f64>,
    /// Each event's own work alone (state update, segments, offers, rules, and a reload
    /// when one was needed), without the step's shared reads and writes.
    pub own_us: Vec<f64>,
    pub loads: usize,
    /// Held states whose profile was re-read (past the TTL, or after an identify).
    pub checks: usize,
    pub membership_changes: usize,
    pub firings: usize,
    /// Time spent loading people's states, in microseconds.
    pub load_us: f64,
    /// Time spent writing the step's memberships, firings and traits.
    pub write_us: f64,
    /// Time spent reading the step's inputs.
    pub read_us: f64,
    /// The step's own `Segment Entered`/`Exited` events, decided in it after its commit.
    pub derived: usize,
    /// The whole step, in microseconds (also when it decided nothing).
    pub took_us: f64,
}

impl StepReport {
    /// How long to wait before the next step while events keep coming: at least 10 ms,
    /// and twice as long as the step took, so under sustained load the engine takes at
    /// most a third of a core and of the store's writer from ingestion (on 2 cores, at
    /// half it cut SQLite's ingest by 23–28%, unpaced by 30%); it lags then, and catches
    /// up when traffic drops. Ingestion, which accepts data, comes first.
    pub fn pause(&self) -> Duration {
        Duration::from_millis(10).max(Duration::from_secs_f64(2.0 * self.took_us / 1e6))
    }
}

pub struct Engine {
    people: HashMap<ProfileId, Cached>,
    capacity: usize,
    ttl: Duration,
    generation: Option<i64>,
    scores: Option<i64>,
    reset: Option<i64>,
    config: Option<Config>,
    clock: u64,
    /// Ids of the engine's own membership events past its position, decided in the step
    /// that wrote them (ascending): the next read leaves them out.
    skip: Vec<i64>,
    /// What deciding them decided (memberships, firings, traits), written with the next
    /// step's commit, which also moves the position past them.
    carry: Option<Carry>,
    /// An empty read already found only a bare position move to write (see `idle`).
    idle_once: bool,
    /// Where [`Engine::warm`] scans on from (below this event id); `None` when done.
    warm: Option<i64>,
    /// Held people marked for a re-read by [`touched`] or [`scores_changed`], most
    /// recently used last, for [`Engine::warm`] to re-read while idle.
    marked: Vec<ProfileId>,
}

impl Default for Engine {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl Engine {
    pub fn new(capacity: usize) -> Self {
        Self {
            people: HashMap::new(),
            capacity: capacity.max(1),
            ttl: TTL,
            generation: None,
            scores: None,
            reset: None,
            config: None,
            clock: 0,
            skip: Vec::new(),
            carry: None,
            idle_once: false,
            warm: Some(i64::MAX),
            marked: Vec::new(),
        }
    }

    /// People held in memory.
    pub fn cached(&self) -> usize {
        self.people.len()
    }

    /// How old a held state may get before it is checked again (the benchmark's
    /// returning pass sets zero: every person comes back after longer than that).
    pub fn set_ttl(&mut self, ttl: Duration) {
        self.ttl = ttl;
    }

    /// Makes every held state older by `by`, as when each person comes back that much
    /// later (the benchmark's returning passes age the states by the TTL: unlike a zero
    /// TTL, a state checked in a step is not checked again for its own membership events).
    pub fn age(&mut self, by: Duration) {
        for c in self.people.values_mut() {
            if let Some(t) = c.loaded.checked_sub(by) {
                c.loaded = t;
            }
        }
    }

    /// Drops every held state: each person is loaded again at their next event, as
    /// after a restart or once evicted (the benchmark's cold pass).
    pub fn release(&mut self) {
        self.drop_all();
    }

    /// Drops every held state; [`Engine::warm`] reads the most recent people ahead again.
    fn drop_all(&mut self) {
        self.people.clear();
        self.marked.clear();
        self.warm = Some(i64::MAX);
    }

    /// One step: the events and text analyses after the engine's positions, each decided
    /// in order; then the step's writes and the new positions in one commit; then the
    /// `Segment Entered`/`Exited` events that commit wrote, decided at once (rules on
    /// them), their effects carried to the next step's commit.
    pub async fn step(&mut self, store: &DynStore, batch: usize) -> Result<StepReport, StoreError> {
        let started = Instant::now();
        let mut report = match self.step_inner(store, batch, started).await {
            Ok(r) => r,
            Err(e) => {
                self.forget();
                return Err(e);
            }
        };
        report.took_us = started.elapsed().as_secs_f64() * 1e6;
        Ok(report)
    }

    async fn step_inner(
        &mut self,
        store: &DynStore,
        batch: usize,
        started: Instant,
    ) -> Result<StepReport, StoreError> {
        let names = [
            SEGMENT_CURSOR,
            SEGMENT_TEXT_CURSOR,
            SETTINGS_VERSION,
            GENERATION,
            SCORES,
            RESET,
        ];
        let read = store
            .step_inputs(StepQuery {
                counters: names.iter().map(|n| n.to_string()).collect(),
                limit: batch,
                // An identify, alias or group may change the person's profile.
                reread_after: RELOADS.iter().map(|t| t.to_string()).collect(),
                skip: self.skip.clone(),
            })
            .await?;
        let read_us = started.elapsed().as_secs_f64() * 1e6;
        let &[_, _, settings_version, generation, scores, reset] = read.counters.as_slice() else {
            return Err(StoreError::Backend(
                "counters: wrong number of values".into(),
            ));
        };
        let (events, texts) = (&read.events, &read.texts);
        let mut report = StepReport {
            events: events.len(),
            texts: texts.len(),
            read_us,
            ..Default::default()
        };
        if events.is_empty() && texts.is_empty() {
            return self.idle(store, report).await;
        }
        self.idle_once = false;
        // The new event position: past the last event read, and past the skipped ones
        // too when the read took everything after the position (every id below them was
        // committed before they were written, so none is missed).
        let mut position = events.last().map(|e| e.id);
        let caught_up = events.len() < batch;
        if caught_up {
            if let Some(&last) = self.skip.last() {
                position = Some(position.map_or(last, |p| p.max(last)));
            }
            self.skip.clear();
        } else if let Some(p) = position {
            self.skip.retain(|&id| id > p);
        }
        self.refresh_config(store, (settings_version, read.stamps))
            .await?;
        self.check_generation(generation, scores, reset);
        let Some(config) = self.config.take() else {
            return Ok(report);
        };
        let mut writes = StepWrites::default();
        if let Some(p) = position {
            writes.counters.push((SEGMENT_CURSOR.to_string(), p));
        }
        if let Some(last) = texts.last() {
            writes
                .counters
                .push((SEGMENT_TEXT_CURSOR.to_string(), last.0));
        }
        let result = if config.idle() {
            if let Some(carry) = self.carry.take() {
                Self::add_decisions(carry, &mut writes);
            }
            Ok(Vec::new())
        } else {
            let inputs = Decide {
                events,
                texts,
                canonical: read.canonical.into_iter().collect(),
                views: read.profiles.into_iter().map(|v| (v.id, v)).collect(),
            };
            let carried = self.carry.take().unwrap_or_default();
            self.decide_all(store, &config, &inputs, carried, &mut report, &mut writes)
                .await
        };
        let result = match result {
            Ok(own) => self
                .commit_and_follow(store, &config, position, caught_up, writes, &mut report)
                .await
                .map(|()| own),
            Err(e) => Err(e),
        };
        self.config = Some(config);
        let own = result?;
        // The step's shared reads and writes (and its own membership events), shared out
        // equally over the events read.
        let total = started.elapsed().as_secs_f64() * 1e6;
        let own_sum: f64 = own.iter().sum();
        let n = own.len().max(1) as f64;
        let shared = (total - own_sum).max(0.0) / n;
        report.per_event_us = own.iter().map(|t| t + shared).collect();
        report.own_us = own;
        Ok(report)
    }

    /// Writes what a step left for later (see `idle`): on shutdown, so a restart does
    /// not decide the engine's own events again.
    pub async fn flush(&mut self, store: &DynStore) -> Result<(), StoreError> {
        if let Some(&last) = self.skip.last() {
            let mut report = StepReport::default();
            if let Err(e) = self.flush_position(store, last, &mut report).await {
                self.forget();
                return Err(e);
            }
        }
        Ok(())
    }

    /// After a failed step or flush: the events left out and their carried writes are
    /// read and decided anew (actions run at least once), on people loaded afresh.
    fn forget(&mut self) {
        self.skip.clear();
        self.carry = None;
        self.drop_all();
    }
}

/// The worker `rapport serve` runs: real-time decisions after each event, and every
/// `every` the scores and a batch refresh of all segments (windows move with time).
pub async fn run(
    store: DynStore,
    every: Duration,
    people: usize,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut engine = Engine::new(people);
    let mut last_refresh = Instant::now();
    let (mut warmed, mut warming) = (0, Instant::now());
    loop {
        let step = engine.step(&store, 1_000).await;
        let busy = step
            .as_ref()
            .map_or(Duration::from_millis(10), StepReport::pause);
        let mut step = step.map(|r| r.events + r.texts);
        // Nothing waits: read ahead the people most likely to come next (after a start,
        // or once every state was dropped), a few at a time, checking for events between.
        if matches!(step, Ok(0)) {
            match engine.warm(&store, WARM_PEOPLE).await {
                Ok(Some(n)) => {
                    if warmed == 0 {
                        warming = Instant::now();
                    }
                    warmed += n;
                    // Work was done: the next poll comes after the short busy pause.
                    step = Ok(1);
                }
                Ok(None) if warmed > 0 => {
                    tracing::info!(
                        people = warmed,
                        seconds = warming.elapsed().as_secs_f64(),
                        "real-time engine warmed"
                    );
                    warmed = 0;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "real-time read-ahead failed"),
            }
        }
        if last_refresh.elapsed() >= every {
            last_refresh = Instant::now();
            // Scores first: segments may use them.
            if let Err(e) = crate::scores::recompute(&store).await {
                tracing::warn!(error = %e, "score computation failed");
            }
            if let Err(e) = segments::refresh_all(&store).await {
                tracing::warn!(error = %e, "segment refresh failed");
            }
        }
        let idle = Duration::from_millis(200);
        if !crate::worker::pause_after("real-time decisions", step, idle, busy, &mut shutdown).await
        {
            if let Err(e) = engine.flush(&store).await {
                tracing::warn!(error = %e, "real-time position not saved on shutdown");
            }
            return;
        }
    }
}
