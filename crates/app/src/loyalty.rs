//! Loyalty points (docs/loyalty.md): earned by rules (`points`, `reverse_points`
//! actions, run by the real-time engine in event order), spent on rewards of the
//! catalogue, adjusted by staff, expired by the worker; tiers from points earned or money
//! spent in a rolling window. Each change is an entry of the ledger written with its
//! timeline event (`Points Earned`, `Points Redeemed`, `Points Expired`, `Points
//! Reversed`, `Points Adjusted`, `Tier Changed`) in one transaction; what an entry takes
//! from which lots is planned by `rapport_domain::loyalty` and written only if the lots
//! are as read (else planned again).

use std::collections::BTreeMap;
use std::time::Duration;

use rapport_domain::loyalty::{
    self, Amount, Basis, Downgrade, Move, Tier, TierRules, TierState, MAX_POINTS,
};
use rapport_domain::model::EventView;
use rapport_domain::resolve::{EventRow, ProfileId};
use rapport_domain::time::{now_millis, to_datetime, Millis};
use rapport_store::{
    DynStore, EntryRow, LedgerWrite, LotRow, NewLot, Outcome, Redeem, Redemption, Reward,
    StoreError, TierRow,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub const SETTINGS_KEY: &str = "loyalty";
/// The source of the ledger's timeline events (the real-time engine follows them).
pub const SOURCE: &str = "loyalty";
const DAY: i64 = 86_400_000;
/// A plan found stale (its lots changed meanwhile) is made again at most this often.
const ATTEMPTS: usize = 5;

fn invalid(field: &str, reason: impl Into<String>) -> StoreError {
    StoreError::invalid(field, reason)
}

fn field(e: rapport_domain::FieldError) -> StoreError {
    StoreError::invalid(&e.field, e.reason)
}

/// The programme's settings (`GET|PUT /api/loyalty/settings`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LoyaltySettings {
    /// Lowest threshold first; none: no tiers.
    pub tiers: Vec<Tier>,
    /// What reaches a tier: `points` earned or money `spend` in the window.
    pub basis: Basis,
    pub window_days: i64,
    /// `never`, `period_end` or `rolling`.
    pub downgrade: Downgrade,
    pub grace_days: i64,
    /// Days until points expire when an earning rule does not say (none: never).
    pub expires_days: Option<i64>,
    /// The event property naming the order (what a refund reverses).
    pub order_property: String,
    /// The event property with the order's value (tiers by spend).
    pub revenue_property: String,
    /// Points customers may turn into the brand's token (none: they may not).
    pub token: Option<TokenConversion>,
}

/// Points into the brand's ERC-20, paid through the token rewards (docs/loyalty.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenConversion {
    /// A followed contract: its symbol or address.
    pub token: String,
    /// CAIP-2 chain, when the symbol is on several.
    #[serde(default)]
    pub chain: Option<String>,
    /// Points for one whole token.
    pub points_per_token: i64,
    /// The fewest points turned into tokens at once.
    #[serde(default = "one_point")]
    pub min_points: i64,
}

fn one_point() -> i64 {
    1
}

impl Default for LoyaltySettings {
    fn default() -> Self {
        let t = TierRules::default();
        LoyaltySettings {
            tiers: t.tiers,
            basis: t.basis,
            window_days: t.window_days,
            downgrade: t.downgrade,
            grace_days: t.grace_days,
            expires_days: Some(365),
            order_property: "order_id".into(),
            revenue_property: "revenue".into(),
            token: None,
        }
    }
}

impl LoyaltySettings {
    pub fn tier_rules(&self) -> TierRules {
        TierRules {
            tiers: self.tiers.clone(),
            basis: self.basis,
            window_days: self.window_days,
            downgrade: self.downgrade,
            grace_days: self.grace_days,
        }
    }
}

fn property_name(field: &str, s: &str) -> Result<(), StoreError> {
    let ok = !s.is_empty()
        && s.len() <= 100
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(invalid(field, "a property name (letters, digits, _ and .)"))
    }
}

pub async fn settings(store: &DynStore) -> Result<LoyaltySettings, StoreError> {
    crate::stored_settings(store, SETTINGS_KEY).await
}

pub async fn set_settings(
    store: &DynStore,
    s: LoyaltySettings,
) -> Result<LoyaltySettings, StoreError> {
    s.tier_rules().check().map_err(field)?;
    if s.expires_days.is_some_and(|d| !(1..=3_650).contains(&d)) {
        return Err(invalid("expires_days", "from 1 to 3650, or null for never"));
    }
    property_name("order_property", &s.order_property)?;
    property_name("revenue_property", &s.revenue_property)?;
    for (i, t) in s.tiers.iter().enumerate() {
        if let Some(h) = &t.holding {
            crate::chain::find_contract(store, h.token.trim(), None)
                .await
                .map_err(|e| renamed(e, &format!("tiers[{i}].holding.token")))?;
        }
    }
    if let Some(t) = &s.token {
        let c = crate::chain::find_contract(store, t.token.trim(), t.chain.as_deref())
            .await
            .map_err(|e| renamed(e, "token.token"))?;
        if c.standard != "erc20" {
            return Err(invalid("token.token", "points turn into an ERC-20 token"));
        }
        if !(1..=1_000_000_000).contains(&t.points_per_token) {
            return Err(invalid("token.points_per_token", "from 1 to 1000000000"));
        }
        if !(1..=MAX_POINTS).contains(&t.min_points) {
            return Err(invalid(
                "token.min_points",
                format!("from 1 to {MAX_POINTS}"),
            ));
        }
    }
    let v = serde_json::to_value(&s).map_err(|e| StoreError::Backend(e.to_string()))?;
    store.set_setting(SETTINGS_KEY, v, now_millis()).await?;
    Ok(s)
}

/// A field error of a helper told under the caller's field name.
pub(crate) fn renamed(e: StoreError, at: &str) -> StoreError {
    match e {
        StoreError::Invalid { reason, .. } => invalid(at, reason),
        e => e,
    }
}

