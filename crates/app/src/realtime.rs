//! The real-time engine: segment membership, the next best offer and decision rules,
//! decided for each event as it arrives.
//!
//! Why it is built this way (issue 5's p99 target): loading a person's whole state from
//! the store costs about a millisecond, so the engine keeps the state of active people in
//! memory and updates it with each new event instead of reloading it; definitions, rules
//! and offers are parsed once per version, not per event; frequency caps are counted in
//! memory; and the step's writes (memberships, firings, trait changes, positions) are one
//! transaction at its end (one commit per step, all or nothing). `Segment Entered`/`Exited` events the engine wrote are not
//! re-evaluated (the membership they record is already applied) but rules still see them.
//!
//! A cached state is dropped and reloaded when it may be stale: an `identify`, `alias` or
//! `group` that changed identities or merged (otherwise only the profile is re-read), an
//! event from a raw profile the state did not include (a merge), a text analysis, or
//! events removed from history (a chain re-org, which calls [`reset`]). A change made
//! outside the event stream to what a person *is* rather than did (a trait edit, consent,
//! merge, graph or score run, batch refresh, chain holdings — those call [`touched`])
//! has every held state re-read without its history at the person's next event: the
//! profile, memberships, scores and holdings, for all of a step's people at once, or
//! before that while the engine is idle ([`Engine::warm`], which after a start also
//! reads ahead the most recently active people). The
//! 15-minute score run and refresh of `rapport serve` used to drop every state, so each
//! person's next event paid a whole load (1–2 ms, reading every event they ever had).
//! A state older than [`TTL`] has its profile re-read, in case a write bypassed
//! `touched`; not its history, which the engine saw event by event (a full reload there
//! cost 4 ms a person on PostgreSQL, and most people's next event comes later than any
//! TTL short enough to be a safety net).

use crate::changes::Change;
use crate::offers::{self, CompiledOffer};
use crate::rules::{self, CompiledRule, Effects};
use crate::segments::{self, SEGMENT_CURSOR, SEGMENT_TEXT_CURSOR};
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

struct Cached {
    person: Person,
    /// Raw profiles the state was loaded from.
    members: Vec<ProfileId>,
    /// Highest event id in `person.events`: later events are appended, earlier ones are in.
    upto: i64,
    /// Recent firings `(rule, at)`, for caps.
    fired: Vec<(String, Millis)>,
    /// Indexes (in `Config::segments`) of the segments the person is in.
    inside: HashSet<usize>,
    /// What the next evaluation must redo beyond what its event matches.
    stale: Stale,
    loaded: Instant,
    used: u64,
    /// Read ahead of its events in this step (whole, or its standing re-read), not used
    /// yet: what its first event reports.
    ahead: Option<Held>,
    /// What changed outside the event stream ([`touched`], [`scores_changed`]): re-read
    /// before the next event, without the history.
    recheck: Option<Recheck>,
}

/// What of a held state to re-read (ordered: the standing includes the scores).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Recheck {
    Scores,
    Standing,
}

/// What [`Engine::ensure`] did with a person's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    /// Held and fresh: used as it is.
    Kept,
    /// Held, and its profile re-read (traits and consents replaced).
    Checked,
    /// Read whole from the store.
    Loaded,
}

/// What a person's next evaluation must redo beyond the segments its event can change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum Stale {
    #[default]
    Nothing,
    /// These top-level traits changed: the segments that read one of them.
    Traits(BTreeSet<String>),
    /// Consents, identities, scores (or traits, from a rule or offer) changed: the
    /// segments that read the profile.
    Profile,
    /// Just loaded: every segment.
    All,
}

impl Stale {
    /// Both what was stale and `more`.
    fn add(&mut self, more: Stale) {
        *self = match (std::mem::take(self), more) {
            (Stale::All, _) | (_, Stale::All) => Stale::All,
            (Stale::Profile, _) | (_, Stale::Profile) => Stale::Profile,
            (Stale::Traits(mut a), Stale::Traits(b)) => {
                a.extend(b);
                Stale::Traits(a)
            }
            (Stale::Traits(a), Stale::Nothing) | (Stale::Nothing, Stale::Traits(a)) => {
                Stale::Traits(a)
            }
            (Stale::Nothing, Stale::Nothing) => Stale::Nothing,
        }
    }
}

/// The top-level keys whose values differ between two trait objects.
fn changed_traits(old: &Value, new: &Value) -> BTreeSet<String> {
    let empty = serde_json::Map::new();
    let (a, b) = (
        old.as_object().unwrap_or(&empty),
        new.as_object().unwrap_or(&empty),
    );
    a.keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect()
}

/// What of the profile a definition reads.
#[derive(Debug, Default)]
struct ProfileReads {
    /// Top-level trait names.
    traits: BTreeSet<String>,
    /// Identities, consents, wallets' tokens or computed scores.
    other: bool,
}

impl ProfileReads {
    fn of(e: &Expr) -> Self {
        let mut r = Self::default();
        r.add(e);
        r
    }

