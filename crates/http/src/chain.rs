//! The on-chain API: chains and token contracts followed (admin), holdings, Sign-In
//! with Ethereum (write key: the brand's backend or its customer page), token rewards
//! (admin), and the customer-facing page that connects a wallet to a profile.

use crate::auth::{AdminKey, WriteKey};
use crate::problem::{query_count, typed_body, ApiError, ApiResult, Id, Problem};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Html;
use axum::Json;
use rapport_app::chain::{self as ch, ChainInput, ContractInput, SyncReport};
use rapport_app::rewards::{self, RewardInput};
use rapport_app::siwe::{self, VerifyInput};
use rapport_store::{ChainRow, ContractRow, HoldingRow, RewardRow};
use serde_json::{json, Value};
use std::collections::HashMap;

/// The chains followed, with their sync position, head and last error.
#[utoipa::path(get, path = "/api/chains", tag = "chain",
    responses((status = 200, body = Object)), security(("bearer" = [])))]
pub async fn list(State(state): State<AppState>, _key: AdminKey) -> ApiResult<Json<Value>> {
    let chains = state.store.chains().await?;
    let contracts = state.store.contracts().await?;
    let mut out = json!({"chains": chains.iter().map(|c| {
        let mut v = serde_json::to_value(c).unwrap_or_default();
        v["lag_blocks"] = json!(match (c.head_block, c.cursor_block) {
            (Some(h), Some(b)) => Some(h - b),
            _ => None,
        });
        v["contracts"] = json!(contracts.iter().filter(|k| k.chain_id == c.id).collect::<Vec<_>>());
        v
    }).collect::<Vec<_>>(),
    "hot_wallet": state.rewards.hot_wallet().map(|w| w.address().to_checksum(None))});
    if chains.is_empty() {
        out["note"] =
            json!("no chain is configured: POST /api/chains with an id (eip155:N) and an rpc_url");
    }
    Ok(Json(out))
}

/// Follows a chain (or edits one); the node is asked which chain it serves.
#[utoipa::path(post, path = "/api/chains", tag = "chain", request_body = ChainInput,
    responses((status = 201, body = ChainRow), (status = 400, body = Problem)), security(("bearer" = [])))]
pub async fn add(
    State(state): State<AppState>,
    _key: AdminKey,
    b: Bytes,
) -> ApiResult<(StatusCode, Json<ChainRow>)> {
    let input: ChainInput = typed_body(&b)?;
    Ok((
        StatusCode::CREATED,
        Json(ch::add_chain(&state.store, input).await?),
    ))
}