/// Checks a rule's `points` action (`rules[i].then[j]` is `at`).
pub fn check_points_action(a: &Value, at: &str) -> Result<(), StoreError> {
    Amount::parse(&format!("{at}.amount"), &a["amount"]).map_err(field)?;
    let days = |k: &str, range: std::ops::RangeInclusive<i64>| -> Result<(), StoreError> {
        match a.get(k) {
            None | Some(Value::Null) => Ok(()),
            Some(v) if v.as_i64().is_some_and(|d| range.contains(&d)) => Ok(()),
            _ => Err(invalid(
                &format!("{at}.{k}"),
                format!("whole days from {} to {}", range.start(), range.end()),
            )),
        }
    };
    days("pending_days", 0..=365)?;
    days("expires_days", 1..=3_650)?;
    if let Some(cap) = a.get("cap").filter(|c| !c.is_null()) {
        loyalty::positive_points(&format!("{at}.cap.points"), &cap["points"]).map_err(field)?;
        if !cap["days"]
            .as_i64()
            .is_some_and(|d| (1..=3_650).contains(&d))
        {
            return Err(invalid(
                &format!("{at}.cap.days"),
                "whole days from 1 to 3650",
            ));
        }
    }
    if let Some(o) = a.get("order").filter(|o| !o.is_null()) {
        property_name(&format!("{at}.order"), o.as_str().unwrap_or(""))?;
    }
    Ok(())
}

/// A property or trait read as a number (a numeric string counts).
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn at_path<'a>(mut v: &'a Value, path: &[&str]) -> &'a Value {
    for p in path {
        v = &v[*p];
    }
    v
}

