//! What the API shows: read models of profiles, identities, events, consents, merges.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::identifier::IdentityKind;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct IdentityView {
    pub kind: IdentityKind,
    pub value: String,
    /// The raw profile the identity arrived on (stays with it across merge/unmerge).
    pub profile_id: i64,
    pub verified: bool,
    pub source: String,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConsentStatus {
    Granted,
    Denied,
}

impl ConsentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentStatus::Granted => "granted",
            ConsentStatus::Denied => "denied",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "granted" => Some(ConsentStatus::Granted),
            "denied" => Some(ConsentStatus::Denied),
            _ => None,
        }
    }
}

/// How often a person wants to hear on one channel for one purpose, beside whether
/// they consent at all. Chosen in the portal's preference centre; the e-mail capability
/// keeps to it (`Frequency::allows`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Frequency {
    /// Every message the brand sends.
    #[default]
    All,
    /// At most one message in any 7 days.
    Weekly,
    /// Nothing for 30 days from the choice, then every message again.
    Paused,
}

/// How long a pause lasts, and the window of a weekly choice.
pub const PAUSE_MS: i64 = 30 * 86_400_000;
pub const WEEK_MS: i64 = 7 * 86_400_000;

impl Frequency {
    pub fn as_str(self) -> &'static str {
        match self {
            Frequency::All => "all",
            Frequency::Weekly => "weekly",
            Frequency::Paused => "paused",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "all" => Some(Frequency::All),
            "weekly" => Some(Frequency::Weekly),
            "paused" => Some(Frequency::Paused),
            _ => None,
        }
    }

    /// The choice in force at `now`: a pause that has run its 30 days is over.
    pub fn in_force(self, chosen_at: i64, now: i64) -> Frequency {
        match self {
            Frequency::Paused if now >= chosen_at + PAUSE_MS => Frequency::All,
            f => f,
        }
    }

    /// Whether one more message may go at `now`, given when the choice was made and
    /// when the last message for the same purpose went; the refusal says why.
    pub fn allows(self, chosen_at: i64, last_sent: Option<i64>, now: i64) -> Result<(), String> {
        match self.in_force(chosen_at, now) {
            Frequency::All => Ok(()),
            Frequency::Paused => Err(format!(
                "paused by the customer until {}",
                crate::time::to_datetime(chosen_at + PAUSE_MS).format("%Y-%m-%d")
            )),
            Frequency::Weekly => match last_sent {
                Some(t) if now < t + WEEK_MS => {
                    Err("the customer asked for at most one a week".into())
                }
                _ => Ok(()),
            },
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConsentView {
    pub channel: String,
    pub purpose: String,
    pub status: ConsentStatus,
    #[serde(default)]
    pub frequency: Frequency,
    pub source: String,
    pub proof: Option<String>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MergeView {
    pub id: i64,
    pub survivor_id: i64,
    pub merged_id: i64,
    /// Raw profiles that moved with the merged one.
    pub member_ids: Vec<i64>,
    /// The identifier that tied the two, `kind:value`.
    pub cause: String,
    pub message_id: Option<String>,
    /// Who: the API key prefix or `cli`.
    pub by: String,
    pub at: DateTime<Utc>,
    pub undone_at: Option<DateTime<Utc>>,
    pub undone_by: Option<String>,
}

/// An identifier moved off a person by hand onto a profile of its own.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DetachView {
    pub id: i64,
    /// `kind:value`.
    pub identifier: String,
    /// The raw profile that held it.
    pub from_profile: i64,
    /// The profile made for it.
    pub to_profile: i64,
    pub by: String,
    pub at: DateTime<Utc>,
    pub undone_at: Option<DateTime<Utc>>,
    pub undone_by: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConflictView {
    pub id: i64,
    pub profile_a: i64,
    pub profile_b: i64,
    pub identifier: String,
    pub reason: String,
    pub message_id: Option<String>,
    pub count: i64,
    pub first_at: DateTime<Utc>,
    pub last_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProfileView {
    pub id: i64,
    /// Raw profiles merged into this one (including itself).
    pub member_ids: Vec<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Traits of all members, the most recently updated winning per key.
    #[schema(value_type = Object)]
    pub traits: Value,
    pub identities: Vec<IdentityView>,
    pub consents: Vec<ConsentView>,
    /// Merges into this profile and merges of this profile, newest first.
    pub merges: Vec<MergeView>,
    /// Network scores from the latest graph computation (PageRank, betweenness,
    /// community, k-core, reach, social value), when this person has relationships.
    #[serde(default)]
    pub network: Option<crate::relationship::GraphScores>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProfileSummary {
    pub id: i64,
    pub name: Option<String>,
    pub email: Option<String>,
    #[schema(value_type = Object)]
    pub traits: Value,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EventView {
    pub id: i64,
    pub message_id: String,
    pub profile_id: i64,
    #[serde(rename = "type")]
    pub kind: String,
    pub name: Option<String>,
    pub channel: String,
    pub source: String,
    #[schema(value_type = Object)]
    pub properties: Value,
    #[schema(value_type = Object)]
    pub context: Value,
    pub text: Option<String>,
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct Stats {
    /// Profiles as people see them (clusters), not raw rows.
    pub profiles: i64,
    pub raw_profiles: i64,
    pub identities: i64,
    pub events: i64,
    pub merges: i64,
    pub open_conflicts: i64,
}

/// A page of results; `next_cursor` is absent on the last page.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// What one event's text says: sentiment, language, intents and entities.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct TextAnalysisView {
    pub event_id: i64,
    /// The raw profile the event arrived on.
    pub profile_id: i64,
    pub occurred_at: DateTime<Utc>,
    pub compound: f64,
    pub label: String,
    pub language: String,
    /// Intent → confidence.
    #[schema(value_type = Object)]
    pub intents: Value,
    /// `[{kind, value, start, end}]`.
    #[schema(value_type = Vec<Object>)]
    pub entities: Value,
}

/// Sentiment of the texts of one day.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct SentimentDay {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    pub texts: i64,
    pub mean: f64,
    pub positive: i64,
    pub negative: i64,
}

/// Signals derived from what a person wrote, for segments and rules.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Default)]
pub struct TextSignals {
    pub texts_30d: i64,
    pub sentiment_30d: Option<f64>,
    pub texts_90d: i64,
    pub sentiment_90d: Option<f64>,
    pub last_complaint_at: Option<DateTime<Utc>>,
    pub last_churn_risk_at: Option<DateTime<Utc>>,
    /// `advocate` (mean ≥ 0.5 over 90 days, 3+ texts), `promoter` (≥ 0.05),
    /// `detractor` (≤ −0.05), `neutral`, or `unknown` with no texts.
    pub advocacy: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frequency_names_round_trip() {
        for f in [Frequency::All, Frequency::Weekly, Frequency::Paused] {
            assert_eq!(Frequency::parse(f.as_str()), Some(f));
        }
        assert_eq!(Frequency::parse("daily"), None);
        assert_eq!(Frequency::default(), Frequency::All);
    }

    #[test]
    fn a_pause_lasts_thirty_days_from_the_choice() {
        let at = 1_000_000;
        assert!(Frequency::Paused.allows(at, None, at).is_err());
        let e = Frequency::Paused
            .allows(at, None, at + PAUSE_MS - 1)
            .unwrap_err();
        assert!(e.contains("paused by the customer until 1970-01-31"), "{e}");
        assert!(Frequency::Paused.allows(at, None, at + PAUSE_MS).is_ok());
        assert!(Frequency::All.allows(at, Some(at), at).is_ok());
    }

    #[test]
    fn weekly_lets_one_message_through_in_seven_days() {
        let sent = 5_000_000;
        assert!(Frequency::Weekly.allows(0, None, sent).is_ok());
        assert!(Frequency::Weekly.allows(0, Some(sent), sent).is_err());
        assert!(Frequency::Weekly
            .allows(0, Some(sent), sent + WEEK_MS - 1)
            .is_err());
        assert!(Frequency::Weekly
            .allows(0, Some(sent), sent + WEEK_MS)
            .is_ok());
    }
}