    fn add(&mut self, e: &Expr) {
        match e {
            Expr::And(v) | Expr::Or(v) => v.iter().for_each(|x| self.add(x)),
            Expr::Not(x) => self.add(x),
            Expr::Cond(Cond::Trait { path, .. }) => match path.first() {
                Some(k) => {
                    self.traits.insert(k.clone());
                }
                // Cannot parse; taken as reading the whole profile all the same.
                None => self.other = true,
            },
            Expr::Cond(
                Cond::Has { .. }
                | Cond::Consent { .. }
                | Cond::Token { .. }
                | Cond::Score { .. }
                | Cond::Computed { .. },
            ) => {
                self.other = true;
            }
            Expr::Cond(_) => {}
        }
    }

    fn any(&self) -> bool {
        self.other || !self.traits.is_empty()
    }

    /// Whether what is stale may change the answer.
    fn affected_by(&self, stale: &Stale) -> bool {
        match stale {
            Stale::Nothing => false,
            Stale::Traits(keys) => self.traits.iter().any(|k| keys.contains(k)),
            Stale::Profile => self.any(),
            Stale::All => true,
        }
    }
}

/// A segment with what its answer depends on.
struct Plan {
    row: SegmentRow,
    expr: Expr,
    /// Slots (in `Config::selectors`) of the event selectors it reads.
    slots: Vec<usize>,
    /// Indexes of the segments it refers to (always earlier ones).
    refs: Vec<usize>,
    /// What of the profile it reads (traits, identities, consents, wallets' tokens), so
    /// must be redone when those change.
    reads: ProfileReads,
}

/// Events that may change the profile itself (traits, identities, merges).
const RELOADS: [&str; 3] = ["identify", "alias", "group"];

fn reloads(e: &EventView) -> bool {
    RELOADS.contains(&e.kind.as_str())
}

/// A `Segment Entered`/`Exited` event the engine or a batch refresh wrote.
fn is_membership(e: &EventView) -> bool {
    e.source == "segments"
        && e.kind == "track"
        && matches!(
            e.name.as_deref(),
            Some("Segment Entered" | "Segment Exited")
        )
}

/// Whether a selector may match a membership event (its property filters aside).
fn may_select_membership(s: &EventSel) -> bool {
    s.kind.as_deref().is_none_or(|k| k == "track")
        && s.name
            .as_deref()
            .is_none_or(|n| n == "Segment Entered" || n == "Segment Exited")
}

/// What a step decides on, read together by [`Store::step_inputs`].
struct Decide<'a> {
    events: &'a [EventView],
    texts: &'a [(i64, ProfileId)],
    /// Raw profile → person.
    canonical: HashMap<ProfileId, ProfileId>,
    /// Profiles re-read after an identify, alias or group.
    views: HashMap<ProfileId, ProfileView>,
}

struct Config {
    signature: (i64, Vec<(i64, Millis)>),
    segments: Vec<Plan>,
    /// Every distinct event selector the segments read, in slot order.
    selectors: Vec<EventSel>,
    rules: Vec<CompiledRule>,
    rules_saved_at: Millis,
    offers: Vec<CompiledOffer>,
    /// The longest cap window, how far back firings are loaded.
    cap_window: Millis,
    /// Whether a definition, rule condition or offer may read the engine's own
    /// `Segment Entered`/`Exited` events from a person's history; when none does, they
    /// are neither loaded nor kept (after a while they are most of a person's events).
    membership_history: bool,
}

impl Config {
    fn idle(&self) -> bool {
        self.segments.is_empty() && self.rules.is_empty() && self.offers.is_empty()
    }

    /// Indexes of the segments named (through a set: a person may be in a hundred of
    /// two hundred segments).
    fn inside(&self, names: &[String]) -> HashSet<usize> {
        let names: HashSet<&str> = names.iter().map(String::as_str).collect();
        self.segments
            .iter()
            .enumerate()
            .filter(|(_, s)| names.contains(s.row.name.as_str()))
            .map(|(i, _)| i)
            .collect()
    }
}

/// Computed and network scores of several people.
type ScoresRead = (
    Vec<rapport_store::ScoreRow>,
    Vec<rapport_domain::relationship::GraphScores>,
);

/// These people's computed and network scores, read together.
async fn read_scores(store: &DynStore, ids: Vec<ProfileId>) -> Result<ScoresRead, StoreError> {
    tokio::try_join!(store.scores_of(ids.clone()), store.graph_scores(ids))
}

/// People read together, each taken once by an id asked for: their own or one of their
/// profiles'.
struct ById {
    read: Vec<Option<segments::Loaded>>,
    of: HashMap<ProfileId, usize>,
}

impl ById {
    fn new(read: Vec<segments::Loaded>) -> Self {
        let mut of = HashMap::new();
        for (i, l) in read.iter().enumerate() {
            of.insert(l.id, i);
            for m in &l.members {
                of.insert(*m, i);
            }
        }
        Self {
            read: read.into_iter().map(Some).collect(),
            of,
        }
    }

    fn take(&mut self, id: ProfileId) -> Option<segments::Loaded> {
        self.of.get(&id).and_then(|&i| self.read[i].take())
    }
}

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

/// Latest membership per (person, segment), and the other writes, decided in a step.
type Carry = (BTreeMap<(ProfileId, i64), bool>, Effects);