/// Stops following a chain and forgets what was synced from it.
#[utoipa::path(delete, path = "/api/chains/{chain}", tag = "chain",
    params(("chain" = String, Path, description = "CAIP-2 id")),
    responses((status = 204), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    _key: AdminKey,
    Path(chain): Path<String>,
) -> ApiResult<StatusCode> {
    rapport_app::chain::delete_chain(&state.store, &chain).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Follows a token contract (ERC-20 or ERC-721) on a chain.
#[utoipa::path(post, path = "/api/chains/{chain}/contracts", tag = "chain", request_body = ContractInput,
    params(("chain" = String, Path, description = "CAIP-2 id")),
    responses((status = 201, body = ContractRow), (status = 400, body = Problem), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn add_contract(
    State(state): State<AppState>,
    _key: AdminKey,
    Path(chain): Path<String>,
    b: Bytes,
) -> ApiResult<(StatusCode, Json<ContractRow>)> {
    let input: ContractInput = typed_body(&b)?;
    Ok((
        StatusCode::CREATED,
        Json(ch::add_contract(&state.store, &chain, input).await?),
    ))
}

/// Runs the sync now (up to `steps` block ranges, default 10) and says what it did.
#[utoipa::path(post, path = "/api/chains/{chain}/sync", tag = "chain",
    params(("chain" = String, Path, description = "CAIP-2 id"), ("steps" = Option<usize>, Query)),
    responses((status = 200, body = SyncReport), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn sync(
    State(state): State<AppState>,
    _key: AdminKey,
    Path(chain): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<SyncReport>> {
    let steps = query_count(&q, "steps", 10, 10_000)?;
    Ok(Json(ch::sync_chain(&state.store, &chain, steps).await?))
}

/// The largest holders of a token (`limit` 1-1000, default 100).
#[utoipa::path(get, path = "/api/chains/{chain}/contracts/{address}/holders", tag = "chain",
    params(("chain" = String, Path), ("address" = String, Path), ("limit" = Option<usize>, Query, minimum = 1, maximum = 1000, description = "1-1000, default 100")),
    responses((status = 200, body = Vec<HoldingRow>)), security(("bearer" = [])))]
pub async fn holders(
    State(state): State<AppState>,
    _key: AdminKey,
    Path((chain, address)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Vec<HoldingRow>>> {
    let limit = query_count(&q, "limit", 100, 1000)?;
    let c = ch::find_contract(&state.store, &address, Some(&chain)).await?;
    Ok(Json(state.store.holders(&chain, &c.address, limit).await?))
}

/// A person's wallets (verified or not) and what they hold.
#[utoipa::path(get, path = "/api/profiles/{id}/holdings", tag = "chain",
    params(("id" = i64, Path)),
    responses((status = 200, body = Object), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn of_profile(
    State(state): State<AppState>,
    _key: AdminKey,
    Id(id): Id,
) -> ApiResult<Json<Value>> {
    Ok(Json(ch::profile_holdings(&state.store, id).await?))
}

/// A single-use nonce for a Sign-In with Ethereum message (valid 10 minutes).
#[utoipa::path(get, path = "/api/siwe/nonce", tag = "chain",
    responses((status = 200, body = Object)), security(("write_key" = []), ("bearer" = [])))]
pub async fn nonce(State(state): State<AppState>, _key: WriteKey) -> ApiResult<Json<Value>> {
    Ok(Json(siwe::nonce(&state.store).await?))
}

/// Verifies a signed SIWE message and links the wallet, verified, to the profile named
/// by `link_to`. The message's domain must be this service's host.
#[utoipa::path(post, path = "/api/siwe/verify", tag = "chain", request_body = VerifyInput,
    responses((status = 200, body = Object), (status = 400, body = Problem)), security(("write_key" = []), ("bearer" = [])))]
pub async fn verify(
    State(state): State<AppState>,
    _key: WriteKey,
    headers: HeaderMap,
    b: Bytes,
) -> ApiResult<Json<Value>> {
    let input: VerifyInput = typed_body(&b)?;
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .ok_or_else(|| ApiError::invalid("Host", "the request names no host"))?;
    Ok(Json(
        siwe::verify(&state.store, &state.ingestor, input, host).await?,
    ))
}

/// Sends a token reward (idempotent by `idempotency_key`): 201 when new, 200 when the
/// key was already used (the existing reward is returned, nothing is paid again).
#[utoipa::path(post, path = "/api/rewards", tag = "chain", request_body = RewardInput,
    responses((status = 201, body = RewardRow), (status = 200, body = RewardRow), (status = 400, body = Problem), (status = 409, body = Problem)), security(("bearer" = [])))]
pub async fn reward(
    State(state): State<AppState>,
    _key: AdminKey,
    b: Bytes,
) -> ApiResult<(StatusCode, Json<RewardRow>)> {
    let input: RewardInput = typed_body(&b)?;
    let (r, created) = rewards::request(&state.store, input, "api").await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(r)))
}

/// Rewards, newest first (`status` to filter, `limit` 1-1000).
#[utoipa::path(get, path = "/api/rewards", tag = "chain",
    params(("status" = Option<String>, Query), ("limit" = Option<usize>, Query, minimum = 1, maximum = 1000, description = "1-1000, default 100")),
    responses((status = 200, body = Vec<RewardRow>)), security(("bearer" = [])))]
pub async fn rewards_list(
    State(state): State<AppState>,
    _key: AdminKey,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Vec<RewardRow>>> {
    let limit = query_count(&q, "limit", 100, 1000)?;
    Ok(Json(
        state.store.rewards(q.get("status").cloned(), limit).await?,
    ))
}

#[utoipa::path(get, path = "/api/rewards/{id}", tag = "chain", params(("id" = i64, Path)),
    responses((status = 200, body = RewardRow), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn reward_get(
    State(state): State<AppState>,
    _key: AdminKey,
    Id(id): Id,
) -> ApiResult<Json<RewardRow>> {
    Ok(Json(state.store.reward(id).await?))
}

/// Queues a failed reward again (a new transaction is signed).
#[utoipa::path(post, path = "/api/rewards/{id}/retry", tag = "chain", params(("id" = i64, Path)),
    responses((status = 200, body = RewardRow), (status = 404, body = Problem), (status = 409, body = Problem)), security(("bearer" = [])))]
pub async fn reward_retry(
    State(state): State<AppState>,
    _key: AdminKey,
    Id(id): Id,
) -> ApiResult<Json<RewardRow>> {
    Ok(Json(rewards::retry(&state.store, id).await?))
}

/// The customer-facing page that connects a wallet to an e-mail profile with SIWE.
/// The brand links to it with its write key: `/connect?key=WRITE_KEY&email=…`.
pub async fn connect_page() -> Html<&'static str> {
    Html(include_str!("connect.html"))
}