fn order_of(ev: &EventView, property: &str) -> Option<String> {
    let path: Vec<&str> = property.split('.').collect();
    match at_path(&ev.properties, &path) {
        Value::String(s) if !s.is_empty() => Some(s.chars().take(200).collect()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn event(
    profile: ProfileId,
    name: &str,
    key: &str,
    at: Millis,
    props: Value,
) -> Result<EventRow, StoreError> {
    crate::timeline::event(
        profile,
        "loyalty",
        name,
        &format!("loyalty:{key}"),
        at,
        props,
    )
}

fn skipped(kind: &str, why: impl Into<String>) -> Value {
    json!({"action": kind, "skipped": why.into()})
}

/// The `points` action of rule `rule` (its `index`-th) for event `ev` of `person`: one
/// lot per rule, event and action, however often the firing runs. Written at once, the
/// tier then looked at (the real-time engine writes [`plan_earn`]'s plans with its step).
pub async fn earn_by_rule(
    store: &DynStore,
    rule: &str,
    index: usize,
    a: &Value,
    person: ProfileId,
    ev: &EventView,
    traits: &Value,
) -> Result<Value, StoreError> {
    let s = settings(store).await?;
    let w = match plan_earn(store, &s, rule, index, a, person, ev, traits).await? {
        Ok(w) => w,
        Err(skipped) => return Ok(skipped),
    };
    let (e, created) = match write(store, w).await? {
        Outcome::Written(e, _) => (e, true),
        Outcome::Existing(e) => (e, false),
        Outcome::Stale | Outcome::Refused(_) => unreachable_outcome()?,
    };
    if created {
        after_earning(store, &s, person).await?;
    }
    Ok(json!({"action": "points", "points": e.amount, "entry": e.id, "created": created}))
}

/// After a person's qualifying points changed: their tier looked at, when the programme
/// has tiers (the engine calls this as it follows `Points Earned` and `Points Reversed`).
pub async fn after_earning(
    store: &DynStore,
    s: &LoyaltySettings,
    person: ProfileId,
) -> Result<(), StoreError> {
    if !s.tiers.is_empty() {
        let m = members(store, person).await?;
        refresh_tier(store, s, person, &m, now_millis()).await?;
    }
    Ok(())
}

/// The entry a `points` action makes for an event (its lot and `Points Earned`), or why
/// none (a JSON outcome for the firing).
#[allow(clippy::too_many_arguments)]
pub async fn plan_earn(
    store: &DynStore,
    s: &LoyaltySettings,
    rule: &str,
    index: usize,
    a: &Value,
    person: ProfileId,
    ev: &EventView,
    traits: &Value,
) -> Result<Result<LedgerWrite, Value>, StoreError> {
    let amount = Amount::parse("amount", &a["amount"]).map_err(field)?;
    let read = |p: &[String]| {
        let root = if p[0] == "properties" {
            &ev.properties
        } else {
            traits
        };
        let rest: Vec<&str> = p[1..].iter().map(String::as_str).collect();
        number(at_path(root, &rest))
    };
    let Some(x) = amount.eval(&read) else {
        return Ok(Err(skipped(
            "points",
            "the amount could not be computed for this event",
        )));
    };
    let rules = s.tier_rules();
    let source = format!("rule:{rule}");
    let cap = a.get("cap").filter(|c| !c.is_null());
    // Only a cap counts across the person's profiles (a tier is kept on the person's).
    let members = if cap.is_some() {
        members(store, person).await?
    } else {
        vec![person]
    };
    let now = now_millis();
    let tier = if rules.tiers.is_empty() {
        None
    } else {
        current_tier(store, person).await?.state.tier
    };
    let Some(mut points) = loyalty::earned(x * rules.multiplier(tier.as_deref())) else {
        return Ok(Err(skipped("points", "less than one point")));
    };
    if let Some(cap) = cap {
        let (most, days) = (
            cap["points"].as_i64().unwrap_or(0),
            cap["days"].as_i64().unwrap_or(1),
        );
        let had = store.earned_by(&members, &source, now - days * DAY).await?;
        points = points.min(most - had);
        if points <= 0 {
            return Ok(Err(skipped(
                "points",
                format!("the cap of {most} points in {days} days is reached"),
            )));
        }
    }
    let at = ev.occurred_at.timestamp_millis();
    let pending_days = a["pending_days"].as_i64().unwrap_or(0);
    let expires_days = match a.get("expires_days") {
        Some(v) if !v.is_null() => v.as_i64(),
        _ => s.expires_days,
    };
    let order_prop = a["order"].as_str().unwrap_or(&s.order_property);
    let order = order_of(ev, order_prop);
    let revenue = number(at_path(
        &ev.properties,
        &s.revenue_property.split('.').collect::<Vec<_>>(),
    ));
    let key = format!("rule:{rule}:{}:{index}", ev.id);
    let lot = NewLot {
        profile_id: ev.profile_id,
        kind: "earn".into(),
        amount: points,
        earned_at: at,
        unlock_at: at + pending_days * DAY,
        expires_at: expires_days.map(|d| at + d * DAY),
        order: order.clone(),
        revenue,
    };
    let props = json!({"points": points, "rule": rule, "order": order, "event": ev.id,
        "unlock_at_ms": lot.unlock_at, "expires_at_ms": lot.expires_at,
        "pending_until": (pending_days > 0).then(|| to_datetime(lot.unlock_at).to_rfc3339()),
        "expires_at": lot.expires_at.map(|e| to_datetime(e).to_rfc3339())});
    let w = LedgerWrite {
        entry: entry(
            ev.profile_id,
            "earn",
            points,
            &key,
            at,
            &source,
            order,
            None,
        ),
        lot: Some(lot),
        moves: Vec::new(),
        reversed: Vec::new(),
        redeem: None,
        events: vec![event(person, "Points Earned", &key, at, props)?],
    };
    Ok(Ok(w))
}

fn unreachable_outcome<T>() -> Result<T, StoreError> {
    Err(StoreError::Backend("a new lot was refused".into()))
}

#[allow(clippy::too_many_arguments)]
fn entry(
    profile: ProfileId,
    kind: &str,
    amount: i64,
    key: &str,
    at: Millis,
    source: &str,
    order: Option<String>,
    reason: Option<String>,
) -> EntryRow {
    EntryRow {
        id: 0,
        profile_id: profile,
        kind: kind.into(),
        amount,
        idempotency_key: key.into(),
        at,
        lot_id: None,
        moves: Vec::new(),
        order,
        reason,
        source: source.into(),
        unrecovered: 0,
    }
}

async fn write(store: &DynStore, w: LedgerWrite) -> Result<Outcome, StoreError> {
    store
        .write_entries(vec![w])
        .await?
        .pop()
        .ok_or_else(|| StoreError::Backend("no outcome".into()))
}

/// Moves as a ledger event carries them: what each lot holds after (`left`), so a
/// follower of the events applies them as often as it sees them, with one result.
fn moves_json(moves: &[(Move, i64)]) -> Value {
    Value::Array(
        moves
            .iter()
            .map(|(m, held)| json!({"lot": m.lot, "take": m.take, "left": held - m.take}))
            .collect(),
    )
}

fn planned(lots: &[LotRow], moves: Vec<Move>) -> Vec<(Move, i64)> {
    moves
        .into_iter()
        .map(|m| {
            let held = lots
                .iter()
                .find(|l| l.lot.id == m.lot)
                .map_or(0, |l| l.lot.remaining);
            (m, held)
        })
        .collect()
}

fn just_lots(lots: &[LotRow]) -> Vec<loyalty::Lot> {
    lots.iter().map(|l| l.lot.clone()).collect()
}

/// The `reverse_points` action (a refund): what remains of the points earned for the
/// event's order is taken back, once per rule, event and action.
pub async fn reverse_by_rule(
    store: &DynStore,
    rule: &str,
    index: usize,
    a: &Value,
    person: ProfileId,
    ev: &EventView,
) -> Result<Value, StoreError> {
    let s = settings(store).await?;
    let prop = a["order"].as_str().unwrap_or(&s.order_property);
    let Some(order) = order_of(ev, prop) else {
        return Ok(skipped(
            "reverse_points",
            format!("the event has no `{prop}`"),
        ));
    };
    let members = members(store, person).await?;
    let key = format!("rule:{rule}:{}:{index}", ev.id);
    let now = now_millis();
    for _ in 0..ATTEMPTS {
        let all = store.lots(&members, true).await?;
        let earned: i64 = all
            .iter()
            .filter(|l| {
                l.lot.order.as_deref() == Some(order.as_str())
                    && l.kind == "earn"
                    && l.reversed_at.is_none()
            })
            .map(|l| l.lot.amount)
            .sum();
        let ids: Vec<i64> = all
            .iter()
            .filter(|l| l.lot.order.as_deref() == Some(order.as_str()) && l.reversed_at.is_none())
            .map(|l| l.lot.id)
            .collect();
        if ids.is_empty() {
            return Ok(skipped(
                "reverse_points",
                format!("no points were earned for order {order}"),
            ));
        }
        let moves = loyalty::reverse(&just_lots(&all), &order, now);
        let taken: i64 = moves.iter().map(|m| m.take).sum();
        let mut e = entry(
            person,
            "reverse",
            -taken,
            &key,
            now,
            &format!("rule:{rule}"),
            Some(order.clone()),
            None,
        );
        e.unrecovered = earned - taken;
        let moves = planned(&all, moves);
        let props = json!({"points": taken, "order": order, "not_recovered": earned - taken, "rule": rule,
            "event": ev.id, "moves": moves_json(&moves)});
        let w = LedgerWrite {
            entry: e,
            lot: None,
            moves,
            reversed: ids,
            redeem: None,
            events: vec![event(person, "Points Reversed", &key, now, props)?],
        };
        match write(store, w).await? {
            Outcome::Written(e, _) | Outcome::Existing(e) => {
                if !s.tiers.is_empty() {
                    refresh_tier(store, &s, person, &members, now).await?;
                }
                return Ok(
                    json!({"action": "reverse_points", "points": -e.amount, "entry": e.id, "not_recovered": e.unrecovered}),
                );
            }
            Outcome::Stale => continue,
            Outcome::Refused(r) => return Err(StoreError::Conflict(r)),
        }
    }
    Err(StoreError::Conflict(
        "the points kept changing: try again".into(),
    ))
}

/// A person's raw profiles (the person's own id first).
pub async fn members(store: &DynStore, person: ProfileId) -> Result<Vec<ProfileId>, StoreError> {
    Ok(member_ids(&store.profile(person).await?))
}

/// The raw profiles of a person already read (their own id first).
pub fn member_ids(v: &rapport_domain::model::ProfileView) -> Vec<ProfileId> {
    let mut ids = vec![v.id];
    ids.extend(v.member_ids.iter().copied().filter(|m| *m != v.id));
    ids
}

/// A person's tier row, kept on their own (canonical) profile; segments read it there
/// too. (After a merge that changed the canonical profile, the tier is worked out anew
/// from the merged person's points at their next change.)
async fn current_tier(store: &DynStore, person: ProfileId) -> Result<TierRow, StoreError> {
    let rows = store.tiers(&[person]).await?;
    Ok(rows.into_iter().next().unwrap_or(TierRow {
        profile_id: person,
        state: TierState::default(),
        updated_at: 0,
    }))
}

/// The total a tier is reached by, in the window back from `now`.
async fn qualifying(
    store: &DynStore,
    s: &LoyaltySettings,
    members: &[ProfileId],
    now: Millis,
) -> Result<f64, StoreError> {
    let (points, spend) = store.qualifying(members, now - s.window_days * DAY).await?;
    let total = match s.basis {
        Basis::Points => points as f64,
        Basis::Spend => spend,
    };
    let rules = s.tier_rules();
    if !rules.gated() {
        return Ok(total);
    }
    // A token-gated tier: what the person's wallets hold counts too.
    let Some(&first) = members.first() else {
        return Ok(total);
    };
    let view = store.profile(first).await?;
    let wallets: Vec<String> = view
        .identities
        .iter()
        .filter(|i| i.kind == rapport_domain::identifier::IdentityKind::Wallet)
        .map(|i| i.value.clone())
        .collect();
    if wallets.is_empty() {
        return Ok(total);
    }
    let held = store.wallet_holdings(wallets).await?;
    Ok(rules.with_holdings(total, |h| {
        let token = h.token.trim();
        held.iter().any(|r| {
            (r.symbol == token || r.contract.eq_ignore_ascii_case(token)) && r.amount >= h.min
        })
    }))
}

/// Moves a person between tiers as the rules say; `Tier Changed` when the tier changes.
pub async fn refresh_tier(
    store: &DynStore,
    s: &LoyaltySettings,
    person: ProfileId,
    members: &[ProfileId],
    now: Millis,
) -> Result<TierState, StoreError> {
    let rules = s.tier_rules();
    let cur = current_tier(store, person).await?;
    if rules.tiers.is_empty() {
        return Ok(cur.state);
    }
    let total = qualifying(store, s, members, now).await?;
    let next = rules.next(&cur.state, total, now);
    if next != cur.state || cur.profile_id != person {
        let mut events = Vec::new();
        if next.tier != cur.state.tier {
            let key = format!("tier:{person}:{now}");
            events.push(event(
                person,
                "Tier Changed",
                &key,
                now,
                json!({"from": cur.state.tier, "to": next.tier, "total": total}),
            )?);
        }
        store
            .set_tier(
                TierRow {
                    profile_id: person,
                    state: next.clone(),
                    updated_at: now,
                },
                events,
            )
            .await?;
    }
    Ok(next)
}

/// What `POST /api/loyalty/redeem` accepts.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedeemInput {
    pub profile_id: ProfileId,
    /// The reward's name or id.
    #[schema(value_type = Object)]
    pub reward: Value,
    /// The same key never redeems twice; one per intended redemption.
    pub idempotency_key: Option<String>,
}

fn key_or_new(k: Option<String>) -> Result<String, StoreError> {
    match k {
        Some(k) if k.trim().is_empty() || k.len() > 200 => {
            Err(invalid("idempotency_key", "must be 1 to 200 characters"))
        }
        Some(k) => Ok(k),
        None => Ok(uuid::Uuid::new_v4().to_string()),
    }
}

/// A reward by name or id; `field` names what the caller gave.
pub async fn find_reward(store: &DynStore, r: &Value, at: &str) -> Result<Reward, StoreError> {
    let found = match r {
        Value::Number(n) => match n.as_i64() {
            Some(id) => store.catalogue_item(id).await?,
            None => None,
        },
        Value::String(s) => match s.trim().parse::<i64>() {
            Ok(id) => store.catalogue_item(id).await?,
            Err(_) => store.catalogue_item_named(s.trim()).await?,
        },
        _ => return Err(invalid(at, "a reward's name or id")),
    };
    found.ok_or_else(|| invalid(at, format!("no reward {r} in the catalogue")))
}

/// Whether a person may redeem a reward now (tier, segment, dates); why not.
pub async fn eligible(
    store: &DynStore,
    r: &Reward,
    person: ProfileId,
    tier: Option<&str>,
    now: Millis,
) -> Result<Result<(), String>, StoreError> {
    if !r.active || r.starts_at.is_some_and(|s| now < s) || r.ends_at.is_some_and(|e| now >= e) {
        return Ok(Err(format!("{} is not available now", r.name)));
    }
    if !r.tiers.is_empty() && !tier.is_some_and(|t| r.tiers.iter().any(|x| x == t)) {
        return Ok(Err(format!(
            "{} is for {} members",
            r.name,
            r.tiers.join(" or ")
        )));
    }
    if let Some(seg) = &r.segment {
        if !store.profile_segments(person).await?.contains(seg) {
            return Ok(Err(format!("{} is for the segment {seg}", r.name)));
        }
    }
    if r.stock.is_some_and(|s| s <= 0) || r.codes_left == Some(0) {
        return Ok(Err(format!("{} is out of stock", r.name)));
    }
    Ok(Ok(()))
}

/// Redeems a reward: its cost taken from the lots that expire first, a code from its
/// pool when it has one. The same key returns the first redemption (false).
pub async fn redeem(
    store: &DynStore,
    input: RedeemInput,
    source: &str,
) -> Result<(Redemption, bool), StoreError> {
    let key = key_or_new(input.idempotency_key)?;
    if let Some(r) = store.redemption_by_key(&key).await? {
        return Ok((r, false));
    }
    let reward = find_reward(store, &input.reward, "reward").await?;
    let view = store.profile(input.profile_id).await?;
    let person = view.id;
    let members = members(store, person).await?;
    let now = now_millis();
    let tier = current_tier(store, person).await?.state.tier;
    if let Err(why) = eligible(store, &reward, person, tier.as_deref(), now).await? {
        return Err(StoreError::Conflict(why));
    }
    for _ in 0..ATTEMPTS {
        let lots = store.lots(&members, false).await?;
        let moves = loyalty::take(&just_lots(&lots), reward.cost, now).map_err(|s| {
            StoreError::Conflict(format!(
                "not enough points: {} available, {} needed for {}",
                s.available, s.wanted, reward.name
            ))
        })?;
        let entry_key = format!("redeem:{key}");
        let moves = planned(&lots, moves);
        // The moves let the engine's held points follow the redemption.
        let props = json!({"points": reward.cost, "reward": reward.name, "reward_id": reward.id,
            "moves": moves_json(&moves)});
        let w = LedgerWrite {
            entry: entry(
                person,
                "spend",
                -reward.cost,
                &entry_key,
                now,
                source,
                None,
                Some(reward.name.clone()),
            ),
            lot: None,
            moves,
            reversed: Vec::new(),
            redeem: Some(Redeem {
                reward_id: reward.id,
                idempotency_key: key.clone(),
                members: members.clone(),
                per_person: reward.per_person,
            }),
            events: vec![event(person, "Points Redeemed", &entry_key, now, props)?],
        };
        match write(store, w).await? {
            Outcome::Written(_, Some(r)) => return Ok((r, true)),
            Outcome::Written(..) | Outcome::Existing(_) => {
                let r = store.redemption_by_key(&key).await?;
                return r
                    .map(|r| (r, false))
                    .ok_or_else(|| StoreError::Backend("redemption missing".into()));
            }
            Outcome::Stale => continue,
            Outcome::Refused(why) => return Err(StoreError::Conflict(why)),
        }
    }
    Err(StoreError::Conflict(
        "the points kept changing: try again".into(),
    ))
}

/// What `POST /api/loyalty/adjust` accepts.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustInput {
    pub profile_id: ProfileId,
    /// Whole points, up (positive) or down (negative).
    #[schema(value_type = i64)]
    pub points: Value,
    /// Why (kept on the entry and the timeline).
    pub reason: String,
    /// Days until points added expire (none: the programme's default).
    pub expires_days: Option<i64>,
    pub idempotency_key: Option<String>,
}

/// Adds points (a lot of kind `adjust`) or takes them (what expires first); the same key
/// returns the first entry (false).
pub async fn adjust(
    store: &DynStore,
    input: AdjustInput,
    who: &str,
) -> Result<(EntryRow, bool), StoreError> {
    let delta = loyalty::adjustment("points", &input.points).map_err(field)?;
    let reason = input.reason.trim().to_string();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(invalid("reason", "1 to 500 characters"));
    }
    if input
        .expires_days
        .is_some_and(|d| !(1..=3_650).contains(&d))
    {
        return Err(invalid("expires_days", "from 1 to 3650"));
    }
    let key = format!("adjust:{}", key_or_new(input.idempotency_key)?);
    if let Some(e) = store.entry_by_key(&key).await? {
        return Ok((e, false));
    }
    let s = settings(store).await?;
    let view = store.profile(input.profile_id).await?;
    let person = view.id;
    let members = members(store, person).await?;
    let now = now_millis();
    for _ in 0..ATTEMPTS {
        let mut props = json!({"points": delta, "reason": reason, "by": who});
        let (lot, moves) = if delta > 0 {
            let expires = input.expires_days.or(s.expires_days);
            let lot = NewLot {
                profile_id: person,
                kind: "adjust".into(),
                amount: delta,
                earned_at: now,
                unlock_at: now,
                expires_at: expires.map(|d| now + d * DAY),
                order: None,
                revenue: None,
            };
            props["unlock_at_ms"] = json!(lot.unlock_at);
            props["expires_at_ms"] = json!(lot.expires_at);
            (Some(lot), Vec::new())
        } else {
            let lots = store.lots(&members, false).await?;
            let moves = loyalty::take(&just_lots(&lots), -delta, now).map_err(|s| {
                StoreError::Conflict(format!(
                    "not enough points to take: {} available, {} asked",
                    s.available, s.wanted
                ))
            })?;
            let moves = planned(&lots, moves);
            props["moves"] = moves_json(&moves);
            (None, moves)
        };
        let w = LedgerWrite {
            entry: entry(
                person,
                "adjust",
                delta,
                &key,
                now,
                who,
                None,
                Some(reason.clone()),
            ),
            lot,
            moves,
            reversed: Vec::new(),
            redeem: None,
            events: vec![event(person, "Points Adjusted", &key, now, props)?],
        };
        match write(store, w).await? {
            Outcome::Written(e, _) => return Ok((e, true)),
            Outcome::Existing(e) => return Ok((e, false)),
            Outcome::Stale => continue,
            Outcome::Refused(why) => return Err(StoreError::Conflict(why)),
        }
    }
    Err(StoreError::Conflict(
        "the points kept changing: try again".into(),
    ))
}

