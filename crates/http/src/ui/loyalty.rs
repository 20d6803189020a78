//! Loyalty in the staff app: the programme page (`/loyalty`: points outstanding, earned
//! and redeemed per day, tiers, earning rules, the rewards catalogue with its coupon
//! codes) and the 360 page's card (balance, tier, lots, history, an adjustment).

use axum::extract::{Path, Query, State};
use axum::response::Redirect;
use axum::Form;
use maud::{html, Markup};
use rapport_app::loyalty::{self, AdjustInput};
use rapport_domain::time::{now_millis, to_datetime};
use rapport_store::Reward;
use serde_json::{json, Value};
use std::collections::HashMap;

use super::auth::{Staff, UiError, UiResult};
use super::layout::{self, csrf};
use crate::AppState;

const DAY: i64 = 86_400_000;

fn date(ms: i64) -> String {
    to_datetime(ms).format("%Y-%m-%d").to_string()
}

fn points(n: i64) -> String {
    if n < 0 {
        format!("−{}", layout::thousands(-n))
    } else {
        layout::thousands(n)
    }
}

/// What an entry did, in words.
fn entry_words(e: &rapport_store::EntryRow) -> String {
    let what = match e.kind.as_str() {
        "earn" => format!("Earned {}", points(e.amount)),
        "spend" => format!("Redeemed {}", points(-e.amount)),
        "expire" => format!("{} expired", points(-e.amount)),
        "reverse" => format!("{} taken back (refund)", points(-e.amount)),
        _ if e.amount >= 0 => format!("Adjusted +{}", points(e.amount)),
        _ => format!("Adjusted −{}", points(-e.amount)),
    };
    let mut bits = vec![what];
    if let Some(o) = &e.order {
        bits.push(format!("order {o}"));
    }
    if let Some(r) = &e.reason {
        bits.push(r.clone());
    }
    if e.unrecovered > 0 {
        bits.push(format!("{} already spent", points(e.unrecovered)));
    }
    bits.join(" · ")
}

/// The 360 page's loyalty card.
pub async fn card(state: &AppState, staff: &Staff, person: i64) -> UiResult<Markup> {
    let v = loyalty::view(&state.store, person, 8).await?;
    let edit = staff.role.can_edit_people();
    Ok(html! {
        div.card {
            h2 { "Loyalty" }
            p {
                strong { (points(v.available)) } " points available"
                @if v.pending > 0 { " · " (points(v.pending)) " pending" }
                @if let Some(t) = &v.tier { " · " span.badge { (t) } }
            }
            @if let Some(n) = &v.next_tier {
                p.small.muted { (format!("{:.0}", n.needed)) " more to " (n.name) }
            }
            @if let Some(x) = &v.next_expiry {
                p.small { (points(x.points)) " expire on " (date(x.at)) }
            }
            @if !v.history.is_empty() {
                table { @for e in &v.history { tr {
                    td.small.muted { (date(e.at)) }
                    td.wrap { (entry_words(e)) }
                } } }
            } @else { p.empty { "No points yet." } }
            @if edit {
                form method="post" action=(format!("/people/{}/points", v.profile_id)) {
                    (csrf(staff))
                    label { "Points (+ or −) " input type="number" name="points" step="1" required; }
                    " " label { "Reason " input type="text" name="reason" maxlength="500" required; }
                    " " button type="submit" { "Adjust" }
                }
            }
        }
    })
}

/// `/people/{id}/points`: a staff adjustment.
pub async fn adjust(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<i64>,
    Form(f): Form<HashMap<String, String>>,
) -> UiResult<Redirect> {
    staff.check(&f)?;
    staff.require(staff.role.can_edit_people(), "adjust points")?;
    let n: i64 = f
        .get("points")
        .and_then(|p| p.trim().parse().ok())
        .ok_or_else(|| UiError::Invalid("Points: a whole number, + or −".into()))?;
    let input = AdjustInput {
        profile_id: id,
        points: json!(n),
        reason: f.get("reason").cloned().unwrap_or_default(),
        expires_days: None,
        idempotency_key: f
            .get("csrf")
            .map(|c| format!("ui:{c}:{id}:{n}:{}", now_millis() / 1000)),
    };
    let (e, _) =
        loyalty::adjust(&state.store, input, &format!("staff:{}", staff.user.email)).await?;
    Ok(layout::done(
        &format!("/people/{id}"),
        &format!("Points adjusted: {}.", entry_words(&e)),
    ))
}

fn reward_row(r: &Reward) -> Markup {
    html! { tr {
        td.wrap { strong { (r.name) } @if !r.description.is_empty() { br; span.small.muted { (r.description) } } }
        td { (points(r.cost)) }
        td { @match (r.stock, r.codes_left) {
            (_, Some(c)) => { (c) " codes left" }
            (Some(s), None) => { (s) " left" }
            (None, None) => { "no limit" }
        } }
        td.small { @if r.tiers.is_empty() { "everybody" } @else { (r.tiers.join(", ")) }
            @if let Some(s) = &r.segment { " · " (s) }
            @if let Some(p) = r.per_person { " · " (p) " per person" } }
        td { @if r.active { span.badge.verified { "active" } } @else { span.badge.warn { "off" } } }
    } }
}

