//! [`TextStore`] and the shapes it speaks; implemented in `sqlite/text.rs` and
//! `postgres/text.rs`.

use crate::Result;
use async_trait::async_trait;
use rapport_domain::model::{SentimentDay, TextAnalysisView};
use rapport_domain::resolve::ProfileId;
use rapport_domain::time::Millis;

pub const CATALOGUE_VERSION: &str = "catalogue_version";

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

/// Text analyses of what people write, their series and signals, the product catalogue.
#[async_trait]
pub trait TextStore: Send + Sync {
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
    /// Analysed texts after an event id, in event order: (event id, raw profile id).
    async fn analyses_after(&self, after: i64, limit: usize) -> Result<Vec<(i64, ProfileId)>>;
    /// Texts of events in `[since, until)`, newest first: `(event id, time, text)`.
    async fn texts_between(
        &self,
        since: Millis,
        until: Millis,
        limit: usize,
    ) -> Result<Vec<(i64, Millis, String)>>;
    /// Texts since `since` that contain any of `words` (lower case, as substrings; the
    /// caller checks word boundaries): `(person, text)`, at most `limit`.
    async fn texts_mentioning(
        &self,
        words: Vec<String>,
        since: Millis,
        limit: usize,
    ) -> Result<Vec<(ProfileId, String)>>;
    /// Latest time a person's text had `intent` (complaint or churn_risk) at ≥ 0.5.
    async fn last_intent_at(&self, id: ProfileId, intent: &str) -> Result<Option<Millis>>;
}
