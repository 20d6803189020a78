//! The loyalty API (admin key): the programme's settings (tiers, expiry, order and
//! revenue properties), a person's points, redemptions, staff adjustments, the rewards
//! catalogue with its coupon codes, and the programme's figures. Points are earned by
//! rules (`points` and `reverse_points` actions, `/api/rules`).

use crate::auth::AdminKey;
use crate::problem::{query_count, typed_body, ApiResult, Id, Problem};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use rapport_app::loyalty::{
    self, AdjustInput, ConvertInput, LoyaltySettings, LoyaltyView, RedeemInput,
};
use rapport_app::split_loyalty::{self, Competitors};
use rapport_domain::time::now_millis;
use rapport_store::{EntryRow, LoyaltyTotals, Redemption, Reward, RewardRow};
use std::collections::HashMap;

/// The programme's settings.
#[utoipa::path(get, path = "/api/loyalty/settings", tag = "loyalty",
    responses((status = 200, body = LoyaltySettings)), security(("bearer" = [])))]
pub async fn settings(
    State(state): State<AppState>,
    _key: AdminKey,
) -> ApiResult<Json<LoyaltySettings>> {
    Ok(Json(loyalty::settings(&state.store).await?))
}

/// Replaces the programme's settings: `tiers` (`[{name, threshold, multiplier,
/// benefits, holding}]`, lowest first; `holding: {token, min}` makes a tier
/// token-gated), `basis` (`points` or `spend`), `window_days`,
/// `downgrade` (`never`, `period_end`, `rolling`), `grace_days`, `expires_days` (the
/// default for earning rules; null: never), `order_property`, `revenue_property`,
/// `token` (`{token, chain, points_per_token, min_points}`: points customers may turn
/// into the brand's ERC-20).
#[utoipa::path(put, path = "/api/loyalty/settings", tag = "loyalty",
    request_body = LoyaltySettings,
    responses((status = 200, body = LoyaltySettings), (status = 400, body = Problem)), security(("bearer" = [])))]
pub async fn set_settings(
    State(state): State<AppState>,
    _key: AdminKey,
    body: Bytes,
) -> ApiResult<Json<LoyaltySettings>> {
    let s: LoyaltySettings = typed_body(&body)?;
    Ok(Json(loyalty::set_settings(&state.store, s).await?))
}

/// The competitors split loyalty looks for.
#[utoipa::path(get, path = "/api/loyalty/competitors", tag = "loyalty",
    responses((status = 200, body = Competitors)), security(("bearer" = [])))]
pub async fn competitors(
    State(state): State<AppState>,
    _key: AdminKey,
) -> ApiResult<Json<Competitors>> {
    Ok(Json(split_loyalty::settings(&state.store).await?))
}

/// Names the brand's competitors: `competitors: [{name, products, tokens}]` (tokens:
/// followed contracts, by symbol or address) and `mention_days`. The next score run
/// (`POST /api/scores/recompute`, or the schedule) computes `split_loyalty` for
/// everyone with a signal; segments read it as `score.split_loyalty`.
#[utoipa::path(put, path = "/api/loyalty/competitors", tag = "loyalty",
    request_body = Competitors,
    responses((status = 200, body = Competitors), (status = 400, body = Problem)), security(("bearer" = [])))]
pub async fn set_competitors(
    State(state): State<AppState>,
    _key: AdminKey,
    body: Bytes,
) -> ApiResult<Json<Competitors>> {
    let s: Competitors = typed_body(&body)?;
    Ok(Json(split_loyalty::set_settings(&state.store, s).await?))
}

/// A person's points: `available`, `pending`, what expires soon, `tier` and the next
/// one, the lots that hold points, the latest entries (`history`, `limit` of them, 50 by
/// default) and redemptions.
#[utoipa::path(get, path = "/api/profiles/{id}/loyalty", tag = "loyalty",
    params(("id" = i64, Path), ("limit" = Option<usize>, Query, minimum = 1, maximum = 1000)),
    responses((status = 200, body = LoyaltyView), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn of_profile(
    State(state): State<AppState>,
    _key: AdminKey,
    Id(id): Id,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<LoyaltyView>> {
    let limit = query_count(&q, "limit", 50, 1_000)?;
    Ok(Json(loyalty::view(&state.store, id, limit).await?))
}

/// Redeems a reward for a person: 201 with the redemption (and its coupon code), 200
/// with the first one when the `idempotency_key` was used, 409 with the reason when the
/// balance is short or the reward is not for them now.
#[utoipa::path(post, path = "/api/loyalty/redeem", tag = "loyalty",
    request_body = RedeemInput,
    responses((status = 201, body = Redemption), (status = 200, body = Redemption),
               (status = 400, body = Problem), (status = 409, body = Problem)), security(("bearer" = [])))]
pub async fn redeem(
    State(state): State<AppState>,
    key: AdminKey,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Redemption>)> {
    let input: RedeemInput = typed_body(&body)?;
    let (r, created) = loyalty::redeem(&state.store, input, &key.who()).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(r)))
}

/// Turns a person's points into the brand's token (settings `token`): the points are
/// spent at once and a token reward asked for their verified wallet (`GET
/// /api/rewards/{id}` follows it; if it fails on chain the points come back). 201 with
/// the reward, 200 when the `idempotency_key` was used, 400 without a verified wallet or
/// for a bad amount, 409 when the balance is short or no token is configured.
#[utoipa::path(post, path = "/api/loyalty/convert", tag = "loyalty",
    request_body = ConvertInput,
    responses((status = 201, body = RewardRow), (status = 200, body = RewardRow),
               (status = 400, body = Problem), (status = 409, body = Problem)), security(("bearer" = [])))]
