//! [`ScoreStore`] and the shapes it speaks; implemented in `sqlite/scores.rs` and
//! `postgres/scores.rs`.

use crate::Result;
use async_trait::async_trait;
use rapport_domain::resolve::ProfileId;
use rapport_domain::time::Millis;

/// A property name `purchase_stats` may read: letters, digits and `_` (it becomes part of
/// a JSON path in SQL), named `revenue` in the error as the RFM settings call it.
pub(crate) fn check_property(prop: &str) -> Result<()> {
    if prop.is_empty() || !prop.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(crate::StoreError::invalid(
            "revenue",
            "a property name is letters, digits and _",
        ));
    }
    Ok(())
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

/// Per person: the last time of an event, and the count and numeric sum of a property
/// over the events since a time (RFM's inputs).
#[derive(Debug, Clone, PartialEq)]
pub struct PurchaseStats {
    pub profile_id: ProfileId,
    pub last_at: Millis,
    pub count: i64,
    pub sum: f64,
    /// The first such event in the window (none: none in it).
    pub first_at: Option<Millis>,
}

/// Computed scores per person (RFM, engagement, custom) with explanations, and their inputs.
#[async_trait]
pub trait ScoreStore: Send + Sync {
    /// Replaces every stored value of the scores named in `names` with `rows`, in one
    /// transaction.
    async fn replace_scores(&self, names: Vec<String>, rows: Vec<ScoreRow>) -> Result<()>;
    /// Everyone's value of one computed score.
    async fn score_values(&self, name: &str) -> Result<Vec<(ProfileId, f64)>>;
    /// A person's (canonical id) computed scores.
    async fn profile_scores(&self, id: ProfileId) -> Result<Vec<ScoreRow>>;
    /// Several people's (canonical ids) computed score values, in one read, without
    /// explanations or times ([`ScoreRow::value_only`]: what the real-time engine reads;
    /// [`ScoreStore::profile_scores`] has the rest).
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
}
