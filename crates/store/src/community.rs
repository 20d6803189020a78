//! [`CommunityStore`] and the shapes it speaks; implemented in `sqlite/community.rs` and
//! `postgres/community.rs`. The community's posts — questions, their answers, comments
//! and ideas — and the votes on them. Each change is written with its timeline events in
//! one transaction; a post's score is the sum of its votes, kept with them.

use crate::Result;
use async_trait::async_trait;
use rapport_domain::resolve::{EventRow, ProfileId};
use rapport_domain::time::Millis;

/// A question, an answer (its `parent_id` is the question), a comment (on any post) or
/// an idea.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Post {
    pub id: i64,
    /// question, answer, comment or idea.
    pub kind: String,
    pub parent_id: Option<i64>,
    /// The customer who wrote it (a raw profile), if a customer did.
    pub profile_id: Option<ProfileId>,
    /// The staff member who wrote it, if staff did.
    pub staff: Option<String>,
    /// Questions' and ideas' titles.
    pub title: Option<String>,
    /// As written; always shown escaped.
    pub body: String,
    /// A question's: open or answered; an idea's: open, planned, started, completed,
    /// declined, duplicate; empty for answers and comments.
    pub status: String,
    /// A question's accepted answer.
    pub accepted_id: Option<i64>,
    /// Up-votes less down-votes (an idea's: its votes).
    pub score: i64,
    /// Hidden by staff or held for review: only staff see it.
    pub hidden: bool,
    /// No new answers or comments.
    pub locked: bool,
    /// Marked by staff as the brand's answer.
    pub official: bool,
    /// Why text analysis held it for review (spam, toxic), until staff decide.
    pub flag: Option<String>,
    /// Merged into this post (a duplicate question or idea).
    pub duplicate_of: Option<i64>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// Which posts to list.
#[derive(Debug, Clone, Default)]
pub struct PostFilter {
    pub kind: Option<String>,
    pub parent: Option<i64>,
    /// Everything in a question's or idea's thread but itself (oldest first).
    pub topic: Option<i64>,
    pub status: Option<String>,
    /// Written by any of these raw profiles.
    pub profiles: Option<Vec<ProfileId>>,
    /// Hidden posts too (staff).
    pub with_hidden: bool,
    /// Only posts held for review.
    pub flagged: bool,
    /// Highest score first (else newest first).
    pub top: bool,
    pub limit: usize,
}

/// A search result: the post found and the question or idea it belongs to.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct PostHit {
    pub id: i64,
    pub kind: String,
    /// The question or idea to open (the post itself, or an answer's question).
    pub topic: i64,
    pub title: String,
    /// Words around the match.
    pub snippet: String,
}

/// What others thought of a person's posts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Standing {
    pub up: i64,
    pub down: i64,
    pub accepted: i64,
    pub answers: i64,
}

#[async_trait]
pub trait CommunityStore: Send + Sync {
    /// Adds a post; each event gets `post: <id>` in its properties. Returns it with its id.
    async fn add_post(&self, p: Post, events: Vec<EventRow>) -> Result<Post>;
    /// Imports questions and ideas (`parent_id` none) and their answers (`parent_id`
    /// an id already stored) in bulk, as history: no events. Returns their ids in order.
    async fn import_posts(&self, posts: Vec<Post>) -> Result<Vec<i64>>;
    /// Saves a post's fields as they now stand, with the events.
    async fn update_post(&self, p: Post, events: Vec<EventRow>) -> Result<()>;
    async fn post(&self, id: i64) -> Result<Option<Post>>;
    async fn posts(&self, f: PostFilter) -> Result<Vec<Post>>;
    /// Sets (`Some`) or takes back (`None`) a person's vote on a post and keeps its
    /// score; returns the new score.
    async fn set_vote(
        &self,
        post: i64,
        voter: ProfileId,
        value: Option<i64>,
        events: Vec<EventRow>,
    ) -> Result<i64>;
    /// Votes by any of `voters` on these posts: (post, value).
    async fn votes_by(&self, voters: Vec<ProfileId>, posts: Vec<i64>) -> Result<Vec<(i64, i64)>>;
    /// Votes by any of `voters` on ideas whose status is one of `statuses`.
    async fn idea_votes_used(&self, voters: Vec<ProfileId>, statuses: Vec<String>) -> Result<i64>;
    /// Who voted on a post.
    async fn voters(&self, post: i64) -> Result<Vec<ProfileId>>;
    /// Merges `from` (saved as given: status, `duplicate_of`) into `into`: votes move
    /// (a voter who voted on both keeps one), answers and comments move; both scores
    /// are recounted.
    async fn merge_posts(&self, from: Post, into: i64, events: Vec<EventRow>) -> Result<()>;
    /// What others thought of the posts of any of these raw profiles.
    async fn standing(&self, authors: Vec<ProfileId>) -> Result<Standing>;
    /// Visible posts matching the terms, best first (`all`: every term; the last one a
    /// prefix when `prefix`).
    async fn search_posts(
        &self,
        terms: Vec<String>,
        all: bool,
        prefix: bool,
        limit: usize,
    ) -> Result<Vec<PostHit>>;
}
