//! The knowledge-base API (admin key): articles written, changed and published,
//! customers' proposals reviewed, revisions with their diff, search, deflection.

use crate::auth::AdminKey;
use crate::problem::{query_count, typed_body, ApiError, ApiResult, Id, Problem};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use rapport_app::community::Actor;
use rapport_app::kb::{self, ArticleInput};
use rapport_store::{Article, ArticleHit, Deflection, Revision};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;

/// An article as the API takes it; with `author` (`email:…` or a profile id) it is a
/// customer's proposal.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ArticleBody {
    #[serde(flatten)]
    pub article: ArticleInput,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub author: Option<Value>,
}

/// Writes an article: `status` draft (default), published or archived; with an
/// `author`, a customer's proposal waiting for review.
#[utoipa::path(post, path = "/api/kb/articles", tag = "knowledge base",
    request_body = ArticleInput,
    responses((status = 201, body = Article), (status = 400, body = Problem)), security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    key: AdminKey,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Article>)> {
    let b: ArticleBody = typed_body(&body)?;
    let who = match &b.author {
        None => Actor::Staff(key.who()),
        Some(v) => Actor::Customer(
            rapport_app::profiles::named(&state.store, v, "author", "kb")
                .await?
                .0,
        ),
    };
    if matches!(who, Actor::Customer(_)) && b.article.status.is_some() {
        return Err(ApiError::invalid(
            "status",
            "a customer's article is a proposal: leave status out",
        ));
    }
    let a = kb::create(&state.store, &who, b.article).await?;
    Ok((StatusCode::CREATED, Json(a)))
}

