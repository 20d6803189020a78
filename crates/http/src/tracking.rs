//! The Segment HTTP Tracking API (`/v1/...`), so existing Segment and RudderStack SDKs
//! work unchanged, and a JSON Lines bulk endpoint for back-fills.

use crate::auth::{ingest_key_of, secret_from, WriteKey};
use crate::browser::ClientInfo;
use crate::problem::{ApiError, ApiResult, Problem};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use rapport_app::identity::{IdentityError, IdentitySettings};
use rapport_app::ingest::IngestError;
use rapport_app::metrics::metrics;
use rapport_app::upload::{upload_jsonl, UploadError, UploadSummary};
use rapport_app::web::{Refusal, WebSettings};
use rapport_domain::apikey::Trust;
use rapport_domain::message::{parse_body, MessageType, MAX_BATCH_BYTES};
use rapport_domain::time::now_millis;
use rapport_domain::web::Client;
use rapport_store::ApiKeyRecord;
use serde::Serialize;
use std::io::Read;

/// How much of a refused upload's body is read (and dropped) before answering 429.
const DRAIN_BYTES: usize = 16 * 1024 * 1024;
/// Largest JSON Lines upload (decompressed).
pub const MAX_JSONL_BYTES: usize = rapport_app::upload::MAX_UPLOAD_BYTES as usize;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Success {
    pub success: bool,
    /// Identifiers taken out of identity resolution as placeholders (`anonymousId:
    /// "undefined"`, `test@test.com`, the zero wallet, the brand's patterns); the
    /// messages themselves were stored. Absent when there were none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dropped: Vec<rapport_domain::blocklist::Dropped>,
}

impl Success {
    fn new(dropped: Vec<rapport_domain::blocklist::Dropped>) -> Success {
        Success {
            success: true,
            dropped,
        }
    }
}

/// The body, gunzipped when `Content-Encoding: gzip`, refusing more than `limit` bytes.
pub fn decode(headers: &HeaderMap, body: Bytes, limit: usize) -> ApiResult<Bytes> {
    let enc = headers
        .get(axum::http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_ascii_lowercase());
    match enc.as_deref() {
        None | Some("") | Some("identity") => Ok(body),
        Some("gzip") => {
            let mut out = Vec::with_capacity(body.len() * 4);
            flate2::read::GzDecoder::new(&body[..])
                .take(limit as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| ApiError::invalid("body", format!("not valid gzip: {e}")))?;
            if out.len() > limit {
                return Err(ApiError::TooLarge {
                    field: "body".into(),
                    reason: format!("decompressed request is over the limit of {limit} bytes"),
                });
            }
            Ok(Bytes::from(out))
        }
        Some(other) => Err(ApiError::invalid(
            "Content-Encoding",
            format!("'{other}' is not supported; send gzip or no encoding"),
        )),
    }
}

