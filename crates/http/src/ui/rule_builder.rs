//! The rule builder (`/rules/new`, `/rules/new?name=…` to edit): when / where / then in
//! the segment language and a form, one action per rule here (the API takes several),
//! cap, quiet hours and consent; a dry run shows who would be acted on; saving replaces
//! the rule of that name through `rapport_app::rules::set_rules`, whose errors (naming
//! the field, with line and column) are shown on the form and change nothing.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};
use serde_json::{json, Map, Value};
use std::collections::HashMap;

use super::auth::{Staff, UiResult};
use super::layout::{self, csrf};
use super::names::Names;
use crate::AppState;

const ACTIONS: [(&str, &str); 5] = [
    ("task", "Open a task for staff"),
    ("add_tag", "Add a tag"),
    ("set_trait", "Set a trait"),
    ("emit", "Record an event"),
    ("webhook", "Call a webhook"),
];

/// The form's fields as a rule of the API's shape; what is missing or malformed is
/// named by its form field.
pub fn rule_from_form(f: &HashMap<String, String>) -> Result<Value, String> {
    let get = |k: &str| f.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let mut r = Map::new();
    r.insert(
        "name".into(),
        json!(get("name").ok_or("name: give the rule a name")?),
    );
    r.insert("when".into(), json!(get("when").ok_or("when: which event starts the rule, e.g. track \"Ticket Opened\"")?));
    if let Some(w) = get("where") {
        r.insert("where".into(), json!(w));
    }
    let action = get("action").unwrap_or("task");
    let need = |k: &str, what: &str| get(k).map(str::to_string).ok_or(format!("{k}: {what}"));
    let a = match action {
        "task" => {
            json!({"action": "task", "title": need("title", "the task's title")?, "body": get("body").unwrap_or("")})
        }
        "add_tag" => json!({"action": "add_tag", "tag": need("tag", "the tag to add")?}),
        "set_trait" => {
            let raw = need("value", "the trait's value")?;
            // Numbers and true/false stay such, as in the 360 page's trait form.
            let v = serde_json::from_str::<Value>(&raw)
                .ok()
                .filter(|v| v.is_number() || v.is_boolean())
                .unwrap_or(Value::String(raw));
            json!({"action": "set_trait", "trait": need("trait", "the trait's key")?, "value": v})
        }
        "emit" => json!({"action": "emit", "event": need("event", "the event's name")?}),
        // The secret may be left empty when editing: the saved one is kept (`submit`).
        "webhook" => {
            json!({"action": "webhook", "url": need("url", "the https:// address to call")?,
            "secret": get("secret")})
        }
        other => {
            return Err(format!(
                "action: '{other}' is not one of task, add_tag, set_trait, emit, webhook"
            ))
        }
    };
    r.insert("then".into(), json!([a]));
    let num = |k: &str| -> Result<Option<i64>, String> {
        get(k)
            .map(|v| v.parse::<i64>().map_err(|_| format!("{k}: a whole number")))
            .transpose()
    };
    if let Some(max) = num("cap_max")? {
        r.insert(
            "cap".into(),
            json!({"max": max, "per_hours": num("cap_hours")?.unwrap_or(24)}),
        );
    }
    if let (Some(s), Some(e)) = (num("quiet_start")?, num("quiet_end")?) {
        r.insert("quiet_hours".into(), json!({"start": s, "end": e}));
    }
    if let (Some(c), Some(p)) = (get("consent_channel"), get("consent_purpose")) {
        r.insert("consent".into(), json!({"channel": c, "purpose": p}));
    }
    r.insert("enabled".into(), json!(f.contains_key("enabled")));
    Ok(Value::Object(r))
}

/// A saved rule back into the form's fields.
fn form_of(rule: &Value) -> HashMap<String, String> {
    let mut f = HashMap::new();
    let s = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        v => v.to_string(),
    };
    for k in ["name", "when", "where"] {
        f.insert(k.to_string(), s(&rule[k]));
    }
    if let Some(a) = rule["then"].get(0) {
        f.insert("action".into(), s(&a["action"]));
        for k in ["title", "body", "tag", "trait", "value", "event", "url"] {
            f.insert(k.to_string(), s(&a[k]));
        }
    }
    f.insert("cap_max".into(), s(&rule["cap"]["max"]));
    f.insert("cap_hours".into(), s(&rule["cap"]["per_hours"]));
    f.insert("quiet_start".into(), s(&rule["quiet_hours"]["start"]));
    f.insert("quiet_end".into(), s(&rule["quiet_hours"]["end"]));
    f.insert("consent_channel".into(), s(&rule["consent"]["channel"]));
    f.insert("consent_purpose".into(), s(&rule["consent"]["purpose"]));
    if rule["enabled"] != json!(false) {
        f.insert("enabled".into(), "on".into());
    }
    f
}

