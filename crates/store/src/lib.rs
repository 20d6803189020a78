//! Storage behind one trait with two real implementations: SQLite (embedded, the
//! default) and PostgreSQL. Both run the same versioned migrations on open and pass the
//! same integration suite.
//!
//! Identity resolution runs *inside* the ingest transaction: the store loads a
//! [`Snapshot`](rapport_domain::resolve::Snapshot), the pure resolver plans the writes,
//! and the store applies the plan before committing. A group is therefore atomic, and
//! since one writer runs at a time (a lock in SQLite, an advisory lock in PostgreSQL)
//! resolution always sees the latest state.

use async_trait::async_trait;
use rapport_domain::apikey::Scope;
use rapport_domain::model::{
    ConflictView, ConsentStatus, EventView, MergeView, Page, ProfileSummary, ProfileView,
    SentimentDay, Stats, TextAnalysisView,
};
use rapport_domain::relationship::{
    GraphRun, GraphScores, RelationshipView, RelationshipWrite, TouchView,
};
use rapport_domain::resolve::{EventRow, ProfileId};
use rapport_domain::time::Millis;
use rapport_domain::{IdentityKey, Message};
use std::sync::Arc;

pub mod chain;
mod common;
mod overview_sql;
pub mod postgres;
pub mod sqlite;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("database error: {0}")]
    Backend(String),
    /// A peer the service needs (an EVM node) did not answer; retrying may work.
    #[error("{0}")]
    Unavailable(String),
}

impl StoreError {
    pub fn invalid(field: &str, reason: impl Into<String>) -> Self {
        StoreError::Invalid {
            field: field.to_string(),
            reason: reason.into(),
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Backend(e.to_string())
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        // "db error" alone says nothing: keep the server's message.
        match e.as_db_error() {
            Some(d) => StoreError::Backend(format!("{}: {}", d.code().code(), d.message())),
            None => StoreError::Backend(e.to_string()),
        }
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        StoreError::Backend(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// What one ingested group did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestOutcome {
    pub accepted: usize,
    pub duplicates: usize,
    pub profiles_created: usize,
    pub identities_created: usize,
    pub merges: usize,
    pub conflicts: usize,
}

impl IngestOutcome {
    pub fn add(&mut self, o: &IngestOutcome) {
        self.accepted += o.accepted;
        self.duplicates += o.duplicates;
        self.profiles_created += o.profiles_created;
        self.identities_created += o.identities_created;
        self.merges += o.merges;
        self.conflicts += o.conflicts;
    }
}

/// Messages from one source (an API key prefix, `cli`, `import`…).
#[derive(Debug, Clone)]
pub struct SourcedMessages {
    pub source: String,
    pub messages: Vec<Message>,
}

#[derive(Debug, Clone, Default)]
pub struct TimelineFilter {
    pub types: Vec<String>,
    pub channels: Vec<String>,
    pub names: Vec<String>,
    pub since: Option<Millis>,
    pub until: Option<Millis>,
    /// Keyset cursor: events strictly older than `(occurred_at, id)`.
    pub before: Option<(Millis, i64)>,
    pub limit: usize,
}

#[derive(Debug, Clone)]
pub struct ConsentInput {
    pub channel: String,
    pub purpose: String,
    pub status: ConsentStatus,
    pub source: String,
    pub proof: Option<String>,
    pub at: Millis,
}

#[derive(Debug, Clone)]
pub struct ApiKeyRecord {
    pub id: i64,
    pub prefix: String,
    pub scope: Scope,
    pub label: String,
    pub created_at: Millis,
    pub revoked: bool,
}

/// Which merge to undo.
#[derive(Debug, Clone, Copy)]
pub enum UnmergeTarget {
    /// The latest active merge that absorbed this profile.
    MergedProfile(ProfileId),
    Merge(i64),
}

/// Which relationships to read; ids are profiles (any member of a cluster).
#[derive(Debug, Clone)]
pub enum RelScope {
    /// Every relationship with either end among these people.
    Touching(Vec<ProfileId>),
    /// Relationships with both ends among these people.
    Among(Vec<ProfileId>),
    /// Every relationship (exports).
    All,
}

/// Touches (inferred observations) to read; ends are profiles (any cluster member).
#[derive(Debug, Clone, Default)]
pub struct TouchQuery {
    pub sources: Option<Vec<ProfileId>>,
    pub targets: Option<Vec<ProfileId>>,
    pub kinds: Vec<String>,
    pub since: Option<Millis>,
    pub until: Option<Millis>,
    pub limit: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScoreOrder {
    Pagerank,
    Betweenness,
    Syndication,
    Evangelist,
}

impl ScoreOrder {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pagerank" | "influence" => ScoreOrder::Pagerank,
            "betweenness" | "brokerage" => ScoreOrder::Betweenness,
            "syndication" | "connector" => ScoreOrder::Syndication,
            "evangelist" => ScoreOrder::Evangelist,
            _ => return None,
        })
    }

    pub fn column(self) -> &'static str {
        match self {
            ScoreOrder::Pagerank => "pagerank",
            ScoreOrder::Betweenness => "betweenness",
            ScoreOrder::Syndication => "syndication",
            ScoreOrder::Evangelist => "evangelist",
        }
    }
}

