//! [`KbStore`] and the shapes it speaks; implemented in `sqlite/kb.rs` and
//! `postgres/kb.rs`. The knowledge base: articles, their revisions (the accepted ones
//! and customers' proposals), "was this helpful?" counts, full-text search in each
//! store's own engine (SQLite FTS5, PostgreSQL `tsvector`), and the articles suggested
//! to a customer about to write to support (to count tickets avoided).

use crate::Result;
use async_trait::async_trait;
use rapport_domain::resolve::{EventRow, ProfileId};
use rapport_domain::time::Millis;

#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Article {
    pub id: i64,
    pub title: String,
    pub body: String,
    pub category: Option<String>,
    /// draft, published, archived, proposed (by a customer, for review), rejected.
    pub status: String,
    /// The customer who proposed it, if one did.
    pub author_profile: Option<ProfileId>,
    /// The staff member who wrote or last published it.
    pub author_staff: Option<String>,
    pub helpful_yes: i64,
    pub helpful_no: i64,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub published_at: Option<Millis>,
}

/// One version of an article: accepted (it was, or is, the article's text), proposed by
/// a customer (waiting for review) or rejected.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Revision {
    pub id: i64,
    pub article_id: i64,
    pub title: String,
    pub body: String,
    pub category: Option<String>,
    /// accepted, proposed or rejected.
    pub status: String,
    pub author_profile: Option<ProfileId>,
    pub author_staff: Option<String>,
    /// What the author said of the change.
    pub note: Option<String>,
    pub at: Millis,
}

/// A search result.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct ArticleHit {
    pub id: i64,
    pub title: String,
    /// Words around the match.
    pub snippet: String,
}

/// Self-service deflection over a period: articles opened from the ticket form, and
/// of those how many were not followed by a ticket from that person within a day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Deflection {
    pub suggested_opened: i64,
    pub tickets_avoided: i64,
}

#[async_trait]
pub trait KbStore: Send + Sync {
    /// Adds an article with its first revision (same text); events get `article: <id>`.
    async fn add_article(
        &self,
        a: Article,
        first: Revision,
        events: Vec<EventRow>,
    ) -> Result<Article>;
    /// Saves an article as it now stands; `rev`, if any, is added (a new accepted text,
    /// or a proposal for review), or, with an id, saved (a proposal decided). Returns
    /// the revision's id (0 without one).
    async fn save_article(
        &self,
        a: Article,
        rev: Option<Revision>,
        events: Vec<EventRow>,
    ) -> Result<i64>;
    async fn article(&self, id: i64) -> Result<Option<Article>>;
    /// Articles in a status (any when `None`), in a category, newest change first.
    async fn articles(
        &self,
        status: Option<String>,
        category: Option<String>,
        limit: usize,
    ) -> Result<Vec<Article>>;
    /// An article's revisions, newest first.
    async fn revisions(&self, article: i64) -> Result<Vec<Revision>>;
    async fn revision(&self, id: i64) -> Result<Option<Revision>>;
    /// Customers' proposed edits to articles waiting for review, oldest first (not the
    /// text of a proposed article: that is reviewed with the article).
    async fn proposed_revisions(&self, limit: usize) -> Result<Vec<Revision>>;
    /// Counts a "was this helpful?" answer.
    async fn helpful(&self, article: i64, yes: bool, events: Vec<EventRow>) -> Result<()>;
    /// Published articles matching the terms, best first (titles weigh more).
    async fn search_articles(
        &self,
        terms: Vec<String>,
        all: bool,
        prefix: bool,
        limit: usize,
    ) -> Result<Vec<ArticleHit>>;
    /// A person opened an article suggested on the ticket form.
    async fn add_deflection(&self, profile: ProfileId, article: i64, at: Millis) -> Result<()>;
    /// Deflection since a time, as of `now` (a suggestion less than a day old counts
    /// as avoided only once the day is over).
    async fn deflection(&self, since: Millis, now: Millis) -> Result<Deflection>;
}
