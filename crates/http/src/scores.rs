//! The scores API (admin key): RFM settings, custom weighted scores, recomputation, and a
//! person's scores with their explanations.

use crate::auth::AdminKey;
use crate::problem::{ApiError, ApiResult, Id, Problem};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::Json;
use rapport_app::scores::{self as sc, CustomScore, RfmConfig};
use rapport_store::ScoreRow;
use serde_json::{json, Value};

/// A JSON object body (the settings are objects; anything else is a 400).
fn body(b: &Bytes) -> ApiResult<Value> {
    let v = crate::problem::json_body(b)?;
    if !v.is_object() {
        return Err(ApiError::invalid("body", "must be a JSON object"));
    }
    Ok(v)
}

/// The score set-up: RFM settings, custom scores, and the built-in score names.
#[utoipa::path(get, path = "/api/scores", tag = "scores",
    responses((status = 200, body = Object)), security(("bearer" = [])))]
pub async fn list(State(state): State<AppState>, _key: AdminKey) -> ApiResult<Json<Value>> {
    Ok(Json(json!({
        "rfm": sc::rfm_config(&state.store).await?,
        "custom": sc::custom_scores(&state.store).await?,
        "builtin": sc::BUILTIN,
    })))
}

/// RFM settings: `{"event": "Order Completed", "revenue": "revenue", "window_days": 365}` (any subset).
#[utoipa::path(put, path = "/api/scores/rfm", tag = "scores",
    request_body(content = Object, description = "`{\"event\": \"Order Completed\", \"revenue\": \"revenue\", \"window_days\": 365}`"),
    responses((status = 200, body = RfmConfig), (status = 400, body = Problem)), security(("bearer" = [])))]
pub async fn set_rfm(
    State(state): State<AppState>,
    _key: AdminKey,
    b: Bytes,
) -> ApiResult<Json<RfmConfig>> {
    Ok(Json(sc::set_rfm_config(&state.store, &body(&b)?).await?))
}

/// Replaces the custom scores: `{"scores": [{"name": "lead_score", "terms": [{"when": "has email", "points": 10}]}]}`.
#[utoipa::path(put, path = "/api/scores/custom", tag = "scores",
    request_body(content = Object, description = "`{\"scores\": [{\"name\": \"lead_score\", \"terms\": [{\"when\": \"count(page, 30d) >= 5\", \"points\": 20}]}]}`"),
    responses((status = 200, body = Vec<CustomScore>), (status = 400, body = Problem)), security(("bearer" = [])))]
pub async fn set_custom(
    State(state): State<AppState>,
    _key: AdminKey,
    b: Bytes,
) -> ApiResult<Json<Vec<CustomScore>>> {
    Ok(Json(sc::set_custom_scores(&state.store, &body(&b)?).await?))
}

/// Recomputes every score now (`rapport serve` also does so every 15 minutes).
#[utoipa::path(post, path = "/api/scores/recompute", tag = "scores",
    responses((status = 200, body = Object)), security(("bearer" = [])))]
pub async fn recompute(State(state): State<AppState>, _key: AdminKey) -> ApiResult<Json<Value>> {
    let t = std::time::Instant::now();
    let n = sc::recompute(&state.store).await?;
    Ok(Json(
        json!({"values": n, "took_ms": t.elapsed().as_secs_f64() * 1000.0}),
    ))
}

/// A person's scores, each with the explanation of its value.
#[utoipa::path(get, path = "/api/profiles/{id}/scores", tag = "scores",
    params(("id" = i64, Path)),
    responses((status = 200, body = Vec<ScoreRow>), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn of_profile(
    State(state): State<AppState>,
    _key: AdminKey,
    Id(id): Id,
) -> ApiResult<Json<Vec<ScoreRow>>> {
    let id = state.store.profile(id).await?.id;
    Ok(Json(state.store.profile_scores(id).await?))
}