/// The write key in the body, as analytics-next sends it (`writeKey`, at the top or on
/// the first message of a batch) when it sends no `Authorization` header.
fn write_key_in(body: &[u8]) -> ApiResult<String> {
    #[derive(serde::Deserialize)]
    struct Keyed {
        #[serde(rename = "writeKey")]
        write_key: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Body {
        #[serde(rename = "writeKey")]
        write_key: Option<String>,
        batch: Option<Vec<Keyed>>,
    }
    let missing = || {
        ApiError::Unauthorized(
            "send the write key: as the Basic-auth user name, a Bearer token, or `writeKey` in the body".into(),
        )
    };
    let b: Body = serde_json::from_slice(body).map_err(|_| missing())?;
    b.write_key
        .or_else(|| b.batch?.into_iter().next()?.write_key)
        .filter(|k| !k.is_empty())
        .ok_or_else(missing)
}

/// Holds a request to its key's limits (browser keys); `false` when it is to be
/// dropped unstored (a bot).
fn guard(
    state: &AppState,
    key: &ApiKeyRecord,
    client: &ClientInfo,
    settings: &WebSettings,
) -> ApiResult<bool> {
    match state.web.check(key, &client.request(settings), settings) {
        Ok(()) => Ok(true),
        Err(Refusal::Bot) => Ok(false),
        Err(Refusal::Origin(o)) => Err(ApiError::Forbidden(format!(
            "origin {o} is not allowed for write key {}…",
            key.prefix
        ))),
        Err(Refusal::RateLimited { who, retry_after }) => Err(ApiError::TooMany {
            detail: format!(
                "past this {who}'s rate limit for browser key {}…",
                key.prefix
            ),
            retry_after,
        }),
    }
}

async fn ingest(
    state: &AppState,
    headers: &HeaderMap,
    client: &ClientInfo,
    body: Bytes,
    endpoint: Option<MessageType>,
) -> ApiResult<Json<Success>> {
    let result = async {
        let settings = state.web.settings().await?;
        // A key in the header is checked before the body is read, so refusals stay cheap.
        let mut key = None;
        if headers.contains_key(axum::http::header::AUTHORIZATION) {
            let k = ingest_key_of(state, &secret_from(headers)?).await?;
            if !guard(state, &k, client, &settings)? {
                return Ok(Json(Success::new(Vec::new())));
            }
            key = Some(k);
        }
        let body = decode(headers, body, MAX_BATCH_BYTES)?;
        let key = match key {
            Some(k) => k,
            None => {
                let k = ingest_key_of(state, &write_key_in(&body)?).await?;
                if !guard(state, &k, client, &settings)? {
                    return Ok(Json(Success::new(Vec::new())));
                }
                k
            }
        };
        let from = Client {
            ip: client.ip(&settings),
            policy: settings.ip,
        };
        let path = |i: usize| match endpoint {
            None => format!("batch[{i}]."),
            Some(_) => String::new(),
        };
        let trust = key.access.trust;
        let parse = || -> ApiResult<Vec<rapport_domain::Message>> {
            let mut msgs = parse_body(&body, endpoint, now_millis(), Some(from))?;
            // A browser key's messages may not write into a person they reach only
            // through a trait identifier (docs/identity.md, "Browser keys").
            for m in &mut msgs {
                m.trust = trust;
            }
            Ok(msgs)
        };
        let mut msgs = parse()?;
        let dropped = state.identity.screen(&mut msgs, path).await?;
        match state.ingestor.submit(&key.prefix, msgs).await {
            // Another request spoiled the group: this one goes again, alone (rebuilt
            // from the body, so the writer keeps no copies).
            Err(IngestError::Refused) => {
                let mut msgs = parse()?;
                state.identity.screen(&mut msgs, path).await?;
                state.ingestor.submit_alone(&key.prefix, msgs).await?;
            }
            r => r?,
        }
        Ok(Json(Success::new(dropped)))
    }
    .await;
    if let Err(e) = &result {
        let reason = match e {
            ApiError::TooLarge { .. } => Some("too_large"),
            ApiError::Invalid { .. } => Some("invalid"),
            ApiError::Unauthorized(_) => Some("unauthorized"),
            // Counted by the guard, by reason.
            ApiError::Forbidden(_) | ApiError::TooMany { .. } => None,
            _ => Some("unavailable"),
        };
        if let Some(reason) = reason {
            metrics().events_rejected.with_label_values(&[reason]).inc();
        }
    }
    result
}

macro_rules! endpoint {
    ($name:ident, $path:literal, $kind:expr, $doc:literal) => {
        #[doc = $doc]
        #[utoipa::path(post, path = $path, tag = "ingestion",
            request_body(content = Object, description = "A Segment message (JSON, optionally gzip; `Content-Type: text/plain` as browsers send it is accepted)"),
            responses((status = 200, body = Success), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 413, body = Problem), (status = 429, body = Problem), (status = 503, body = Problem)),
            security(("write_key" = []), ("bearer" = []), ()))]
        pub async fn $name(State(state): State<AppState>, client: ClientInfo, headers: HeaderMap, body: Bytes) -> ApiResult<Json<Success>> {
            ingest(&state, &headers, &client, body, $kind).await
        }
    };
}

endpoint!(
    identify,
    "/v1/identify",
    Some(MessageType::Identify),
    "Who a person is: traits and identifiers."
);
endpoint!(
    track,
    "/v1/track",
    Some(MessageType::Track),
    "Something a person did."
);
endpoint!(
    page,
    "/v1/page",
    Some(MessageType::Page),
    "A web page view."
);
endpoint!(
    screen,
    "/v1/screen",
    Some(MessageType::Screen),
    "A mobile screen view."
);
endpoint!(
    group,
    "/v1/group",
    Some(MessageType::Group),
    "A person's company or group."
);
endpoint!(
    alias,
    "/v1/alias",
    Some(MessageType::Alias),
    "Ties a previous id to a user id (merges, overriding merge protection)."
);
endpoint!(
    batch,
    "/v1/batch",
    None,
    "Up to 500 KB of messages (32 KB each): `{\"batch\": [...], \"sentAt\": ...}`. All or nothing."
);
endpoint!(
    import,
    "/v1/import",
    None,
    "Same as /v1/batch (Segment's historical import endpoint)."
);
// analytics-next's short paths: the first letter of the type, and `b` for a batch.
endpoint!(
    identify_short,
    "/v1/i",
    Some(MessageType::Identify),
    "Same as /v1/identify (analytics-next's path)."
);
endpoint!(
    track_short,
    "/v1/t",
    Some(MessageType::Track),
    "Same as /v1/track (analytics-next's path)."
);
endpoint!(
    page_short,
    "/v1/p",
    Some(MessageType::Page),
    "Same as /v1/page (analytics-next's path)."
);
endpoint!(
    screen_short,
    "/v1/s",
    Some(MessageType::Screen),
    "Same as /v1/screen (analytics-next's path)."
);
endpoint!(
    group_short,
    "/v1/g",
    Some(MessageType::Group),
    "Same as /v1/group (analytics-next's path)."
);
endpoint!(
    alias_short,
    "/v1/a",
    Some(MessageType::Alias),
    "Same as /v1/alias (analytics-next's path)."
);
endpoint!(
    batch_short,
    "/v1/b",
    None,
    "Same as /v1/batch (analytics-next's batching path)."
);

