//! The community API (admin key): questions, answers, comments, votes, accepted
//! answers, moderation, merges, ideas and their statuses, reputation, search and the
//! community settings. A post's `author` (`email:<address>` or a profile id) is the
//! customer it is written for; without one, the key's staff member writes it.

use crate::auth::AdminKey;
use crate::problem::{query_count, typed_body, ApiError, ApiResult, Id, Problem};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use rapport_app::community::{self, Actor, CommunitySettings, Moderation};
use rapport_store::{Post, PostFilter, PostHit, Standing};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;

/// A question, an idea, an answer or a comment as the API takes it.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostBody {
    /// `email:<address>` or a profile id; absent: staff write it.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub author: Option<Value>,
    /// Questions and ideas.
    #[serde(default)]
    pub title: Option<String>,
    pub body: String,
}

async fn actor(state: &AppState, key: &AdminKey, author: &Option<Value>) -> ApiResult<Actor> {
    Ok(match author {
        None => Actor::Staff(key.who()),
        Some(v) => {
            let (p, _) =
                rapport_app::profiles::named(&state.store, v, "author", "community").await?;
            Actor::Customer(p)
        }
    })
}

fn title(b: &PostBody) -> ApiResult<&str> {
    b.title
        .as_deref()
        .ok_or_else(|| ApiError::invalid("title", "a question or an idea needs a title"))
}

/// Asks a question.
#[utoipa::path(post, path = "/api/community/questions", tag = "community",
    request_body = PostBody,
    responses((status = 201, body = Post), (status = 400, body = Problem)), security(("bearer" = [])))]
pub async fn ask(
    State(state): State<AppState>,
    key: AdminKey,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Post>)> {
    let b: PostBody = typed_body(&body)?;
    let who = actor(&state, &key, &b.author).await?;
    let p = community::ask(&state.store, &who, title(&b)?, &b.body).await?;
    Ok((StatusCode::CREATED, Json(p)))
}

/// Suggests an idea.
#[utoipa::path(post, path = "/api/community/ideas", tag = "community",
    request_body = PostBody,
    responses((status = 201, body = Post), (status = 400, body = Problem)), security(("bearer" = [])))]
pub async fn suggest(
    State(state): State<AppState>,
    key: AdminKey,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Post>)> {
    let b: PostBody = typed_body(&body)?;
    let who = actor(&state, &key, &b.author).await?;
    let p = community::suggest(&state.store, &who, title(&b)?, &b.body).await?;
    Ok((StatusCode::CREATED, Json(p)))
}

