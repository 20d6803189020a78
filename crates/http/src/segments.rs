//! The segments API (admin key): preview a definition, save, edit, refresh and delete
//! segments, their members and size history, and a person's segments.

use crate::auth::AdminKey;
use crate::problem::{ApiError, ApiResult, Id, Problem};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use rapport_app::segments::{self as seg, Preview};
use rapport_domain::time::now_millis;
use rapport_store::{MembershipChange, SegmentRow, SegmentSize};
use serde_json::{json, Value};
use std::collections::HashMap;

fn body(b: &Bytes) -> ApiResult<Value> {
    crate::problem::json_body(b)
}

fn text<'a>(v: &'a Value, field: &str, required: bool) -> ApiResult<Option<&'a str>> {
    match v.get(field) {
        None | Some(Value::Null) if !required => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        _ => Err(ApiError::invalid(field, "is required: a string")),
    }
}

/// How many people match a definition now, and a sample, without saving anything.
#[utoipa::path(post, path = "/api/segments/preview", tag = "segments",
    request_body(content = Object, description = "`{\"definition\": \"traits.plan = \\\"pro\\\" and count(track \\\"Order Completed\\\", 90d) >= 2\"}`"),
    responses((status = 200, body = Preview), (status = 400, description = "the definition's error with line and column", body = Problem)),
    security(("bearer" = [])))]
pub async fn preview(
    State(state): State<AppState>,
    _key: AdminKey,
    b: Bytes,
) -> ApiResult<Json<Preview>> {
    let v = body(&b)?;
    let def = text(&v, "definition", true)?.unwrap_or_default();
    Ok(Json(seg::preview(&state.store, def, 10).await?))
}