/// Per person activity over a window: distinct active days and events per channel.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Activity {
    pub active_days: i64,
    pub channels: Vec<(String, i64)>,
}

pub const GRAPH_VERSION: &str = "graph_version";
pub const CATALOGUE_VERSION: &str = "catalogue_version";
pub const SETTINGS_VERSION: &str = "settings_version";

/// An event's text waiting for analysis.
#[derive(Debug, Clone)]
pub struct TextRow {
    pub event_id: i64,
    pub profile_id: ProfileId,
    pub occurred_at: Millis,
    pub text: String,
}

/// Per person text statistics over a window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TextStats {
    pub texts: i64,
    pub mean: Option<f64>,
}

/// A saved segment.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct SegmentRow {
    pub id: i64,
    pub name: String,
    pub definition: String,
    pub description: String,
    /// `dynamic` (kept current from its definition) or `micro` (set by clustering).
    pub kind: String,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub refreshed_at: Option<Millis>,
    pub size: i64,
}

/// One point of a segment's size history.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct SegmentSize {
    pub at: Millis,
    pub size: i64,
    pub entered: i64,
    pub exited: i64,
}

/// Who entered and left a segment in one write.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct MembershipChange {
    pub entered: Vec<ProfileId>,
    pub exited: Vec<ProfileId>,
}

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
}

/// What [`Store::step_inputs`] reads.
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

pub use chain::{
    ChainBatch, ChainRollback, ChainRow, ContractRow, HoldingRow, LogRow, RewardRow, UserRow,
};
pub use rapport_segment::sql::{Compiled, Dialect, Param};

/// The dashboard's counts.
#[derive(
    Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
pub struct Overview {
    /// (day as days since the epoch, events) for days with events since `since`.
    pub events_per_day: Vec<(i64, i64)>,
    /// (channel, events) since `since`, largest first.
    pub channels: Vec<(String, i64)>,
    /// People with a user id, e-mail or phone.
    pub identified: i64,
    pub people: i64,
    pub new_this_week: i64,
    /// People with only web2 identifiers (e-mail, phone, social), only wallets, or both.
    pub web2_only: i64,
    pub web3_only: i64,
    pub both: i64,
}

/// One firing of a decision rule: who, on which event, and what each action did.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Firing {
    pub id: i64,
    pub rule: String,
    pub profile_id: ProfileId,
    pub event_id: i64,
    pub at: Millis,
    #[schema(value_type = Object)]
    pub actions: serde_json::Value,
}

/// One outbound delivery (a webhook call) and where it stands.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Outbound {
    pub id: i64,
    pub rule: String,
    pub profile_id: ProfileId,
    pub url: String,
    /// The HMAC key; never serialised.
    #[serde(skip)]
    pub secret: String,
    pub body: String,
    pub attempts: i64,
    pub max_attempts: i64,
    pub next_at: Millis,
    /// `pending`, `delivered` or `dead`.
    pub status: String,
    pub last_error: Option<String>,
    pub created_at: Millis,
    pub delivered_at: Option<Millis>,
}