/// Answers a question (its id in the path).
#[utoipa::path(post, path = "/api/community/posts/{id}/answers", tag = "community",
    params(("id" = i64, Path)), request_body = PostBody,
    responses((status = 201, body = Post), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn answer(
    State(state): State<AppState>,
    key: AdminKey,
    Id(id): Id,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Post>)> {
    let b: PostBody = typed_body(&body)?;
    let who = actor(&state, &key, &b.author).await?;
    let p = community::answer(&state.store, &who, id, &b.body).await?;
    Ok((StatusCode::CREATED, Json(p)))
}

/// Comments on a post.
#[utoipa::path(post, path = "/api/community/posts/{id}/comments", tag = "community",
    params(("id" = i64, Path)), request_body = PostBody,
    responses((status = 201, body = Post), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn comment(
    State(state): State<AppState>,
    key: AdminKey,
    Id(id): Id,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Post>)> {
    let b: PostBody = typed_body(&body)?;
    let who = actor(&state, &key, &b.author).await?;
    let p = community::comment(&state.store, &who, id, &b.body).await?;
    Ok((StatusCode::CREATED, Json(p)))
}

/// A post with what hangs under it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Thread {
    #[serde(flatten)]
    pub post: Post,
    /// Answers and comments, oldest first (hidden ones included: staff read this).
    pub replies: Vec<Post>,
}

/// A post and its answers and comments.
#[utoipa::path(get, path = "/api/community/posts/{id}", tag = "community",
    params(("id" = i64, Path)),
    responses((status = 200, body = Thread), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    _key: AdminKey,
    Id(id): Id,
) -> ApiResult<Json<Thread>> {
    let post = community::get(&state.store, id, true).await?;
    let replies = community::list(
        &state.store,
        PostFilter {
            parent: Some(id),
            with_hidden: true,
            limit: 1000,
            ..Default::default()
        },
    )
    .await?;
    Ok(Json(Thread { post, replies }))
}

/// Posts, newest first: `kind` (question, answer, comment, idea), `status`,
/// `flagged=true` (held or listed for review), `top=true` (highest score first),
/// `limit` (1–500, default 50). Hidden posts are included.
#[utoipa::path(get, path = "/api/community/posts", tag = "community",
    params(("kind" = Option<String>, Query), ("status" = Option<String>, Query),
           ("flagged" = Option<bool>, Query), ("top" = Option<bool>, Query),
           ("limit" = Option<usize>, Query, minimum = 1, maximum = 500)),
    responses((status = 200, body = Vec<Post>), (status = 400, body = Problem)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    _key: AdminKey,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Vec<Post>>> {
    let flag = |k: &str| match q.get(k).map(String::as_str) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(ApiError::invalid(k, "true or false")),
    };
    if let Some(k) = q.get("kind") {
        if !matches!(k.as_str(), "question" | "answer" | "comment" | "idea") {
            return Err(ApiError::invalid(
                "kind",
                "question, answer, comment or idea",
            ));
        }
    }
    let f = PostFilter {
        kind: q.get("kind").cloned(),
        status: q.get("status").cloned(),
        flagged: flag("flagged")?,
        top: flag("top")?,
        with_hidden: true,
        limit: query_count(&q, "limit", 50, 500)?,
        ..Default::default()
    };
    Ok(Json(community::list(&state.store, f).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptBody {
    pub answer: i64,
    /// The asker accepting (`email:…` or a profile id); absent: staff accept.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub by: Option<Value>,
}

/// Accepts an answer to the question (only its asker, or staff).
#[utoipa::path(post, path = "/api/community/posts/{id}/accept", tag = "community",
    params(("id" = i64, Path)), request_body = AcceptBody,
    responses((status = 200, body = Post), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn accept(
    State(state): State<AppState>,
    key: AdminKey,
    Id(id): Id,
    body: Bytes,
) -> ApiResult<Json<Post>> {
    let b: AcceptBody = typed_body(&body)?;
    let who = actor(&state, &key, &b.by).await?;
    Ok(Json(
        community::accept(&state.store, &who, id, b.answer).await?,
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VoteBody {
    /// `email:<address>` or a profile id.
    #[schema(value_type = Object)]
    pub voter: Value,
    /// 1 or -1 (ideas: 1); 0 takes the vote back.
    pub value: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Score {
    pub score: i64,
}

/// A customer's vote (ideas: within their vote budget).
#[utoipa::path(post, path = "/api/community/posts/{id}/votes", tag = "community",
    params(("id" = i64, Path)), request_body = VoteBody,
    responses((status = 200, body = Score), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn vote(
    State(state): State<AppState>,
    _key: AdminKey,
    Id(id): Id,
    body: Bytes,
) -> ApiResult<Json<Score>> {
    let b: VoteBody = typed_body(&body)?;
    let (voter, _) =
        rapport_app::profiles::named(&state.store, &b.voter, "voter", "community").await?;
    let score = community::vote(&state.store, voter, id, b.value).await?;
    Ok(Json(Score { score }))
}

/// Edits a post's title and text: as its customer `author` (only their own post; any
/// other is "not found"), or as staff without one. Screened again.
#[utoipa::path(put, path = "/api/community/posts/{id}", tag = "community",
    params(("id" = i64, Path)), request_body = PostBody,
    responses((status = 200, body = Post), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn edit(
    State(state): State<AppState>,
    key: AdminKey,
    Id(id): Id,
    body: Bytes,
) -> ApiResult<Json<Post>> {
    let b: PostBody = typed_body(&body)?;
    let who = actor(&state, &key, &b.author).await?;
    Ok(Json(
        community::edit(&state.store, &who, id, b.title.as_deref(), &b.body).await?,
    ))
}

/// Moderation: hide or show, lock, mark an answer official, clear a review flag.
#[utoipa::path(patch, path = "/api/community/posts/{id}", tag = "community",
    params(("id" = i64, Path)), request_body = Moderation,
    responses((status = 200, body = Post), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn moderate(
    State(state): State<AppState>,
    _key: AdminKey,
    Id(id): Id,
    body: Bytes,
) -> ApiResult<Json<Post>> {
    let m: Moderation = typed_body(&body)?;
    Ok(Json(community::moderate(&state.store, id, m).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeBody {
    pub into: i64,
}

/// Merges a duplicate question or idea into another; answers and votes move.
#[utoipa::path(post, path = "/api/community/posts/{id}/merge", tag = "community",
    params(("id" = i64, Path)), request_body = MergeBody,
    responses((status = 200, body = Post), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn merge(
    State(state): State<AppState>,
    _key: AdminKey,
    Id(id): Id,
    body: Bytes,
) -> ApiResult<Json<Post>> {
    let b: MergeBody = typed_body(&body)?;
    Ok(Json(community::merge(&state.store, id, b.into).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdeaStatusBody {
    /// open, planned, started, completed or declined.
    pub status: String,
    /// A word to the voters.
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct IdeaMoved {
    #[serde(flatten)]
    pub idea: Post,
    /// Voters e-mailed.
    pub told: usize,
}

/// Moves an idea; its voters are told by e-mail.
#[utoipa::path(patch, path = "/api/community/ideas/{id}", tag = "community",
    params(("id" = i64, Path)), request_body = IdeaStatusBody,
    responses((status = 200, body = IdeaMoved), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn idea_status(
    State(state): State<AppState>,
    _key: AdminKey,
    Id(id): Id,
    body: Bytes,
) -> ApiResult<Json<IdeaMoved>> {
    let b: IdeaStatusBody = typed_body(&body)?;
    let (idea, told) =
        community::set_idea_status(&state.store, &state.email, id, &b.status, b.note.as_deref())
            .await?;
    Ok(Json(IdeaMoved { idea, told }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Reputation {
    pub reputation: i64,
    #[schema(value_type = Object)]
    pub from: Standing,
}

/// A person's reputation: 10 per up-vote, −2 per down-vote, 15 per accepted answer.
#[utoipa::path(get, path = "/api/profiles/{id}/reputation", tag = "community",
    params(("id" = i64, Path)),
    responses((status = 200, body = Reputation), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn reputation(
    State(state): State<AppState>,
    _key: AdminKey,
    Id(id): Id,
) -> ApiResult<Json<Reputation>> {
    let (reputation, from) = community::reputation(&state.store, id).await?;
    Ok(Json(Reputation { reputation, from }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PostHits {
    pub items: Vec<PostHit>,
}

/// Visible posts matching `q`, best first (`limit` 1–50, default 10).
#[utoipa::path(get, path = "/api/community/search", tag = "community",
    params(("q" = String, Query), ("limit" = Option<usize>, Query, minimum = 1, maximum = 50)),
    responses((status = 200, body = PostHits), (status = 400, body = Problem)), security(("bearer" = [])))]
pub async fn search(
    State(state): State<AppState>,
    _key: AdminKey,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<PostHits>> {
    let text = q.get("q").map(String::as_str).unwrap_or("");
    if text.trim().is_empty() {
        return Err(ApiError::invalid("q", "words to look for"));
    }
    let limit = query_count(&q, "limit", 10, 50)?;
    Ok(Json(PostHits {
        items: community::search(&state.store, text, limit).await?,
    }))
}

#[utoipa::path(get, path = "/api/community/settings", tag = "community",
    responses((status = 200, body = CommunitySettings)), security(("bearer" = [])))]
pub async fn settings(
    State(state): State<AppState>,
    _key: AdminKey,
) -> ApiResult<Json<CommunitySettings>> {
    Ok(Json(community::settings(&state.store).await?))
}

/// Replaces the community settings (`idea_votes`, `hold_flagged`).
#[utoipa::path(put, path = "/api/community/settings", tag = "community",
    request_body = CommunitySettings,
    responses((status = 200, body = CommunitySettings), (status = 400, body = Problem)), security(("bearer" = [])))]
pub async fn set_settings(
    State(state): State<AppState>,
    _key: AdminKey,
    body: Bytes,
) -> ApiResult<Json<CommunitySettings>> {
    let s: CommunitySettings = typed_body(&body)?;
    Ok(Json(community::set_settings(&state.store, s).await?))
}