/// Saves a segment (`name`, `definition`, optional `description`) and computes its members.
#[utoipa::path(post, path = "/api/segments", tag = "segments",
    request_body(content = Object, description = "`{\"name\": \"Engaged buyers\", \"definition\": \"…\", \"description\": \"…\"}`, or `{\"name\": \"Ambassadors\", \"kind\": \"static\"}` for a list rules add people to"),
    responses((status = 201, body = SegmentRow), (status = 400, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    _key: AdminKey,
    b: Bytes,
) -> ApiResult<(StatusCode, Json<SegmentRow>)> {
    let v = body(&b)?;
    let name = text(&v, "name", true)?.unwrap_or_default();
    let desc = text(&v, "description", false)?.unwrap_or("");
    // A static segment has no definition: rules add and remove people.
    if text(&v, "kind", false)? == Some("static") {
        return Ok((
            StatusCode::CREATED,
            Json(seg::create_static(&state.store, name, desc).await?),
        ));
    }
    let def = text(&v, "definition", true)?.unwrap_or_default();
    Ok((
        StatusCode::CREATED,
        Json(seg::create(&state.store, name, def, desc).await?),
    ))
}

/// Every segment with its size.
#[utoipa::path(get, path = "/api/segments", tag = "segments",
    responses((status = 200, body = Vec<SegmentRow>)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    _key: AdminKey,
) -> ApiResult<Json<Vec<SegmentRow>>> {
    Ok(Json(state.store.segments().await?))
}

/// One segment.
#[utoipa::path(get, path = "/api/segments/{id}", tag = "segments",
    params(("id" = i64, Path)),
    responses((status = 200, body = SegmentRow), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    _key: AdminKey,
    Id(id): Id,
) -> ApiResult<Json<SegmentRow>> {
    Ok(Json(state.store.segment(id).await?))
}

/// Changes a segment's `definition` and/or `description`; members are recomputed.
#[utoipa::path(put, path = "/api/segments/{id}", tag = "segments",
    params(("id" = i64, Path)),
    request_body(content = Object, description = "`{\"definition\": \"…\"}`"),
    responses((status = 200, body = SegmentRow), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    _key: AdminKey,
    Id(id): Id,
    b: Bytes,
) -> ApiResult<Json<SegmentRow>> {
    let v = body(&b)?;
    let def = text(&v, "definition", false)?;
    let desc = text(&v, "description", false)?;
    Ok(Json(seg::update(&state.store, id, def, desc).await?))
}

/// Deletes a segment (409 while another segment refers to it).
#[utoipa::path(delete, path = "/api/segments/{id}", tag = "segments",
    params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)), security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    _key: AdminKey,
    Id(id): Id,
) -> ApiResult<StatusCode> {
    seg::delete(&state.store, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Recomputes a segment's members now; returns who entered and left.
#[utoipa::path(post, path = "/api/segments/{id}/refresh", tag = "segments",
    params(("id" = i64, Path)),
    responses((status = 200, body = MembershipChange), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn refresh(
    State(state): State<AppState>,
    _key: AdminKey,
    Id(id): Id,
) -> ApiResult<Json<MembershipChange>> {
    Ok(Json(seg::refresh(&state.store, id).await?))
}

/// Members by id, `limit` (1-1000, default 100) after `after`.
#[utoipa::path(get, path = "/api/segments/{id}/members", tag = "segments",
    params(("id" = i64, Path), ("after" = Option<i64>, Query), ("limit" = Option<usize>, Query)),
    responses((status = 200, body = Object), (status = 400, body = Problem), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn members(
    State(state): State<AppState>,
    _key: AdminKey,
    Id(id): Id,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    state.store.segment(id).await?;
    let after = match q.get("after") {
        None => 0,
        Some(a) => a
            .parse::<i64>()
            .map_err(|_| ApiError::invalid("after", "must be a profile id"))?,
    };
    let limit = crate::problem::query_count(&q, "limit", 100, 1000)?;
    let ids = state.store.segment_member_ids(id, after, limit).await?;
    let next = (ids.len() == limit).then(|| ids.last().copied()).flatten();
    Ok(Json(json!({"members": ids, "next_after": next})))
}

/// Size history (per minute with changes) over the last `days` (default 90).
#[utoipa::path(get, path = "/api/segments/{id}/sizes", tag = "segments",
    params(("id" = i64, Path), ("days" = Option<i64>, Query)),
    responses((status = 200, body = Vec<SegmentSize>), (status = 400, body = Problem), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn sizes(
    State(state): State<AppState>,
    _key: AdminKey,
    Id(id): Id,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Vec<SegmentSize>>> {
    state.store.segment(id).await?;
    let days = crate::problem::query_count(&q, "days", 90, 3650)? as i64;
    Ok(Json(
        state
            .store
            .segment_sizes(id, now_millis() - days * 86_400_000)
            .await?,
    ))
}

/// The segments a person is in.
#[utoipa::path(get, path = "/api/profiles/{id}/segments", tag = "segments",
    params(("id" = i64, Path)),
    responses((status = 200, body = Vec<String>), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn of_profile(
    State(state): State<AppState>,
    _key: AdminKey,
    Id(id): Id,
) -> ApiResult<Json<Vec<String>>> {
    let id = state.store.profile(id).await?.id;
    Ok(Json(state.store.profile_segments(id).await?))
}

/// Regroups everyone with activity into micro-segments (`{"k": 8}`, 2-50): k-means on
/// recency, purchases, spend, engagement, influence and reach, each group saved as a
/// segment (`Micro 1`… by size) described in words.
#[utoipa::path(post, path = "/api/micro-segments/refresh", tag = "segments",
    request_body(content = Object, description = "`{\"k\": 8}`"),
    responses((status = 200, description = "the groups: name, description, size, feature means and z-scores", body = Vec<Object>), (status = 400, body = Problem)),
    security(("bearer" = [])))]
pub async fn refresh_micro(
    State(state): State<AppState>,
    _key: AdminKey,
    b: Bytes,
) -> ApiResult<Json<Value>> {
    let v = if b.is_empty() { json!({}) } else { body(&b)? };
    let k = match v.get("k") {
        None => 8,
        Some(k) => k
            .as_u64()
            .filter(|k| (2..=50).contains(k))
            .ok_or_else(|| ApiError::invalid("k", "must be a whole number from 2 to 50"))?
            as usize,
    };
    Ok(Json(Value::Array(
        rapport_app::micro::refresh_micro(&state.store, k).await?,
    )))
}

/// The micro-segments as last computed.
#[utoipa::path(get, path = "/api/micro-segments", tag = "segments",
    responses((status = 200, body = Vec<Object>)), security(("bearer" = [])))]
pub async fn micro(State(state): State<AppState>, _key: AdminKey) -> ApiResult<Json<Value>> {
    Ok(Json(rapport_app::micro::micro(&state.store).await?))
}
