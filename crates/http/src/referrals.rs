//! The referrals API (admin key): the programme's settings, a person's code and the
//! people they referred, all referrals by status, the leaderboard; and `/r/{code}`, the
//! public link that sends a friend to the brand's site with the code.

use crate::auth::AdminKey;
use crate::problem::{query_count, typed_body, ApiResult, Id, Problem};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use rapport_app::referrals::{self, ReferralSettings, ReferralView};
use rapport_store::{ReferralLeader, ReferralRow};
use std::collections::HashMap;

/// The referral programme.
#[utoipa::path(get, path = "/api/referrals/settings", tag = "loyalty",
    responses((status = 200, body = ReferralSettings)), security(("bearer" = [])))]
pub async fn settings(
    State(state): State<AppState>,
    _key: AdminKey,
) -> ApiResult<Json<ReferralSettings>> {
    Ok(Json(referrals::settings(&state.store).await?))
}

/// Replaces the referral programme: `enabled`, `referrer_points`, `friend_points`,
/// `conversion_event` (default `Order Completed`), `window_days`, `landing_url` (where
/// `/r/{code}` sends people, with `?ref=<code>`).
#[utoipa::path(put, path = "/api/referrals/settings", tag = "loyalty",
    request_body = ReferralSettings,
    responses((status = 200, body = ReferralSettings), (status = 400, body = Problem)), security(("bearer" = [])))]
pub async fn set_settings(
    State(state): State<AppState>,
    _key: AdminKey,
    body: Bytes,
) -> ApiResult<Json<ReferralSettings>> {
    let s: ReferralSettings = typed_body(&body)?;
    Ok(Json(referrals::set_settings(&state.store, s).await?))
}

/// A person's referral code (made on first ask) and link, who referred them, and the
/// people they referred.
#[utoipa::path(get, path = "/api/profiles/{id}/referral", tag = "loyalty",
    params(("id" = i64, Path)),
    responses((status = 200, body = ReferralView), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn of_profile(
    State(state): State<AppState>,
    _key: AdminKey,
    Id(id): Id,
) -> ApiResult<Json<ReferralView>> {
    Ok(Json(referrals::view(&state.store, id).await?))
}

/// Referrals, newest first: `status` (`pending`, `converted`, `refused`) and `limit`.
#[utoipa::path(get, path = "/api/referrals", tag = "loyalty",
    params(("status" = Option<String>, Query), ("limit" = Option<usize>, Query, minimum = 1, maximum = 1000)),
    responses((status = 200, body = Vec<ReferralRow>), (status = 400, body = Problem)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    _key: AdminKey,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Vec<ReferralRow>>> {
    let limit = query_count(&q, "limit", 100, 1_000)?;
    Ok(Json(
        referrals::list(&state.store, q.get("status").cloned(), limit).await?,
    ))
}

/// Top referrers: converted referrals, then referrals (refused ones do not count).
#[utoipa::path(get, path = "/api/referrals/leaderboard", tag = "loyalty",
    params(("limit" = Option<usize>, Query, minimum = 1, maximum = 1000)),
    responses((status = 200, body = Vec<ReferralLeader>)), security(("bearer" = [])))]
pub async fn leaderboard(
    State(state): State<AppState>,
    _key: AdminKey,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Vec<ReferralLeader>>> {
    let limit = query_count(&q, "limit", 20, 1_000)?;
    Ok(Json(referrals::leaders(&state.store, limit).await?))
}

/// `/r/{code}`: to the brand's landing page with the code; an unknown code still lands,
/// without it.
pub async fn link(State(state): State<AppState>, Path(code): Path<String>) -> Response {
    let s = match referrals::settings(&state.store).await {
        Ok(s) => s,
        Err(e) => return crate::problem::ApiError::from(e).into_response(),
    };
    let code = code.trim().to_ascii_uppercase();
    let known = code.len() <= 40
        && code.bytes().all(|b| b.is_ascii_alphanumeric())
        && matches!(state.store.code_owner(code.clone()).await, Ok(Some(_)));
    if known {
        Redirect::to(&referrals::landing(&s, &code)).into_response()
    } else {
        Redirect::to(&s.landing_url).into_response()
    }
}