/// A task a rule opened for staff.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Task {
    pub id: i64,
    pub profile_id: ProfileId,
    pub rule: String,
    pub title: String,
    pub body: String,
    pub status: String,
    pub created_at: Millis,
}

/// One person's value of one computed score, with why.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct ScoreRow {
    pub name: String,
    pub profile_id: ProfileId,
    pub value: f64,
    #[schema(value_type = Object)]
    pub explanation: serde_json::Value,
    pub computed_at: Millis,
}

impl ScoreRow {
    /// The value alone, as the real-time engine reads it: no explanation (null), no time
    /// (0).
    pub fn value_only(name: String, profile_id: ProfileId, value: f64) -> Self {
        Self {
            name,
            profile_id,
            value,
            explanation: serde_json::Value::Null,
            computed_at: 0,
        }
    }
}

/// What [`Store::recent_people`] found.
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
    /// Their events, oldest first, as [`Store::person_activity`] reads them.
    pub events: Vec<EventView>,
    /// Their analysed texts, `(occurred_at, compound, complaint confidence)`.
    pub texts: Vec<(Millis, f64, f64)>,
    /// Names of the segments they are in.
    pub segments: Vec<String>,
    pub scores: Vec<ScoreRow>,
    /// Rule firings since the time asked, `(rule, at)`.
    pub firings: Vec<(String, Millis)>,
}

/// How much of each person [`Store::person_loads`] reads.
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

/// Per person: the last time of an event, and the count and numeric sum of a property
/// over the events since a time (RFM's inputs).
#[derive(Debug, Clone, PartialEq)]
pub struct PurchaseStats {
    pub profile_id: ProfileId,
    pub last_at: Millis,
    pub count: i64,
    pub sum: f64,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `sqlite` or `postgres`.
    fn kind(&self) -> &'static str;

    // --- ingestion (identity resolution happens here, in one transaction) ---
    async fn ingest(&self, groups: Vec<SourcedMessages>) -> Result<IngestOutcome>;
    /// Baseline for benchmarks: the same event rows, inserted with no resolution.
    async fn insert_events_raw(&self, rows: Vec<EventRow>, source: &str) -> Result<()>;
    /// As `insert_events_raw`, skipping events whose message id is already stored.
    async fn insert_events_once(&self, rows: Vec<EventRow>, source: &str) -> Result<()>;

    // --- profiles ---
    async fn profile(&self, id: ProfileId) -> Result<ProfileView>;
    /// Several people at once, unknown ids left out, without their merge history
    /// (`merges` empty): the real-time engine checks the states it holds with it.
    async fn profiles(&self, ids: Vec<ProfileId>) -> Result<Vec<ProfileView>>;
    async fn lookup(&self, key: &IdentityKey) -> Result<Option<ProfileId>>;
    async fn search(
        &self,
        q: Option<&str>,
        limit: usize,
        after: Option<ProfileId>,
    ) -> Result<Page<ProfileSummary>>;
    async fn timeline(&self, id: ProfileId, filter: &TimelineFilter) -> Result<Page<EventView>>;
    async fn patch_traits(
        &self,
        id: ProfileId,
        patch: &serde_json::Value,
        at: Millis,
    ) -> Result<()>;
    async fn set_consent(&self, id: ProfileId, consent: &ConsentInput) -> Result<()>;
    async fn merge(&self, a: ProfileId, b: ProfileId, by: &str, at: Millis) -> Result<MergeView>;
    async fn unmerge(&self, target: UnmergeTarget, by: &str, at: Millis) -> Result<MergeView>;
    async fn conflicts(&self, limit: usize) -> Result<Vec<ConflictView>>;
    async fn merges(&self, limit: usize) -> Result<Vec<MergeView>>;
    /// Events in id order, for export.
    async fn events_after(&self, after: i64, limit: usize) -> Result<Vec<EventView>>;
    async fn stats(&self) -> Result<Stats>;

