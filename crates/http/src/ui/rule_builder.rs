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

/// The actions a rule can take: (kind, what the menu says, the first field's key and
/// label, the second's). Every action fits two fields; anything more (an event's
/// properties, a webhook's attempts, a reward's chain) goes in the row's JSON field.
const ACTIONS: [Kind; 11] = [
    (
        "task",
        "Open a task for staff",
        ("title", "Title"),
        ("body", "Details"),
    ),
    ("add_tag", "Add a tag", ("tag", "Tag"), ("", "")),
    ("remove_tag", "Remove a tag", ("tag", "Tag"), ("", "")),
    (
        "set_trait",
        "Set a trait",
        ("trait", "Trait"),
        ("value", "Value"),
    ),
    ("emit", "Record an event", ("event", "Event name"), ("", "")),
    (
        "add_to_segment",
        "Add to a list (static segment)",
        ("segment", "List"),
        ("", ""),
    ),
    (
        "remove_from_segment",
        "Take off a list",
        ("segment", "List"),
        ("", ""),
    ),
    (
        "send_email",
        "Send an e-mail",
        ("template", "Template"),
        ("from", "From address"),
    ),
    (
        "token_reward",
        "Reward tokens",
        ("token", "Token (symbol or contract)"),
        ("amount", "Amount"),
    ),
    (
        "points",
        "Give loyalty points",
        (
            "amount",
            "Points (a number or e.g. properties.revenue * 10)",
        ),
        ("", ""),
    ),
    (
        "webhook",
        "Call a webhook",
        ("url", "URL (https://…)"),
        ("secret", "Secret (write-only)"),
    ),
];
type Kind = (
    &'static str,
    &'static str,
    (&'static str, &'static str),
    (&'static str, &'static str),
);

/// At most this many actions in the form (the API takes more).
const MAX_ACTIONS: usize = 8;

fn kind(k: &str) -> Option<&'static Kind> {
    ACTIONS.iter().find(|a| a.0 == k)
}

/// The action rows of a form: `action<i>`, `first<i>`, `second<i>`, `more<i>`.
fn rows_in(f: &HashMap<String, String>) -> usize {
    (0..MAX_ACTIONS)
        .rev()
        .find(|i| {
            ["action", "first", "second", "more"].iter().any(|k| {
                f.get(&format!("{k}{i}"))
                    .is_some_and(|v| !v.trim().is_empty())
            })
        })
        .map_or(0, |i| i + 1)
}

/// The form's fields as a rule of the API's shape; what is missing or malformed is
/// named by its place on the form ("Action 2, Title: …").
pub fn rule_from_form(f: &HashMap<String, String>) -> Result<Value, String> {
    let get = |k: &str| f.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let mut r = Map::new();
    r.insert(
        "name".into(),
        json!(get("name").ok_or("Name: give the rule a name")?),
    );
    r.insert("when".into(), json!(get("when").ok_or("When: which event starts the rule, e.g. track \"Ticket Opened\"")?));
    if let Some(w) = get("where") {
        r.insert("where".into(), json!(w));
    }
    let mut then = Vec::new();
    for i in 0..rows_in(f) {
        let at = |what: &str| format!("Action {}, {what}", i + 1);
        let (first, second) = (get(&format!("first{i}")), get(&format!("second{i}")));
        let Some(k) = get(&format!("action{i}")) else {
            if first.is_some() || second.is_some() {
                return Err(format!("{}: choose what to do", at("Then")));
            }
            continue;
        };
        let &(k, _, (k1, l1), (k2, l2)) = kind(k)
            .ok_or_else(|| format!("{}: '{k}' is not an action this form knows", at("Then")))?;
        let mut a = match get(&format!("more{i}")) {
            None => Map::new(),
            Some(m) => match serde_json::from_str::<Value>(m) {
                Ok(Value::Object(m)) => m,
                _ => {
                    return Err(format!(
                        "{}: a JSON object, e.g. {{\"properties\": {{\"points\": 50}}}}",
                        at("More")
                    ))
                }
            },
        };
        a.insert("action".into(), json!(k));
        a.insert(
            k1.into(),
            json!(first.ok_or_else(|| format!("{}: needed to {}", at(l1), label_of(k)))?),
        );
        match (k2, second) {
            ("", _) => {}
            // Numbers and true/false stay such, as in the 360 page's trait form.
            ("value", Some(raw)) => {
                let v = serde_json::from_str::<Value>(raw)
                    .ok()
                    .filter(|v| v.is_number() || v.is_boolean())
                    .unwrap_or_else(|| json!(raw));
                a.insert(k2.into(), v);
            }
            (_, Some(v)) => {
                a.insert(k2.into(), json!(v));
            }
            // A webhook's secret may be left empty when editing: the saved one is kept
            // (`submit`); a task's details are optional.
            ("secret" | "body", None) => {}
            (_, None) => return Err(format!("{}: needed to {}", at(l2), label_of(k))),
        }
        then.push(Value::Object(a));
    }
    if then.is_empty() {
        return Err("Action 1, Then: choose at least one action".into());
    }
    r.insert("then".into(), Value::Array(then));
    let num = |k: &str, label: &str| -> Result<Option<i64>, String> {
        get(k)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| format!("{label}: a whole number"))
            })
            .transpose()
    };
    if let Some(max) = num("cap_max", "At most")? {
        r.insert(
            "cap".into(),
            json!({"max": max, "per_hours": num("cap_hours", "Per hours")?.unwrap_or(24)}),
        );
    }
    if let (Some(s), Some(e)) = (
        num("quiet_start", "Quiet from")?,
        num("quiet_end", "Quiet until")?,
    ) {
        r.insert("quiet_hours".into(), json!({"start": s, "end": e}));
    }
    if let (Some(c), Some(p)) = (get("consent_channel"), get("consent_purpose")) {
        r.insert("consent".into(), json!({"channel": c, "purpose": p}));
    }
    r.insert("enabled".into(), json!(f.contains_key("enabled")));
    if f.contains_key("dry_run") {
        r.insert("dry_run".into(), json!(true));
    }
    Ok(Value::Object(r))
}

