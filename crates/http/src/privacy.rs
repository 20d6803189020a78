//! The privacy API (admin key): a person's data export (GDPR Art. 15/20), erasure
//! (Art. 17), and the audit of staff access.

use crate::auth::AdminKey;
use crate::problem::{ApiError, ApiResult, Id, Problem};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use rapport_app::privacy::audit;
use rapport_app::privacy::{RetentionReport, RetentionSettings};
use rapport_domain::time::now_millis;
use rapport_store::{AuditEntry, AuditQuery, ErasureReport};
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;

/// Everything stored about a person, as one JSON document (`format`
/// `rapport.person-export/1`): profile, identities, traits, consents, segments, scores
/// with explanations, every event, text analyses, relationships, e-mails and every other
/// row about them. The access is audited.
#[utoipa::path(get, path = "/api/profiles/{id}/export", tag = "privacy",
    params(("id" = i64, Path)),
    responses((status = 200, body = Object), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn export(
    State(state): State<AppState>,
    key: AdminKey,
    Id(id): Id,
) -> ApiResult<impl IntoResponse> {
    let doc = rapport_app::privacy::export(&state.store, id).await?;
    let person = doc["person"].as_i64().unwrap_or(id);
    audit(
        &state.store,
        &key.who(),
        "profile.export",
        format!("person:{person}"),
        json!({}),
    )
    .await?;
    Ok((
        [(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"person-{person}.json\""),
        )],
        Json(doc),
    ))
}

#[derive(Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EraseBody {
    /// Remember the person's identifiers by hash (SHA-256 only) so that tracking or
    /// imports carrying them are not stored and cannot recreate the person. Default true.
    pub remember: Option<bool>,
}

/// Erases a person, irreversibly: every raw profile's traits, identities, consents and
/// their proofs, event properties and texts, text analyses, relationships, scores,
/// memberships, e-mail copies and wallet holdings. Events stay as anonymous aggregates.
/// Afterwards no identifier of theirs finds anyone. The audit keeps who and when.
#[utoipa::path(post, path = "/api/profiles/{id}/erase", tag = "privacy",
    params(("id" = i64, Path)),
    request_body(content = EraseBody, description = "Optional"),
    responses((status = 200, body = ErasureReport), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn erase(
    State(state): State<AppState>,
    key: AdminKey,
    Id(id): Id,
    body: Bytes,
) -> ApiResult<Json<ErasureReport>> {
    let b: EraseBody = if body.iter().all(u8::is_ascii_whitespace) {
        EraseBody::default()
    } else {
        crate::problem::typed_body(&body)?
    };
    let report = state
        .ingestor
        .erased()
        .erase(id, b.remember.unwrap_or(true), &key.who(), now_millis())
        .await?;
    Ok(Json(report))
}

/// The audit of staff access, newest first: who opened a person's profile, exported,
/// erased, changed consents or traits, created keys or users. `target` (`person:42`),
/// `action` (`profile.view`), `before` (an entry id, for the next page), `limit` 1-1000.
#[utoipa::path(get, path = "/api/audit", tag = "privacy",
    params(("target" = Option<String>, Query), ("action" = Option<String>, Query),
           ("before" = Option<i64>, Query), ("limit" = Option<usize>, Query)),
    responses((status = 200, body = Vec<AuditEntry>)),
    security(("bearer" = [])))]
pub async fn audit_log(
    State(state): State<AppState>,
    _key: AdminKey,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Vec<AuditEntry>>> {
    let limit = match q.get("limit") {
        None => 100,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| ApiError::invalid("limit", "must be a number from 1 to 1000"))?,
    };
    let before = q
        .get("before")
        .map(|v| {
            v.parse::<i64>()
                .map_err(|_| ApiError::invalid("before", "must be an audit entry id"))
        })
        .transpose()?;
    Ok(Json(
        state
            .store
            .audit_log(AuditQuery {
                target: q.get("target").cloned(),
                action: q.get("action").cloned(),
                before,
                limit,
            })
            .await?,
    ))
}

