//! The offer editor (`/offers/new`, `/offers/new?name=…` to edit): name, description,
//! who is eligible (segment language), priority and up to five score terms; saving
//! replaces the offer of that name through `rapport_app::offers::set_offers`, whose
//! refusals are shown on the form naming the field, changing nothing. Deleting removes it.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};
use serde_json::{json, Value};
use std::collections::HashMap;

use super::auth::{Staff, UiResult};
use super::forms;
use super::layout::{self, csrf};
use crate::AppState;

const TERMS: usize = 5;

/// The form's fields as an offer of the API's shape.
pub fn offer_from_form(f: &HashMap<String, String>) -> Result<Value, String> {
    let get = |k: &str| f.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let name = get("name").ok_or("name: give the offer a name")?;
    let priority = match get("priority") {
        None => 0,
        Some(p) => p
            .parse::<i64>()
            .map_err(|_| "priority: a whole number (higher first)")?,
    };
    let score = forms::terms(f, TERMS)?;
    Ok(
        json!({"name": name, "description": get("description").unwrap_or(""),
        "eligible": get("eligible").unwrap_or(""), "priority": priority, "score": score}),
    )
}

fn form(staff: &Staff, f: &HashMap<String, String>, error: Option<&str>) -> Markup {
    let v = |k: &str| f.get(k).cloned().unwrap_or_default();
    html! {
        div.card.wide {
            @if let Some(e) = error { div.error role="alert" { (e) } }
            form method="post" action="/offers/new" {
                (csrf(staff))
                label for="name" { "Name" }
                input #name name="name" value=(v("name")) required placeholder="Free shipping";
                label for="description" { "Description" }
                input #description name="description" value=(v("description"));
                label for="eligible" { "Who may get it (segment language; empty: everyone)" }
                input #eligible name="eligible" value=(v("eligible")) placeholder="count(track \"Order Completed\") >= 1";
                label for="priority" { "Priority (higher first)" }
                input #priority name="priority" value=(v("priority")) inputmode="numeric" placeholder="0";
                p.small.muted { "Among eligible offers of the same priority, the one whose conditions earn the most points wins." }
                (forms::term_rows(f, TERMS))
                button type="submit" { "Save offer" }
            }
            @if !v("name").is_empty() {
                form method="post" action="/offers/delete" onsubmit="return confirm('Delete this offer?')" {
                    (csrf(staff)) input type="hidden" name="name" value=(v("name"));
                    button.danger type="submit" { "Delete offer" }
                }
            }
        }
    }
}

fn form_of(o: &rapport_app::offers::Offer) -> HashMap<String, String> {
    let v = serde_json::to_value(o).unwrap_or_default();
    let s = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        v => v.to_string(),
    };
    let mut f: HashMap<String, String> = ["name", "description", "eligible", "priority"]
        .iter()
        .map(|k| (k.to_string(), s(&v[*k])))
        .collect();
    forms::terms_into(&v["score"], TERMS, &mut f);
    f
}

pub async fn new_page(
    State(state): State<AppState>,
    staff: Staff,
    Query(q): Query<HashMap<String, String>>,
) -> UiResult<Markup> {
    staff.require(staff.role.can_market(), "edit offers")?;
    let f = match q.get("name") {
        Some(n) => rapport_app::offers::offers(&state.store)
            .await?
            .iter()
            .find(|o| &o.name == n)
            .map(form_of)
            .unwrap_or_default(),
        None => HashMap::new(),
    };
    Ok(layout::page(
        &staff,
        "Offer",
        "/rules",
        form(&staff, &f, None),
    ))
}

async fn save(state: &AppState, offers: Vec<Value>) -> Result<(), String> {
    rapport_app::offers::set_offers(&state.store, &json!({ "offers": offers }))
        .await
        .map(|_| ())
        .map_err(forms::refusal)
}

pub async fn submit(
    State(state): State<AppState>,
    staff: Staff,
    Form(f): Form<HashMap<String, String>>,
) -> UiResult<Response> {
    staff.check(&f)?;
    staff.require(staff.role.can_market(), "edit offers")?;
    let refused = |e: String| {
        (
            StatusCode::BAD_REQUEST,
            layout::page(&staff, "Offer", "/rules", form(&staff, &f, Some(&e))),
        )
            .into_response()
    };
    let offer = match offer_from_form(&f) {
        Ok(o) => o,
        Err(e) => return Ok(refused(e)),
    };
    let mut all: Vec<Value> = rapport_app::offers::offers(&state.store)
        .await?
        .iter()
        .filter(|o| o.name != offer["name"].as_str().unwrap_or_default())
        .map(|o| serde_json::to_value(o).unwrap_or_default())
        .collect();
    all.push(offer);
    Ok(match save(&state, all).await {
        Ok(()) => Redirect::to("/rules").into_response(),
        Err(e) => refused(e),
    })
}

pub async fn delete(
    State(state): State<AppState>,
    staff: Staff,
    Form(f): Form<HashMap<String, String>>,
) -> UiResult<Response> {
    staff.check(&f)?;
    staff.require(staff.role.can_market(), "edit offers")?;
    let name = f.get("name").cloned().unwrap_or_default();
    let rest: Vec<Value> = rapport_app::offers::offers(&state.store)
        .await?
        .iter()
        .filter(|o| o.name != name)
        .map(|o| serde_json::to_value(o).unwrap_or_default())
        .collect();
    save(&state, rest)
        .await
        .map_err(super::auth::UiError::Invalid)?;
    Ok(Redirect::to("/rules").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::ui::forms::fields as form;

    #[test]
    fn the_form_makes_the_api_offer() {
        let o = offer_from_form(&form(&[
            ("name", "Free shipping"),
            ("eligible", "has email"),
            ("priority", "2"),
            ("when0", "score.rfm_r >= 4"),
            ("points0", "10"),
            ("when3", "has wallet"),
            ("points3", "2.5"),
        ]))
        .unwrap();
        assert_eq!(
            o,
            json!({"name": "Free shipping", "description": "", "eligible": "has email", "priority": 2,
            "score": [{"when": "score.rfm_r >= 4", "points": 10.0}, {"when": "has wallet", "points": 2.5}]})
        );
    }

    #[test]
    fn what_is_missing_is_named() {
        assert!(offer_from_form(&form(&[]))
            .unwrap_err()
            .starts_with("name:"));
        assert!(
            offer_from_form(&form(&[("name", "x"), ("priority", "high")]))
                .unwrap_err()
                .starts_with("priority:")
        );
        assert!(
            offer_from_form(&form(&[("name", "x"), ("when1", "has email")]))
                .unwrap_err()
                .starts_with("points1:")
        );
        assert!(offer_from_form(&form(&[("name", "x"), ("points2", "3")]))
            .unwrap_err()
            .starts_with("when2:"));
        assert!(
            offer_from_form(&form(&[("name", "x"), ("when0", "a"), ("points0", "many")]))
                .unwrap_err()
                .starts_with("points0:")
        );
    }
}
