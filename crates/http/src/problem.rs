//! RFC 9457 problem details for every error the API returns, naming the field at fault.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rapport_app::ingest::IngestError;
use rapport_domain::message::BodyError;
use rapport_domain::FieldError;
use rapport_store::StoreError;
use serde::Serialize;

#[derive(Debug)]
pub enum ApiError {
    Invalid {
        field: String,
        reason: String,
    },
    TooLarge {
        field: String,
        reason: String,
    },
    Unauthorized(String),
    Forbidden(String),
    NotFound(String),
    Conflict(String),
    /// 429 with `Retry-After` (whole seconds, at least 1).
    TooMany {
        detail: String,
        retry_after: std::time::Duration,
    },
    Unavailable(String),
    Internal(String),
}

/// The problem+json body (also the OpenAPI schema of every error response).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The request field at fault, e.g. `batch[3].traits.email`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    pub fn invalid(field: &str, reason: impl Into<String>) -> Self {
        ApiError::Invalid {
            field: field.to_string(),
            reason: reason.into(),
        }
    }

    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            ApiError::Invalid { .. } => (StatusCode::BAD_REQUEST, "validation", "Invalid request"),
            ApiError::TooLarge { .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                "Payload too large",
            ),
            ApiError::Unauthorized(_) => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Missing or unknown API key",
            ),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Key not allowed here"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict", "Conflict"),
            ApiError::TooMany { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many requests; retry after the time given",
            ),
            ApiError::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Temporarily unavailable; retry",
            ),
            ApiError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, slug, title) = self.parts();
        let retry_after = match &self {
            ApiError::TooMany { retry_after, .. } => {
                Some(retry_after.as_secs_f64().ceil().max(1.0) as u64)
            }
            // The store is down or busy: SDKs back off by this before retrying.
            ApiError::Unavailable(_) => Some(2),
            _ => None,
        };
        let (detail, field) = match self {
            ApiError::Invalid { field, reason } | ApiError::TooLarge { field, reason } => {
                (format!("{field}: {reason}"), Some(field))
            }
            ApiError::Unauthorized(d)
            | ApiError::Forbidden(d)
            | ApiError::NotFound(d)
            | ApiError::Conflict(d)
            | ApiError::TooMany { detail: d, .. }
            | ApiError::Unavailable(d) => (d, None),
            ApiError::Internal(d) => {
                tracing::error!(error = %d, "internal error");
                (
                    "an internal error occurred; see the server log".to_string(),
                    None,
                )
            }
        };
        let body = Problem {
            kind: format!("https://rapport.dev/problems/{slug}"),
            title: title.to_string(),
            status: status.as_u16(),
            detail,
            field,
        };
        let mut resp = (status, axum::Json(body)).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer, Basic realm=\"rapport\""),
            );
        }
        resp
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        ApiError::Invalid {
            field: e.field,
            reason: e.reason,
        }
    }
}

impl From<BodyError> for ApiError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::TooLarge(f) => ApiError::TooLarge {
                field: f.field,
                reason: f.reason,
            },
            BodyError::Invalid(f) => f.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(w) => ApiError::NotFound(format!("{w} not found")),
            StoreError::Invalid { field, reason } => ApiError::Invalid { field, reason },
            StoreError::Conflict(c) => ApiError::Conflict(c),
            StoreError::Backend(b) => ApiError::Internal(b),
            StoreError::Rejected(r) => ApiError::invalid("body", r),
            // The request asked for more than a query may cost.
            e @ StoreError::TimedOut => ApiError::invalid("body", e.to_string()),
            StoreError::Unavailable(u) => ApiError::Unavailable(u),
        }
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        match e {
            // Not 503: SDKs would retry it forever.
            IngestError::Rejected(r) => ApiError::invalid("body", r),
            other => ApiError::Unavailable(other.to_string()),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// A numeric path id (`/api/profiles/{id}`) whose rejection is problem+json naming `id`.
pub struct Id(pub i64);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Id {
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<i64>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(id)) => Ok(Id(id)),
            Err(_) => Err(ApiError::invalid(
                "id",
                "must be a whole number (a profile, key or merge id)",
            )),
        }
    }
}

/// The JSON body of a request, or a 400 naming `body`.
pub fn json_body(body: &axum::body::Bytes) -> ApiResult<serde_json::Value> {
    let v = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid("body", format!("malformed JSON: {e}")))?;
    refuse_nul(body, Some(&v))?;
    Ok(v)
}

/// A string holding U+0000 (`\u0000` in JSON) is refused, naming its field: PostgreSQL
/// cannot store it, and both stores answer alike. The scan is of the raw body, so a
/// body without the escape costs nothing more.
fn refuse_nul(body: &[u8], parsed: Option<&serde_json::Value>) -> ApiResult<()> {
    if !body.windows(6).any(|w| w == b"\\u0000") {
        return Ok(());
    }
    let owned;
    let v = match parsed {
        Some(v) => v,
        None => {
            owned = serde_json::from_slice::<serde_json::Value>(body).unwrap_or_default();
            &owned
        }
    };
    match rapport_domain::message::nul_field(v, "") {
        Some(field) => Err(ApiError::invalid(
            if field.is_empty() { "body" } else { &field },
            "contains U+0000 (a NUL character), which cannot be stored",
        )),
        None => Ok(()),
    }
}

/// A whole-number query parameter from 1 to `max`, `default` when absent; a 400 naming it
/// otherwise.
pub fn query_count(
    q: &std::collections::HashMap<String, String>,
    key: &str,
    default: usize,
    max: usize,
) -> ApiResult<usize> {
    match q.get(key) {
        None => Ok(default),
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                ApiError::invalid(key, format!("must be a whole number from 1 to {max}"))
            }),
    }
}

/// A JSON body read into a typed input (`#[derive(Deserialize, ToSchema)]`, so the parser
/// and the OpenAPI schema are one type). The problem names the field by its path in the
/// body (`rules[2].when`; a missing field by its own name), via `serde_path_to_error`.
pub fn typed_body<T: serde::de::DeserializeOwned>(body: &axum::body::Bytes) -> ApiResult<T> {
    refuse_nul(body, None)?;
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::invalid("body", format!("malformed JSON: {inner}"));
        }
        let msg = inner.to_string();
        let missing = msg
            .strip_prefix("missing field `")
            .and_then(|r| r.split('`').next());
        let field = match (path.as_str(), missing) {
            (".", Some(m)) => m.to_string(),
            (".", None) => "body".to_string(),
            (p, Some(m)) => format!("{p}.{m}"),
            (p, None) => p.to_string(),
        };
        ApiError::invalid(&field, msg)
    })
}

#[cfg(test)]
mod tests {
    use super::{typed_body, ApiError};

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Rule {
        when: String,
        points: f64,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Rules {
        name: String,
        rules: Vec<Rule>,
    }

    fn field(body: &str) -> String {
        match typed_body::<Rules>(&axum::body::Bytes::from(body.to_string())) {
            Err(ApiError::Invalid { field, .. }) => field,
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn typed_bodies_name_the_field_by_its_path() {
        assert_eq!(field(r#"{"rules": []}"#), "name");
        assert_eq!(field(r#"{"name": 3, "rules": []}"#), "name");
        assert_eq!(
            field(r#"{"name": "x", "rules": [{"when": "a", "points": 1}, {"when": "b"}]}"#),
            "rules[1].points"
        );
        assert_eq!(
            field(r#"{"name": "x", "rules": [{"when": 1, "points": 1}]}"#),
            "rules[0].when"
        );
        assert_eq!(field(r#"{"name": "#), "body");
        assert_eq!(field(""), "body");
    }
}
