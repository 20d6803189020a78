//! [`EventStore`] and the shapes it speaks; implemented in `sqlite/events.rs` and
//! `postgres/events.rs`.

use crate::Result;
use async_trait::async_trait;
use rapport_domain::model::{EventView, Page};
use rapport_domain::resolve::ProfileId;
use rapport_domain::time::Millis;

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

/// Per person activity over a window: distinct active days and events per channel.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Activity {
    pub active_days: i64,
    pub channels: Vec<(String, i64)>,
}

/// The interaction log: a person's timeline, events by id or name, activity windows.
#[async_trait]
pub trait EventStore: Send + Sync {
    async fn timeline(&self, id: ProfileId, filter: &TimelineFilter) -> Result<Page<EventView>>;
    /// Events in id order, for export.
    async fn events_after(&self, after: i64, limit: usize) -> Result<Vec<EventView>>;
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
    /// Events of a type (`track`, `page`…, any when `None`) and name that happened at
    /// or after `since`, oldest first, at most `limit` (a rule's dry run).
    async fn recent_events(
        &self,
        kind: Option<String>,
        name: Option<String>,
        since: Millis,
        limit: usize,
    ) -> Result<Vec<EventView>>;
    async fn activity(&self, id: ProfileId, since: Millis) -> Result<Activity>;
    /// Distinct active days since `since` for everyone active, by cluster.
    async fn active_days_all(&self, since: Millis) -> Result<Vec<(ProfileId, i64)>>;
}
