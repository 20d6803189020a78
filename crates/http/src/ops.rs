//! Operations: health, metrics, stats, API keys.

use crate::auth::AdminKey;
use crate::problem::{ApiError, ApiResult, Id, Problem};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use rapport_domain::apikey::{Scope, Trust};
use rapport_domain::model::Stats;
use rapport_domain::time::to_datetime;
use rapport_store::KeyAccess;
use serde::Serialize;
use serde_json::Value;

/// Liveness and database reachability.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, description = "ok"), (status = 503, body = Problem)))]
pub async fn healthz(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    state
        .store
        .stats()
        .await
        .map_err(|e| ApiError::Unavailable(format!("database: {e}")))?;
    Ok(Json(
        serde_json::json!({"status": "ok", "store": state.store.kind()}),
    ))
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        rapport_app::metrics::render(),
    )
}

/// Counts of profiles, identities, events, merges and open conflicts.
#[utoipa::path(get, path = "/api/stats", tag = "ops", responses((status = 200, body = Stats), (status = 401, body = Problem)), security(("bearer" = [])))]
pub async fn stats(State(state): State<AppState>, _key: AdminKey) -> ApiResult<Json<Stats>> {
    Ok(Json(state.store.stats().await?))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct KeyView {
    pub id: i64,
    pub prefix: String,
    pub scope: Scope,
    pub label: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub revoked: bool,
    /// `server` (a secret) or `browser` (public, in web pages: origins, rate limits
    /// and bot filtering apply).
    pub trust: Trust,
    /// Origins a browser key may be used from; empty: any.
    pub origins: Vec<String>,
    /// Only in the response that creates the key: it is not stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

fn key_view(r: rapport_store::ApiKeyRecord, key: Option<String>) -> KeyView {
    KeyView {
        id: r.id,
        prefix: r.prefix,
        scope: r.scope,
        label: r.label,
        created_at: to_datetime(r.created_at),
        revoked: r.revoked,
        trust: r.access.trust,
        origins: r.access.origins,
        key,
    }
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
pub struct KeyBody {
    /// `write` (ingest only: the Segment write key), `admin`, or `insight` (aggregate
    /// audience insight only, for partners).
    pub scope: Scope,
    /// What the key is for, e.g. `website` (at most 200 characters are kept).
    pub label: Option<String>,
    /// `server` (the default) or `browser`, for a write key in web pages.
    pub trust: Option<Trust>,
    /// For a browser key: the origins it may be used from (`https://shop.example`).
    pub origins: Option<Vec<String>>,
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyAccessBody {
    /// `server` or `browser`.
    pub trust: Trust,
    /// Origins a browser key may be used from; empty or left out: any.
    pub origins: Option<Vec<String>>,
}

fn access(
    trust: Option<Trust>,
    origins: Option<Vec<String>>,
    scope: Scope,
) -> ApiResult<KeyAccess> {
    let access = rapport_app::web::key_access(trust, origins)?;
    if access.trust == Trust::Browser && scope != Scope::Write {
        return Err(ApiError::invalid(
            "trust",
            "admin and insight keys must stay secret: only write keys can be browser keys",
        ));
    }
    Ok(access)
}

/// Creates a key: `{"scope": "write"|"admin", "label": "…"}`. The secret is in this
/// response only.
#[utoipa::path(post, path = "/api/keys", tag = "ops", request_body = KeyBody,
    responses((status = 200, body = KeyView), (status = 400, body = Problem)), security(("bearer" = [])))]
pub async fn create_key(
    State(state): State<AppState>,
    key: AdminKey,
    body: Bytes,
) -> ApiResult<Json<KeyView>> {
    let b: KeyBody = crate::problem::typed_body(&body)?;
    let label: String = b.label.unwrap_or_default().chars().take(200).collect();
    let access = access(b.trust, b.origins, b.scope)?;
    let created = rapport_app::keys::create(&state.store, b.scope, &label, &access).await?;
    rapport_app::privacy::audit(
        &state.store,
        &key.who(),
        "key.create",
        format!("key:{}", created.record.prefix),
        serde_json::json!({"scope": b.scope.as_str()}),
    )
    .await?;
    Ok(Json(key_view(created.record, Some(created.secret))))
}

/// Lists keys (prefixes only; secrets are never stored).
#[utoipa::path(get, path = "/api/keys", tag = "ops", responses((status = 200, body = Vec<KeyView>)), security(("bearer" = [])))]
pub async fn list_keys(
    State(state): State<AppState>,
    _key: AdminKey,
) -> ApiResult<Json<Vec<KeyView>>> {
    Ok(Json(
        state
            .store
            .api_keys()
            .await?
            .into_iter()
            .map(|r| key_view(r, None))
            .collect(),
    ))
}

/// Changes a key's trust level and allowed origins: `{"trust": "browser", "origins":
/// ["https://shop.example"]}`.
#[utoipa::path(patch, path = "/api/keys/{id}", tag = "ops", params(("id" = i64, Path)), request_body = KeyAccessBody,
    responses((status = 200, body = KeyView), (status = 400, body = Problem), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn set_key_access(
    State(state): State<AppState>,
    _key: AdminKey,
    Id(id): Id,
    body: Bytes,
) -> ApiResult<Json<KeyView>> {
    let b: KeyAccessBody = crate::problem::typed_body(&body)?;
    let record = state
        .store
        .api_keys()
        .await?
        .into_iter()
        .find(|k| k.id == id)
        .ok_or_else(|| ApiError::NotFound(format!("API key {id}")))?;
    let access = access(Some(b.trust), b.origins, record.scope)?;
    state.keys.set_access(id, &access).await?;
    Ok(Json(key_view(
        rapport_store::ApiKeyRecord { access, ..record },
        None,
    )))
}

/// Revokes a key; it stops working within seconds.
#[utoipa::path(delete, path = "/api/keys/{id}", tag = "ops", params(("id" = i64, Path)), responses((status = 204), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn revoke_key(
    State(state): State<AppState>,
    _key: AdminKey,
    Id(id): Id,
) -> ApiResult<axum::http::StatusCode> {
    state.keys.revoke(id).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}