    // --- relationships and graph analytics ---
    /// Stores relationship observations in one transaction, bumping the graph version;
    /// `cursor` (name, position) is saved in the same transaction by background workers.
    async fn upsert_relationships(
        &self,
        writes: Vec<RelationshipWrite>,
        cursor: Option<(String, i64)>,
    ) -> Result<()>;
    /// The cluster each identifier belongs to, in order (`None` when unknown).
    async fn lookup_many(&self, keys: Vec<IdentityKey>) -> Result<Vec<Option<ProfileId>>>;
    /// Every relationship as `(source cluster, target cluster, weight)`, kinds not summed.
    async fn graph_edges(&self) -> Result<Vec<(ProfileId, ProfileId, f64)>>;
    async fn relationships(&self, scope: RelScope, limit: usize) -> Result<Vec<RelationshipView>>;
    async fn touches(&self, q: TouchQuery) -> Result<Vec<TouchView>>;
    /// A named counter (`graph_version`, worker cursors); 0 when never set.
    async fn counter(&self, name: &str) -> Result<i64>;
    /// Sets named counters (workers' positions) in one transaction.
    async fn set_counters(&self, values: Vec<(String, i64)>) -> Result<()>;
    /// Several named counters at once, in the order asked (0 when unset).
    async fn counters(&self, names: Vec<String>) -> Result<Vec<i64>>;
    /// Sets a named counter (a worker's position).
    async fn set_counter(&self, name: &str, value: i64) -> Result<()> {
        self.set_counters(vec![(name.to_string(), value)]).await
    }
    /// Replaces every person's graph scores with a new computation's, atomically.
    async fn save_graph_run(
        &self,
        started_at: Millis,
        finished_at: Millis,
        graph_version: i64,
        summary: serde_json::Value,
        scores: Vec<GraphScores>,
    ) -> Result<i64>;
    async fn latest_graph_run(&self) -> Result<Option<GraphRun>>;
    async fn graph_scores(&self, ids: Vec<ProfileId>) -> Result<Vec<GraphScores>>;
    async fn top_graph_scores(
        &self,
        by: ScoreOrder,
        community: Option<i64>,
        limit: usize,
    ) -> Result<Vec<GraphScores>>;
    /// Communities of the latest run with their sizes, largest first.
    async fn communities(&self, limit: usize) -> Result<Vec<(i64, i64)>>;
    async fn event(&self, id: i64) -> Result<EventView>;
    /// Events of these people (clusters) with one of `names`, in `[since, until]`.
    async fn named_events(
        &self,
        people: Vec<ProfileId>,
        names: Vec<String>,
        since: Millis,
        until: Millis,
        limit: usize,
    ) -> Result<Vec<EventView>>;
    async fn activity(&self, id: ProfileId, since: Millis) -> Result<Activity>;
    /// Events with ids in `(after, after + span]` that may imply a relationship (a
    /// `properties` key of [`HINT_KEYS`](rapport_domain::relationship::HINT_KEYS) or
    /// an `@` in the text; `context` left out), and the position to resume from:
    /// `after + span`, or the last event's id when that is lower.
    async fn relationship_candidates(&self, after: i64, span: i64)
        -> Result<(Vec<EventView>, i64)>;
    // --- text analytics ---
    /// Events with text in `(after, after + span]` and the position to resume from.
    async fn text_candidates(&self, after: i64, span: i64) -> Result<(Vec<TextRow>, i64)>;
    /// Stores analyses and the worker's new position in one transaction; `complaint`
    /// and `churn_risk` confidences are columns for the signals below.
    async fn save_text_analyses(
        &self,
        rows: Vec<TextAnalysisView>,
        cursor: (String, i64),
    ) -> Result<()>;
    async fn text_analysis(&self, event_id: i64) -> Result<Option<TextAnalysisView>>;
    /// Daily sentiment of everyone's texts, or these people's, in `[since, until]`.
    async fn sentiment_series(
        &self,
        people: Option<Vec<ProfileId>>,
        since: Millis,
        until: Millis,
    ) -> Result<Vec<SentimentDay>>;
    /// Count and mean sentiment of a person's texts since `since`.
    async fn text_stats(&self, id: ProfileId, since: Millis) -> Result<TextStats>;
    /// Replaces the product catalogue (bumps the `catalogue_version` counter).
    async fn set_catalogue(&self, names: Vec<String>, at: Millis) -> Result<()>;
    async fn catalogue(&self) -> Result<Vec<String>>;
    /// Per product (`kind` `product`) or tracked topic (`topic`): texts mentioning it
    /// in the window and their mean sentiment, most mentioned first.
    async fn tag_voice(
        &self,
        kind: &str,
        since: Millis,
        until: Millis,
    ) -> Result<Vec<(String, i64, f64)>>;
    /// Daily sentiment of the texts mentioning one product or topic.
    async fn tag_series(
        &self,
        kind: &str,
        name: &str,
        since: Millis,
        until: Millis,
    ) -> Result<Vec<rapport_domain::model::SentimentDay>>;
    /// Which SQL the segment compiler must produce for this store.
    fn dialect(&self) -> Dialect;
    /// People (canonical ids) matching a compiled segment condition: how many, and the
    /// first `sample` by id.
    async fn segment_matches(&self, c: Compiled, sample: usize) -> Result<(i64, Vec<ProfileId>)>;
    /// Every person matching a compiled segment condition, by id.
    async fn segment_all_matches(&self, c: Compiled) -> Result<Vec<ProfileId>>;
    /// Copies the numbers of up to `max_events` events past `counters.event_numbers`
    /// into `event_numbers` and moves that position; returns how many event ids it
    /// covered (0 when caught up). Segment SQL reads the events past the position from
    /// their JSON, so this only keeps that tail short. PostgreSQL keeps the table by
    /// trigger and always returns 0.
    async fn index_event_numbers(&self, max_events: usize) -> Result<usize>;
    /// The event number index's position and the newest event id: (position, last).
    /// PostgreSQL, kept by trigger, reports (0, 0).
    async fn event_numbers_position(&self) -> Result<(i64, i64)>;
    /// Saves a new segment of `kind` (conflict when the name is taken).
    async fn create_segment(
        &self,
        name: &str,
        definition: &str,
        description: &str,
        kind: &str,
        at: Millis,
    ) -> Result<SegmentRow>;
    async fn update_segment(
        &self,
        id: i64,
        definition: &str,
        description: &str,
        at: Millis,
    ) -> Result<SegmentRow>;
    async fn segments(&self) -> Result<Vec<SegmentRow>>;
    /// Every segment without its size (cheap: the real-time worker reads this per step).
    async fn segment_definitions(&self) -> Result<Vec<SegmentRow>>;
    /// Every segment's (id, updated_at): how the real-time worker sees, per step, that
    /// definitions changed.
    async fn segment_stamps(&self) -> Result<Vec<(i64, Millis)>>;
    /// What a real-time step reads before deciding: the counters `q.counters` names (the
    /// first two are its event and text positions), up to `q.limit` events and analysed
    /// texts after them, the segments' stamps, and the person of each raw profile those
    /// events and texts belong to. Stores that can answer in one read override this.
    async fn step_inputs(&self, q: StepQuery) -> Result<StepInputs> {
        let counters = self.counters(q.counters.clone()).await?;
        let (events_pos, texts_pos) = StepQuery::positions(&counters)?;
        let (events, texts, stamps) = futures_util::try_join!(
            self.events_after(events_pos, q.limit + q.skip.len()),
            self.analyses_after(texts_pos, q.limit),
            self.segment_stamps(),
        )?;
        let events = q.unskipped(events);
        let raw = step_profiles(&events, &texts);
        let canonical = if raw.is_empty() {
            Vec::new()
        } else {
            self.canonical_ids(raw).await?
        };
        let persons = reread_persons(&events, &canonical, &q.reread_after);
        let profiles = if persons.is_empty() {
            Vec::new()
        } else {
            self.profiles(persons).await?
        };
        Ok(StepInputs {
            counters,
            events,
            texts,
            stamps,
            canonical,
            profiles,
        })
    }
    async fn segment(&self, id: i64) -> Result<SegmentRow>;
    async fn segment_by_name(&self, name: &str) -> Result<Option<SegmentRow>>;
    async fn delete_segment(&self, id: i64) -> Result<()>;
    /// Makes `members` the segment's membership: in one transaction, adds and removes
    /// the difference, writes a `Segment Entered` / `Segment Exited` event on each
    /// person's timeline and a size-history point.
    async fn set_segment_members(
        &self,
        id: i64,
        members: Vec<ProfileId>,
        at: Millis,
    ) -> Result<MembershipChange>;
    /// A real-time step's writes in one transaction; returns the membership changes that
    /// were real, per segment, and the events written for them.
    async fn commit_step(&self, w: StepWrites, at: Millis) -> Result<StepDone>;
    async fn segment_member_ids(
        &self,
        id: i64,
        after: ProfileId,
        limit: usize,
    ) -> Result<Vec<ProfileId>>;
    async fn segment_sizes(&self, id: i64, since: Millis) -> Result<Vec<SegmentSize>>;
    /// Everything a person (canonical id) did and wrote, oldest first: their events (without
    /// context, text or message id, which the evaluator does not read) and their analysed
    /// texts as (occurred_at, compound, complaint confidence). One person's part of what
    /// [`Store::person_loads`] reads for many.
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
    /// Replaces every stored value of the scores named in `names` with `rows`, in one
    /// transaction.
    async fn replace_scores(&self, names: Vec<String>, rows: Vec<ScoreRow>) -> Result<()>;
    /// Everyone's value of one computed score.
    async fn score_values(&self, name: &str) -> Result<Vec<(ProfileId, f64)>>;
    /// A person's (canonical id) computed scores.
    async fn profile_scores(&self, id: ProfileId) -> Result<Vec<ScoreRow>>;
    /// Several people's (canonical ids) computed score values, in one read, without
    /// explanations or times ([`ScoreRow::value_only`]: what the real-time engine reads;
    /// [`Store::profile_scores`] has the rest).
    async fn scores_of(&self, ids: Vec<ProfileId>) -> Result<Vec<ScoreRow>>;
    /// RFM inputs for everyone with at least one such event: last time (all time), and
    /// count and sum of the numeric `prop` since `since`.
    async fn purchase_stats(
        &self,
        event: &str,
        prop: &str,
        since: Millis,
        until: Millis,
    ) -> Result<Vec<PurchaseStats>>;
    /// Analysed texts after an event id, in event order: (event id, raw profile id).
    async fn analyses_after(&self, after: i64, limit: usize) -> Result<Vec<(i64, ProfileId)>>;
    /// Queues an outbound delivery; returns its id.
    async fn enqueue(&self, o: Outbound) -> Result<i64>;
    /// Pending deliveries due by `now`, oldest first.
    async fn due_outbound(&self, now: Millis, limit: usize) -> Result<Vec<Outbound>>;
    /// Saves a delivery's attempts, status, next time and error.
    async fn update_outbound(&self, o: Outbound) -> Result<()>;
    /// Deliveries, newest first, of one status or all.
    async fn outbound(&self, status: Option<String>, limit: usize) -> Result<Vec<Outbound>>;
    /// Records a rule firing (the audit); returns its id.
    async fn record_firing(&self, f: Firing) -> Result<i64>;
    /// Latest firings, of one rule or all, newest first.
    async fn firings(&self, rule: Option<String>, limit: usize) -> Result<Vec<Firing>>;
    /// How often a rule fired for a person since a time (frequency caps).
    async fn count_firings(&self, rule: &str, profile: ProfileId, since: Millis) -> Result<i64>;
    /// A person's firings since a time, `(rule, at)`. The real-time engine reads them
    /// for a step's people with [`Store::person_loads`] and keeps them in memory, to
    /// apply frequency caps without a query per rule.
    async fn firing_times(
        &self,
        profile: ProfileId,
        since: Millis,
    ) -> Result<Vec<(String, Millis)>>;
    /// The person (canonical id) each raw profile id belongs to; unknown ids are left out.
    async fn canonical_ids(&self, ids: Vec<ProfileId>) -> Result<Vec<(ProfileId, ProfileId)>>;
    async fn create_task(&self, t: Task) -> Result<i64>;
    /// Latest tasks, newest first.
    async fn tasks(&self, limit: usize) -> Result<Vec<Task>>;
    /// Names of the segments a person (canonical id) is in.
    async fn profile_segments(&self, id: ProfileId) -> Result<Vec<String>>;
    /// A brand setting (JSON), `None` when never set.
    async fn setting(&self, key: &str) -> Result<Option<serde_json::Value>>;
    /// Sets a brand setting and bumps the `settings_version` counter, so workers
    /// holding derived state (the analyzer) rebuild it.
    async fn set_setting(&self, key: &str, value: serde_json::Value, at: Millis) -> Result<()>;
    /// Texts of events in `[since, until)`, newest first: `(event id, time, text)`.
    async fn texts_between(
        &self,
        since: Millis,
        until: Millis,
        limit: usize,
    ) -> Result<Vec<(i64, Millis, String)>>;
    /// Latest time a person's text had `intent` (complaint or churn_risk) at ≥ 0.5.
    async fn last_intent_at(&self, id: ProfileId, intent: &str) -> Result<Option<Millis>>;
    /// Distinct active days since `since` for everyone active, by cluster.
    async fn active_days_all(&self, since: Millis) -> Result<Vec<(ProfileId, i64)>>;
    /// Every identifier with the cluster owning it (exports).
    async fn all_identifiers(&self) -> Result<Vec<(ProfileId, IdentityKey)>>;