/// Points given outright (no rule, no order): a lot of `kind` under `key`, with `Points
/// Earned` (earn) or `Points Adjusted` (adjust) on the timeline; the same key writes
/// nothing again. Expires after the programme's default.
pub struct Credit {
    pub person: ProfileId,
    pub kind: &'static str,
    pub points: i64,
    pub key: String,
    pub source: String,
    pub reason: String,
    /// More properties for the event.
    pub props: Value,
}

impl Credit {
    pub async fn write(self, store: &DynStore) -> Result<Outcome, StoreError> {
        let s = settings(store).await?;
        let now = now_millis();
        let lot = NewLot {
            profile_id: self.person,
            kind: self.kind.into(),
            amount: self.points,
            earned_at: now,
            unlock_at: now,
            expires_at: s.expires_days.map(|d| now + d * DAY),
            order: None,
            revenue: None,
        };
        let mut props = json!({"points": self.points, "reason": self.reason, "by": self.source,
            "unlock_at_ms": lot.unlock_at, "expires_at_ms": lot.expires_at});
        if let (Some(p), Some(extra)) = (props.as_object_mut(), self.props.as_object()) {
            p.extend(extra.clone());
        }
        let name = if self.kind == "earn" {
            "Points Earned"
        } else {
            "Points Adjusted"
        };
        let w = LedgerWrite {
            entry: entry(
                self.person,
                self.kind,
                self.points,
                &self.key,
                now,
                &self.source,
                None,
                Some(self.reason),
            ),
            lot: Some(lot),
            moves: Vec::new(),
            reversed: Vec::new(),
            redeem: None,
            events: vec![event(self.person, name, &self.key, now, props)?],
        };
        write(store, w).await
    }
}

