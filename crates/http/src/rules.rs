//! The decision rules API (admin key): the rules, a dry run, the firing audit, and the
//! tasks rules open for staff.

use crate::auth::AdminKey;
use crate::problem::{json_body, query_count, ApiResult, Id, Problem};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::Json;
use rapport_app::rules::{self as r, Rule};
use rapport_store::{Firing, Outbound, Task};
use serde_json::{json, Value};
use std::collections::HashMap;

/// The rules.
#[utoipa::path(get, path = "/api/rules", tag = "rules",
    responses((status = 200, body = Object)), security(("bearer" = [])))]
pub async fn list(State(state): State<AppState>, _key: AdminKey) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({"rules": r::redacted(r::rules(&state.store).await?)}),
    ))
}

/// Replaces the rules; they act on events received from now on.
#[utoipa::path(put, path = "/api/rules", tag = "rules",
    request_body(content = Object, description = "`{\"rules\": [{\"name\": \"Angry big spender\", \"when\": \"track \\\"Ticket Opened\\\"\", \"where\": \"score.rfm_m >= 4 and complaints(1d) >= 1\", \"then\": [{\"action\": \"task\", \"title\": \"Call them today\"}], \"cap\": {\"max\": 1, \"per_hours\": 24}}]}`"),
    responses((status = 200, body = Vec<Rule>), (status = 400, body = Problem)), security(("bearer" = [])))]
pub async fn set(
    State(state): State<AppState>,
    _key: AdminKey,
    b: Bytes,
) -> ApiResult<Json<Vec<Rule>>> {
    Ok(Json(r::redacted(
        r::set_rules(&state.store, &json_body(&b)?).await?,
    )))
}

/// What a rule would do over the last `days` (default 7) of events, doing nothing.
#[utoipa::path(post, path = "/api/rules/dry-run", tag = "rules",
    request_body(content = Object, description = "`{\"rule\": {…}, \"days\": 7}`"),
    responses((status = 200, body = Object), (status = 400, body = Problem)), security(("bearer" = [])))]
pub async fn dry_run(
    State(state): State<AppState>,
    _key: AdminKey,
    b: Bytes,
) -> ApiResult<Json<Value>> {
    let v = json_body(&b)?;
    let q: HashMap<String, String> = v
        .get("days")
        .map(|d| HashMap::from([("days".to_string(), d.to_string())]))
        .unwrap_or_default();
    let days = query_count(&q, "days", 7, 365)? as i64;
    Ok(Json(
        r::dry_run(&state.store, v.get("rule").unwrap_or(&Value::Null), days).await?,
    ))
}

/// The audit: latest firings (`rule` to filter, `limit` 1-1000, default 100).
#[utoipa::path(get, path = "/api/rules/firings", tag = "rules",
    params(("rule" = Option<String>, Query), ("limit" = Option<usize>, Query, minimum = 1, maximum = 1000, description = "1-1000, default 100")),
    responses((status = 200, body = Vec<Firing>), (status = 400, body = Problem)), security(("bearer" = [])))]
pub async fn firings(
    State(state): State<AppState>,
    _key: AdminKey,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Vec<Firing>>> {
    let limit = query_count(&q, "limit", 100, 1000)?;
    Ok(Json(
        state.store.firings(q.get("rule").cloned(), limit).await?,
    ))
}

/// Tasks rules opened for staff, newest first.
#[utoipa::path(get, path = "/api/tasks", tag = "rules",
    params(("limit" = Option<usize>, Query, minimum = 1, maximum = 1000, description = "1-1000, default 100")),
    responses((status = 200, body = Vec<Task>), (status = 400, body = Problem)), security(("bearer" = [])))]
pub async fn tasks(
    State(state): State<AppState>,
    _key: AdminKey,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Vec<Task>>> {
    let limit = query_count(&q, "limit", 100, 1000)?;
    Ok(Json(state.store.tasks(limit).await?))
}

/// Outbound deliveries (webhooks), newest first; `status` = pending, delivered or dead.
#[utoipa::path(get, path = "/api/outbox", tag = "rules",
    params(("status" = Option<String>, Query), ("limit" = Option<usize>, Query, minimum = 1, maximum = 1000, description = "1-1000, default 100")),
    responses((status = 200, body = Vec<Outbound>), (status = 400, body = Problem)), security(("bearer" = [])))]
pub async fn outbox(
    State(state): State<AppState>,
    _key: AdminKey,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Vec<Outbound>>> {
    let limit = query_count(&q, "limit", 100, 1000)?;
    if let Some(s) = q.get("status") {
        if !matches!(s.as_str(), "pending" | "delivered" | "dead") {
            return Err(crate::problem::ApiError::invalid(
                "status",
                "must be pending, delivered or dead",
            ));
        }
    }
    Ok(Json(
        state
            .store
            .outbound(q.get("status").cloned(), limit)
            .await?,
    ))
}

/// Sends a dead or failing delivery again (attempts reset).
#[utoipa::path(post, path = "/api/outbox/{id}/retry", tag = "rules",
    params(("id" = i64, Path)),
    responses((status = 200, body = Outbound), (status = 404, body = Problem), (status = 409, body = Problem)), security(("bearer" = [])))]
pub async fn retry(
    State(state): State<AppState>,
    _key: AdminKey,
    Id(id): Id,
) -> ApiResult<Json<Outbound>> {
    Ok(Json(rapport_app::outbound::retry(&state.store, id).await?))
}

/// The offers.
#[utoipa::path(get, path = "/api/offers", tag = "rules",
    responses((status = 200, body = Object)), security(("bearer" = [])))]
pub async fn offers(State(state): State<AppState>, _key: AdminKey) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({"offers": rapport_app::offers::offers(&state.store).await?}),
    ))
}

/// Replaces the offers: `{"offers": [{"name", "description", "eligible", "priority", "score": [{"when", "points"}]}]}`.
#[utoipa::path(put, path = "/api/offers", tag = "rules",
    request_body(content = Object, description = "`{\"offers\": [{\"name\": \"Free shipping\", \"eligible\": \"count(track \\\"Order Completed\\\", 90d) >= 1\", \"priority\": 1, \"score\": [{\"when\": \"score.rfm_m >= 4\", \"points\": 10}]}]}`"),
    responses((status = 200, body = Object), (status = 400, body = Problem)), security(("bearer" = [])))]
pub async fn set_offers(
    State(state): State<AppState>,
    _key: AdminKey,
    b: Bytes,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({"offers": rapport_app::offers::set_offers(&state.store, &json_body(&b)?).await?}),
    ))
}

/// A person's next best offer, with every eligible offer ranked and why.
#[utoipa::path(get, path = "/api/profiles/{id}/next-best-offer", tag = "rules",
    params(("id" = i64, Path)),
    responses((status = 200, body = Object), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn next_best_offer(
    State(state): State<AppState>,
    _key: AdminKey,
    Id(id): Id,
) -> ApiResult<Json<Value>> {
    let id = state.store.profile(id).await?.id;
    Ok(Json(
        rapport_app::offers::next_best(&state.store, id).await?,
    ))
}
