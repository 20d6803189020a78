//! Decision rules: `when <event> [where <condition on the person>] then <actions>`, run
//! by the real-time worker on each event as it arrives. Actions: set a trait, add a tag,
//! open a task for staff, emit an event. Each rule may cap how often it fires per person
//! and require a consent; every firing is audited with what each action did, and a
//! dry run shows what a rule would have done over recent events without doing it.
//! Events that rules emit never trigger rules, so rules cannot loop.

use rapport_domain::message::{parse_message, BatchContext};
use rapport_domain::model::EventView;
use rapport_domain::resolve::ProfileId;
use rapport_domain::time::now_millis;
use rapport_segment::ast::EventSel;
use rapport_segment::eval::{self, Person};
use rapport_segment::{parse_selector, Expr};
use rapport_store::{DynStore, Firing, StoreError, Task};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;

pub const RULES_KEY: &str = "rules";
/// When the rules were last saved: they act on events received from then on, never on
/// history (a new rule must not fire for a year of past events).
const SAVED_AT_KEY: &str = "rules.saved_at";
/// The source of events rules emit (never a trigger).
pub const SOURCE: &str = "rules";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Cap {
    pub max: i64,
    pub per_hours: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConsentNeed {
    pub channel: String,
    pub purpose: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Rule {
    pub name: String,
    /// An event selector: `track "Ticket Opened" where priority = "high"`.
    pub when: String,
    /// A condition on the person in the segment language.
    #[serde(default, rename = "where", skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    #[schema(value_type = Vec<Object>)]
    pub then: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap: Option<Cap>,
    /// Fire only for people whose latest consent for this channel and purpose is granted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent: Option<ConsentNeed>,
    /// Outbound actions (webhooks) wait while the UTC hour is in [start, end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_hours: Option<QuietHours>,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Shadow mode: the rule fires as usual (caps count it) and each firing records what
    /// its actions would have done; none of them is done.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QuietHours {
    pub start: u32,
    pub end: u32,
}

impl QuietHours {
    /// When an outbound action asked for at `now` may go: now, or the end of the quiet
    /// period it falls in (windows may wrap midnight, e.g. 22 → 7).
    pub fn release(&self, now: i64) -> i64 {
        let hour_ms = 3_600_000;
        let day_ms = 24 * hour_ms;
        let h = ((now.rem_euclid(day_ms)) / hour_ms) as u32;
        let inside = if self.start <= self.end {
            h >= self.start && h < self.end
        } else {
            h >= self.start || h < self.end
        };
        if !inside {
            return now;
        }
        let day_start = now - now.rem_euclid(day_ms);
        let end = day_start + self.end as i64 * hour_ms;
        if end > now {
            end
        } else {
            end + day_ms
        }
    }
}

fn yes() -> bool {
    true
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> StoreError {
    StoreError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// A rule with its parts parsed.
pub(crate) struct CompiledRule {
    pub(crate) rule: Rule,
    when: EventSel,
    condition: Option<Expr>,
}

fn check_action(a: &Value, field: &str) -> Result<(), StoreError> {
    let kind = a.get("action").and_then(Value::as_str).unwrap_or("");
    let text = |k: &str| {
        a.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty() && s.len() <= 1000)
    };
    match kind {
        "set_trait" => {
            let ok = text("trait")
                .is_some_and(|t| t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
            if !ok || a.get("value").is_none() {
                return Err(invalid(
                    field,
                    "set_trait needs `trait` (letters, digits, _) and `value`",
                ));
            }
        }
        "add_tag" if text("tag").is_none() => return Err(invalid(field, "add_tag needs `tag`")),
        "task" if text("title").is_none() => return Err(invalid(field, "task needs a `title`")),
        "emit" if text("event").is_none() => {
            return Err(invalid(field, "emit needs an `event` name"))
        }
        "remove_tag" if text("tag").is_none() => {
            return Err(invalid(field, "remove_tag needs `tag`"))
        }
        "add_to_segment" | "remove_from_segment" if text("segment").is_none() => {
            return Err(invalid(
                format!("{field}.segment"),
                "names a static segment",
            ))
        }
        "add_tag" | "remove_tag" | "task" | "emit" | "add_to_segment" | "remove_from_segment" => {}
        "token_reward" => {
            let amount_ok = match a.get("amount") {
                Some(Value::String(s)) => !s.trim().is_empty(),
                Some(Value::Number(n)) => n.as_f64().is_some_and(|n| n > 0.0),
                _ => false,
            };
            if text("token").is_none() || !amount_ok {
                return Err(invalid(
                    field,
                    "token_reward needs `token` (symbol or contract address) and a positive `amount`",
                ));
            }
        }
        "send_email" => {
            if text("template").is_none() {
                return Err(invalid(format!("{field}.template"), "send_email needs a `template` (name or id)"));
            }
            if text("from").is_none_or(|f| rapport_domain::identifier::normalize_email(f).is_err()) {
                return Err(invalid(format!("{field}.from"), "send_email needs a `from` e-mail address"));
            }
            if let Some(k) = a.get("kind") {
                if !matches!(k.as_str(), Some("marketing" | "transactional")) {
                    return Err(invalid(format!("{field}.kind"), "`marketing` (default) or `transactional`"));
                }
            }
        }
        "points" => crate::loyalty::check_points_action(a, field)?,
        "reverse_points" => {
            if let Some(o) = a.get("order").filter(|o| !o.is_null()) {
                if !o.as_str().is_some_and(|o| !o.is_empty() && o.len() <= 100) {
                    return Err(invalid(format!("{field}.order"), "the property naming the order"));
                }
            }
        }
        "webhook" => {
            let url_ok =
                text("url").is_some_and(|u| u.starts_with("http://") || u.starts_with("https://"));
            if !url_ok {
                return Err(invalid(field, "webhook needs an http(s) `url`"));
            }
            if text("secret").is_none_or(|s| s.len() < 16) {
                return Err(invalid(
                    field,
                    "webhook needs a `secret` of at least 16 characters (the HMAC-SHA256 key)",
                ));
            }
            if let Some(m) = a.get("max_attempts") {
                if !m.as_i64().is_some_and(|m| (1..=20).contains(&m)) {
                    return Err(invalid(field, "max_attempts must be from 1 to 20"));
                }
            }
        }
        other => {
            return Err(invalid(
                field,
                format!(
                    "'{other}' is not an action: use set_trait, add_tag, task, emit, webhook, send_email, token_reward, points or reverse_points"
                ),
            ))
        }
    }
    Ok(())
}

async fn compile(store: &DynStore, r: &Rule, field: &str) -> Result<CompiledRule, StoreError> {
    let when =
        parse_selector(&r.when).map_err(|e| invalid(format!("{field}.when"), e.to_string()))?;
    let condition = match &r.condition {
        Some(c) if !c.trim().is_empty() => Some(crate::segments::check(store, c).await.map_err(
            |e| match e {
                StoreError::Invalid { reason, .. } => invalid(format!("{field}.where"), reason),
                other => other,
            },
        )?),
        _ => None,
    };
    Ok(CompiledRule {
        rule: r.clone(),
        when,
        condition,
    })
}

pub async fn rules(store: &DynStore) -> Result<Vec<Rule>, StoreError> {
    Ok(store
        .setting(RULES_KEY)
        .await?
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default())
}

/// Replaces the rules: `{"rules": [{"name", "when", "where", "then": [...], "cap", "consent", "enabled"}]}`.
pub async fn set_rules(store: &DynStore, body: &Value) -> Result<Vec<Rule>, StoreError> {
    let out = check_rules(store, body).await?;
    let now = now_millis();
    store
        .set_setting(
            RULES_KEY,
            serde_json::to_value(&out).unwrap_or_default(),
            now,
        )
        .await?;
    store.set_setting(SAVED_AT_KEY, json!(now), now).await?;
    Ok(out)
}

/// Checks rules as `set_rules` would, saving nothing (the rule builder's dry run).
pub async fn check_rules(store: &DynStore, body: &Value) -> Result<Vec<Rule>, StoreError> {
    let Some(items) = body.get("rules").and_then(Value::as_array) else {
        return Err(invalid("rules", "is required: an array of rules"));
    };
    if items.len() > 500 {
        return Err(invalid("rules", "at most 500 rules"));
    }
    let mut out: Vec<Rule> = Vec::new();
    for (i, it) in items.iter().enumerate() {
        let field = format!("rules[{i}]");
        let r: Rule =
            serde_json::from_value(it.clone()).map_err(|e| invalid(&field, e.to_string()))?;
        if r.name.trim().is_empty() || r.name.len() > 100 || out.iter().any(|o| o.name == r.name) {
            return Err(invalid(
                format!("{field}.name"),
                "must be a unique name of 1 to 100 characters",
            ));
        }
        if r.then.is_empty() || r.then.len() > 20 {
            return Err(invalid(
                format!("{field}.then"),
                "must list 1 to 20 actions",
            ));
        }
        for (j, a) in r.then.iter().enumerate() {
            check_action(a, &format!("{field}.then[{j}]"))?;
            if let Some(name) = a.get("segment").and_then(Value::as_str) {
                let ok = store
                    .segment_by_name(name)
                    .await?
                    .is_some_and(|s| s.kind == "static");
                if !ok {
                    return Err(invalid(
                        format!("{field}.then[{j}].segment"),
                        format!("'{name}' is not a static segment (create one with {{\"kind\": \"static\"}})"),
                    ));
                }
            }
        }
        if let Some(q) = &r.quiet_hours {
            if q.start > 23 || q.end > 23 || q.start == q.end {
                return Err(invalid(
                    format!("{field}.quiet_hours"),
                    "start and end are different hours from 0 to 23 (UTC)",
                ));
            }
        }
        if let Some(c) = &r.cap {
            if c.max < 1 || !(1..=24 * 365).contains(&c.per_hours) {
                return Err(invalid(
                    format!("{field}.cap"),
                    "max ≥ 1 and per_hours from 1 to 8760",
                ));
            }
        }
        compile(store, &r, &field).await?;
        out.push(r);
    }
    Ok(out)
}

pub(crate) fn as_event(e: &EventView) -> eval::Event {
    eval::Event {
        kind: e.kind.clone(),
        name: e.name.clone(),
        properties: e.properties.clone(),
        at: e.occurred_at.timestamp_millis(),
        id: e.id,
    }
}

/// How often `rule` fired since `since`, among a person's recent firings `(rule, at)`.
fn fired_since(firings: &[(String, i64)], rule: &str, since: i64) -> i64 {
    firings
        .iter()
        .filter(|(r, at)| r == rule && *at >= since)
        .count() as i64
}

/// Whether a rule would fire for this event and person, and why not when it would not;
/// `count_since(t)` counts the rule's firings for the person since `t` (caps).
fn check(
    c: &CompiledRule,
    p: &Person,
    now: i64,
    count_since: impl FnOnce(i64) -> i64,
) -> Result<(), String> {
    if let Some(cond) = &c.condition {
        if !eval::eval(cond, p, now) {
            return Err("the person does not meet the condition".into());
        }
    }
    if let Some(need) = &c.rule.consent {
        let granted = p
            .consents
            .get(&(need.channel.clone(), need.purpose.clone()))
            .is_some_and(|s| s == "granted");
        if !granted {
            return Err(format!(
                "no granted consent for {} {}",
                need.channel, need.purpose
            ));
        }
    }
    if let Some(cap) = &c.rule.cap {
        let n = count_since(now - cap.per_hours * 3_600_000);
        if n >= cap.max {
            return Err(format!(
                "capped: fired {n} times in {} hours",
                cap.per_hours
            ));
        }
    }
    Ok(())
}

/// Writes the real-time engine gathers during a step and makes at its end, in the step's
/// one transaction: firings, one trait patch per person, static memberships.
#[derive(Default)]
pub(crate) struct Effects {
    pub(crate) firings: Vec<Firing>,
    patches: HashMap<ProfileId, serde_json::Map<String, Value>>,
    changes: usize,
    /// Static segment changes: (segment id, person, in).
    memberships: Vec<(i64, ProfileId, bool)>,
    /// Loyalty points earned (written before the step's commit).
    pub(crate) ledger: Vec<rapport_store::LedgerWrite>,
    /// The loyalty programme's settings, read once per step that needs them.
    loyalty: Option<crate::loyalty::LoyaltySettings>,
}

impl Effects {
    /// The loyalty settings, read at the first use in a step.
    pub(crate) async fn loyalty(
        &mut self,
        store: &DynStore,
    ) -> Result<&crate::loyalty::LoyaltySettings, StoreError> {
        if self.loyalty.is_none() {
            self.loyalty = Some(crate::loyalty::settings(store).await?);
        }
        Ok(self.loyalty.get_or_insert_with(Default::default))
    }

    /// Sets a top-level trait, in memory at once and in the store at the step's end
    /// (`null` removes it, as in a merge patch).
    pub(crate) fn set_trait(&mut self, id: ProfileId, p: &mut Person, key: &str, value: Value) {
        if let Some(t) = p.traits.as_object_mut() {
            if value.is_null() {
                t.remove(key);
            } else {
                t.insert(key.to_string(), value.clone());
            }
        } else if !value.is_null() {
            p.traits = json!({ key: value.clone() });
        }
        self.changes += 1;
        self.patches
            .entry(id)
            .or_default()
            .insert(key.to_string(), value);
    }

    /// How many trait changes were made so far (to tell whether a call made one).
    pub(crate) fn patched(&self) -> usize {
        self.changes
    }

    /// Re-applies this step's unwritten trait changes to a state just loaded.
    pub(crate) fn apply_pending(&self, id: ProfileId, traits: &mut Value) {
        let Some(patch) = self.patches.get(&id) else {
            return;
        };
        if !traits.is_object() {
            *traits = json!({});
        }
        if let Some(t) = traits.as_object_mut() {
            for (k, v) in patch {
                if v.is_null() {
                    t.remove(k);
                } else {
                    t.insert(k.clone(), v.clone());
                }
            }
        }
    }

    /// Nothing to write: no firing, trait change or static membership.
    pub(crate) fn is_empty(&self) -> bool {
        self.firings.is_empty()
            && self.patches.is_empty()
            && self.memberships.is_empty()
            && self.ledger.is_empty()
    }

    /// Hands the gathered writes to the step's single transaction.
    pub(crate) fn into_writes(self, w: &mut rapport_store::StepWrites) {
        w.firings.extend(self.firings);
        w.ledger.extend(self.ledger);
        for (seg, id, inside) in self.memberships {
            let (entered, exited) = if inside {
                (vec![id], vec![])
            } else {
                (vec![], vec![id])
            };
            w.memberships
                .push((seg, rapport_store::MembershipChange { entered, exited }));
        }
        w.patches.extend(
            self.patches
                .into_iter()
                .map(|(id, patch)| (id, Value::Object(patch))),
        );
    }
}

/// Runs a rule's actions for a person; returns what each did. Trait changes go through
/// `effects` (written at the step's end); other actions are written at once.
async fn act(
    store: &DynStore,
    rule: &Rule,
    id: ProfileId,
    ev: &EventView,
    p: &mut Person,
    now: i64,
    effects: &mut Effects,
) -> Result<Vec<Value>, StoreError> {
    let mut done = Vec::new();
    for (index, a) in rule.then.iter().enumerate() {
        let kind = a.get("action").and_then(Value::as_str).unwrap_or("");
        let outcome = match kind {
            "token_reward" => {
                let amount = match &a["amount"] {
                    Value::Number(n) => n.to_string(),
                    v => v.as_str().unwrap_or("").to_string(),
                };
                let text = |k: &str| a.get(k).and_then(Value::as_str).map(str::to_string);
                // One payment per rule, event and action, however often the firing runs.
                let input = crate::rewards::RewardInput {
                    profile_id: id,
                    token: text("token").unwrap_or_default(),
                    chain: text("chain"),
                    amount,
                    kind: text("kind"),
                    idempotency_key: Some(format!("rule:{}:{}:{index}", rule.name, ev.id)),
                };
                match crate::rewards::request(store, input, &format!("rule:{}", rule.name)).await {
                    Ok((r, created)) => {
                        json!({"action": kind, "reward_id": r.id, "status": r.status, "created": created})
                    }
                    Err(
                        e @ (StoreError::Invalid { .. }
                        | StoreError::Conflict(_)
                        | StoreError::NotFound(_)),
                    ) => {
                        json!({"action": kind, "skipped": e.to_string()})
                    }
                    Err(e) => return Err(e),
                }
            }
            "send_email" => {
                let text = |k: &str| a.get(k).and_then(Value::as_str).map(str::to_string);
                // A journey step: one message per rule, event and action, however often
                // the firing runs; quiet hours hold it back until they end.
                let now = rapport_domain::time::now_millis();
                let req = crate::email::SendRequest {
                    template: text("template").unwrap_or_default(),
                    to: json!(id),
                    from: text("from").unwrap_or_default(),
                    from_name: text("from_name"),
                    data: a.get("data").cloned().unwrap_or_else(|| json!({})),
                    idempotency_key: Some(format!("rule:{}:{}:{index}", rule.name, ev.id)),
                    kind: Some(text("kind").unwrap_or_else(|| "marketing".into())),
                    not_before: rule.quiet_hours.as_ref().map(|q| q.release(now)),
                    untracked: false,
                    thread: None,
                };
                match crate::email::Email::new(store.clone()).send(req).await {
                    Ok(m) => {
                        json!({"action": kind, "email_id": m.public_id, "status": m.status, "reason": m.last_error})
                    }
                    Err(e @ (StoreError::Invalid { .. } | StoreError::NotFound(_))) => {
                        json!({"action": kind, "skipped": e.to_string()})
                    }
                    Err(e) => return Err(e),
                }
            }
            "points" | "reverse_points" => {
                // Earnings ride on the step's commit (one transaction for the step's
                // orders, not one each); a reversal takes points now.
                let done = if kind == "points" {
                    let settings = effects.loyalty(store).await?.clone();
                    match crate::loyalty::plan_earn(
                        store, &settings, &rule.name, index, a, id, ev, &p.traits,
                    )
                    .await
                    {
                        Ok(Ok(w)) => {
                            let v = json!({"action": kind, "points": w.entry.amount, "key": w.entry.idempotency_key});
                            effects.ledger.push(w);
                            Ok(v)
                        }
                        Ok(Err(skipped)) => Ok(skipped),
                        Err(e) => Err(e),
                    }
                } else {
                    crate::loyalty::reverse_by_rule(store, &rule.name, index, a, id, ev).await
                };
                match done {
                    Ok(v) => v,
                    Err(
                        e @ (StoreError::Invalid { .. }
                        | StoreError::Conflict(_)
                        | StoreError::NotFound(_)),
                    ) => {
                        json!({"action": kind, "skipped": e.to_string()})
                    }
                    Err(e) => return Err(e),
                }
            }
            "set_trait" => {
                let t = a.get("trait").and_then(Value::as_str).unwrap_or("");
                effects.set_trait(id, p, t, a["value"].clone());
                json!({"action": kind, "trait": t, "value": a["value"]})
            }
            "add_tag" => {
                let tag = a.get("tag").and_then(Value::as_str).unwrap_or("");
                let mut tags: Vec<Value> = p
                    .traits
                    .get("tags")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                if !tags.iter().any(|x| x == tag) {
                    tags.push(json!(tag));
                    effects.set_trait(id, p, "tags", Value::Array(tags));
                }
                json!({"action": kind, "tag": tag})
            }
            "remove_tag" => {
                let tag = a.get("tag").and_then(Value::as_str).unwrap_or("");
                let tags: Vec<Value> = p
                    .traits
                    .get("tags")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                if tags.iter().any(|x| x == tag) {
                    let kept = tags.into_iter().filter(|x| x != tag).collect();
                    effects.set_trait(id, p, "tags", Value::Array(kept));
                }
                json!({"action": kind, "tag": tag})
            }
            "add_to_segment" | "remove_from_segment" => {
                let name = a.get("segment").and_then(Value::as_str).unwrap_or("");
                let inside = kind == "add_to_segment";
                match store.segment_by_name(name).await? {
                    Some(s) if s.kind == "static" => {
                        effects.memberships.push((s.id, id, inside));
                        p.segments.retain(|n| n != name);
                        if inside {
                            p.segments.push(name.to_string());
                        }
                        json!({"action": kind, "segment": name})
                    }
                    _ => {
                        json!({"action": kind, "skipped": format!("'{name}' is not a static segment")})
                    }
                }
            }
            "task" => {
                let title = a.get("title").and_then(Value::as_str).unwrap_or("");
                let body = a.get("body").and_then(Value::as_str).unwrap_or("");
                let task = store
                    .create_task(Task {
                        id: 0,
                        profile_id: id,
                        rule: rule.name.clone(),
                        title: title.to_string(),
                        body: format!(
                            "{body}{}Triggered by event {} ({}).",
                            if body.is_empty() { "" } else { " " },
                            ev.id,
                            ev.name.as_deref().unwrap_or(&ev.kind)
                        ),
                        status: "open".into(),
                        created_at: now,
                    })
                    .await?;
                json!({"action": kind, "task_id": task})
            }
            "emit" => {
                let name = a.get("event").and_then(Value::as_str).unwrap_or("");
                let mut props = a.get("properties").cloned().unwrap_or_else(|| json!({}));
                if let Value::Object(m) = &mut props {
                    m.insert("rule".into(), json!(rule.name));
                    m.insert("trigger_event_id".into(), json!(ev.id));
                }
                let msg = json!({"type": "track", "userId": format!("rapport-profile-{id}"), "event": name, "properties": props});
                // Emitted on the person's own profile, whatever identifiers they have.
                let batch = BatchContext {
                    received_at: now,
                    ..Default::default()
                };
                // Actions run at least once: a firing repeated after a crash emits anew.
                let m = parse_message(&msg, "", None, &batch, || {
                    format!("rule:{}:{}:{}:{now}", rule.name, ev.id, name)
                })
                .map_err(|e| invalid("then", e.to_string()))?;
                store
                    .insert_events_raw(
                        vec![rapport_domain::resolve::EventRow {
                            profile_id: id,
                            message: m,
                        }],
                        SOURCE,
                    )
                    .await?;
                json!({"action": kind, "event": name})
            }
            "webhook" => {
                let url = a.get("url").and_then(Value::as_str).unwrap_or("");
                let body = json!({
                    "rule": rule.name,
                    "profile": {"id": id, "traits": p.traits},
                    "event": {"id": ev.id, "type": ev.kind, "name": ev.name, "properties": ev.properties, "occurred_at": ev.occurred_at},
                    "fired_at": now,
                });
                let next_at = rule.quiet_hours.as_ref().map_or(now, |q| q.release(now));
                let out = store
                    .enqueue(rapport_store::Outbound {
                        id: 0,
                        rule: rule.name.clone(),
                        profile_id: id,
                        url: url.to_string(),
                        secret: a
                            .get("secret")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                        body: body.to_string(),
                        attempts: 0,
                        max_attempts: a.get("max_attempts").and_then(Value::as_i64).unwrap_or(5),
                        next_at,
                        status: "pending".into(),
                        last_error: None,
                        created_at: now,
                        delivered_at: None,
                    })
                    .await?;
                json!({"action": kind, "outbox_id": out, "url": url, "not_before": next_at})
            }
            _ => json!({"action": kind, "skipped": "unknown action"}),
        };
        done.push(outcome);
    }
    Ok(done)
}

impl CompiledRule {
    /// Gives the condition's selectors slots in the engine's event index.
    /// The selectors its condition reads from a person's history (not its trigger, which
    /// is tested on the event alone).
    pub(crate) fn history_selectors(&self) -> Vec<&EventSel> {
        self.condition
            .as_ref()
            .map(rapport_segment::referenced_selectors)
            .unwrap_or_default()
    }

    pub(crate) fn slot(&mut self, table: &mut Vec<EventSel>) {
        if let Some(c) = self.condition.as_mut() {
            rapport_segment::assign_slots(c, table);
        }
        let slot = match table.iter().position(|t| t == &self.when) {
            Some(i) => i,
            None => {
                table.push(self.when.clone());
                table.len() - 1
            }
        };
        self.when.slot = Some(slot as u32);
    }
}

/// The enabled rules, parsed, and when they were saved (they act on events received
/// from then on).
pub(crate) async fn compiled(store: &DynStore) -> Result<(Vec<CompiledRule>, i64), StoreError> {
    let mut out = Vec::new();
    for (i, r) in rules(store)
        .await?
        .iter()
        .enumerate()
        .filter(|(_, r)| r.enabled)
    {
        match compile(store, r, &format!("rules[{i}]")).await {
            Ok(c) => out.push(c),
            Err(e) => tracing::warn!(rule = %r.name, error = %e, "rule skipped"),
        }
    }
    let saved_at = store
        .setting(SAVED_AT_KEY)
        .await?
        .and_then(|v| v.as_i64())
        .unwrap_or(0);
    Ok((out, saved_at))
}

/// Runs the rules whose trigger matches this event for its person (the real-time engine
/// calls this with the person's state in memory); `matched[slot]` says whether the event
/// matches the selector in that slot (triggers are slotted by [`CompiledRule::slot`]);
/// `fired` holds the person's recent firings `(rule, at)` and gains the new ones.
/// Returns how many rules fired.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn fire(
    store: &DynStore,
    rules: &[CompiledRule],
    id: ProfileId,
    ev: &EventView,
    p: &mut Person,
    fired: &mut Vec<(String, i64)>,
    matched: &[bool],
    now: i64,
    effects: &mut Effects,
) -> Result<usize, StoreError> {
    let lite = as_event(ev);
    let mut n = 0;
    let triggered = |c: &&CompiledRule| match c.when.slot {
        Some(s) => matched.get(s as usize).copied().unwrap_or(false),
        None => eval::event_matches(&c.when, &lite),
    };
    for c in rules.iter().filter(triggered) {
        let name = &c.rule.name;
        if check(c, p, now, |since| fired_since(fired, name, since)).is_err() {
            continue;
        }
        let done = if c.rule.dry_run {
            would_do(&c.rule.then)
        } else {
            act(store, &c.rule, id, ev, p, now, effects).await?
        };
        fired.push((name.clone(), now));
        effects.firings.push(Firing {
            id: 0,
            rule: name.clone(),
            profile_id: id,
            event_id: ev.id,
            at: now,
            actions: Value::Array(done),
        });
        n += 1;
    }
    Ok(n)
}

/// A shadow-mode firing's record: each action as asked, marked not done, secrets left out.
fn would_do(then: &[Value]) -> Vec<Value> {
    then.iter()
        .map(|a| {
            let mut a = a.clone();
            if let Value::Object(m) = &mut a {
                m.remove("secret");
                m.insert("dry_run".into(), json!(true));
            }
            a
        })
        .collect()
}

/// A dry run reads at most this many events of the trigger's kind in its window.
const DRY_RUN_EVENTS: usize = 5_000;

/// What a rule would have done over the last `days` of events, without doing it.
pub async fn dry_run(store: &DynStore, rule: &Value, days: i64) -> Result<Value, StoreError> {
    let r: Rule =
        serde_json::from_value(rule.clone()).map_err(|e| invalid("rule", e.to_string()))?;
    for (j, a) in r.then.iter().enumerate() {
        check_action(a, &format!("rule.then[{j}]"))?;
    }
    let c = compile(store, &r, "rule").await?;
    let now = now_millis();
    let since = now - days * 86_400_000;
    let mut would = Vec::new();
    let mut wouldnt = 0usize;
    let mut seen = 0usize;
    // Only the events of the trigger's type and name in the window are read (an index
    // serves a named one); the selector's property tests are applied here.
    let events = store
        .recent_events(
            c.when.kind.clone(),
            c.when.name.clone(),
            since,
            DRY_RUN_EVENTS,
        )
        .await?;
    let matching: Vec<&EventView> = events
        .iter()
        .filter(|e| e.source != SOURCE && eval::event_matches(&c.when, &as_event(e)))
        .collect();
    // People are read together, a chunk of events at a time, and judged once each (the
    // verdict depends on the person and their recorded firings, which a dry run leaves
    // as they are).
    let mut verdicts: HashMap<ProfileId, bool> = HashMap::new();
    'chunks: for chunk in matching.chunks(200) {
        let mut raw: Vec<ProfileId> = chunk.iter().map(|e| e.profile_id).collect();
        raw.sort_unstable();
        raw.dedup();
        // The rule's recent firings come with each person (for its cap): no query each.
        let loaded = crate::segments::people(
            store,
            raw,
            rapport_store::PersonReads::Whole {
                firings_since: r
                    .cap
                    .as_ref()
                    .map_or(i64::MAX, |cap| now - cap.per_hours * 3_600_000),
                membership_events: true,
            },
        )
        .await?;
        let mut of_raw: HashMap<ProfileId, usize> = HashMap::new();
        for (i, l) in loaded.iter().enumerate() {
            of_raw.insert(l.id, i);
            for m in &l.members {
                of_raw.insert(*m, i);
            }
        }
        for ev in chunk {
            let Some(&i) = of_raw.get(&ev.profile_id) else {
                continue;
            };
            seen += 1;
            let l = &loaded[i];
            let fires = match verdicts.get(&l.id) {
                Some(v) => *v,
                None => {
                    let fired = |since| fired_since(&l.firings, &r.name, since);
                    let v = check(&c, &l.person, now, fired).is_ok();
                    verdicts.insert(l.id, v);
                    v
                }
            };
            if fires {
                would.push(json!({"profile_id": l.id, "event_id": ev.id, "actions": r.then}));
            } else {
                wouldnt += 1;
            }
            if would.len() >= 100 {
                break 'chunks;
            }
        }
    }
    Ok(
        json!({"matching_events": seen, "would_fire": would.len(), "would_not": wouldnt, "firings": would,
        "note": "people are judged on their state now; nothing was changed"}),
    )
}

/// The rules as shown to people: webhook secrets replaced by `***`.
pub fn redacted(rules: Vec<Rule>) -> Vec<Rule> {
    rules
        .into_iter()
        .map(|mut r| {
            for a in &mut r.then {
                if let Some(s) = a.get_mut("secret") {
                    *s = json!("***");
                }
            }
            r
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_hours_release_at_their_end() {
        let h = 3_600_000i64;
        let day = 24 * h;
        let q = QuietHours { start: 22, end: 7 };
        assert_eq!(q.release(10 * day + 12 * h), 10 * day + 12 * h);
        assert_eq!(q.release(10 * day + 23 * h), 11 * day + 7 * h);
        assert_eq!(q.release(10 * day + 3 * h), 10 * day + 7 * h);
        let q = QuietHours { start: 1, end: 5 };
        assert_eq!(q.release(10 * day + 2 * h + 5), 10 * day + 5 * h);
        assert_eq!(q.release(10 * day + 5 * h), 10 * day + 5 * h);
    }
}