/// What `POST /api/loyalty/convert` accepts.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConvertInput {
    pub profile_id: ProfileId,
    /// Whole points to turn into the brand's token.
    #[schema(value_type = i64)]
    pub points: Value,
    /// The same key converts once; one per intended conversion.
    pub idempotency_key: Option<String>,
}

/// Tokens for `points` at `per` points a token, as a decimal string (at most six
/// decimals: a finer fraction is refused).
pub fn tokens_for(points: i64, per: i64) -> Option<String> {
    let micro = i128::from(points) * 1_000_000;
    let per = i128::from(per);
    if per <= 0 || micro % per != 0 {
        return None;
    }
    let m = micro / per;
    let (whole, frac) = (m / 1_000_000, m % 1_000_000);
    Some(if frac == 0 {
        whole.to_string()
    } else {
        format!("{whole}.{frac:06}")
            .trim_end_matches('0')
            .to_string()
    })
}

/// Turns points into the brand's token: the points are spent (entry `convert:<key>`) and
/// a token reward asked for the person's verified wallet with the same key; if the
/// reward fails on chain, [`refund_step`] gives the points back. The same key returns
/// the first reward (false).
pub async fn convert(
    store: &DynStore,
    input: ConvertInput,
    source: &str,
) -> Result<(rapport_store::RewardRow, bool), StoreError> {
    let key = key_or_new(input.idempotency_key)?;
    let entry_key = format!("convert:{key}");
    let s = settings(store).await?;
    let Some(t) = s.token.clone() else {
        return Err(StoreError::Conflict(
            "points cannot become tokens: the programme names no token (loyalty settings `token`)"
                .into(),
        ));
    };
    let points = loyalty::positive_points("points", &input.points).map_err(field)?;
    if points < t.min_points {
        return Err(invalid(
            "points",
            format!("at least {} points at once", t.min_points),
        ));
    }
    let amount = tokens_for(points, t.points_per_token).ok_or_else(|| {
        invalid(
            "points",
            format!(
                "{} points make one {}: this many would make a fraction finer than 0.000001",
                t.points_per_token, t.token
            ),
        )
    })?;
    let contract = crate::chain::find_contract(store, t.token.trim(), t.chain.as_deref()).await?;
    let view = store.profile(input.profile_id).await?;
    let person = view.id;
    let prefix = format!("{}:", contract.chain_id);
    if !view.identities.iter().any(|i| {
        i.kind == rapport_domain::identifier::IdentityKind::Wallet
            && i.verified
            && i.value.starts_with(&prefix)
    }) {
        return Err(invalid(
            "profile_id",
            format!(
                "points become tokens only for a verified wallet on {} (Sign-In with Ethereum)",
                contract.chain_id
            ),
        ));
    }
    if store.entry_by_key(&entry_key).await?.is_none() {
        let members = members(store, person).await?;
        let now = now_millis();
        let mut spent = false;
        for _ in 0..ATTEMPTS {
            let lots = store.lots(&members, false).await?;
            let moves = loyalty::take(&just_lots(&lots), points, now).map_err(|s| {
                StoreError::Conflict(format!(
                    "not enough points: {} available, {} asked",
                    s.available, s.wanted
                ))
            })?;
            let moves = planned(&lots, moves);
            let props = json!({"points": points, "token": t.token, "amount": amount,
                "moves": moves_json(&moves)});
            let w = LedgerWrite {
                entry: entry(
                    person,
                    "spend",
                    -points,
                    &entry_key,
                    now,
                    source,
                    None,
                    Some(format!("{amount} {}", t.token)),
                ),
                lot: None,
                moves,
                reversed: Vec::new(),
                redeem: None,
                events: vec![event(person, "Points Converted", &entry_key, now, props)?],
            };
            match write(store, w).await? {
                Outcome::Written(..) | Outcome::Existing(_) => {
                    spent = true;
                    break;
                }
                Outcome::Stale => continue,
                Outcome::Refused(why) => return Err(StoreError::Conflict(why)),
            }
        }
        if !spent {
            return Err(StoreError::Conflict(
                "the points kept changing: try again".into(),
            ));
        }
    }
    // Asked after the spend and with the same key: a crash in between asks on the retry.
    crate::rewards::request(
        store,
        crate::rewards::RewardInput {
            profile_id: person,
            token: contract.address.clone(),
            chain: Some(contract.chain_id.clone()),
            amount,
            kind: None,
            idempotency_key: Some(format!("loyalty:{key}")),
        },
        CONVERT_SOURCE,
    )
    .await
}

