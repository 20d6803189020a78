//! Points in the customer portal: the balance, what is pending and what expires soon,
//! the tier and the way to the next, the rewards the customer may redeem (and why not,
//! for the others), their redemptions with coupon codes, and their history. A redeem
//! form carries its own idempotency key: sent twice, it redeems once.

use crate::portal::{checked, customer, page, signed_out, PResult};
use crate::AppState;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::{html, Markup};
use rapport_app::loyalty::{self, LoyaltyView, RedeemInput};
use rapport_domain::time::{now_millis, to_datetime};
use rapport_store::StoreError;
use serde_json::json;
use std::collections::HashMap;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/me/points", get(points_page))
        .route("/me/points/redeem", post(redeem))
}

fn date(ms: i64) -> String {
    to_datetime(ms).format("%Y-%m-%d").to_string()
}

fn back(msg: &str) -> Response {
    Redirect::to(&format!(
        "/me/points?msg={}",
        crate::ui::layout::urlencode(msg)
    ))
    .into_response()
}

/// The home page's section (only when the customer has points or the brand has rewards).
pub fn section(v: &LoyaltyView) -> Markup {
    html! {
        section aria-labelledby="points" {
            h2 #points { "My points" }
            p { strong { (v.available) } " points to spend"
                @if v.pending > 0 { ", " (v.pending) " on their way" }
                @if let Some(t) = &v.tier { ". You are " strong { (t) } }
                "." }
            @if v.expiring_30d > 0 { p.note { (v.expiring_30d) " points expire in the next 30 days." } }
            p { a href="/me/points" { "Rewards and history" } }
        }
    }
}

async fn points_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> PResult<Response> {
    let s = rapport_app::portal::settings(&state.store).await?;
    let Some(c) = customer(&state, &headers).await? else {
        return Ok(signed_out());
    };
    let v = loyalty::view(&state.store, c.person, 30).await?;
    let programme = loyalty::settings(&state.store).await?;
    let referral = rapport_app::referrals::settings(&state.store).await?;
    let invite = if referral.enabled {
        let code = rapport_app::referrals::code_of(&state.store, v.profile_id).await?;
        let base = crate::portal::base_url(&state, &headers).await?;
        Some(format!("{}/r/{code}", base.trim_end_matches('/')))
    } else {
        None
    };
    let now = now_millis();
    let mut rewards = Vec::new();
    for r in state.store.reward_catalogue().await? {
        if !r.active {
            continue;
        }
        let why = match loyalty::eligible(&state.store, &r, v.profile_id, v.tier.as_deref(), now)
            .await?
        {
            Err(why) => Some(why),
            Ok(()) if r.cost > v.available => {
                Some(format!("{} more points needed", r.cost - v.available))
            }
            Ok(()) => None,
        };
        rewards.push((r, why));
    }
    let names: HashMap<i64, String> = rewards
        .iter()
        .map(|(r, _)| (r.id, r.name.clone()))
        .collect();
    let body = html! {
        p { a href="/me" { "← My profile" } }
        @if let Some(m) = q.get("msg") { div.ok role="status" { (m) } }
        section aria-labelledby="balance" {
            h2 #balance { "My points" }
            p { strong { (v.available) } " points to spend" @if v.pending > 0 { ", " (v.pending) " on their way (they count once the return period is over)" } "." }
            @if let Some(x) = &v.next_expiry { p.note { (x.points) " points expire on " (date(x.at)) "." } }
            @if let Some(t) = &v.tier {
                p { "Your tier: " strong { (t) }
                    @if let Some(b) = programme.tiers.iter().find(|x| &x.name == t).and_then(|x| x.benefits.clone()) { " — " (b) } }
            }
            @if let Some(n) = &v.next_tier {
                @let pct = if n.threshold > 0.0 { (v.qualifying / n.threshold * 100.0).clamp(0.0, 100.0) } else { 100.0 };
                p { (format!("{:.0}", n.needed)) " more to reach " strong { (n.name) } "." }
                progress max="100" value=(format!("{pct:.0}")) aria-label=(format!("Progress to {}", n.name)) { (format!("{pct:.0}%")) }
            }
        }
        @if let Some(link) = &invite {
            section aria-labelledby="invite" {
                h2 #invite { "Invite friends" }
                p { "Share your link: " strong { code { (link) } } }
                @if referral.referrer_points > 0 {
                    p.note { "You get " (referral.referrer_points) " points when a friend you invited places their first order"
                        @if referral.friend_points > 0 { ", and they get " (referral.friend_points) } "." }
                }
            }
        }
        section aria-labelledby="rewards" {
            h2 #rewards { "Rewards" }
            @if rewards.is_empty() { p.note { "No rewards yet." } }
            table {
                @for (r, why) in &rewards { tr {
                    td { strong { (r.name) } @if !r.description.is_empty() { br; span.note { (r.description) } } }
                    td { (r.cost) " points" }
                    td {
                        @match why {
                            Some(w) => { span.note { (w) } }
                            None => {
                                form method="post" action="/me/points/redeem" {
                                    input type="hidden" name="_csrf" value=(c.csrf);
                                    input type="hidden" name="reward" value=(r.id);
                                    input type="hidden" name="key" value=(uuid::Uuid::new_v4().to_string());
                                    button type="submit" aria-label=(format!("Redeem {}", r.name)) { "Redeem" }
                                }
                            }
                        }
                    }
                } }
            }
        }
        @if !v.redemptions.is_empty() {
            section aria-labelledby="redeemed" {
                h2 #redeemed { "What I redeemed" }
                table { @for r in &v.redemptions { tr {
                    td { (names.get(&r.reward_id).cloned().unwrap_or_else(|| format!("reward {}", r.reward_id))) }
                    td { @if let Some(code) = &r.code { "Your code: " strong { code { (code) } } } }
                    td.note { (date(r.at)) }
                } } }
            }
        }
        section aria-labelledby="history" {
            h2 #history { "History" }
            @if v.history.is_empty() { p.note { "Nothing yet: points come with your orders." } }
            table { @for e in &v.history { tr {
                td.note { (date(e.at)) }
                td { (match e.kind.as_str() { "earn" => "Earned", "spend" => "Redeemed", "expire" => "Expired", "reverse" => "Returned order", _ => "Adjusted" }) }
                td { (if e.amount > 0 { format!("+{}", e.amount) } else { e.amount.to_string() }) }
                td.note { (e.order.clone().or(e.reason.clone()).unwrap_or_default()) }
            } } }
        }
    };
    Ok(page(&s, "My points", body).into_response())
}

async fn redeem(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> PResult<Response> {
    let Some(c) = customer(&state, &headers).await? else {
        return Ok(signed_out());
    };
    checked(&c, &f)?;
    let input = RedeemInput {
        profile_id: c.person,
        reward: json!(f.get("reward").cloned().unwrap_or_default()),
        idempotency_key: f.get("key").map(|k| format!("portal:{}:{k}", c.person)),
    };
    match loyalty::redeem(&state.store, input, "portal").await {
        Ok((r, _)) => {
            let name = state
                .store
                .catalogue_item(r.reward_id)
                .await?
                .map(|x| x.name)
                .unwrap_or_default();
            Ok(back(&match &r.code {
                Some(code) => format!("You redeemed {name}. Your code: {code}"),
                None => format!("You redeemed {name}."),
            }))
        }
        Err(StoreError::Conflict(why)) => Ok(back(&format!("Not redeemed: {why}."))),
        Err(e) => Err(e.into()),
    }
}
