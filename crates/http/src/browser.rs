//! Websites: what the browser SDKs (Segment's analytics-next, RudderStack's
//! analytics-js) fetch before they send — their configuration — the CORS they need,
//! who the client is (address, origin, user agent), and the brand's `web` settings.
//! The events themselves go through `tracking`, with the same validation and
//! durability as every other client.

use crate::problem::{ApiError, ApiResult, Problem};
use crate::{auth::AdminKey, AppState};
use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method};
use axum::Json;
use rapport_app::web::{WebError, WebSettings};
use rapport_store::ApiKeyRecord;
use serde::Deserialize;
use serde_json::{json, Value};
use std::net::{IpAddr, SocketAddr};
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

/// CORS for the routes browsers call: any origin may ask (a key's allow-list is
/// enforced by the server, not by the browser), any request header (RudderStack sends
/// `Authorization` and `AnonymousId`, analytics-next `X-Retry-Count`), `Retry-After`
/// readable so the SDKs can honour a 429. No credentials: these routes use no cookies.
pub fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::mirror_request())
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers(AllowHeaders::mirror_request())
        .expose_headers([header::RETRY_AFTER])
        .max_age(std::time::Duration::from_secs(24 * 3600))
}

/// Who sent a request: its origin and user agent, and the socket's peer address.
pub struct ClientInfo {
    pub origin: Option<String>,
    pub user_agent: Option<String>,
    peer: Option<IpAddr>,
    forwarded_for: Option<IpAddr>,
}

impl ClientInfo {
    /// The client's address: the last `X-Forwarded-For` entry when the brand says a
    /// proxy sets it, else the socket's peer.
    pub fn ip(&self, settings: &WebSettings) -> Option<IpAddr> {
        if settings.trust_forwarded_for {
            self.forwarded_for.or(self.peer)
        } else {
            self.peer
        }
    }

    pub fn request<'a>(&'a self, settings: &WebSettings) -> rapport_app::web::Request<'a> {
        rapport_app::web::Request {
            origin: self.origin.as_deref(),
            ip: self.ip(settings),
            user_agent: self.user_agent.as_deref(),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientInfo {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let h = |name| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        // The proxy appends the address it saw: the last entry is the one it vouches for.
        let forwarded_for = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .next_back()
            .and_then(|s| s.trim().parse().ok());
        Ok(ClientInfo {
            origin: h(header::ORIGIN),
            user_agent: h(header::USER_AGENT),
            peer: parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
            forwarded_for,
        })
    }
}

/// The active write key `secret` names, as the SDKs' configuration routes take it.
async fn sdk_key(state: &AppState, secret: &str) -> ApiResult<ApiKeyRecord> {
    state.keys.authenticate(secret).await?.ok_or_else(|| {
        ApiError::NotFound(format!(
            "no active write key {}…",
            secret.chars().take(5).collect::<String>()
        ))
    })
}

/// Refuses a configuration request from an origin the key does not allow.
fn allowed(key: &ApiKeyRecord, client: &ClientInfo) -> ApiResult<()> {
    if key.access.origins.is_empty() {
        return Ok(());
    }
    let origin = client
        .origin
        .as_deref()
        .and_then(rapport_domain::apikey::normalise_origin);
    if origin.is_some_and(|o| key.access.origins.contains(&o)) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "origin {} is not allowed for write key {}…",
            client.origin.as_deref().unwrap_or("(none)"),
            key.prefix
        )))
    }
}

/// This server as the browser reached it (`rapport.example` or `127.0.0.1:8080`), and
/// the scheme (`https` when a proxy in front says so).
fn host_of(headers: &HeaderMap) -> ApiResult<(String, &'static str)> {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        })
        .ok_or_else(|| ApiError::invalid("Host", "a host name is required"))?;
    let https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"));
    Ok((host.to_string(), if https { "https" } else { "http" }))
}