fn form(staff: &Staff, f: &HashMap<String, String>, error: Option<&str>) -> Markup {
    let v = |k: &str| f.get(k).cloned().unwrap_or_default();
    let action = f.get("action").map(String::as_str).unwrap_or("task");
    html! {
        div.card.wide {
            @if let Some(e) = error { div.error role="alert" { (e) } }
            form method="post" action="/rules/new" {
                (csrf(staff))
                label for="name" { "Name" }
                input #name name="name" value=(v("name")) required placeholder="Call unhappy big spenders";
                label for="when" { "When (an event, in the segment language)" }
                input #when name="when" value=(v("when")) required placeholder="track \"Ticket Opened\"";
                label for="where" { "Where (a condition on the person; empty: anyone)" }
                input #where name="where" value=(v("where")) placeholder="sum(track \"Order Completed\".revenue) > 300";
                label for="action" { "Then" }
                select #action name="action" {
                    @for (a, l) in ACTIONS { option value=(a) selected[a == action] { (l) } }
                }
                div.row {
                    div { label for="title" { "Task title" } input #title name="title" value=(v("title")); }
                    div { label for="body" { "Task details" } input #body name="body" value=(v("body")); }
                }
                div.row {
                    div { label for="tag" { "Tag" } input #tag name="tag" value=(v("tag")); }
                    div { label for="trait" { "Trait" } input #trait name="trait" value=(v("trait")); }
                    div { label for="value" { "Trait value" } input #value name="value" value=(v("value")); }
                    div { label for="event" { "Event to record" } input #event name="event" value=(v("event")); }
                }
                div.row {
                    div { label for="url" { "Webhook URL" } input #url name="url" value=(v("url")) placeholder="https://…"; }
                    div { label for="secret" { "Webhook secret (write-only)" } input #secret name="secret" type="password" autocomplete="off"; }
                }
                div.row {
                    div { label for="cap_max" { "At most (firings per person)" } input #cap_max name="cap_max" value=(v("cap_max")) inputmode="numeric"; }
                    div { label for="cap_hours" { "… per hours" } input #cap_hours name="cap_hours" value=(v("cap_hours")) inputmode="numeric" placeholder="24"; }
                    div { label for="quiet_start" { "Quiet from (UTC hour)" } input #quiet_start name="quiet_start" value=(v("quiet_start")) inputmode="numeric"; }
                    div { label for="quiet_end" { "Quiet until" } input #quiet_end name="quiet_end" value=(v("quiet_end")) inputmode="numeric"; }
                }
                div.row {
                    div { label for="consent_channel" { "Only with consent: channel" } input #consent_channel name="consent_channel" value=(v("consent_channel")) placeholder="email"; }
                    div { label for="consent_purpose" { "purpose" } input #consent_purpose name="consent_purpose" value=(v("consent_purpose")) placeholder="marketing"; }
                }
                label { input type="checkbox" name="enabled" checked[f.contains_key("enabled") || f.is_empty()]; " Enabled" }
                div {
                    button.secondary type="submit" name="do" value="dry-run" { "Dry run (7 days)" }
                    " "
                    button type="submit" name="do" value="save" { "Save rule" }
                }
            }
            p.small.muted { "The fields of the action chosen are used; the others are ignored. docs/rules.md has the language and every action." }
        }
    }
}

pub async fn new_page(
    State(state): State<AppState>,
    staff: Staff,
    Query(q): Query<HashMap<String, String>>,
) -> UiResult<Markup> {
    staff.require(staff.role.can_market(), "build rules")?;
    let f = match q.get("name") {
        Some(n) => rapport_app::rules::rules(&state.store)
            .await?
            .into_iter()
            .find(|r| &r.name == n)
            .map(|r| form_of(&serde_json::to_value(&r).unwrap_or_default()))
            .unwrap_or_default(),
        None => HashMap::new(),
    };
    Ok(layout::page(
        &staff,
        "Rule",
        "/rules",
        form(&staff, &f, None),
    ))
}

pub async fn submit(
    State(state): State<AppState>,
    staff: Staff,
    Form(f): Form<HashMap<String, String>>,
) -> UiResult<Response> {
    staff.check(&f)?;
    staff.require(staff.role.can_market(), "build rules")?;
    let refused = |e: String| {
        (
            StatusCode::BAD_REQUEST,
            layout::page(&staff, "Rule", "/rules", form(&staff, &f, Some(&e))),
        )
            .into_response()
    };
    let mut rule = match rule_from_form(&f) {
        Ok(r) => r,
        Err(e) => return Ok(refused(e)),
    };
    let existing = rapport_app::rules::rules(&state.store).await?;
    let name = rule["name"].as_str().unwrap_or_default().to_string();
    let mut all: Vec<Value> = existing
        .iter()
        .filter(|r| r.name != name)
        .map(|r| serde_json::to_value(r).unwrap_or_default())
        .collect();
    // A webhook's secret is write-only: editing without typing it again keeps the old one.
    if rule["then"][0]["action"] == "webhook" && rule["then"][0]["secret"].is_null() {
        if let Some(old) = existing.iter().find(|r| r.name == name) {
            if let Some(s) = old.then.first().and_then(|a| a.get("secret")) {
                rule["then"][0]["secret"] = s.clone();
            }
        }
    }
    if f.get("do").map(String::as_str) == Some("dry-run") {
        // The same checks as saving, without saving: a dry run of a rule that would be
        // refused says why.
        if let Err(e) =
            rapport_app::rules::check_rules(&state.store, &json!({"rules": [rule.clone()]})).await
        {
            return Ok(refused(problem_text(e)));
        }
        let v = rapport_app::rules::dry_run(&state.store, &rule, 7).await?;
        let names = Names::of(
            &state.store,
            v["firings"]
                .as_array()
                .into_iter()
                .flatten()
                .take(50)
                .filter_map(|x| x["profile_id"].as_i64()),
        )
        .await?;
        return Ok(layout::page(
            &staff,
            "Rule",
            "/rules",
            html! { (form(&staff, &f, None)) (super::pages::dry_run_results(&v, &names)) },
        )
        .into_response());
    }
    all.push(rule);
    match rapport_app::rules::set_rules(&state.store, &json!({ "rules": all })).await {
        Ok(_) => Ok(Redirect::to("/rules").into_response()),
        Err(e @ rapport_store::StoreError::Invalid { .. }) => Ok(refused(problem_text(e))),
        Err(e) => Err(e.into()),
    }
}

/// A refusal in words: the rule's index and its one action's taken off the field.
fn problem_text(e: rapport_store::StoreError) -> String {
    super::forms::refusal(e).replacen("then[0].", "", 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::ui::forms::fields as form;

    #[test]
    fn the_form_makes_the_api_rule_and_back() {
        let f = form(&[
            ("name", "Call them"),
            ("when", "track \"Ticket Opened\""),
            ("where", "has email"),
            ("action", "task"),
            ("title", "Call"),
            ("body", "Soon"),
            ("cap_max", "1"),
            ("cap_hours", "48"),
            ("quiet_start", "22"),
            ("quiet_end", "7"),
            ("consent_channel", "email"),
            ("consent_purpose", "marketing"),
            ("enabled", "on"),
        ]);
        let r = rule_from_form(&f).unwrap();
        assert_eq!(
            r,
            json!({"name": "Call them", "when": "track \"Ticket Opened\"", "where": "has email",
                "then": [{"action": "task", "title": "Call", "body": "Soon"}],
                "cap": {"max": 1, "per_hours": 48}, "quiet_hours": {"start": 22, "end": 7},
                "consent": {"channel": "email", "purpose": "marketing"}, "enabled": true})
        );
        let back = form_of(&r);
        assert_eq!(rule_from_form(&back).unwrap(), r);
    }

    #[test]
    fn what_is_missing_is_named() {
        assert!(rule_from_form(&form(&[("when", "track")]))
            .unwrap_err()
            .starts_with("name:"));
        assert!(rule_from_form(&form(&[("name", "x")]))
            .unwrap_err()
            .starts_with("when:"));
        let e = rule_from_form(&form(&[
            ("name", "x"),
            ("when", "track"),
            ("action", "add_tag"),
        ]))
        .unwrap_err();
        assert!(e.starts_with("tag:"), "{e}");
        let e = rule_from_form(&form(&[
            ("name", "x"),
            ("when", "track"),
            ("title", "t"),
            ("cap_max", "two"),
        ]))
        .unwrap_err();
        assert!(e.starts_with("cap_max:"), "{e}");
        let e = rule_from_form(&form(&[
            ("name", "x"),
            ("when", "track"),
            ("action", "fly"),
        ]))
        .unwrap_err();
        assert!(e.starts_with("action:"), "{e}");
        let r = rule_from_form(&form(&[
            ("name", "x"),
            ("when", "track"),
            ("action", "set_trait"),
            ("trait", "vip"),
            ("value", "true"),
        ]))
        .unwrap();
        assert_eq!(r["then"][0]["value"], json!(true));
        assert_eq!(r["enabled"], json!(false));
    }
}
