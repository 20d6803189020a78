//! [`ReferralStore`]: referral codes and who referred whom; implemented in
//! `sqlite/referrals.rs` and `postgres/referrals.rs`. A referral and its timeline event
//! are written together, and so are a conversion and its event, so the graph (which
//! reads `referred_by` on the event) and the ledger's credits agree with the rows.

use crate::Result;
use async_trait::async_trait;
use rapport_domain::resolve::{EventRow, ProfileId};
use rapport_domain::time::Millis;

/// Who referred whom.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct ReferralRow {
    pub id: i64,
    pub code: String,
    pub referrer_id: ProfileId,
    pub referred_id: ProfileId,
    /// `pending`, `converted` or `refused`.
    pub status: String,
    /// Why a referral was refused.
    pub reason: Option<String>,
    pub created_at: Millis,
    pub converted_at: Option<Millis>,
}

/// A referrer's counts (the leaderboard).
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct ReferralLeader {
    pub referrer_id: ProfileId,
    /// Referrals not refused.
    pub referrals: i64,
    pub converted: i64,
}

#[async_trait]
pub trait ReferralStore: Send + Sync {
    /// The person's code: the one they have, else `new_code` saved for them.
    async fn referral_code(
        &self,
        profile: ProfileId,
        new_code: String,
        at: Millis,
    ) -> Result<String>;
    /// Who a code belongs to.
    async fn code_owner(&self, code: String) -> Result<Option<ProfileId>>;
    /// Saves a referral with its events, unless the person was referred before: then
    /// the first one (false), and nothing written.
    async fn add_referral(
        &self,
        r: ReferralRow,
        events: Vec<EventRow>,
    ) -> Result<(ReferralRow, bool)>;
    /// The referral that brought one of these profiles, if any.
    async fn referral_of(&self, members: Vec<ProfileId>) -> Result<Option<ReferralRow>>;
    /// Marks a pending referral converted, with its events; false when it was not
    /// pending (converted already: nothing written).
    async fn convert_referral(&self, id: i64, at: Millis, events: Vec<EventRow>) -> Result<bool>;
    /// The referrals one of these profiles made, newest first.
    async fn referrals_by(&self, members: Vec<ProfileId>, limit: usize)
        -> Result<Vec<ReferralRow>>;
    /// All referrals with a status (any: `None`), newest first.
    async fn referrals(&self, status: Option<String>, limit: usize) -> Result<Vec<ReferralRow>>;
    /// Referrers by conversions, then referrals.
    async fn referral_leaders(&self, limit: usize) -> Result<Vec<ReferralLeader>>;
}