/// analytics-next's settings (its "CDN settings"): only the `Segment.io` integration,
/// pointed back at this server; no device-mode destinations, no remote plugins, no
/// metrics sent to Segment.
#[utoipa::path(get, path = "/v1/projects/{write_key}/settings", tag = "ingestion",
    params(("write_key" = String, Path, description = "The browser write key")),
    responses((status = 200, description = "analytics-next settings", body = Object), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn sdk_settings(
    State(state): State<AppState>,
    Path(write_key): Path<String>,
    client: ClientInfo,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let key = sdk_key(&state, &write_key).await?;
    allowed(&key, &client)?;
    let (host, protocol) = host_of(&headers)?;
    Ok(Json(json!({
        "integrations": {
            "Segment.io": {
                "apiKey": write_key,
                "apiHost": format!("{host}/v1"),
                "protocol": protocol,
                "unbundledIntegrations": [],
                "addBundledMetadata": true,
                "maybeBundledConfigIds": {},
                "versionSettings": {"componentTypes": []}
            }
        },
        "plan": {
            "track": {"__default": {"enabled": true, "integrations": {}}},
            "identify": {"__default": {"enabled": true}},
            "group": {"__default": {"enabled": true}}
        },
        "edgeFunction": {},
        "analyticsNextEnabled": true,
        "middlewareSettings": {},
        "enabledMiddleware": {},
        "metrics": {"sampleRate": 0.0},
        "legacyVideoPluginsEnabled": false,
        "remotePlugins": []
    })))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct SourceConfigQuery {
    /// The write key (analytics-js sends it here and as Basic auth).
    #[serde(rename = "writeKey")]
    pub write_key: Option<String>,
}

/// RudderStack analytics-js's source configuration: the source enabled, no
/// destinations. The write key comes as `?writeKey=` or as the Basic-auth user.
#[utoipa::path(get, path = "/sourceConfig", tag = "ingestion",
    params(SourceConfigQuery),
    responses((status = 200, description = "RudderStack source configuration", body = Object), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn source_config(
    State(state): State<AppState>,
    Query(q): Query<SourceConfigQuery>,
    client: ClientInfo,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let secret = match q.write_key.filter(|k| !k.is_empty()) {
        Some(k) => k,
        None => crate::auth::secret_from(&headers)?,
    };
    let key = sdk_key(&state, &secret).await?;
    allowed(&key, &client)?;
    Ok(Json(json!({
        "isHosted": false,
        "source": {
            "id": format!("rapport-{}", key.id),
            "name": if key.label.is_empty() { "Website".to_string() } else { key.label.clone() },
            "writeKey": secret,
            "enabled": true,
            "workspaceId": "rapport",
            "config": {"statsCollection": {"errors": {"enabled": false}, "metrics": {"enabled": false}}},
            "destinations": []
        }
    })))
}

/// The brand's website-tracking settings.
#[utoipa::path(get, path = "/api/settings/web", tag = "ingestion",
    responses((status = 200, body = WebSettings)), security(("bearer" = [])))]
pub async fn web_settings(
    State(state): State<AppState>,
    _key: AdminKey,
) -> ApiResult<Json<WebSettings>> {
    Ok(Json(state.web.settings().await?))
}

/// Replaces the website-tracking settings; fields left out take their defaults.
#[utoipa::path(put, path = "/api/settings/web", tag = "ingestion", request_body = WebSettings,
    responses((status = 200, body = WebSettings), (status = 400, body = Problem)), security(("bearer" = [])))]
pub async fn set_web_settings(
    State(state): State<AppState>,
    _key: AdminKey,
    body: axum::body::Bytes,
) -> ApiResult<Json<WebSettings>> {
    let w: WebSettings = crate::problem::typed_body(&body)?;
    Ok(Json(state.web.set_settings(w).await.map_err(web_error)?))
}

pub fn web_error(e: WebError) -> ApiError {
    match e {
        WebError::Invalid(f) => f.into(),
        WebError::Store(s) => s.into(),
    }
}
