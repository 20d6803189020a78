//! [`LoyaltyStore`] and the shapes it speaks; implemented in `sqlite/loyalty.rs` and
//! `postgres/loyalty.rs`. The ledger is append-only: an entry is written with the lot it
//! makes or the points it takes out of lots, and its timeline events, in one transaction.
//! What an entry takes is planned by the app (`rapport_domain::loyalty`) from lots it
//! read; the store applies a plan only if those lots still hold what they held then
//! (else [`Outcome::Stale`], and the app plans again).

use crate::Result;
use async_trait::async_trait;
use rapport_domain::loyalty::{Lot, Move, TierState};
use rapport_domain::resolve::{EventRow, ProfileId};
use rapport_domain::time::Millis;

/// A lot as stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct LotRow {
    #[serde(flatten)]
    pub lot: Lot,
    pub profile_id: ProfileId,
    /// earn or adjust.
    pub kind: String,
    /// The order's revenue, for tiers by spend.
    pub revenue: Option<f64>,
    pub reversed_at: Option<Millis>,
}

/// An entry of the ledger.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct EntryRow {
    pub id: i64,
    pub profile_id: ProfileId,
    /// earn, spend, expire, reverse, adjust.
    pub kind: String,
    /// Signed: added (earn, adjust up) or taken (negative).
    pub amount: i64,
    pub idempotency_key: String,
    pub at: Millis,
    /// The lot it made.
    pub lot_id: Option<i64>,
    pub moves: Vec<Move>,
    pub order: Option<String>,
    pub reason: Option<String>,
    /// `rule:<name>`, `api`, `staff:<email>`, `redeem`, `expiry`, `refund`.
    pub source: String,
    /// A reversal's points already spent (not taken back).
    pub unrecovered: i64,
}

/// The lot an entry makes.
#[derive(Debug, Clone, PartialEq)]
pub struct NewLot {
    pub profile_id: ProfileId,
    pub kind: String,
    pub amount: i64,
    pub earned_at: Millis,
    pub unlock_at: Millis,
    pub expires_at: Option<Millis>,
    pub order: Option<String>,
    pub revenue: Option<f64>,
}

/// A redemption made with a spend entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Redeem {
    pub reward_id: i64,
    /// The redemption's own key (the entry's is derived from it).
    pub idempotency_key: String,
    /// The person's raw profiles (the per-person limit counts them all).
    pub members: Vec<ProfileId>,
    pub per_person: Option<i64>,
}

/// A reward redeemed.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Redemption {
    pub id: i64,
    pub idempotency_key: String,
    pub profile_id: ProfileId,
    pub reward_id: i64,
    pub cost: i64,
    /// The coupon code given, when the reward has a pool of them.
    pub code: Option<String>,
    pub entry_id: i64,
    pub at: Millis,
}

/// One entry to write.
#[derive(Debug, Clone)]
pub struct LedgerWrite {
    /// `id` is ignored; `lot_id` and `moves` are filled from `lot` and `moves`.
    pub entry: EntryRow,
    pub lot: Option<NewLot>,
    /// Points taken, each with what its lot held when the plan was made.
    pub moves: Vec<(Move, i64)>,
    /// Lots marked reversed (a refund's).
    pub reversed: Vec<i64>,
    pub redeem: Option<Redeem>,
    pub events: Vec<EventRow>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Written(EntryRow, Option<Redemption>),
    /// The idempotency key was used already: that entry, nothing written.
    Existing(EntryRow),
    /// A lot changed since the plan was made: nothing written.
    Stale,
    /// Refused with a reason (out of stock, the per-person limit): nothing written.
    Refused(String),
}

