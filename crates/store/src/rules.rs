//! [`RuleStore`] and the shapes it speaks; implemented in `sqlite/rules.rs` and
//! `postgres/rules.rs`.

use crate::Result;
use async_trait::async_trait;
use rapport_domain::resolve::ProfileId;
use rapport_domain::time::Millis;

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

/// What decision rules did: firings (audit and caps), tasks for staff, the webhook outbox.
#[async_trait]
pub trait RuleStore: Send + Sync {
    /// Records a rule firing (the audit); returns its id.
    async fn record_firing(&self, f: Firing) -> Result<i64>;
    /// Latest firings, of one rule or all, newest first.
    async fn firings(&self, rule: Option<String>, limit: usize) -> Result<Vec<Firing>>;
    /// A person's firings since a time, `(rule, at)`. The real-time engine reads them
    /// for a step's people with [`crate::RealtimeStore::person_loads`] and keeps them in memory, to
    /// apply frequency caps without a query per rule.
    async fn firing_times(
        &self,
        profile: ProfileId,
        since: Millis,
    ) -> Result<Vec<(String, Millis)>>;
    async fn create_task(&self, t: Task) -> Result<i64>;
    /// Latest tasks, newest first.
    async fn tasks(&self, limit: usize) -> Result<Vec<Task>>;
    /// Queues an outbound delivery; returns its id.
    async fn enqueue(&self, o: Outbound) -> Result<i64>;
    /// Pending deliveries due by `now`, oldest first.
    async fn due_outbound(&self, now: Millis, limit: usize) -> Result<Vec<Outbound>>;
    /// Saves a delivery's attempts, status, next time and error.
    async fn update_outbound(&self, o: Outbound) -> Result<()>;
    /// Deliveries, newest first, of one status or all.
    async fn outbound(&self, status: Option<String>, limit: usize) -> Result<Vec<Outbound>>;
}