    // --- API keys ---
    // --- on-chain (chain.rs) ---
    async fn chains(&self) -> Result<Vec<ChainRow>>;
    /// Adds or edits a chain; its sync position is kept.
    async fn upsert_chain(&self, c: ChainRow) -> Result<()>;
    async fn delete_chain(&self, id: &str) -> Result<()>;
    /// The node's head and the last sync error (None clears it).
    async fn set_chain_status(
        &self,
        id: &str,
        head: Option<i64>,
        error: Option<String>,
        at: Millis,
    ) -> Result<()>;
    async fn contracts(&self) -> Result<Vec<ContractRow>>;
    async fn upsert_contract(&self, c: ContractRow) -> Result<()>;
    /// Processed blocks' (number, hash), newest first.
    async fn chain_blocks(&self, chain: &str, limit: usize) -> Result<Vec<(i64, String)>>;
    /// Current holdings of (contract, wallet) pairs on a chain.
    async fn holdings_get(
        &self,
        chain: &str,
        keys: Vec<(String, String)>,
    ) -> Result<Vec<HoldingRow>>;
    async fn apply_chain_batch(&self, b: ChainBatch) -> Result<()>;
    /// Logs (not removed) in blocks after `block`.
    async fn chain_logs_after(&self, chain: &str, block: i64) -> Result<Vec<LogRow>>;
    /// Logs (not removed) up to `block` touching any (contract, wallet) pair, in chain order.
    async fn chain_logs_for(
        &self,
        chain: &str,
        keys: Vec<(String, String)>,
        block: i64,
    ) -> Result<Vec<LogRow>>;
    async fn rollback_chain(&self, r: ChainRollback) -> Result<()>;
    /// Holdings of these wallets (CAIP-10), all chains and tokens.
    async fn wallet_holdings(&self, wallets: Vec<String>) -> Result<Vec<HoldingRow>>;
    /// Largest holders of a token.
    async fn holders(&self, chain: &str, contract: &str, limit: usize) -> Result<Vec<HoldingRow>>;
    async fn create_siwe_nonce(&self, nonce: &str, at: Millis, expires: Millis) -> Result<()>;
    /// Marks a nonce used; false when it was never issued, is used, or has expired.
    async fn use_siwe_nonce(&self, nonce: &str, at: Millis) -> Result<bool>;
    /// Marks an identity verified, with its proof (JSON).
    async fn verify_identity(&self, key: &IdentityKey, proof: String, at: Millis) -> Result<()>;
    /// Creates a reward, or returns the one with the same idempotency key (false).
    async fn create_reward(&self, r: RewardRow) -> Result<(RewardRow, bool)>;
    async fn update_reward(&self, r: RewardRow) -> Result<()>;
    async fn rewards(&self, status: Option<String>, limit: usize) -> Result<Vec<RewardRow>>;
    async fn reward(&self, id: i64) -> Result<RewardRow>;