/// Whether a carry has anything to write.
fn decided_anything((membership, effects): &Carry) -> bool {
    !membership.is_empty() || !effects.is_empty()
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

    /// While no events wait (`rapport serve` calls it at each idle poll), does for up to
    /// `people` people, together, what their next event would otherwise wait for:
    /// 1. held states marked by [`touched`] or [`scores_changed`] (the 15-minute score
    ///    run and refresh mark everyone) have their standing or scores re-read now;
    /// 2. then the states of the most recently active people not held are read ahead,
    ///    so that after a restart, or after redefined segments or a re-org dropped every
    ///    state, their next event finds them held instead of paying a whole load (1–2
    ///    ms; a held state past its TTL costs a profile re-read). Newest activity first,
    ///    up to nine tenths of the capacity.
    ///
    /// Returns how many people it read, or `None` when nothing is left to do (until
    /// people are marked, or every state dropped, again).
    pub async fn warm(
        &mut self,
        store: &DynStore,
        people: usize,
    ) -> Result<Option<usize>, StoreError> {
        if self.warm.is_none() && self.people.is_empty() {
            return Ok(None);
        }
        // Definitions and counters as a step would see them, so the states read now are
        // not dropped or re-read at the next step for being older than them.
        let names = [SETTINGS_VERSION, GENERATION, SCORES, RESET]
            .map(String::from)
            .to_vec();
        let (counters, stamps) = tokio::try_join!(store.counters(names), store.segment_stamps())?;
        let &[settings_version, generation, scores, reset] = counters.as_slice() else {
            return Err(StoreError::Backend(
                "counters: wrong number of values".into(),
            ));
        };
        self.refresh_config(store, (settings_version, stamps))
            .await?;
        self.check_generation(generation, scores, reset);
        let Some(config) = self.config.take() else {
            return Ok(None);
        };
        let result = self.warm_with(store, people, &config).await;
        self.config = Some(config);
        if result.is_err() {
            // Held states may be part-read: start over.
            self.drop_all();
        }
        result
    }

    async fn warm_with(
        &mut self,
        store: &DynStore,
        people: usize,
        config: &Config,
    ) -> Result<Option<usize>, StoreError> {
        let mut standing = Vec::new();
        let mut scores = Vec::new();
        while standing.len() + scores.len() < people.max(1) {
            let Some(id) = self.marked.pop() else {
                break;
            };
            // Re-read already at an event, or gone: nothing to do.
            match self.people.get(&id).and_then(|c| c.recheck) {
                Some(Recheck::Standing) => standing.push(id),
                Some(Recheck::Scores) => scores.push(id),
                None => {}
            }
        }
        if !standing.is_empty() || !scores.is_empty() {
            let n = standing.len() + scores.len();
            if !scores.is_empty() {
                let read = read_scores(store, scores.clone()).await?;
                self.rescore(scores, read);
            }
            if !standing.is_empty() {
                self.recheck(store, standing.clone(), config).await?;
                // Read before any event: nothing of a step to apply at the next one.
                for id in &standing {
                    if let Some(c) = self.people.get_mut(id) {
                        c.ahead = None;
                    }
                }
            }
            store.release_memory().await?;
            return Ok(Some(n));
        }
        let room = (self.capacity * 9 / 10).saturating_sub(self.people.len());
        let Some(before) = self.warm.filter(|_| room > 0 && !config.idle()) else {
            self.warm = None;
            return Ok(None);
        };
        let want = people.min(room).max(1);
        let found = store.recent_people(before, WARM_SCAN).await?;
        let mut ids = Vec::new();
        let mut seen = HashSet::new();
        // Where the next call scans on from: below the last event whose person is taken
        // (or left as held), so people past `want` are found again.
        let mut next = found.next;
        for &(event, id) in &found.people {
            if self.people.contains_key(&id) || !seen.insert(id) {
                continue;
            }
            if ids.len() == want {
                next = Some(event + 1);
                break;
            }
            ids.push(id);
        }
        self.warm = next;
        let n = ids.len();
        if n > 0 {
            self.load(store, ids, config, false).await?;
            // On SQLite the pages those reads cached would be dropped one by one at the
            // next read after a write, in a step: dropped now, while idle.
            store.release_memory().await?;
        }
        Ok(Some(n))
    }

    /// Re-reads segments, rules and offers when they changed since the last step (the
    /// settings version and every segment's `updated_at`, read per step, say so).
    async fn refresh_config(
        &mut self,
        store: &DynStore,
        signature: (i64, Vec<(i64, Millis)>),
    ) -> Result<(), StoreError> {
        if self
            .config
            .as_ref()
            .is_some_and(|c| c.signature == signature)
        {
            return Ok(());
        }
        let rows = store.segment_definitions().await?;
        let ordered = segments::in_order(rows)?;
        let mut segments: Vec<Plan> = Vec::with_capacity(ordered.len());
        let mut table = Vec::new();
        for (row, mut expr) in ordered {
            assign_slots(&mut expr, &mut table);
            let refs = referenced_segments(&expr)
                .iter()
                .filter_map(|n| segments.iter().position(|p| &p.row.name == n))
                .collect();
            let slots = referenced_selectors(&expr)
                .into_iter()
                .filter_map(|s| s.slot.map(|x| x as usize))
                .collect();
            segments.push(Plan {
                reads: ProfileReads::of(&expr),
                row,
                expr,
                slots,
                refs,
            });
        }
        // Rules' and offers' conditions read the same index.
        let (mut rules, rules_saved_at) = rules::compiled(store).await?;
        let mut offers = offers::compiled(store).await?;
        for r in &mut rules {
            r.slot(&mut table);
        }
        for o in &mut offers {
            o.slot(&mut table);
        }
        let membership_history = segments
            .iter()
            .flat_map(|p| referenced_selectors(&p.expr))
            .chain(rules.iter().flat_map(|r| r.history_selectors()))
            .chain(offers.iter().flat_map(|o| o.history_selectors()))
            .any(may_select_membership);
        let cap_window = rules
            .iter()
            .filter_map(|r| r.rule.cap.as_ref())
            .map(|c| c.per_hours * 3_600_000)
            .max()
            .unwrap_or(0);
        self.config = Some(Config {
            signature,
            segments,
            selectors: table,
            rules,
            rules_saved_at,
            offers,
            cap_window,
            membership_history,
        });
        // Memberships of removed or redefined segments are stale in memory.
        self.drop_all();
        Ok(())
    }

    /// Acts on the counters [`touched`], [`scores_changed`] and [`reset`] move (a first
    /// step only notes them: it holds nothing).
    fn check_generation(&mut self, generation: i64, scores: i64, reset: i64) {
        if self.reset.is_some_and(|r| r != reset) {
            self.drop_all();
        }
        self.reset = Some(reset);
        let mut mark = None;
        if self.scores.is_some_and(|s| s != scores) {
            mark = Some(Recheck::Scores);
        }
        if self.generation.is_some_and(|g| g != generation) {
            mark = Some(Recheck::Standing);
        }
        if mark.is_some() {
            for c in self.people.values_mut() {
                c.recheck = c.recheck.max(mark);
            }
            // For `warm`, the most recently used last (taken first).
            let mut by_use: Vec<(u64, ProfileId)> =
                self.people.iter().map(|(id, c)| (c.used, *id)).collect();
            by_use.sort_unstable();
            self.marked = by_use.into_iter().map(|(_, id)| id).collect();
        }
        self.generation = Some(generation);
        self.scores = Some(scores);
    }

    /// Makes sure `id`'s state is in memory and fresh enough for an event from raw
    /// profile `raw`; says whether it was kept, checked against the profile or loaded.
    async fn ensure(
        &mut self,
        store: &DynStore,
        id: ProfileId,
        raw: ProfileId,
        reload: bool,
        views: &HashMap<ProfileId, ProfileView>,
        config: &Config,
    ) -> Result<Held, StoreError> {
        let held = self
            .people
            .get(&id)
            .is_some_and(|c| c.members.contains(&raw));
        self.clock += 1;
        if held {
            let Some(c) = self.people.get_mut(&id) else {
                return Ok(Held::Kept);
            };
            c.used = self.clock;
            if let Some(ahead) = c.ahead.take() {
                return Ok(ahead);
            }
            // A step re-reads what changed for its people before deciding; a state still
            // marked here was missed by that pass: read it whole rather than trust it.
            if c.recheck.is_some() {
                self.load(store, vec![id], config, false).await?;
                return Ok(Held::Loaded);
            }
            if !reload && c.loaded.elapsed() < self.ttl {
                return Ok(Held::Kept);
            }
            // An identify, alias or group may change traits, identities or, by merging,
            // the profiles the person is made of; so may a write that bypassed
            // `touched`, which a state past its TTL is checked for. Re-read the profile,
            // and the whole state only when its profiles or identities changed (a new
            // wallet brings holdings); changed traits or consents redo the segments that
            // read them. The events need no re-read: the engine saw every one in order.
            let read;
            let view = match views.get(&id) {
                Some(v) => v,
                None => {
                    read = store.profile(id).await?;
                    &read
                }
            };
            let (traits, identities, consents) = segments::basics(view);
            if view.member_ids == c.members && identities == c.person.identities {
                if consents != c.person.consents {
                    c.stale.add(Stale::Profile);
                } else if traits != c.person.traits {
                    // Identifies often set traits no segment reads: those redo nothing.
                    c.stale
                        .add(Stale::Traits(changed_traits(&c.person.traits, &traits)));
                }
                c.person.traits = traits;
                c.person.consents = consents;
                c.loaded = Instant::now();
                return Ok(Held::Checked);
            }
        }
        self.load(store, vec![id], config, false).await?;
        Ok(Held::Loaded)
    }

    /// Reads these people's states whole, together, and holds each under the id asked
    /// for. `fresh`: loaded ahead of their events, so the first event of each applies
    /// the step's decisions so far, as after a load at the event.
    async fn load(
        &mut self,
        store: &DynStore,
        ids: Vec<ProfileId>,
        config: &Config,
        fresh: bool,
    ) -> Result<(), StoreError> {
        let since = if config.cap_window > 0 {
            now_millis() - config.cap_window
        } else {
            // No caps: no firings to keep.
            Millis::MAX
        };
        let reads = PersonReads::Whole {
            firings_since: since,
            membership_events: config.membership_history,
        };
        let mut loaded = ById::new(segments::people(store, ids.clone(), reads).await?);
        for id in ids {
            let Some(l) = loaded.take(id) else {
                continue;
            };
            let mut person = l.person;
            person.index = Some(eval::EventIndex::build(&config.selectors, &person.events));
            let inside = config.inside(&person.segments);
            if self.people.len() >= self.capacity && !self.people.contains_key(&id) {
                self.evict();
            }
            self.people.insert(
                id,
                Cached {
                    person,
                    members: l.members,
                    upto: l.upto,
                    fired: l.firings,
                    inside,
                    stale: Stale::All,
                    loaded: Instant::now(),
                    used: self.clock,
                    ahead: fresh.then_some(Held::Loaded),
                    recheck: None,
                },
            );
        }
        Ok(())
    }

    /// Re-reads the standing (profile, memberships, scores, holdings) of these held people
    /// after [`touched`], together, and keeps their history. A person whose profiles
    /// changed (a merge or unmerge) or who is gone is dropped, to be read whole.
    async fn recheck(
        &mut self,
        store: &DynStore,
        ids: Vec<ProfileId>,
        config: &Config,
    ) -> Result<(), StoreError> {
        let mut read =
            ById::new(segments::people(store, ids.clone(), PersonReads::Standing).await?);
        for id in ids {
            let fresh = read.take(id);
            let Some(c) = self.people.get_mut(&id) else {
                continue;
            };
            let Some(l) = fresh.filter(|l| l.members == c.members) else {
                self.people.remove(&id);
                continue;
            };
            let now = l.person;
            let was = &c.person;
            let same_members = now.segments.len() == was.segments.len() && {
                let was: HashSet<&String> = was.segments.iter().collect();
                now.segments.iter().all(|s| was.contains(s))
            };
            let stale = if !same_members || now.holdings != was.holdings {
                Stale::All
            } else if now.identities != was.identities
                || now.consents != was.consents
                || now.scores != was.scores
                || now.computed != was.computed
            {
                Stale::Profile
            } else if now.traits != was.traits {
                Stale::Traits(changed_traits(&was.traits, &now.traits))
            } else {
                Stale::Nothing
            };
            c.stale.add(stale);
            c.inside = config.inside(&now.segments);
            let p = &mut c.person;
            p.traits = now.traits;
            p.identities = now.identities;
            p.consents = now.consents;
            p.scores = now.scores;
            p.computed = now.computed;
            p.holdings = now.holdings;
            p.segments = now.segments;
            c.loaded = Instant::now();
            c.recheck = None;
            c.ahead = Some(Held::Checked);
        }
        Ok(())
    }

    /// Applies the scores re-read for these held people after [`scores_changed`]; what
    /// changed redoes the segments that read scores. The state is otherwise as held (a
    /// state past its TTL still has its profile checked at its event).
    fn rescore(&mut self, ids: Vec<ProfileId>, (computed, graph): ScoresRead) {
        let mut by_id: HashMap<ProfileId, HashMap<String, f64>> = HashMap::new();
        for s in computed {
            by_id
                .entry(s.profile_id)
                .or_default()
                .insert(s.name, s.value);
        }
        let mut graph: HashMap<ProfileId, _> =
            graph.into_iter().map(|g| (g.profile_id, g)).collect();
        for id in ids {
            let Some(c) = self.people.get_mut(&id) else {
                continue;
            };
            let computed = by_id.remove(&id).unwrap_or_default();
            let network = graph.remove(&id).map(segments::network_scores);
            if computed != c.person.computed || network != c.person.scores {
                c.stale.add(Stale::Profile);
                c.person.computed = computed;
                c.person.scores = network;
            }
            c.recheck = None;
        }
    }

    /// Drops the least recently used tenth.
    fn evict(&mut self) {
        let mut by_use: Vec<(u64, ProfileId)> =
            self.people.iter().map(|(id, c)| (c.used, *id)).collect();
        by_use.sort_unstable();
        for (_, id) in by_use.iter().take((self.capacity / 10).max(1)) {
            self.people.remove(id);
        }
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

    /// Nothing new was read: what may be left is the position past the engine's own
    /// events, and what deciding them decided. Decisions are written at once. A bare
    /// position move waits for the next step's commit (which writes it anyway), or for
    /// the next empty read, so the poll that ends a burst costs no commit. A restart
    /// before it decides those events again, as after any crash before a commit.
    async fn idle(
        &mut self,
        store: &DynStore,
        mut report: StepReport,
    ) -> Result<StepReport, StoreError> {
        let Some(&last) = self.skip.last() else {
            return Ok(report);
        };
        let decided = self.carry.as_ref().is_some_and(decided_anything);
        if !decided && !self.idle_once {
            self.idle_once = true;
            return Ok(report);
        }
        self.flush_position(store, last, &mut report).await?;
        Ok(report)
    }

    /// Writes what is carried with the position past the events left out.
    async fn flush_position(
        &mut self,
        store: &DynStore,
        last: i64,
        report: &mut StepReport,
    ) -> Result<(), StoreError> {
        let mut writes = StepWrites::default();
        if let Some(carry) = self.carry.take() {
            Self::add_decisions(carry, &mut writes);
        }
        writes.counters.push((SEGMENT_CURSOR.to_string(), last));
        report.firings += writes.firings.len();
        let tw = Instant::now();
        store.commit_step(writes, now_millis()).await?;
        report.write_us = tw.elapsed().as_secs_f64() * 1e6;
        self.skip.clear();
        self.idle_once = false;
        Ok(())
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

    /// Commits the step's writes, then decides the membership events that commit wrote:
    /// they are already applied, but rules may fire on them and they join each person's
    /// history. What they decided is committed at once, with the position past them,
    /// when nothing else was written since the step's read; otherwise it rides on the
    /// next step's commit, and the next read leaves them out. A step that did not catch up (a full
    /// read: the engine lags) leaves them to be read back in order, as does a skip list
    /// grown past [`MAX_SKIP`], so what the next reads leave out stays small.
    async fn commit_and_follow(
        &mut self,
        store: &DynStore,
        config: &Config,
        position: Option<i64>,
        caught_up: bool,
        writes: StepWrites,
        report: &mut StepReport,
    ) -> Result<(), StoreError> {
        let tw = Instant::now();
        report.firings = writes.firings.len();
        let done = store.commit_step(writes, now_millis()).await?;
        for (_, c) in &done.memberships {
            report.membership_changes += c.entered.len() + c.exited.len();
        }
        report.write_us = tw.elapsed().as_secs_f64() * 1e6;
        if done.events.is_empty() || !caught_up || self.skip.len() + done.events.len() > MAX_SKIP {
            return Ok(());
        }
        let now = now_millis();
        let mut membership = BTreeMap::new();
        let mut effects = Effects::default();
        let no_views = HashMap::new();
        for ev in &done.events {
            self.decide_event(
                store,
                config,
                ev,
                ev.profile_id,
                &no_views,
                now,
                &mut membership,
                &mut effects,
                report,
                true,
            )
            .await?;
        }
        report.derived = done.events.len();
        let carry = (membership, effects);
        if !decided_anything(&carry) || position.is_none_or(|p| p < done.before) {
            // Events came in since the step's read, so another step follows soon: its
            // commit writes these decisions and moves the position past them (its read
            // takes everything after the position, and leaves them out). Under load, one
            // commit per step, which matters with SQLite's single writer. With nothing
            // decided, only the position is left to move: that waits too (see `idle`).
            self.skip.extend(done.events.iter().map(|e| e.id));
            self.skip.sort_unstable();
            self.carry = Some(carry);
            return Ok(());
        }
        // Quiet: their decisions now, with the position past them (nothing else was
        // written after the step's read).
        let mut follow = StepWrites::default();
        Self::add_decisions(carry, &mut follow);
        if let Some(last) = done.events.last() {
            follow.counters.push((SEGMENT_CURSOR.to_string(), last.id));
        }
        report.firings += follow.firings.len();
        let tw = Instant::now();
        // Membership events this commit writes are read and decided by the next step.
        let more = store.commit_step(follow, now).await?;
        for (_, c) in &more.memberships {
            report.membership_changes += c.entered.len() + c.exited.len();
        }
        report.write_us += tw.elapsed().as_secs_f64() * 1e6;
        Ok(())
    }

    /// Decisions as writes: memberships by segment, then firings, traits and static
    /// memberships.
    fn add_decisions((membership, effects): Carry, writes: &mut StepWrites) {
        Self::membership_writes(membership, writes);
        effects.into_writes(writes);
    }

    fn membership_writes(membership: BTreeMap<(ProfileId, i64), bool>, writes: &mut StepWrites) {
        let mut by_segment: BTreeMap<i64, MembershipChange> = BTreeMap::new();
        for ((id, seg), inside) in membership {
            let m = by_segment.entry(seg).or_default();
            if inside {
                m.entered.push(id);
            } else {
                m.exited.push(id);
            }
        }
        writes.memberships.extend(by_segment);
    }

    async fn decide_all(
        &mut self,
        store: &DynStore,
        config: &Config,
        inputs: &Decide<'_>,
        carried: Carry,
        report: &mut StepReport,
        writes: &mut StepWrites,
    ) -> Result<Vec<f64>, StoreError> {
        let now = now_millis();
        let Decide {
            events,
            texts,
            canonical,
            views,
        } = inputs;
        let (events, texts) = (*events, *texts);
        // Held people whose standing may have changed outside the event stream have it
        // re-read together (those found merged join the people loaded whole below).
        let mut recheck: BTreeMap<ProfileId, Recheck> = BTreeMap::new();
        for ev in events {
            let Some(&id) = canonical.get(&ev.profile_id) else {
                continue;
            };
            if let Some(r) = self.people.get(&id).and_then(|c| c.recheck) {
                recheck.insert(id, r);
            }
        }
        let (standing, rescore): (Vec<_>, Vec<_>) = recheck
            .into_iter()
            .partition(|(_, r)| *r == Recheck::Standing);
        let rescore: Vec<ProfileId> = rescore.into_iter().map(|(id, _)| id).collect();
        if !standing.is_empty() {
            let t = Instant::now();
            let ids = standing.into_iter().map(|(id, _)| id).collect();
            self.recheck(store, ids, config).await?;
            report.load_us += t.elapsed().as_secs_f64() * 1e6;
        }
        // People not held are loaded together here rather than one by one as their
        // events come (on PostgreSQL: five statements for all instead of six round
        // trips each).
        let cold: BTreeSet<ProfileId> = events
            .iter()
            .filter_map(|ev| canonical.get(&ev.profile_id).map(|&id| (id, ev.profile_id)))
            .filter(|(id, raw)| !self.people.get(id).is_some_and(|c| c.members.contains(raw)))
            .map(|(id, _)| id)
            .collect();
        if !cold.is_empty() {
            let t = Instant::now();
            self.load(store, cold.into_iter().collect(), config, true)
                .await?;
            report.load_us += t.elapsed().as_secs_f64() * 1e6;
        }
        // Held states past their TTL are checked against their profiles, read together
        // here rather than one read per person as their events come.
        let expired: BTreeSet<ProfileId> = events
            .iter()
            .filter_map(|ev| canonical.get(&ev.profile_id).copied())
            .filter(|id| {
                !views.contains_key(id)
                    && self
                        .people
                        .get(id)
                        .is_some_and(|c| c.loaded.elapsed() >= self.ttl)
            })
            .collect();
        // With the scores of those a score run changed, at once: after a score run most
        // returning people need both.
        let t = Instant::now();
        let (profiles, scores) = tokio::try_join!(
            async {
                if expired.is_empty() {
                    Ok(Vec::new())
                } else {
                    store.profiles(expired.iter().copied().collect()).await
                }
            },
            async {
                if rescore.is_empty() {
                    Ok(None)
                } else {
                    read_scores(store, rescore.clone()).await.map(Some)
                }
            },
        )?;
        if let Some(scores) = scores {
            report.checks += rescore.len();
            self.rescore(rescore, scores);
            report.load_us += t.elapsed().as_secs_f64() * 1e6;
        }
        let read_views;
        let views = if expired.is_empty() {
            views
        } else {
            let mut all = views.clone();
            all.extend(profiles.into_iter().map(|v| (v.id, v)));
            read_views = all;
            &read_views
        };
        // Latest membership per (person, segment) decided in this step (after what the
        // previous one carried: not in the store yet, so applied to states loaded now).
        let (mut membership, mut effects) = carried;
        let mut own = Vec::with_capacity(events.len());
        for ev in events {
            let t = Instant::now();
            if let Some(&id) = canonical.get(&ev.profile_id) {
                self.decide_event(
                    store,
                    config,
                    ev,
                    id,
                    views,
                    now,
                    &mut membership,
                    &mut effects,
                    report,
                    false,
                )
                .await?;
            }
            own.push(t.elapsed().as_secs_f64() * 1e6);
        }
        // A text changes sentiment and complaint conditions: reload, then decide.
        for (_, raw) in texts {
            let Some(&id) = canonical.get(raw) else {
                continue;
            };
            // The texts are in the store, not in the event: a full reload.
            self.people.remove(&id);
            self.ensure(store, id, *raw, false, views, config).await?;
            report.loads += 1;
            if let Some(c) = self.people.get_mut(&id) {
                pending(config, id, c, &membership, &effects);
                c.stale.add(Stale::All);
                evaluate(config, id, c, &[], now, &mut membership);
                if !config.offers.is_empty() {
                    offers::decide_in_memory(&config.offers, id, &mut c.person, now, &mut effects);
                }
            }
        }
        Self::add_decisions((membership, effects), writes);
        Ok(own)
    }

    /// Decides one event of person `id`. `own_event`: a membership event this engine
    /// just wrote, already applied, so only rules see it, and it joins the person's
    /// history without moving the state's position (events the step did not read may
    /// have smaller ids).
    #[allow(clippy::too_many_arguments)]
    async fn decide_event(
        &mut self,
        store: &DynStore,
        config: &Config,
        ev: &EventView,
        id: ProfileId,
        views: &HashMap<ProfileId, ProfileView>,
        now: Millis,
        membership: &mut BTreeMap<(ProfileId, i64), bool>,
        effects: &mut Effects,
        report: &mut StepReport,
        own_event: bool,
    ) -> Result<(), StoreError> {
        let reload = reloads(ev);
        let tl = Instant::now();
        // A membership event is written with the person's id, itself one of its profiles.
        let held = self
            .ensure(store, id, ev.profile_id, reload, views, config)
            .await?;
        report.load_us += tl.elapsed().as_secs_f64() * 1e6;
        let Some(c) = self.people.get_mut(&id) else {
            return Ok(());
        };
        match held {
            Held::Loaded => report.loads += 1,
            Held::Checked => report.checks += 1,
            Held::Kept => {}
        }
        // A state read now, or with its traits re-read, lacks this step's decisions.
        if held != Held::Kept {
            pending(config, id, c, membership, effects);
        }
        let lite = rules::as_event(ev);
        // Memberships this engine wrote are already applied.
        let decide = ev.source != "segments";
        // Which selectors this event matches, tested once for the index and the plans.
        let matched: Vec<bool> = config
            .selectors
            .iter()
            .map(|s| eval::event_matches(s, &lite))
            .collect();
        if ev.id > c.upto {
            // Kept as a load would read it.
            if config.membership_history || !is_membership(ev) {
                let pos = c.person.events.len() as u32;
                if let Some(ix) = c.person.index.as_mut() {
                    for (list, _) in ix.lists.iter_mut().zip(&matched).filter(|(_, m)| **m) {
                        list.push(pos);
                    }
                }
                c.person.events.push(lite);
            }
            if !own_event {
                c.upto = ev.id;
            }
        }
        let patches = effects.patched();
        if decide {
            evaluate(config, id, c, &matched, now, membership);
            if !config.offers.is_empty() {
                offers::decide_in_memory(&config.offers, id, &mut c.person, now, effects);
            }
        }
        if ev.source != rules::SOURCE
            && ev.received_at.timestamp_millis() >= config.rules_saved_at
            && !config.rules.is_empty()
        {
            rules::fire(
                store,
                &config.rules,
                id,
                ev,
                &mut c.person,
                &mut c.fired,
                &matched,
                now,
                effects,
            )
            .await?;
        }
        // A trait an offer or rule set may be in any definition.
        if effects.patched() != patches {
            c.stale.add(Stale::Profile);
            evaluate(config, id, c, &[], now, membership);
        }
        Ok(())
    }
}

/// The segments an event may have changed against one person, in dependency order, noting
/// what changed: those with a selector the event matches (`matched`, by slot; empty for
/// none), those a changed segment refers to, and what the person's state says is stale
/// (all after a load; those reading the profile after a trait or consent change).
/// Windows sliding with time are the batch refresh's job (and each load's).
fn evaluate(
    config: &Config,
    id: ProfileId,
    c: &mut Cached,
    matched: &[bool],
    now: Millis,
    membership: &mut BTreeMap<(ProfileId, i64), bool>,
) {
    let stale = std::mem::take(&mut c.stale);
    let mut changed = vec![false; config.segments.len()];
    for (i, plan) in config.segments.iter().enumerate() {
        let needed = plan.reads.affected_by(&stale)
            || plan.slots.iter().any(|&s| matched.get(s) == Some(&true))
            || plan.refs.iter().any(|&j| changed[j]);
        if !needed {
            continue;
        }
        let inside = eval::eval(&plan.expr, &c.person, now);
        if inside == c.inside.contains(&i) {
            continue;
        }
        changed[i] = true;
        membership.insert((id, plan.row.id), inside);
        // Later segments may refer to this one.
        if inside {
            c.inside.insert(i);
            c.person.segments.push(plan.row.name.clone());
        } else {
            c.inside.remove(&i);
            c.person.segments.retain(|s| s != &plan.row.name);
        }
    }
}

/// A state just loaded from the store does not hold this step's decisions yet (they are
/// written at its end): applies them.
fn pending(
    config: &Config,
    id: ProfileId,
    c: &mut Cached,
    membership: &BTreeMap<(ProfileId, i64), bool>,
    effects: &Effects,
) {
    for ((_, seg), inside) in membership.range((id, i64::MIN)..=(id, i64::MAX)) {
        let Some(i) = config.segments.iter().position(|p| p.row.id == *seg) else {
            continue;
        };
        let name = &config.segments[i].row.name;
        c.person.segments.retain(|s| s != name);
        c.inside.remove(&i);
        if *inside {
            c.person.segments.push(name.clone());
            c.inside.insert(i);
        }
    }
    effects.apply_pending(id, &mut c.person.traits);
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn keys(k: &[&str]) -> BTreeSet<String> {
        k.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn only_the_traits_a_segment_reads_make_it_stale() {
        let plan = |src: &str| ProfileReads::of(&rapport_segment::parse(src).expect(src));
        let title = plan("traits.title ~ \"market\" or count(page, 7d) >= 1");
        assert!(title.affected_by(&Stale::Traits(keys(&["title", "plan"]))));
        assert!(!title.affected_by(&Stale::Traits(keys(&["last_seen_plan"]))));
        assert!(title.affected_by(&Stale::Profile));
        let nested = plan("not traits.address.city = \"Paris\"");
        assert!(nested.affected_by(&Stale::Traits(keys(&["address"]))));
        let consent = plan("has email and not consent(email, marketing) = denied");
        assert!(!consent.affected_by(&Stale::Traits(keys(&["title"]))));
        assert!(consent.affected_by(&Stale::Profile));
        let events = plan("count(track \"Order Completed\") >= 2");
        assert!(!events.affected_by(&Stale::Profile));
        assert!(events.affected_by(&Stale::All));
    }

    #[test]
    fn membership_events_are_kept_only_for_selectors_that_may_match_them() {
        let sels = |src: &str| {
            let e = rapport_segment::parse(src).expect(src);
            referenced_selectors(&e)
                .into_iter()
                .any(may_select_membership)
        };
        assert!(!sels(
            "count(track \"Order Completed\") >= 1 and count(page) >= 2"
        ));
        assert!(sels("count(track \"Segment Entered\") >= 1"));
        assert!(sels("days_since(track \"Segment Exited\") <= 3"));
        // Any track event, or any event at all, may be one.
        assert!(sels("count(track) >= 10"));
    }

    #[test]
    fn staleness_adds_up() {
        let mut s = Stale::Nothing;
        s.add(Stale::Traits(keys(&["a"])));
        s.add(Stale::Traits(keys(&["b"])));
        assert_eq!(s, Stale::Traits(keys(&["a", "b"])));
        s.add(Stale::Nothing);
        assert_eq!(s, Stale::Traits(keys(&["a", "b"])));
        s.add(Stale::Profile);
        assert_eq!(s, Stale::Profile);
        s.add(Stale::Traits(keys(&["c"])));
        assert_eq!(s, Stale::Profile);
        s.add(Stale::All);
        assert_eq!(s, Stale::All);
    }

    #[test]
    fn changed_traits_are_those_that_differ() {
        let old = json!({"plan": "pro", "title": "CTO", "city": "Oslo"});
        let new = json!({"plan": "free", "title": "CTO", "seen": 1});
        assert_eq!(changed_traits(&old, &new), keys(&["city", "plan", "seen"]));
        assert!(changed_traits(&new, &new).is_empty());
    }
}