/// The source of the token rewards conversions ask for.
pub const CONVERT_SOURCE: &str = "loyalty";

/// Points given back for conversions whose token reward failed; the reward is then
/// `reversed` (never retried: the person has their points again). Returns how many.
pub async fn refund_step(store: &DynStore) -> Result<usize, StoreError> {
    let failed = store.rewards(Some("failed".into()), 1_000).await?;
    let mut n = 0;
    for mut r in failed.into_iter().filter(|r| r.source == CONVERT_SOURCE) {
        let Some(key) = r.idempotency_key.strip_prefix("loyalty:") else {
            continue;
        };
        let Some(spent) = store.entry_by_key(&format!("convert:{key}")).await? else {
            continue;
        };
        let reason = format!(
            "the token payment failed: {}",
            r.last_error.clone().unwrap_or_default()
        );
        let credit = Credit {
            person: spent.profile_id,
            kind: "adjust",
            points: -spent.amount,
            key: format!("convert-refund:{key}"),
            source: CONVERT_SOURCE.into(),
            reason,
            props: json!({"reward_id": r.id}),
        };
        credit.write(store).await?;
        let now = now_millis();
        r.status = "reversed".into();
        r.updated_at = now;
        store.update_reward(r).await?;
        n += 1;
    }
    Ok(n)
}

