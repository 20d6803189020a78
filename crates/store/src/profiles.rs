//! [`ProfileStore`] and the shapes it speaks; implemented in `sqlite/profiles.rs` and
//! `postgres/profiles.rs`.

use crate::Result;
use async_trait::async_trait;
use rapport_domain::model::{
    ConflictView, ConsentStatus, DetachView, Frequency, MergeView, Page, ProfileSummary,
    ProfileView, Stats,
};
use rapport_domain::resolve::ProfileId;
use rapport_domain::time::Millis;
use rapport_domain::IdentityKey;

#[derive(Debug, Clone)]
pub struct ConsentInput {
    pub channel: String,
    pub purpose: String,
    pub status: ConsentStatus,
    pub source: String,
    pub proof: Option<String>,
    pub at: Millis,
    pub frequency: Frequency,
}

/// Which merge to undo.
#[derive(Debug, Clone, Copy)]
pub enum UnmergeTarget {
    /// The latest active merge that absorbed this profile.
    MergedProfile(ProfileId),
    Merge(i64),
}

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

/// People and their identifiers: reads, search, trait and consent edits, merges and unmerges, counts.
#[async_trait]
pub trait ProfileStore: Send + Sync {
    async fn profile(&self, id: ProfileId) -> Result<ProfileView>;
    /// Several people at once, unknown ids left out, without their merge history
    /// (`merges` empty): the real-time engine checks the states it holds with it.
    async fn profiles(&self, ids: Vec<ProfileId>) -> Result<Vec<ProfileView>>;
    async fn lookup(&self, key: &IdentityKey) -> Result<Option<ProfileId>>;
    /// The cluster each identifier belongs to, in order (`None` when unknown).
    async fn lookup_many(&self, keys: Vec<IdentityKey>) -> Result<Vec<Option<ProfileId>>>;
    async fn search(
        &self,
        q: Option<&str>,
        limit: usize,
        after: Option<ProfileId>,
    ) -> Result<Page<ProfileSummary>>;
    /// The person (canonical id) each raw profile id belongs to; unknown ids are left out.
    async fn canonical_ids(&self, ids: Vec<ProfileId>) -> Result<Vec<(ProfileId, ProfileId)>>;
    /// Every identifier with the cluster owning it (exports).
    async fn all_identifiers(&self) -> Result<Vec<(ProfileId, IdentityKey)>>;
    async fn patch_traits(
        &self,
        id: ProfileId,
        patch: &serde_json::Value,
        at: Millis,
    ) -> Result<()>;
    async fn set_consent(&self, id: ProfileId, consent: &ConsentInput) -> Result<()>;
    /// Marks an identity verified, with its proof (JSON).
    async fn verify_identity(&self, key: &IdentityKey, proof: String, at: Millis) -> Result<()>;
    async fn merge(&self, a: ProfileId, b: ProfileId, by: &str, at: Millis) -> Result<MergeView>;
    async fn unmerge(&self, target: UnmergeTarget, by: &str, at: Millis) -> Result<MergeView>;
    /// Moves one identifier off a person onto a profile of its own (a recycled phone
    /// number, a reused handle, a shared kiosk), recorded; the two are kept from
    /// re-merging automatically (a tie becomes a conflict). Refused for a person's only
    /// identifier.
    async fn detach(
        &self,
        person: ProfileId,
        key: &IdentityKey,
        by: &str,
        at: Millis,
    ) -> Result<DetachView>;
    /// Moves a detached identifier back to the profile it came from.
    async fn undo_detach(&self, id: i64, by: &str, at: Millis) -> Result<DetachView>;
    /// Detaches from or to a person's profiles, newest first.
    async fn detaches(&self, person: ProfileId) -> Result<Vec<DetachView>>;
    async fn conflicts(&self, limit: usize) -> Result<Vec<ConflictView>>;
    async fn merges(&self, limit: usize) -> Result<Vec<MergeView>>;
    async fn stats(&self) -> Result<Stats>;
    /// Counts for the dashboard: events per day and channel since `since`, people by kind.
    async fn overview(&self, since: Millis, week_ago: Millis) -> Result<Overview>;
}
