//! [`SegmentStore`] and the shapes it speaks; implemented in `sqlite/segments.rs` and
//! `postgres/segments.rs`.

use crate::Result;
use async_trait::async_trait;
use rapport_domain::resolve::ProfileId;
use rapport_domain::time::Millis;
use rapport_segment::sql::{Compiled, Dialect};

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

/// Saved segments, their compiled SQL, memberships and size history.
#[async_trait]
pub trait SegmentStore: Send + Sync {
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
    async fn segment_member_ids(
        &self,
        id: i64,
        after: ProfileId,
        limit: usize,
    ) -> Result<Vec<ProfileId>>;
    async fn segment_sizes(&self, id: i64, since: Millis) -> Result<Vec<SegmentSize>>;
    /// Names of the segments a person (canonical id) is in.
    async fn profile_segments(&self, id: ProfileId) -> Result<Vec<String>>;
}