/// Lots written off per expiry step at most.
pub const EXPIRY_BATCH: usize = 5_000;

/// Writes off the points of lots whose time has passed: one entry and one `Points
/// Expired` per profile and step. Returns the lots written off.
pub async fn expire_step(store: &DynStore, now: Millis, limit: usize) -> Result<usize, StoreError> {
    let lots = store.expired_lots(now, limit).await?;
    let mut by: BTreeMap<ProfileId, Vec<LotRow>> = BTreeMap::new();
    for l in lots {
        by.entry(l.profile_id).or_default().push(l);
    }
    let mut writes = Vec::with_capacity(by.len());
    let mut sizes = Vec::with_capacity(by.len());
    for (profile, lots) in by {
        let moves = loyalty::expire(&just_lots(&lots), now);
        let points: i64 = moves.iter().map(|m| m.take).sum();
        // Each lot expires once: the first lot's id makes the key.
        let key = format!("expire:{}", lots[0].lot.id);
        let moves = planned(&lots, moves);
        let props = json!({"points": points, "lots": lots.len(), "moves": moves_json(&moves)});
        sizes.push(lots.len());
        writes.push(LedgerWrite {
            entry: entry(profile, "expire", -points, &key, now, "expiry", None, None),
            lot: None,
            moves,
            reversed: Vec::new(),
            redeem: None,
            events: vec![event(profile, "Points Expired", &key, now, props)?],
        });
    }
    let out = store.write_entries(writes).await?;
    Ok(out
        .iter()
        .zip(sizes)
        .filter(|(o, _)| matches!(o, Outcome::Written(..)))
        .map(|(_, n)| n)
        .sum())
}

/// Looks again at up to `limit` tiered people after `after` (downgrades happen with
/// time, not only with events). Returns the last person looked at (0 at the end).
pub async fn tier_step(
    store: &DynStore,
    after: ProfileId,
    limit: usize,
    now: Millis,
) -> Result<ProfileId, StoreError> {
    let s = settings(store).await?;
    if s.tiers.is_empty() {
        return Ok(0);
    }
    let rows = store.tiered(after, limit).await?;
    let Some(last) = rows.last().map(|r| r.profile_id) else {
        return Ok(0);
    };
    for r in rows {
        let person = match store.profile(r.profile_id).await {
            Ok(v) => v,
            Err(StoreError::NotFound(_)) => continue,
            Err(e) => return Err(e),
        };
        // A member's row left by a merge is the person's business through their own.
        if person.id != r.profile_id {
            continue;
        }
        let m = members(store, person.id).await?;
        refresh_tier(store, &s, person.id, &m, now).await?;
    }
    Ok(last)
}

/// The loyalty worker `rapport serve` runs: expired points written off and tiers looked
/// at again every `every`.
pub async fn run(
    store: DynStore,
    every: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut after = 0;
    let mut last: Option<std::time::Instant> = None;
    loop {
        let step = async {
            // Every second: a failed conversion gives its points back soon.
            let refunded = refund_step(&store).await?;
            if last.is_some_and(|t| t.elapsed() < every) {
                return Ok(refunded);
            }
            let now = now_millis();
            let expired = expire_step(&store, now, EXPIRY_BATCH).await?;
            after = tier_step(&store, after, 500, now).await?;
            // Caught up when nothing is left to expire and the tier walk came round.
            if expired < EXPIRY_BATCH && after == 0 {
                last = Some(std::time::Instant::now());
            }
            Ok::<usize, StoreError>(expired + refunded)
        }
        .await;
        let second = Duration::from_secs(1);
        if !crate::worker::pause_after("loyalty", step, second, Duration::ZERO, &mut shutdown).await
        {
            return;
        }
    }
}