    // --- staff accounts and sessions (web app) ---
    /// Creates a user; a taken e-mail is a conflict.
    async fn create_user(
        &self,
        email: &str,
        password_hash: &str,
        role: &str,
        at: Millis,
    ) -> Result<UserRow>;
    async fn users(&self) -> Result<Vec<UserRow>>;
    async fn user_by_email(&self, email: &str) -> Result<Option<UserRow>>;
    async fn delete_user(&self, id: i64) -> Result<()>;
    async fn create_session(
        &self,
        token_hash: &str,
        user_id: i64,
        csrf: &str,
        at: Millis,
        expires: Millis,
    ) -> Result<()>;
    /// The live session's user and CSRF token (none when unknown or expired).
    async fn session(&self, token_hash: &str, now: Millis) -> Result<Option<(UserRow, String)>>;
    async fn delete_session(&self, token_hash: &str) -> Result<()>;

    /// Frees the page caches of idle connections after a large read, so the next reads
    /// after a write do not pay for emptying them (SQLite: in WAL mode each read after
    /// another connection's commit drops the cache page by page and unmaps the file; a
    /// no-op elsewhere).
    async fn release_memory(&self) -> Result<()> {
        Ok(())
    }

    /// Refreshes the planner's statistics after a bulk load (the demo, an import), so the
    /// first queries after it are planned on the data as it is (PostgreSQL; a no-op where
    /// the store plans without statistics).
    async fn refresh_statistics(&self) -> Result<()> {
        Ok(())
    }