fn label_of(k: &str) -> String {
    kind(k).map_or(k.to_string(), |a| a.1.to_lowercase())
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
    for (i, a) in rule["then"].as_array().into_iter().flatten().enumerate() {
        let k = a["action"].as_str().unwrap_or_default();
        let Some(&(_, _, (k1, _), (k2, _))) = kind(k) else {
            continue;
        };
        f.insert(format!("action{i}"), k.to_string());
        f.insert(format!("first{i}"), s(&a[k1]));
        if !k2.is_empty() && k2 != "secret" {
            f.insert(format!("second{i}"), s(&a[k2]));
        }
        let more: Map<String, Value> = a
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(key, _)| !["action", k1, k2, "secret"].contains(&key.as_str()))
            .map(|(key, v)| (key.clone(), v.clone()))
            .collect();
        if !more.is_empty() {
            f.insert(format!("more{i}"), Value::Object(more).to_string());
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
    if rule["dry_run"] == json!(true) {
        f.insert("dry_run".into(), "on".into());
    }
    f
}

/// Relabels an action row's fields when its kind changes (without script the labels
/// stay generic and the form still works).
const RELABEL: &str = r#"
document.querySelectorAll("select.action-kind").forEach(function (s) {
  function relabel() {
    var o = s.options[s.selectedIndex], i = s.dataset.row;
    document.querySelector("label[for=first" + i + "]").textContent = o.dataset.first || "Target";
    var l2 = document.querySelector("label[for=second" + i + "]"), f2 = document.getElementById("second" + i);
    l2.textContent = o.dataset.second || "(not used)";
    f2.disabled = !o.dataset.second && !!o.value;
    f2.type = o.value === "webhook" ? "password" : "text";
  }
  s.addEventListener("change", relabel);
});
"#;

fn action_rows(f: &HashMap<String, String>) -> Markup {
    let v = |k: &str| f.get(k).cloned().unwrap_or_default();
    let n = (rows_in(f) + 1).clamp(2, MAX_ACTIONS);
    html! {
        fieldset {
            legend { "Then" }
            @for i in 0..n {
                @let chosen = v(&format!("action{i}"));
                @let chosen = if i == 0 && f.is_empty() { "task".to_string() } else { chosen };
                @let k = kind(&chosen);
                div.row {
                    div {
                        label for=(format!("action{i}")) { "Action " (i + 1) }
                        select.action-kind id=(format!("action{i}")) name=(format!("action{i}")) data-row=(i) {
                            option value="" { "—" }
                            @for (a, l, (_, l1), (_, l2)) in ACTIONS {
                                option value=(a) selected[a == chosen] data-first=(l1) data-second=(l2) { (l) }
                            }
                        }
                    }
                    div {
                        label for=(format!("first{i}")) { (k.map_or("Target", |k| k.2 .1)) }
                        input id=(format!("first{i}")) name=(format!("first{i}")) value=(v(&format!("first{i}")));
                    }
                    div {
                        label for=(format!("second{i}")) { (k.map_or("Value", |k| if k.3 .1.is_empty() { "(not used)" } else { k.3 .1 })) }
                        @if chosen == "webhook" {
                            input id=(format!("second{i}")) name=(format!("second{i}")) type="password" autocomplete="off" placeholder="kept if left empty";
                        } @else {
                            input id=(format!("second{i}")) name=(format!("second{i}")) value=(v(&format!("second{i}")));
                        }
                    }
                    div {
                        label for=(format!("more{i}")) { "More (JSON, optional)" }
                        input id=(format!("more{i}")) name=(format!("more{i}")) value=(v(&format!("more{i}"))) placeholder="{\"properties\": {\"points\": 50}}";
                    }
                }
            }
            p.small.muted { "Save, or dry-run, to get another empty row. The actions run in order." }
        }
        script { (maud::PreEscaped(RELABEL)) }
    }
}

fn form(staff: &Staff, f: &HashMap<String, String>, error: Option<&str>) -> Markup {
    let v = |k: &str| f.get(k).cloned().unwrap_or_default();
    html! {
        div.card.wide {
            @if let Some(e) = error { div.error role="alert" { (e) } }
            form #rule method="post" action="/rules/new" {
                (csrf(staff))
                label for="name" { "Name" }
                input #name name="name" value=(v("name")) required placeholder="Call unhappy big spenders";
                label for="when" { "When (an event, in the segment language)" }
                input #when name="when" value=(v("when")) required placeholder="track \"Ticket Opened\"";
                label for="where" { "Where (a condition on the person; empty: anyone)" }
                input #where name="where" value=(v("where")) placeholder="sum(track \"Order Completed\".revenue) > 300";
                (action_rows(f))
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
                label { input #enabled type="checkbox" name="enabled" checked[f.contains_key("enabled") || f.is_empty()]; " Enabled" }
                label { input #dry_run type="checkbox" name="dry_run" checked[f.contains_key("dry_run")]; " Shadow mode: record what it would do on live events, do nothing" }
                div {
                    button.secondary type="submit" name="do" value="dry-run" { "Dry run (7 days)" }
                    " "
                    button type="submit" name="do" value="save" { "Save rule" }
                }
            }
            p.small.muted { "docs/rules.md has the language and every action." }
        }
    }
}

fn title(f: &HashMap<String, String>) -> String {
    match f.get("name").map(|n| n.trim()).filter(|n| !n.is_empty()) {
        Some(n) => format!("Rule: {n}"),
        None => "New rule".into(),
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
        &title(&f),
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
            layout::page(&staff, &title(&f), "/rules", form(&staff, &f, Some(&e))),
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
    // A webhook's secret is write-only: editing without typing it again keeps the saved
    // one of the webhook to the same address.
    if let Some(old) = existing.iter().find(|r| r.name == name) {
        for a in rule["then"].as_array_mut().into_iter().flatten() {
            if a["action"] == "webhook" && a.get("secret").is_none() {
                let saved = old
                    .then
                    .iter()
                    .find(|o| o["action"] == "webhook" && o["url"] == a["url"])
                    .and_then(|o| o.get("secret"));
                if let Some(s) = saved {
                    a["secret"] = s.clone();
                }
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
            &title(&f),
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

/// A refusal in words, on the form's terms: `then[1].url` is "Action 2, url".
fn problem_text(e: rapport_store::StoreError) -> String {
    let text = super::forms::refusal(e);
    let Some(rest) = text.strip_prefix("then[") else {
        return text;
    };
    let Some((i, rest)) = rest.split_once(']') else {
        return text;
    };
    match i.parse::<usize>() {
        Ok(i) => match rest.strip_prefix('.') {
            Some(field) => format!("Action {}, {field}", i + 1),
            None => format!("Action {}{rest}", i + 1),
        },
        Err(_) => text,
    }
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
            ("action0", "task"),
            ("first0", "Call"),
            ("second0", "Soon"),
            ("action1", "emit"),
            ("first1", "Helper Thanked"),
            ("more1", "{\"properties\": {\"points\": 50}}"),
            ("action3", "token_reward"),
            ("first3", "RAP"),
            ("second3", "10"),
            ("cap_max", "1"),
            ("cap_hours", "48"),
            ("quiet_start", "22"),
            ("quiet_end", "7"),
            ("consent_channel", "email"),
            ("consent_purpose", "marketing"),
            ("enabled", "on"),
            ("dry_run", "on"),
        ]);
        let r = rule_from_form(&f).unwrap();
        assert_eq!(
            r,
            json!({"name": "Call them", "when": "track \"Ticket Opened\"", "where": "has email",
                "then": [{"action": "task", "title": "Call", "body": "Soon"},
                    {"action": "emit", "event": "Helper Thanked", "properties": {"points": 50}},
                    {"action": "token_reward", "token": "RAP", "amount": "10"}],
                "cap": {"max": 1, "per_hours": 48}, "quiet_hours": {"start": 22, "end": 7},
                "consent": {"channel": "email", "purpose": "marketing"}, "enabled": true, "dry_run": true})
        );
        let back = form_of(&r);
        assert_eq!(rule_from_form(&back).unwrap(), r);
        // A webhook's secret never goes back into the form.
        let w = json!({"name": "w", "when": "track", "then": [{"action": "webhook", "url": "https://x.io", "secret": "s3cret-s3cret-s3cret"}]});
        let f = form_of(&w);
        assert!(!f.values().any(|v| v.contains("s3cret")), "{f:?}");
        assert_eq!(
            rule_from_form(&f).unwrap()["then"],
            json!([{"action": "webhook", "url": "https://x.io"}])
        );
    }

    #[test]
    fn what_is_missing_is_named() {
        let err = |pairs: &[(&str, &str)]| rule_from_form(&form(pairs)).unwrap_err();
        assert!(err(&[("when", "track")]).starts_with("Name:"));
        assert!(err(&[("name", "x")]).starts_with("When:"));
        let base = [("name", "x"), ("when", "track")];
        let with = |more: &[(&str, &str)]| {
            let mut v = base.to_vec();
            v.extend_from_slice(more);
            err(&v)
        };
        assert!(with(&[]).starts_with("Action 1, Then:"), "{}", with(&[]));
        let e = with(&[("action0", "add_tag")]);
        assert!(e.starts_with("Action 1, Tag:"), "{e}");
        let e = with(&[
            ("action0", "task"),
            ("first0", "t"),
            ("action1", "set_trait"),
            ("first1", "vip"),
        ]);
        assert!(e.starts_with("Action 2, Value:"), "{e}");
        let e = with(&[("action0", "task"), ("first0", "t"), ("first1", "orphan")]);
        assert!(e.starts_with("Action 2, Then:"), "{e}");
        let e = with(&[("action0", "fly"), ("first0", "t")]);
        assert!(e.starts_with("Action 1, Then:"), "{e}");
        let e = with(&[("action0", "emit"), ("first0", "E"), ("more0", "[1]")]);
        assert!(e.starts_with("Action 1, More:"), "{e}");
        let e = with(&[("action0", "task"), ("first0", "t"), ("cap_max", "two")]);
        assert!(e.starts_with("At most:"), "{e}");
        let mut v = base.to_vec();
        v.extend_from_slice(&[
            ("action0", "set_trait"),
            ("first0", "vip"),
            ("second0", "true"),
        ]);
        let r = rule_from_form(&form(&v)).unwrap();
        assert_eq!(r["then"][0]["value"], json!(true));
        assert_eq!(r["enabled"], json!(false));
        assert!(r.get("dry_run").is_none());
    }

    #[test]
    fn refusals_name_the_action_by_its_place() {
        let t = |f: &str| problem_text(rapport_store::StoreError::invalid(f, "bad."));
        assert_eq!(t("rules[4].then[1].segment"), "Action 2, segment: bad.");
        assert_eq!(t("rules[0].then[0]"), "Action 1: bad.");
        assert_eq!(t("rules[0].when"), "when: bad.");
    }
}