/// Where a person stands (`GET /api/profiles/{id}/loyalty`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LoyaltyView {
    pub profile_id: ProfileId,
    pub available: i64,
    pub pending: i64,
    /// Points that expire in the next 30 days.
    pub expiring_30d: i64,
    /// The next expiry: when and how many.
    pub next_expiry: Option<NextExpiry>,
    pub tier: Option<String>,
    pub tier_since: Option<Millis>,
    /// The total that reaches tiers (points or spend in the window) and the next tier.
    pub qualifying: f64,
    pub next_tier: Option<NextTier>,
    /// Lots that still hold points, soonest to expire first.
    pub lots: Vec<LotRow>,
    /// The latest entries, newest first.
    pub history: Vec<EntryRow>,
    pub redemptions: Vec<Redemption>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NextExpiry {
    pub at: Millis,
    pub points: i64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NextTier {
    pub name: String,
    pub threshold: f64,
    /// Still to go.
    pub needed: f64,
}

pub async fn view(
    store: &DynStore,
    id: ProfileId,
    history: usize,
) -> Result<LoyaltyView, StoreError> {
    let person = store.profile(id).await?.id;
    let members = members(store, person).await?;
    let s = settings(store).await?;
    let now = now_millis();
    let mut lots = store.lots(&members, false).await?;
    let plain = just_lots(&lots);
    let b = loyalty::balance(&plain, now);
    lots.retain(|l| l.lot.expires_at.is_none_or(|e| e > now));
    lots.sort_by_key(|l| {
        (
            l.lot.expires_at.unwrap_or(i64::MAX),
            l.lot.earned_at,
            l.lot.id,
        )
    });
    let next_expiry = lots.first().and_then(|l| {
        let at = l.lot.expires_at?;
        let points = lots
            .iter()
            .filter(|x| x.lot.expires_at == Some(at))
            .map(|x| x.lot.remaining)
            .sum();
        Some(NextExpiry { at, points })
    });
    let tier = current_tier(store, person).await?;
    let rules = s.tier_rules();
    let total = if rules.tiers.is_empty() {
        0.0
    } else {
        qualifying(store, &s, &members, now).await?
    };
    let have = rules
        .tiers
        .iter()
        .position(|t| Some(&t.name) == tier.state.tier.as_ref());
    let next_tier = rules
        .tiers
        .iter()
        .enumerate()
        .find(|(i, t)| have.is_none_or(|h| *i > h) && t.threshold > total)
        .map(|(_, t)| NextTier {
            name: t.name.clone(),
            threshold: t.threshold,
            needed: t.threshold - total,
        });
    Ok(LoyaltyView {
        profile_id: person,
        available: b.available,
        pending: b.pending,
        expiring_30d: loyalty::expiring(&plain, now, now + 30 * DAY),
        next_expiry,
        tier_since: tier.state.tier.as_ref().map(|_| tier.state.since),
        tier: tier.state.tier,
        qualifying: total,
        next_tier,
        lots,
        history: store.entries(&members, None, history).await?,
        redemptions: store.redemptions(&members, 20).await?,
    })
}

/// Checks and saves a reward of the catalogue (id 0: a new one).
pub async fn save_reward(store: &DynStore, mut r: Reward) -> Result<Reward, StoreError> {
    r.name = r.name.trim().to_string();
    if r.name.is_empty() || r.name.chars().count() > 100 {
        return Err(invalid("name", "1 to 100 characters"));
    }
    if r.description.chars().count() > 2_000 {
        return Err(invalid("description", "at most 2000 characters"));
    }
    if !(1..=MAX_POINTS).contains(&r.cost) {
        return Err(invalid("cost", "a positive whole number of points"));
    }
    if r.stock.is_some_and(|s| s < 0) {
        return Err(invalid("stock", "0 or more (none: no limit)"));
    }
    if r.per_person.is_some_and(|p| p < 1) {
        return Err(invalid("per_person", "1 or more (none: no limit)"));
    }
    if let (Some(a), Some(b)) = (r.starts_at, r.ends_at) {
        if b <= a {
            return Err(invalid("ends_at", "must be after starts_at"));
        }
    }
    let s = settings(store).await?;
    for (i, t) in r.tiers.iter().enumerate() {
        if !s.tiers.iter().any(|x| &x.name == t) {
            return Err(invalid(
                &format!("tiers[{i}]"),
                format!("{t} is not a tier of the programme"),
            ));
        }
    }
    if let Some(seg) = &r.segment {
        if store.segment_by_name(seg).await?.is_none() {
            return Err(invalid("segment", format!("no segment named {seg}")));
        }
    }
    if let Some(other) = store.catalogue_item_named(&r.name).await? {
        if other.id != r.id {
            return Err(StoreError::Conflict(format!(
                "a reward named {} exists",
                r.name
            )));
        }
    }
    let now = now_millis();
    if r.id == 0 {
        r.created_at = now;
    } else if store.catalogue_item(r.id).await?.is_none() {
        return Err(StoreError::NotFound(format!("reward {}", r.id)));
    }
    r.updated_at = now;
    let id = store.save_catalogue_item(r).await?;
    store
        .catalogue_item(id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("reward {id}")))
}

/// Adds coupon codes from CSV text (the first column; a header `code` is skipped) to a
/// reward's pool. Returns how many were new.
pub async fn import_codes(
    store: &DynStore,
    reward: i64,
    csv_text: &str,
) -> Result<usize, StoreError> {
    if store.catalogue_item(reward).await?.is_none() {
        return Err(StoreError::NotFound(format!("reward {reward}")));
    }
    let mut rd = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(csv_text.as_bytes());
    let mut codes = Vec::new();
    for (i, row) in rd.records().enumerate() {
        let row = row.map_err(|e| invalid("codes", format!("line {}: {e}", i + 1)))?;
        let code = row.get(0).unwrap_or("").trim();
        if i == 0 && code.eq_ignore_ascii_case("code") || code.is_empty() {
            continue;
        }
        if code.len() > 100 || code.chars().any(char::is_control) {
            return Err(invalid(
                "codes",
                format!("line {}: a code is 1 to 100 printable characters", i + 1),
            ));
        }
        codes.push(code.to_string());
    }
    if codes.is_empty() {
        return Err(invalid(
            "codes",
            "no codes: one per line, in the first column",
        ));
    }
    if codes.len() > 1_000_000 {
        return Err(invalid("codes", "at most 1,000,000 at once"));
    }
    store.add_codes(reward, codes).await
}