/// A segment's members as a hashed customer list for an ad platform (`platform=meta`:
/// Meta Custom Audiences, `google`: Google Customer Match): CSV of SHA-256 hashes of
/// normalised e-mails and phones, only people whose `ads` × `custom_audiences` consent is
/// granted (`X-Rapport-Excluded`: how many were left out). Audited.
#[utoipa::path(get, path = "/api/segments/{id}/ad-audience", tag = "privacy",
    params(("id" = i64, Path), ("platform" = String, Query, description = "meta or google")),
    responses((status = 200, content_type = "text/csv", body = String), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn ad_audience(
    State(state): State<AppState>,
    key: AdminKey,
    Id(id): Id,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<impl IntoResponse> {
    let platform = q
        .get("platform")
        .and_then(|p| rapport_domain::privacy::AdPlatform::parse(p))
        .ok_or_else(|| ApiError::invalid("platform", "must be meta or google"))?;
    let (csv, included, excluded) =
        rapport_app::privacy::ad_audience(&state.store, id, platform).await?;
    audit(
        &state.store,
        &key.who(),
        "audience.export",
        format!("segment:{id}"),
        json!({"platform": q.get("platform"), "included": included, "excluded": excluded}),
    )
    .await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"segment-{id}-{}.csv\"",
                    q["platform"]
                ),
            ),
            (
                header::HeaderName::from_static("x-rapport-excluded"),
                excluded.to_string(),
            ),
        ],
        csv,
    ))
}

/// How long data is kept: anonymous people and events, in days (null: for ever). A
/// daily job applies it.
#[utoipa::path(get, path = "/api/settings/retention", tag = "privacy",
    responses((status = 200, body = RetentionSettings)), security(("bearer" = [])))]
pub async fn retention(
    State(state): State<AppState>,
    _key: AdminKey,
) -> ApiResult<Json<RetentionSettings>> {
    Ok(Json(rapport_app::privacy::retention(&state.store).await?))
}

#[utoipa::path(put, path = "/api/settings/retention", tag = "privacy", request_body = RetentionSettings,
    responses((status = 200, body = RetentionSettings), (status = 400, body = Problem)), security(("bearer" = [])))]
pub async fn set_retention(
    State(state): State<AppState>,
    key: AdminKey,
    body: Bytes,
) -> ApiResult<Json<RetentionSettings>> {
    let s: RetentionSettings = crate::problem::typed_body(&body)?;
    rapport_app::privacy::set_retention(&state.store, &s).await?;
    audit(
        &state.store,
        &key.who(),
        "retention.settings",
        "settings:retention".into(),
        serde_json::to_value(&s).unwrap_or_default(),
    )
    .await?;
    Ok(Json(s))
}

#[derive(Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetentionRun {
    /// Apply the rules as of this time (ISO-8601) instead of now.
    pub as_of: Option<String>,
}

/// Applies the retention rules now (the daily job does the same), as of `as_of` if given.
#[utoipa::path(post, path = "/api/settings/retention/run", tag = "privacy",
    request_body(content = RetentionRun, description = "Optional"),
    responses((status = 200, body = RetentionReport), (status = 400, body = Problem)), security(("bearer" = [])))]
pub async fn run_retention(
    State(state): State<AppState>,
    key: AdminKey,
    body: Bytes,
) -> ApiResult<Json<RetentionReport>> {
    let b: RetentionRun = if body.iter().all(u8::is_ascii_whitespace) {
        RetentionRun::default()
    } else {
        crate::problem::typed_body(&body)?
    };
    let at = match b.as_of {
        None => now_millis(),
        Some(t) => rapport_domain::time::parse_timestamp(&t).ok_or_else(|| {
            ApiError::invalid("as_of", format!("'{t}' is not an ISO-8601 timestamp"))
        })?,
    };
    let r = rapport_app::privacy::apply_retention(&state.store, at).await?;
    audit(
        &state.store,
        &key.who(),
        "retention.run",
        "settings:retention".into(),
        serde_json::to_value(&r).unwrap_or_default(),
    )
    .await?;
    Ok(Json(r))
}
