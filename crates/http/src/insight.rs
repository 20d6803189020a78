//! Aggregate-only audience insight (insight or admin key): audience sizes and
//! breakdowns with differential-privacy noise, a minimum group size and a daily budget
//! per key; never a person. Its settings (admin key).

use crate::auth::{AdminKey, InsightKey};
use crate::problem::{typed_body, ApiError, ApiResult, Problem};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::Json;
use rapport_app::insight::{Audience, Breakdown, InsightError, InsightSettings};
use serde::Deserialize;

impl From<InsightError> for ApiError {
    fn from(e: InsightError) -> Self {
        match e {
            InsightError::Store(e) => e.into(),
            InsightError::BudgetSpent { retry_after_s, .. } => ApiError::TooMany {
                detail: e.to_string(),
                retry_after: std::time::Duration::from_secs(retry_after_s),
            },
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AudienceBody {
    /// A segment definition (docs/segments.md); empty: everyone.
    pub definition: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BreakdownBody {
    /// A segment definition; empty: everyone.
    #[serde(default)]
    pub definition: String,
    /// `traits.<key>`, `country`, `tier`, `community` or `channel`.
    pub by: String,
}

/// How many people a definition selects, with calibrated noise (ε per query), withheld
/// below the minimum group size; 429 when the key's daily budget is spent.
#[utoipa::path(post, path = "/api/insight/audience", tag = "insight", request_body = AudienceBody,
    responses((status = 200, body = Audience), (status = 400, body = Problem), (status = 429, body = Problem)),
    security(("bearer" = [])))]
pub async fn audience(
    State(state): State<AppState>,
    key: InsightKey,
    body: Bytes,
) -> ApiResult<Json<Audience>> {
    let b: AudienceBody = typed_body(&body)?;
    Ok(Json(
        rapport_app::insight::audience(&state.store, key.0.id, &b.definition).await?,
    ))
}

/// The audience broken down by one dimension; each group noisy, small groups withheld.
#[utoipa::path(post, path = "/api/insight/breakdown", tag = "insight", request_body = BreakdownBody,
    responses((status = 200, body = Breakdown), (status = 400, body = Problem), (status = 429, body = Problem)),
    security(("bearer" = [])))]
pub async fn breakdown(
    State(state): State<AppState>,
    key: InsightKey,
    body: Bytes,
) -> ApiResult<Json<Breakdown>> {
    let b: BreakdownBody = typed_body(&body)?;
    Ok(Json(
        rapport_app::insight::breakdown(&state.store, key.0.id, &b.definition, &b.by).await?,
    ))
}

/// The privacy parameters: minimum group size k, ε per query, daily budget per key.
#[utoipa::path(get, path = "/api/insight/settings", tag = "insight",
    responses((status = 200, body = InsightSettings)), security(("bearer" = [])))]
pub async fn settings(
    State(state): State<AppState>,
    _key: AdminKey,
) -> ApiResult<Json<InsightSettings>> {
    Ok(Json(rapport_app::insight::settings(&state.store).await?))
}

#[utoipa::path(put, path = "/api/insight/settings", tag = "insight", request_body = InsightSettings,
    responses((status = 200, body = InsightSettings), (status = 400, body = Problem)), security(("bearer" = [])))]
pub async fn set_settings(
    State(state): State<AppState>,
    key: AdminKey,
    body: Bytes,
) -> ApiResult<Json<InsightSettings>> {
    let s: InsightSettings = typed_body(&body)?;
    rapport_app::insight::set_settings(&state.store, s.clone()).await?;
    rapport_app::privacy::audit(
        &state.store,
        &key.who(),
        "insight.settings",
        "settings:insight".into(),
        serde_json::to_value(&s).unwrap_or_default(),
    )
    .await?;
    Ok(Json(s))
}