/// Articles, newest change first: `status`, `category`, `limit` (1–500, default 50).
#[utoipa::path(get, path = "/api/kb/articles", tag = "knowledge base",
    params(("status" = Option<String>, Query), ("category" = Option<String>, Query),
           ("limit" = Option<usize>, Query, minimum = 1, maximum = 500)),
    responses((status = 200, body = Vec<Article>), (status = 400, body = Problem)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    _key: AdminKey,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Vec<Article>>> {
    if let Some(s) = q.get("status") {
        rapport_domain::community::ArticleStatus::parse("status", s)
            .map_err(|e| ApiError::invalid(&e.field, e.reason))?;
    }
    let limit = query_count(&q, "limit", 50, 500)?;
    Ok(Json(
        state
            .store
            .articles(q.get("status").cloned(), q.get("category").cloned(), limit)
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/kb/articles/{id}", tag = "knowledge base",
    params(("id" = i64, Path)),
    responses((status = 200, body = Article), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    _key: AdminKey,
    Id(id): Id,
) -> ApiResult<Json<Article>> {
    Ok(Json(kb::get(&state.store, id, true).await?))
}

/// Replaces an article's text (a new revision) and, with `status`, moves it.
#[utoipa::path(put, path = "/api/kb/articles/{id}", tag = "knowledge base",
    params(("id" = i64, Path)), request_body = ArticleInput,
    responses((status = 200, body = Article), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    key: AdminKey,
    Id(id): Id,
    body: Bytes,
) -> ApiResult<Json<Article>> {
    let a: ArticleInput = typed_body(&body)?;
    Ok(Json(kb::update(&state.store, &key.who(), id, a).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// Publish the proposal (or accept the edit); false rejects it.
    pub accept: bool,
}

/// Decides a customer's proposed article: published or rejected.
#[utoipa::path(post, path = "/api/kb/articles/{id}/review", tag = "knowledge base",
    params(("id" = i64, Path)), request_body = Decision,
    responses((status = 200, body = Article), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn review(
    State(state): State<AppState>,
    key: AdminKey,
    Id(id): Id,
    body: Bytes,
) -> ApiResult<Json<Article>> {
    let d: Decision = typed_body(&body)?;
    Ok(Json(
        kb::review(&state.store, &key.who(), id, d.accept).await?,
    ))
}

/// A customer proposes an edit to a published article.
#[utoipa::path(post, path = "/api/kb/articles/{id}/proposals", tag = "knowledge base",
    params(("id" = i64, Path)), request_body = ArticleInput,
    responses((status = 201, body = Revision), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn propose(
    State(state): State<AppState>,
    _key: AdminKey,
    Id(id): Id,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Revision>)> {
    let b: ArticleBody = typed_body(&body)?;
    let author = b
        .author
        .as_ref()
        .ok_or_else(|| ApiError::invalid("author", "the customer proposing the edit"))?;
    let (p, _) = rapport_app::profiles::named(&state.store, author, "author", "kb").await?;
    let v = kb::propose_edit(&state.store, p, id, b.article).await?;
    Ok((StatusCode::CREATED, Json(v)))
}

/// An article's revisions, newest first.
#[utoipa::path(get, path = "/api/kb/articles/{id}/revisions", tag = "knowledge base",
    params(("id" = i64, Path)),
    responses((status = 200, body = Vec<Revision>), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn revisions(
    State(state): State<AppState>,
    _key: AdminKey,
    Id(id): Id,
) -> ApiResult<Json<Vec<Revision>>> {
    kb::get(&state.store, id, true).await?;
    Ok(Json(state.store.revisions(id).await?))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RevisionDiff {
    #[serde(flatten)]
    pub revision: Revision,
    /// Unified diff from the text before it (a proposal: from the article now).
    pub diff: String,
}

#[utoipa::path(get, path = "/api/kb/revisions/{id}", tag = "knowledge base",
    params(("id" = i64, Path)),
    responses((status = 200, body = RevisionDiff), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn revision(
    State(state): State<AppState>,
    _key: AdminKey,
    Id(id): Id,
) -> ApiResult<Json<RevisionDiff>> {
    let (revision, diff) = kb::diff(&state.store, id).await?;
    Ok(Json(RevisionDiff { revision, diff }))
}

/// Accepts (the article takes its text) or rejects a proposed edit.
#[utoipa::path(post, path = "/api/kb/revisions/{id}/decision", tag = "knowledge base",
    params(("id" = i64, Path)), request_body = Decision,
    responses((status = 200, body = Article), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn decide(
    State(state): State<AppState>,
    key: AdminKey,
    Id(id): Id,
    body: Bytes,
) -> ApiResult<Json<Article>> {
    let d: Decision = typed_body(&body)?;
    Ok(Json(
        kb::decide_edit(&state.store, &key.who(), id, d.accept).await?,
    ))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ArticleHits {
    pub items: Vec<ArticleHit>,
}

/// Published articles matching `q`, best first (`limit` 1–50, default 10).
#[utoipa::path(get, path = "/api/kb/search", tag = "knowledge base",
    params(("q" = String, Query), ("limit" = Option<usize>, Query, minimum = 1, maximum = 50)),
    responses((status = 200, body = ArticleHits), (status = 400, body = Problem)), security(("bearer" = [])))]
pub async fn search(
    State(state): State<AppState>,
    _key: AdminKey,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<ArticleHits>> {
    let text = q.get("q").map(String::as_str).unwrap_or("");
    if text.trim().is_empty() {
        return Err(ApiError::invalid("q", "words to look for"));
    }
    let limit = query_count(&q, "limit", 10, 50)?;
    Ok(Json(ArticleHits {
        items: kb::search(&state.store, text, limit, false).await?,
    }))
}

/// Articles the ticket form suggested and customers opened, and the tickets avoided
/// (no ticket from that person within a day), over `days` (1–3650, default 30).
#[utoipa::path(get, path = "/api/kb/deflection", tag = "knowledge base",
    params(("days" = Option<i64>, Query, minimum = 1, maximum = 3650)),
    responses((status = 200, body = Deflection), (status = 400, body = Problem)), security(("bearer" = [])))]
pub async fn deflection(
    State(state): State<AppState>,
    _key: AdminKey,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Deflection>> {
    let days = query_count(&q, "days", 30, 3650)? as i64;
    Ok(Json(kb::deflection(&state.store, days).await?))
}