/// `/loyalty`: the programme.
pub async fn page(
    State(state): State<AppState>,
    staff: Staff,
    Query(q): Query<HashMap<String, String>>,
) -> UiResult<Markup> {
    staff.require(staff.role.can_see_people(), "see the loyalty programme")?;
    let now = now_millis();
    let totals = state.store.loyalty_totals(now, now - 90 * DAY).await?;
    let s = loyalty::settings(&state.store).await?;
    let rewards = state.store.reward_catalogue().await?;
    let rules = rapport_app::rules::rules(&state.store).await?;
    let referral = rapport_app::referrals::settings(&state.store).await?;
    let rivals = rapport_app::split_loyalty::settings(&state.store).await?;
    let split = state
        .store
        .score_values(rapport_app::split_loyalty::SCORE)
        .await?;
    let split_high = split.iter().filter(|(_, v)| *v > 0.5).count();
    let leaders = rapport_app::referrals::leaders(&state.store, 10).await?;
    let refused = rapport_app::referrals::list(&state.store, Some("refused".into()), 5).await?;
    let names = super::names::Names::of(
        &state.store,
        leaders
            .iter()
            .map(|l| l.referrer_id)
            .chain(refused.iter().flat_map(|r| [r.referrer_id, r.referred_id])),
    )
    .await?;
    let earning: Vec<(String, String)> = rules
        .iter()
        .flat_map(|r| {
            r.then
                .iter()
                .filter_map(move |a| match a["action"].as_str() {
                    Some("points") => Some((
                        r.name.clone(),
                        format!("{} {} points", r.when, amount_words(&a["amount"])),
                    )),
                    Some("reverse_points") => Some((
                        r.name.clone(),
                        format!("{} takes back the order's points", r.when),
                    )),
                    _ => None,
                })
        })
        .collect();
    let earned: Vec<(String, f64)> = totals
        .daily
        .iter()
        .map(|(d, e, _)| (date(*d), *e as f64))
        .collect();
    let spent: Vec<(String, f64)> = totals
        .daily
        .iter()
        .map(|(d, _, s)| (date(*d), *s as f64))
        .collect();
    let market = staff.role.can_market();
    let msg = q.get("msg").cloned();
    let body = html! {
        @if let Some(m) = msg { div.ok role="status" { (m) } }
        div.figures {
            span.figure { span.muted { "Outstanding " } strong { (points(totals.outstanding)) } }
            span.figure { span.muted { "of which pending " } strong { (points(totals.pending)) } }
            span.figure { span.muted { "Members holding points " } strong { (totals.holders) } }
        }
        div.grid.wide-cards {
            div.card {
                h2 { "Earned per day (90 days)" }
                @if earned.is_empty() { p.empty { "Nothing earned yet." } } @else { (super::charts::bars(&earned, "points", "Points earned per day")) }
            }
            div.card {
                h2 { "Redeemed per day (90 days)" }
                @if spent.iter().all(|(_, v)| *v == 0.0) { p.empty { "Nothing redeemed yet." } } @else { (super::charts::bars(&spent, "points", "Points redeemed per day")) }
            }
            div.card {
                h2 { "Tiers" }
                @if s.tiers.is_empty() { p.empty { "No tiers: set them with PUT /api/loyalty/settings." } } @else {
                    p.small.muted { "By " (match s.basis { rapport_domain::loyalty::Basis::Points => "points earned", _ => "money spent" })
                        " over " (s.window_days) " days; down " (format!("{:?}", s.downgrade).to_lowercase()) ", " (s.grace_days) " days' grace." }
                    table {
                        tr { th { "Tier" } th { "From" } th { "Earns" } th { "Members" } }
                        @for t in &s.tiers { tr {
                            td.wrap { strong { (t.name) } @if let Some(b) = &t.benefits { br; span.small.muted { (b) } } }
                            td { (t.threshold) }
                            td { "×" (t.multiplier) }
                            td { (totals.tiers.iter().find(|(n, _)| n.as_deref() == Some(t.name.as_str())).map_or(0, |(_, c)| *c)) }
                        } }
                    }
                }
            }
            div.card {
                h2 { "Earning rules" }
                @if earning.is_empty() { p.empty { "No rule gives points: add one on the Rules page (action “Give loyalty points”)." } }
                ul { @for (name, words) in &earning { li { strong { (name) } ": " (words) } } }
                p.small.muted { "Points expire after " @match s.expires_days { Some(d) => { (d) " days" } None => { "never" } } " unless a rule says otherwise." }
            }
            div.card {
                h2 { "Referrals" }
                @if referral.enabled {
                    p.small.muted { "A referrer earns " (points(referral.referrer_points))
                        @if referral.friend_points > 0 { " and the friend " (points(referral.friend_points)) }
                        " when the friend's first “" (referral.conversion_event) "” comes within "
                        (referral.window_days) " days." }
                } @else { p.empty { "Referrals are off: turn them on with PUT /api/referrals/settings." } }
                @if !leaders.is_empty() {
                    table {
                        tr { th { "Referrer" } th { "Referred" } th { "Converted" } }
                        @for l in &leaders { tr { td { (names.link(l.referrer_id)) } td { (l.referrals) } td { (l.converted) } } }
                    }
                }
                @if !refused.is_empty() {
                    h3 { "Refused lately" }
                    ul.small { @for r in &refused { li { (names.link(r.referred_id)) " by " (names.link(r.referrer_id)) ": " (r.reason.clone().unwrap_or_default()) } } }
                }
            }
            div.card {
                h2 { "Split loyalty" }
                @if rivals.competitors.is_empty() {
                    p.empty { "No competitors named: name them with PUT /api/loyalty/competitors." }
                } @else {
                    p.small.muted { "Competitors: " (rivals.competitors.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")) }
                    p { strong { (split.len()) } " people show a signal; " strong { (split_high) } " score above 0.5 ("
                        a href="/segments" { "segment" } " with " code { "score.split_loyalty > 0.5" } ")." }
                }
            }
            div.card.wide {
                h2 { "Rewards" }
                @if rewards.is_empty() { p.empty { "No rewards yet." } } @else {
                    table {
                        tr { th { "Reward" } th { "Points" } th { "Stock" } th { "For" } th { "" } }
                        @for r in &rewards { (reward_row(r)) }
                    }
                }
                @if market {
                    h3 { "Add a reward" }
                    form method="post" action="/loyalty/rewards" {
                        (csrf(&staff))
                        label { "Name " input type="text" name="name" maxlength="100" required; }
                        " " label { "Points " input type="number" name="cost" min="1" step="1" required; }
                        " " label { "Stock " input type="number" name="stock" min="0" step="1"; }
                        " " label { "Per person " input type="number" name="per_person" min="1" step="1"; }
                        " " label { "Description " input type="text" name="description" maxlength="2000"; }
                        " " button type="submit" { "Add" }
                    }
                    @if !rewards.is_empty() {
                        h3 { "Add coupon codes" }
                        form method="post" action="/loyalty/codes" {
                            (csrf(&staff))
                            label { "Reward " select name="reward" { @for r in &rewards { option value=(r.id) { (r.name) } } } }
                            " " label { "Codes (one per line, or CSV with the code first) " textarea name="codes" rows="3" required {} }
                            " " button type="submit" { "Add codes" }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::page(&staff, "Loyalty", "/loyalty", body))
}

fn amount_words(a: &Value) -> String {
    match a {
        Value::Number(n) => format!("gives {n}"),
        Value::String(s) => format!("gives {s}"),
        _ => "gives".into(),
    }
}

/// `/loyalty/rewards`: a reward added from the page.
pub async fn add_reward(
    State(state): State<AppState>,
    staff: Staff,
    Form(f): Form<HashMap<String, String>>,
) -> UiResult<Redirect> {
    staff.check(&f)?;
    staff.require(staff.role.can_market(), "change the rewards")?;
    let num = |k: &str| -> UiResult<Option<i64>> {
        match f.get(k).map(|v| v.trim()).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| UiError::Invalid(format!("{k}: a whole number"))),
        }
    };
    let r = Reward {
        id: 0,
        name: f.get("name").cloned().unwrap_or_default(),
        description: f.get("description").cloned().unwrap_or_default(),
        cost: num("cost")?.unwrap_or(0),
        stock: num("stock")?,
        per_person: num("per_person")?,
        tiers: Vec::new(),
        segment: None,
        starts_at: None,
        ends_at: None,
        active: true,
        codes_left: None,
        created_at: 0,
        updated_at: 0,
    };
    let r = loyalty::save_reward(&state.store, r).await?;
    Ok(layout::done("/loyalty", &format!("Added {}.", r.name)))
}

/// `/loyalty/codes`: coupon codes pasted into the page.
pub async fn add_codes(
    State(state): State<AppState>,
    staff: Staff,
    Form(f): Form<HashMap<String, String>>,
) -> UiResult<Redirect> {
    staff.check(&f)?;
    staff.require(staff.role.can_market(), "change the rewards")?;
    let id: i64 = f
        .get("reward")
        .and_then(|r| r.parse().ok())
        .ok_or_else(|| UiError::Invalid("Reward: choose one".into()))?;
    let n =
        loyalty::import_codes(&state.store, id, f.get("codes").map_or("", String::as_str)).await?;
    Ok(layout::done("/loyalty", &format!("Added {n} new codes.")))
}