/// Bulk back-fill: one Segment message per line (JSON Lines, optionally gzip), up to
/// 256 MB decompressed, streamed in bounded memory. Every line is checked before any is
/// stored: a bad line refuses the upload, naming the line. At most two uploads run at
/// once; past that, 429 with `Retry-After`.
#[utoipa::path(post, path = "/api/import/events", tag = "ingestion",
    request_body(content = String, content_type = "application/x-ndjson"),
    responses((status = 200, body = UploadSummary), (status = 400, body = Problem), (status = 413, body = Problem), (status = 429, body = Problem)),
    security(("bearer" = []), ("write_key" = [])))]
pub async fn import_jsonl(
    State(state): State<AppState>,
    key: WriteKey,
    headers: HeaderMap,
    body: axum::body::Body,
) -> ApiResult<Json<UploadSummary>> {
    use futures_util::TryStreamExt;
    use tokio::io::AsyncBufRead;
    if key.0.access.trust == Trust::Browser {
        return Err(ApiError::Forbidden(format!(
            "key {}… is a browser key: it sends events the way a page does (/v1/…), not bulk uploads",
            key.0.prefix
        )));
    }
    let Some(_place) = state.uploads.try_start() else {
        // Read (and drop) what the client is sending, up to a bound, so it sees the 429
        // rather than a connection reset mid-upload; memory stays one chunk.
        let mut stream = body.into_data_stream();
        let mut read = 0usize;
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while read < DRAIN_BYTES {
            match tokio::time::timeout_at(deadline, futures_util::StreamExt::next(&mut stream))
                .await
            {
                Ok(Some(Ok(chunk))) => read += chunk.len(),
                _ => break,
            }
        }
        return Err(ApiError::TooMany {
            detail: format!(
                "{} uploads are running; retry shortly",
                rapport_app::upload::CONCURRENT
            ),
            retry_after: std::time::Duration::from_secs(5),
        });
    };
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let raw = tokio_util::io::StreamReader::new(stream);
    let enc = headers
        .get(axum::http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_ascii_lowercase());
    let input: std::pin::Pin<Box<dyn AsyncBufRead + Send>> = match enc.as_deref() {
        None | Some("") | Some("identity") => Box::pin(raw),
        Some("gzip") => Box::pin(tokio::io::BufReader::new(
            async_compression::tokio::bufread::GzipDecoder::new(raw),
        )),
        Some(other) => {
            return Err(ApiError::invalid(
                "Content-Encoding",
                format!("'{other}' is not supported; send gzip or no encoding"),
            ))
        }
    };
    upload_jsonl(&state.ingestor, &state.identity, &key.0.prefix, input)
        .await
        .map(Json)
        .map_err(|e| match e {
            UploadError::Invalid(f) => f.into(),
            UploadError::TooLarge => ApiError::TooLarge {
                field: "body".into(),
                reason: e.to_string(),
            },
            UploadError::Read(r) => ApiError::invalid("body", r),
            UploadError::Ingest(i) => i.into(),
            UploadError::Store(e) => e.into(),
        })
}

/// The brand's identity-resolution policy: its own blocked (placeholder) values.
#[utoipa::path(get, path = "/api/settings/identity", tag = "ingestion",
    responses((status = 200, body = IdentitySettings)), security(("bearer" = [])))]
pub async fn identity_settings(
    State(state): State<AppState>,
    _key: crate::auth::AdminKey,
) -> ApiResult<Json<IdentitySettings>> {
    Ok(Json(state.identity.settings().await?))
}

/// Replaces the identity-resolution policy; an invalid pattern is refused, naming it.
#[utoipa::path(put, path = "/api/settings/identity", tag = "ingestion", request_body = IdentitySettings,
    responses((status = 200, body = IdentitySettings), (status = 400, body = Problem)), security(("bearer" = [])))]
pub async fn set_identity_settings(
    State(state): State<AppState>,
    _key: crate::auth::AdminKey,
    body: Bytes,
) -> ApiResult<Json<IdentitySettings>> {
    let s: IdentitySettings = crate::problem::typed_body(&body)?;
    match state.identity.set_settings(s).await {
        Ok(s) => Ok(Json(s)),
        Err(IdentityError::Invalid(f)) => Err(f.into()),
        Err(IdentityError::Store(e)) => Err(e.into()),
    }
}

/// What ingestion dropped from identity resolution (invalid identifiers, placeholders),
/// per message field and kind, most frequent first, with the latest example. The
/// messages themselves were stored.
#[utoipa::path(get, path = "/api/ingestion/issues", tag = "ingestion",
    params(("limit" = Option<usize>, Query, minimum = 1, maximum = 1000, description = "1-1000, default 100")),
    responses((status = 200, body = Vec<rapport_store::IngestionIssue>)), security(("bearer" = [])))]
pub async fn ingestion_issues(
    State(state): State<AppState>,
    _key: crate::auth::AdminKey,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> ApiResult<Json<Vec<rapport_store::IngestionIssue>>> {
    let limit = crate::problem::query_count(&q, "limit", 100, 1000)?;
    Ok(Json(state.store.ingestion_issues(limit).await?))
}