pub async fn convert(
    State(state): State<AppState>,
    key: AdminKey,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<RewardRow>)> {
    let input: ConvertInput = typed_body(&body)?;
    let (r, created) = loyalty::convert(&state.store, input, &key.who()).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(r)))
}

/// Adds points to a person or takes some (whole points, a `reason`): 201 with the
/// entry, 200 when the `idempotency_key` was used, 409 when taking more than available.
#[utoipa::path(post, path = "/api/loyalty/adjust", tag = "loyalty",
    request_body = AdjustInput,
    responses((status = 201, body = EntryRow), (status = 200, body = EntryRow),
               (status = 400, body = Problem), (status = 409, body = Problem)), security(("bearer" = [])))]
pub async fn adjust(
    State(state): State<AppState>,
    key: AdminKey,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<EntryRow>)> {
    let input: AdjustInput = typed_body(&body)?;
    let (e, created) = loyalty::adjust(&state.store, input, &key.who()).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(e)))
}

/// The rewards catalogue, cheapest first.
#[utoipa::path(get, path = "/api/loyalty/rewards", tag = "loyalty",
    responses((status = 200, body = Vec<Reward>)), security(("bearer" = [])))]
pub async fn rewards(
    State(state): State<AppState>,
    _key: AdminKey,
) -> ApiResult<Json<Vec<Reward>>> {
    Ok(Json(state.store.reward_catalogue().await?))
}

/// Adds a reward: `name`, `cost` (points), optional `description`, `stock`,
/// `per_person`, `tiers`, `segment`, `starts_at`, `ends_at` (ms), `active`.
#[utoipa::path(post, path = "/api/loyalty/rewards", tag = "loyalty",
    request_body = Reward,
    responses((status = 201, body = Reward), (status = 400, body = Problem), (status = 409, body = Problem)), security(("bearer" = [])))]
pub async fn add_reward(
    State(state): State<AppState>,
    _key: AdminKey,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Reward>)> {
    let mut r: Reward = typed_body(&body)?;
    r.id = 0;
    Ok((
        StatusCode::CREATED,
        Json(loyalty::save_reward(&state.store, r).await?),
    ))
}

/// Replaces a reward.
#[utoipa::path(put, path = "/api/loyalty/rewards/{id}", tag = "loyalty",
    params(("id" = i64, Path)), request_body = Reward,
    responses((status = 200, body = Reward), (status = 400, body = Problem), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn put_reward(
    State(state): State<AppState>,
    _key: AdminKey,
    Id(id): Id,
    body: Bytes,
) -> ApiResult<Json<Reward>> {
    let mut r: Reward = typed_body(&body)?;
    r.id = id;
    Ok(Json(loyalty::save_reward(&state.store, r).await?))
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct CodesAdded {
    /// Codes new to the pool (a code already there is kept once).
    pub added: usize,
    /// Codes not yet given.
    pub left: Option<i64>,
}

/// Adds coupon codes to a reward's pool: CSV (or plain lines), the code in the first
/// column, an optional `code` header. A reward with a pool gives one code per redemption
/// and is out of stock when they run out.
#[utoipa::path(post, path = "/api/loyalty/rewards/{id}/codes", tag = "loyalty",
    params(("id" = i64, Path)), request_body(content = String, content_type = "text/csv"),
    responses((status = 200, body = CodesAdded), (status = 400, body = Problem), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn add_codes(
    State(state): State<AppState>,
    _key: AdminKey,
    Id(id): Id,
    body: Bytes,
) -> ApiResult<Json<CodesAdded>> {
    let text = std::str::from_utf8(&body)
        .map_err(|_| crate::problem::ApiError::invalid("codes", "UTF-8 text, one code per line"))?;
    let added = loyalty::import_codes(&state.store, id, text).await?;
    let left = state
        .store
        .catalogue_item(id)
        .await?
        .and_then(|r| r.codes_left);
    Ok(Json(CodesAdded { added, left }))
}

/// The programme's figures: points outstanding (the liability) and pending, holders,
/// people per tier, and points earned and redeemed per day over `days` (90 by default).
#[utoipa::path(get, path = "/api/loyalty/summary", tag = "loyalty",
    params(("days" = Option<usize>, Query, minimum = 1, maximum = 3650)),
    responses((status = 200, body = LoyaltyTotals)), security(("bearer" = [])))]
pub async fn summary(
    State(state): State<AppState>,
    _key: AdminKey,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<LoyaltyTotals>> {
    let days = query_count(&q, "days", 90, 3_650)? as i64;
    let now = now_millis();
    Ok(Json(
        state
            .store
            .loyalty_totals(now, now - days * 86_400_000)
            .await?,
    ))
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Expired {
    /// Lots written off.
    pub lots: usize,
}

/// Writes off expired points now (the worker does it every few seconds).
#[utoipa::path(post, path = "/api/loyalty/expire", tag = "loyalty",
    responses((status = 200, body = Expired)), security(("bearer" = [])))]
pub async fn expire(State(state): State<AppState>, _key: AdminKey) -> ApiResult<Json<Expired>> {
    let mut lots = 0;
    loop {
        let n = loyalty::expire_step(&state.store, now_millis(), loyalty::EXPIRY_BATCH).await?;
        lots += n;
        if n < loyalty::EXPIRY_BATCH {
            return Ok(Json(Expired { lots }));
        }
    }
}