    /// Counts for the dashboard: events per day and channel since `since`, people by kind.
    async fn overview(&self, since: Millis, week_ago: Millis) -> Result<Overview>;

    async fn create_api_key(
        &self,
        prefix: &str,
        hash: &str,
        scope: Scope,
        label: &str,
        at: Millis,
    ) -> Result<ApiKeyRecord>;
    async fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKeyRecord>>;
    async fn api_keys(&self) -> Result<Vec<ApiKeyRecord>>;
    async fn revoke_api_key(&self, id: i64, at: Millis) -> Result<()>;
}

pub type DynStore = Arc<dyn Store>;

/// Opens the store a URL names: `postgres://…` for PostgreSQL, otherwise a SQLite file
/// (`sqlite:///path`, or a data directory holding `rapport.db`).
pub async fn open(database_url: Option<&str>, data_dir: &std::path::Path) -> Result<DynStore> {
    match database_url {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Ok(Arc::new(postgres::PgStore::connect(url).await?))
        }
        Some(url) => {
            let path = url.strip_prefix("sqlite://").ok_or_else(|| {
                StoreError::invalid(
                    "database_url",
                    format!(
                        "unsupported scheme in '{}': use postgres://… or sqlite://…",
                        redact(url)
                    ),
                )
            })?;
            Ok(Arc::new(sqlite::SqliteStore::open(std::path::Path::new(
                path,
            ))?))
        }
        None => {
            std::fs::create_dir_all(data_dir).map_err(|e| {
                StoreError::invalid(
                    "data_dir",
                    format!("cannot create {}: {e}", data_dir.display()),
                )
            })?;
            Ok(Arc::new(sqlite::SqliteStore::open(
                &data_dir.join("rapport.db"),
            )?))
        }
    }
}

/// A database URL with its password hidden, for logs and errors.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..s + 3], user, &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            super::redact("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(super::redact("postgres://h/db"), "postgres://h/db");
    }

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
