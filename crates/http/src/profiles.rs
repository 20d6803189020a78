//! The profiles API (admin key): search, lookup by any identifier, the 360° profile,
//! its timeline, traits, consents, merge and unmerge, and the merge-conflict queue.

use crate::auth::AdminKey;
use crate::problem::{typed_body, ApiError, ApiResult, Id, Problem};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::Json;
use rapport_app::privacy::audit;
use rapport_domain::model::{
    ConflictView, ConsentStatus, ConsentView, DetachView, EventView, MergeView, Page,
    ProfileSummary, ProfileView,
};
use rapport_domain::time::{now_millis, parse_timestamp};
use rapport_domain::IdentityKey;
use rapport_store::{ConsentInput, TimelineFilter, UnmergeTarget};
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;

type Params = Query<HashMap<String, String>>;

fn limit(q: &HashMap<String, String>, default: usize, max: usize) -> ApiResult<usize> {
    crate::problem::query_count(q, "limit", default, max)
}

fn body_json(body: &Bytes) -> ApiResult<Value> {
    if body.is_empty() {
        return Ok(Value::Null);
    }
    crate::problem::json_body(body)
}

/// Search profiles by name, any identifier or trait text (`q`), or list them all.
#[utoipa::path(get, path = "/api/profiles", tag = "profiles",
    params(("q" = Option<String>, Query, description = "Text to find in names, identifiers and traits; an exact identifier (`email:…`, an e-mail, `+phone`, `0x…`) is looked up directly"),
           ("limit" = Option<usize>, Query, minimum = 1, maximum = 200, description = "1-200, default 50"),
           ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    responses((status = 200, body = Page<ProfileSummary>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn search(
    State(state): State<AppState>,
    _key: AdminKey,
    Query(q): Params,
) -> ApiResult<Json<Page<ProfileSummary>>> {
    let limit = limit(&q, 50, 200)?;
    let after =
        match q.get("cursor") {
            None => None,
            Some(c) => Some(c.parse::<i64>().map_err(|_| {
                ApiError::invalid("cursor", "not a cursor returned by this endpoint")
            })?),
        };
    Ok(Json(
        state
            .store
            .search(q.get("q").map(String::as_str), limit, after)
            .await?,
    ))
}

/// Finds the profile that owns an identifier.
#[utoipa::path(get, path = "/api/profiles/lookup", tag = "profiles",
    params(("identifier" = String, Query, description = "`email:ann@example.com`, `phone:+44…`, `wallet:eip155:1:0x…`, `social:x:ann`, `user_id:42`, `anonymous_id:…`, `external:type:id`")),
    responses((status = 200, body = ProfileView), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn lookup(
    State(state): State<AppState>,
    _key: AdminKey,
    Query(q): Params,
) -> ApiResult<Json<ProfileView>> {
    let raw = q.get("identifier").ok_or_else(|| {
        ApiError::invalid(
            "identifier",
            "required, e.g. identifier=email:ann@example.com",
        )
    })?;
    let key = IdentityKey::parse_prefixed(raw)
        .map_err(|e| ApiError::invalid("identifier", e.to_string()))?;
    let id = state
        .store
        .lookup(&key)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no profile has the identifier {key}")))?;
    Ok(Json(full_profile(&state, id).await?))
}

/// The profile with its network scores.
async fn full_profile(state: &AppState, id: i64) -> ApiResult<ProfileView> {
    let mut p = state.store.profile(id).await?;
    p.network = state
        .store
        .graph_scores(vec![p.id])
        .await?
        .into_iter()
        .next();
    Ok(p)
}

/// A profile with identities, traits, consents and merge history. A merged-away id
/// returns the profile it now belongs to.
#[utoipa::path(get, path = "/api/profiles/{id}", tag = "profiles",
    params(("id" = i64, Path)),
    responses((status = 200, body = ProfileView), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    key: AdminKey,
    Id(id): Id,
) -> ApiResult<Json<ProfileView>> {
    let p = full_profile(&state, id).await?;
    audit(
        &state.store,
        &key.who(),
        "profile.view",
        format!("person:{}", p.id),
        Value::Null,
    )
    .await?;
    Ok(Json(p))
}

fn list(q: &HashMap<String, String>, name: &str) -> Vec<String> {
    q.get(name)
        .map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn time_param(q: &HashMap<String, String>, name: &str) -> ApiResult<Option<i64>> {
    q.get(name)
        .map(|s| {
            parse_timestamp(s).ok_or_else(|| {
                ApiError::invalid(name, format!("'{s}' is not an ISO-8601 timestamp"))
            })
        })
        .transpose()
}

/// Every interaction of the person on every channel, newest first.
#[utoipa::path(get, path = "/api/profiles/{id}/timeline", tag = "profiles",
    params(("id" = i64, Path),
           ("type" = Option<String>, Query, description = "Comma-separated: identify,track,page,screen,group,alias"),
           ("channel" = Option<String>, Query, description = "Comma-separated channels, e.g. web,email,social"),
           ("name" = Option<String>, Query, description = "Comma-separated event names"),
           ("since" = Option<String>, Query, description = "ISO-8601, inclusive"),
           ("until" = Option<String>, Query, description = "ISO-8601, exclusive"),
           ("limit" = Option<usize>, Query, minimum = 1, maximum = 500, description = "1-500, default 50"),
           ("cursor" = Option<String>, Query)),
    responses((status = 200, body = Page<EventView>), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn timeline(
    State(state): State<AppState>,
    _key: AdminKey,
    Id(id): Id,
    Query(q): Params,
) -> ApiResult<Json<Page<EventView>>> {
    let types = list(&q, "type");
    for t in &types {
        if rapport_domain::MessageType::parse(t).is_none() {
            return Err(ApiError::invalid(
                "type",
                format!("unknown type '{t}' (identify, track, page, screen, group, alias)"),
            ));
        }
    }
    let before = match q.get("cursor") {
        None => None,
        Some(c) => {
            let parsed = c
                .split_once('_')
                .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)));
            Some(parsed.ok_or_else(|| {
                ApiError::invalid("cursor", "not a cursor returned by this endpoint")
            })?)
        }
    };
    let filter = TimelineFilter {
        types,
        channels: list(&q, "channel"),
        names: list(&q, "name"),
        since: time_param(&q, "since")?,
        until: time_param(&q, "until")?,
        before,
        limit: limit(&q, 50, 500)?,
    };
    Ok(Json(state.store.timeline(id, &filter).await?))
}

/// Updates traits with a JSON merge patch (RFC 7396): keys set, `null` removes.
#[utoipa::path(patch, path = "/api/profiles/{id}/traits", tag = "profiles",
    params(("id" = i64, Path)),
    request_body(content = Object, content_type = "application/merge-patch+json"),
    responses((status = 200, body = ProfileView), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn patch_traits(
    State(state): State<AppState>,
    key: AdminKey,
    Id(id): Id,
    body: Bytes,
) -> ApiResult<Json<ProfileView>> {
    let patch = body_json(&body)?;
    if !patch.is_object() {
        return Err(ApiError::invalid("body", "must be a JSON object of traits"));
    }
    rapport_app::profiles::patch_traits(&state.store, id, &patch, now_millis()).await?;
    let p = full_profile(&state, id).await?;
    let keys: Vec<&String> = patch
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    audit(
        &state.store,
        &key.who(),
        "traits.edit",
        format!("person:{}", p.id),
        serde_json::json!({"keys": keys}),
    )
    .await?;
    Ok(Json(p))
}

/// Current consents, one per channel × purpose.
#[utoipa::path(get, path = "/api/profiles/{id}/consents", tag = "profiles",
    params(("id" = i64, Path)),
    responses((status = 200, body = Vec<ConsentView>), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn consents(
    State(state): State<AppState>,
    _key: AdminKey,
    Id(id): Id,
) -> ApiResult<Json<Vec<ConsentView>>> {
    Ok(Json(state.store.profile(id).await?.consents))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ConsentBody {
    /// e.g. email, sms, push, whatsapp, web3
    pub channel: String,
    /// e.g. marketing, newsletter, analytics, transactional
    pub purpose: String,
    pub status: ConsentStatus,
    /// Where the consent was given, e.g. `signup-form`.
    pub source: Option<String>,
    /// Proof text, e.g. the form wording and IP.
    pub proof: Option<String>,
    /// When it was given (ISO-8601); now if absent.
    pub at: Option<String>,
    /// How often: `all` (default), `weekly` (at most one a week) or `paused` (nothing
    /// for 30 days from `at`).
    #[serde(default)]
    pub frequency: rapport_domain::model::Frequency,
}

/// A consent channel or purpose as stored: 1-64 of `[A-Za-z0-9_.-]`, lower-cased.
pub(crate) fn consent_name(raw: &str) -> Option<String> {
    let s = raw.trim();
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    ok.then(|| s.to_ascii_lowercase())
}

fn name_field(raw: &str, field: &str) -> ApiResult<String> {
    consent_name(raw).ok_or_else(|| ApiError::invalid(field, "required: 1-64 of [A-Za-z0-9_.-]"))
}

/// An optional text of at most 4096 bytes.
fn short_text(v: Option<String>, field: &str) -> ApiResult<Option<String>> {
    match v {
        Some(s) if s.len() > 4096 => Err(ApiError::invalid(
            field,
            "must be a string of at most 4096 bytes",
        )),
        v => Ok(v),
    }
}

/// Records a consent decision (kept as history; the latest per channel × purpose counts).
#[utoipa::path(put, path = "/api/profiles/{id}/consents", tag = "profiles",
    params(("id" = i64, Path)), request_body = ConsentBody,
    responses((status = 200, body = Vec<ConsentView>), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn set_consent(
    State(state): State<AppState>,
    key: AdminKey,
    Id(id): Id,
    body: Bytes,
) -> ApiResult<Json<Vec<ConsentView>>> {
    let b: ConsentBody = typed_body(&body)?;
    let channel = name_field(&b.channel, "channel")?;
    let purpose = name_field(&b.purpose, "purpose")?;
    let at = match short_text(b.at, "at")? {
        None => now_millis(),
        Some(s) => parse_timestamp(&s).ok_or_else(|| {
            ApiError::invalid("at", format!("'{s}' is not an ISO-8601 timestamp"))
        })?,
    };
    let input = ConsentInput {
        channel,
        purpose,
        status: b.status,
        source: short_text(b.source, "source")?.unwrap_or_else(|| key.who()),
        proof: short_text(b.proof, "proof")?,
        at,
        frequency: b.frequency,
    };
    rapport_app::profiles::set_consent(&state.store, id, &input).await?;
    let p = state.store.profile(id).await?;
    let detail = serde_json::json!({"channel": input.channel, "purpose": input.purpose, "status": input.status, "frequency": input.frequency});
    audit(
        &state.store,
        &key.who(),
        "consent.set",
        format!("person:{}", p.id),
        detail,
    )
    .await?;
    Ok(Json(p.consents))
}

#[derive(Default, Deserialize, utoipa::ToSchema)]
pub struct UnmergeBody {
    /// The merge to undo; absent: the latest merge that absorbed the profile in the path.
    pub merge_id: Option<i64>,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct MergeBody {
    /// The profile to merge with.
    pub other_id: i64,
}

/// Undoes a merge: the merged profile (path id) and the survivor come apart, each with
/// its own identities, traits and events. Body `{"merge_id": n}` picks a merge instead.
/// The pair is then protected from automatic re-merging.
#[utoipa::path(post, path = "/api/profiles/{id}/unmerge", tag = "profiles",
    params(("id" = i64, Path, description = "The profile that was merged away")),
    request_body(content = UnmergeBody, description = "Optional: which merge to undo"),
    responses((status = 200, body = MergeView), (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn unmerge(
    State(state): State<AppState>,
    key: AdminKey,
    Id(id): Id,
    body: Bytes,
) -> ApiResult<Json<MergeView>> {
    let b: UnmergeBody = if body.is_empty() {
        UnmergeBody::default()
    } else {
        typed_body(&body)?
    };
    let target = match b.merge_id {
        None => UnmergeTarget::MergedProfile(id),
        Some(m) => UnmergeTarget::Merge(m),
    };
    let m = rapport_app::profiles::unmerge(&state.store, target, &key.who(), now_millis()).await?;
    Ok(Json(m))
}

/// Merges two profiles by hand (e.g. after reviewing a conflict); overrides merge
/// protection. The older profile survives.
#[utoipa::path(post, path = "/api/profiles/{id}/merge", tag = "profiles",
    params(("id" = i64, Path)),
    request_body = MergeBody,
    responses((status = 200, body = MergeView), (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn merge(
    State(state): State<AppState>,
    key: AdminKey,
    Id(id): Id,
    body: Bytes,
) -> ApiResult<Json<MergeView>> {
    let b: MergeBody = typed_body(&body)?;
    let m = rapport_app::profiles::merge(&state.store, id, b.other_id, &key.who(), now_millis())
        .await?;
    Ok(Json(m))
}

/// Ties that merge protection refused, for review.
#[utoipa::path(get, path = "/api/conflicts", tag = "profiles",
    params(("limit" = Option<usize>, Query, minimum = 1, maximum = 1000, description = "1-1000, default 100")),
    responses((status = 200, body = Vec<ConflictView>)), security(("bearer" = [])))]
pub async fn conflicts(
    State(state): State<AppState>,
    _key: AdminKey,
    Query(q): Params,
) -> ApiResult<Json<Vec<ConflictView>>> {
    Ok(Json(state.store.conflicts(limit(&q, 100, 1000)?).await?))
}

/// Recent merges, newest first.
#[utoipa::path(get, path = "/api/merges", tag = "profiles",
    params(("limit" = Option<usize>, Query, minimum = 1, maximum = 1000, description = "1-1000, default 100")),
    responses((status = 200, body = Vec<MergeView>)), security(("bearer" = [])))]
pub async fn merges(
    State(state): State<AppState>,
    _key: AdminKey,
    Query(q): Params,
) -> ApiResult<Json<Vec<MergeView>>> {
    Ok(Json(state.store.merges(limit(&q, 100, 1000)?).await?))
}

/// Detaches one identifier from a person onto a profile of its own (a recycled phone
/// number, a reused handle, a shared kiosk). Recorded and reversible
/// (`POST /api/detaches/{id}/undo`); the two are kept from re-merging automatically: a
/// later tie is a conflict to review. Events stay where they were stored.
#[utoipa::path(delete, path = "/api/profiles/{id}/identities/{kind}/{value}", tag = "profiles",
    params(("id" = i64, Path), ("kind" = String, Path, description = "`email`, `phone`, `wallet`, `social`, `user_id`, `anonymous_id`, `external`"),
           ("value" = String, Path, description = "The identifier, URL-encoded (normalised as on ingestion)")),
    responses((status = 200, body = DetachView), (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn detach(
    State(state): State<AppState>,
    key: AdminKey,
    axum::extract::Path((id, kind, value)): axum::extract::Path<(String, String, String)>,
) -> ApiResult<Json<DetachView>> {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::invalid("id", format!("'{id}' is not a profile id")))?;
    let kind: rapport_domain::IdentityKind =
        kind.parse()
            .map_err(|e: rapport_domain::identifier::IdentifierError| {
                ApiError::invalid("kind", e.reason)
            })?;
    let ident =
        IdentityKey::parse(kind, &value).map_err(|e| ApiError::invalid("value", e.reason))?;
    Ok(Json(
        rapport_app::profiles::detach(&state.store, id, &ident, &key.who(), now_millis()).await?,
    ))
}

/// Puts a detached identifier back on the profile it came from.
#[utoipa::path(post, path = "/api/detaches/{id}/undo", tag = "profiles",
    params(("id" = i64, Path)),
    responses((status = 200, body = DetachView), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn undo_detach(
    State(state): State<AppState>,
    key: AdminKey,
    Id(id): Id,
) -> ApiResult<Json<DetachView>> {
    Ok(Json(
        rapport_app::profiles::undo_detach(&state.store, id, &key.who(), now_millis()).await?,
    ))
}

/// Identifiers detached from or onto this person, newest first.
#[utoipa::path(get, path = "/api/profiles/{id}/detaches", tag = "profiles",
    params(("id" = i64, Path)),
    responses((status = 200, body = Vec<DetachView>), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn detaches(
    State(state): State<AppState>,
    _key: AdminKey,
    Id(id): Id,
) -> ApiResult<Json<Vec<DetachView>>> {
    Ok(Json(state.store.detaches(id).await?))
}
