//! API-key authentication. Ingestion takes the Segment convention (write key as the
//! Basic-auth user name, empty password) or a Bearer token; everything else takes an
//! admin key as `Authorization: Bearer <key>`.

use crate::problem::ApiError;
use crate::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::Engine;
use rapport_domain::apikey::Scope;
use rapport_store::ApiKeyRecord;

/// The key a request carries: a Bearer token, or the Basic-auth user name.
pub fn secret_from(headers: &axum::http::HeaderMap) -> Result<String, ApiError> {
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| ApiError::Unauthorized("send an API key: `Authorization: Bearer <key>`, or the write key as the Basic-auth user name".into()))?
        .to_str()
        .map_err(|_| ApiError::Unauthorized("the Authorization header is not valid text".into()))?;
    if let Some(token) = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
    {
        return Ok(token.trim().to_string());
    }
    if let Some(b64) = header
        .strip_prefix("Basic ")
        .or_else(|| header.strip_prefix("basic "))
    {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|_| {
                ApiError::Unauthorized("the Basic credentials are not valid base64".into())
            })?;
        let text = String::from_utf8(decoded)
            .map_err(|_| ApiError::Unauthorized("the Basic credentials are not UTF-8".into()))?;
        let user = text.split(':').next().unwrap_or("");
        return Ok(user.to_string());
    }
    Err(ApiError::Unauthorized(
        "unsupported Authorization scheme; use Bearer or Basic".into(),
    ))
}

async fn authenticate(parts: &Parts, state: &AppState) -> Result<ApiKeyRecord, ApiError> {
    let secret = secret_from(&parts.headers)?;
    key_of(state, &secret).await
}

/// The active key of a secret; 401 when unknown or revoked.
pub async fn key_of(state: &AppState, secret: &str) -> Result<ApiKeyRecord, ApiError> {
    state.keys.authenticate(secret).await?.ok_or_else(|| {
        ApiError::Unauthorized(format!(
            "unknown or revoked API key ({}…)",
            secret.chars().take(5).collect::<String>()
        ))
    })
}

/// The active key of a secret, allowed to ingest (write or admin scope); 403 for an
/// insight key.
pub async fn ingest_key_of(state: &AppState, secret: &str) -> Result<ApiKeyRecord, ApiError> {
    let key = key_of(state, secret).await?;
    if key.scope == Scope::Insight {
        return Err(insight_only(&key));
    }
    Ok(key)
}

/// A key allowed to ingest (write or admin scope).
pub struct WriteKey(pub ApiKeyRecord);
/// A key allowed to read and manage (admin scope).
pub struct AdminKey(pub ApiKeyRecord);

impl AdminKey {
    /// How audit records (merges, consents) name this caller: the key's public prefix.
    pub fn who(&self) -> String {
        format!("api:{}", self.0.prefix)
    }
}

impl FromRequestParts<AppState> for WriteKey {
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let key = authenticate(parts, state).await?;
        if key.scope == Scope::Insight {
            return Err(insight_only(&key));
        }
        Ok(WriteKey(key))
    }
}

impl FromRequestParts<AppState> for AdminKey {
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let key = authenticate(parts, state).await?;
        match key.scope {
            Scope::Admin => Ok(AdminKey(key)),
            Scope::Insight => Err(insight_only(&key)),
            Scope::Write => Err(ingest_only(&key, "an admin key")),
        }
    }
}

fn ingest_only(key: &ApiKeyRecord, needed: &str) -> ApiError {
    ApiError::Forbidden(format!(
        "key {}… has the write scope, which can only ingest; this needs {needed}",
        key.prefix
    ))
}

fn insight_only(key: &ApiKeyRecord) -> ApiError {
    ApiError::Forbidden(format!(
        "key {}… has the insight scope, which can only call /api/insight routes (aggregates, never a person)",
        key.prefix
    ))
}

/// A key allowed aggregate audience insight: the insight scope, or admin.
pub struct InsightKey(pub ApiKeyRecord);

impl FromRequestParts<AppState> for InsightKey {
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let key = authenticate(parts, state).await?;
        match key.scope {
            Scope::Insight | Scope::Admin => Ok(InsightKey(key)),
            Scope::Write => Err(ingest_only(&key, "an insight or admin key")),
        }
    }
}