/// A reward of the catalogue.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Reward {
    #[serde(default)]
    pub id: i64,
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Points it costs.
    pub cost: i64,
    /// How many are left to give (none: no limit).
    #[serde(default)]
    pub stock: Option<i64>,
    /// At most this many per person.
    #[serde(default)]
    pub per_person: Option<i64>,
    /// Only for people in these tiers (empty: everybody).
    #[serde(default)]
    pub tiers: Vec<String>,
    /// Only for people in this segment.
    #[serde(default)]
    pub segment: Option<String>,
    #[serde(default)]
    pub starts_at: Option<Millis>,
    #[serde(default)]
    pub ends_at: Option<Millis>,
    #[serde(default = "yes")]
    pub active: bool,
    /// Coupon codes not yet given (a reward with none given out of a pool has 0).
    #[serde(default)]
    pub codes_left: Option<i64>,
    #[serde(default)]
    pub created_at: Millis,
    #[serde(default)]
    pub updated_at: Millis,
}

fn yes() -> bool {
    true
}

/// A person's tier as stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct TierRow {
    pub profile_id: ProfileId,
    #[serde(flatten)]
    pub state: TierState,
    pub updated_at: Millis,
}

/// The programme's figures.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct LoyaltyTotals {
    /// Points customers hold now (available + pending): the outstanding liability.
    pub outstanding: i64,
    pub pending: i64,
    /// People holding points.
    pub holders: i64,
    /// Per day (UTC midnight, ms): points earned and points spent (redeemed).
    pub daily: Vec<(Millis, i64, i64)>,
    /// People per tier (none: no tier).
    pub tiers: Vec<(Option<String>, i64)>,
}

#[async_trait]
pub trait LoyaltyStore: Send + Sync {
    /// The lots of these raw profiles that still hold points (all of them with
    /// `every`), oldest first.
    async fn lots(&self, members: &[ProfileId], every: bool) -> Result<Vec<LotRow>>;
    /// The balance of these raw profiles at `now`, summed in the database (the fast read).
    async fn balance(
        &self,
        members: &[ProfileId],
        now: Millis,
    ) -> Result<rapport_domain::loyalty::Balance>;
    /// Writes entries, each on its own (a stale or refused one writes nothing and the
    /// others go on), in one transaction.
    async fn write_entries(&self, writes: Vec<LedgerWrite>) -> Result<Vec<Outcome>>;
    async fn entry_by_key(&self, key: &str) -> Result<Option<EntryRow>>;
    /// The entries of these raw profiles, newest first, older than `before`.
    async fn entries(
        &self,
        members: &[ProfileId],
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<EntryRow>>;
    /// Points earned (not reversed) and their orders' revenue since `since`.
    async fn qualifying(&self, members: &[ProfileId], since: Millis) -> Result<(i64, f64)>;
    /// Points earned through a source (`rule:<name>`) since `since` (caps per period).
    async fn earned_by(&self, members: &[ProfileId], source: &str, since: Millis) -> Result<i64>;
    /// Lots past their expiry that still hold points, soonest first.
    async fn expired_lots(&self, now: Millis, limit: usize) -> Result<Vec<LotRow>>;
    /// The tier rows of these raw profiles (a person's is the canonical one's; after a
    /// merge others may be left).
    async fn tiers(&self, members: &[ProfileId]) -> Result<Vec<TierRow>>;
    /// Saves a person's tier with its events.
    async fn set_tier(&self, row: TierRow, events: Vec<EventRow>) -> Result<()>;
    /// People whose tier may need a look: those with a tier, after `after`, by id.
    async fn tiered(&self, after: ProfileId, limit: usize) -> Result<Vec<TierRow>>;

    async fn reward_catalogue(&self) -> Result<Vec<Reward>>;
    async fn catalogue_item(&self, id: i64) -> Result<Option<Reward>>;
    async fn catalogue_item_named(&self, name: &str) -> Result<Option<Reward>>;
    /// Creates (id 0) or replaces a reward; returns its id.
    async fn save_catalogue_item(&self, r: Reward) -> Result<i64>;
    /// Adds coupon codes to a reward's pool; returns how many were new.
    async fn add_codes(&self, reward: i64, codes: Vec<String>) -> Result<usize>;
    async fn redemption_by_key(&self, key: &str) -> Result<Option<Redemption>>;
    async fn redemptions(&self, members: &[ProfileId], limit: usize) -> Result<Vec<Redemption>>;
    /// The programme's figures, daily series since `since`.
    async fn loyalty_totals(&self, now: Millis, since: Millis) -> Result<LoyaltyTotals>;
}
