//! The segments API (admin key): preview a definition, save, edit, refresh and delete
//! segments, their members and size history, and a person's segments.

use crate::auth::AdminKey;
use crate::problem::{typed_body, ApiError, ApiResult, Id, Problem};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use rapport_app::segments::{self as seg, Preview};
use rapport_domain::time::now_millis;
use rapport_store::{MembershipChange, SegmentRow, SegmentSize};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;

#[derive(Deserialize, utoipa::ToSchema)]
pub struct PreviewBody {
    /// In the segment language, e.g. `traits.plan = "pro" and count(track "Order
    /// Completed", 90d) >= 2`.
    pub definition: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct SegmentBody {
    pub name: String,
    /// Required unless `kind` is `static`.
    pub definition: Option<String>,
    pub description: Option<String>,
    /// `static`: a list rules add people to and remove them from (no definition).
    pub kind: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct SegmentEdit {
    pub definition: Option<String>,
    pub description: Option<String>,
}

#[derive(Default, Deserialize, utoipa::ToSchema)]
pub struct MicroBody {
    /// How many groups, 2-50 (default 8).
    pub k: Option<u64>,
}

/// How many people match a definition now, and a sample, without saving anything.
#[utoipa::path(post, path = "/api/segments/preview", tag = "segments",
    request_body = PreviewBody,
    responses((status = 200, body = Preview), (status = 400, description = "the definition's error with line and column", body = Problem)),
    security(("bearer" = [])))]
pub async fn preview(
    State(state): State<AppState>,
    _key: AdminKey,
    b: Bytes,
) -> ApiResult<Json<Preview>> {
    let body: PreviewBody = typed_body(&b)?;
    Ok(Json(
        seg::preview(&state.store, &body.definition, 10).await?,
    ))
}

/// Saves a segment (`name`, `definition`, optional `description`) and computes its members.
#[utoipa::path(post, path = "/api/segments", tag = "segments",
    request_body = SegmentBody,
    responses((status = 201, body = SegmentRow), (status = 400, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    _key: AdminKey,
    b: Bytes,
) -> ApiResult<(StatusCode, Json<SegmentRow>)> {
    let body: SegmentBody = typed_body(&b)?;
    let desc = body.description.as_deref().unwrap_or("");
    // A static segment has no definition: rules add and remove people.
    if body.kind.as_deref() == Some("static") {
        return Ok((
            StatusCode::CREATED,
            Json(seg::create_static(&state.store, &body.name, desc).await?),
        ));
    }
    let def = body
        .definition
        .ok_or_else(|| ApiError::invalid("definition", "is required: a string"))?;
    Ok((
        StatusCode::CREATED,
        Json(seg::create(&state.store, &body.name, &def, desc).await?),
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
    request_body = SegmentEdit,
    responses((status = 200, body = SegmentRow), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    _key: AdminKey,
    Id(id): Id,
    b: Bytes,
) -> ApiResult<Json<SegmentRow>> {
    let edit: SegmentEdit = typed_body(&b)?;
    Ok(Json(
        seg::update(
            &state.store,
            id,
            edit.definition.as_deref(),
            edit.description.as_deref(),
        )
        .await?,
    ))
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
    params(("id" = i64, Path), ("after" = Option<i64>, Query), ("limit" = Option<usize>, Query, minimum = 1, maximum = 1000, description = "1-1000, default 100")),
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
    params(("id" = i64, Path), ("days" = Option<i64>, Query, minimum = 1, maximum = 3650, description = "1-3650, default 90")),
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
    request_body(content = Option<MicroBody>, description = "Optional: the number of groups"),
    responses((status = 200, description = "the groups: name, description, size, feature means and z-scores", body = Vec<Object>), (status = 400, body = Problem)),
    security(("bearer" = [])))]
pub async fn refresh_micro(
    State(state): State<AppState>,
    _key: AdminKey,
    b: Bytes,
) -> ApiResult<Json<Value>> {
    let body: MicroBody = if b.is_empty() {
        MicroBody::default()
    } else {
        typed_body(&b)?
    };
    let k = match body.k {
        None => 8,
        Some(k) if (2..=50).contains(&k) => k as usize,
        Some(_) => {
            return Err(ApiError::invalid(
                "k",
                "must be a whole number from 2 to 50",
            ))
        }
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
