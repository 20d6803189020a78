//! Scores in the staff app (`/scores`): the custom scores with their terms, one edited at
//! a time (`/scores?name=…`; up to eight terms of condition and points), saved through
//! `rapport_app::scores::set_custom_scores` (refusals on the form, naming the field),
//! deleted; and "recompute now" for scores and micro-segments (`rapport serve` does both
//! every 15 minutes anyway).

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};
use serde_json::{json, Value};
use std::collections::HashMap;

use super::auth::{Staff, UiError, UiResult};
use super::forms;
use super::layout::{self, csrf};
use crate::AppState;

const TERMS: usize = 8;

/// The form's fields as a custom score of the API's shape.
pub fn score_from_form(f: &HashMap<String, String>) -> Result<Value, String> {
    let get = |k: &str| f.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let name = get("name").ok_or("name: give the score a name, e.g. lead_score")?;
    let terms = forms::terms(f, TERMS)?;
    if terms.is_empty() {
        return Err("when0: a score needs at least one condition".into());
    }
    Ok(json!({"name": name, "description": get("description").unwrap_or(""), "terms": terms}))
}

async fn save(state: &AppState, scores: Vec<Value>) -> Result<(), String> {
    rapport_app::scores::set_custom_scores(&state.store, &json!({ "scores": scores }))
        .await
        .map(|_| ())
        .map_err(forms::refusal)
}

fn others(all: &[rapport_app::scores::CustomScore], name: &str) -> Vec<Value> {
    all.iter()
        .filter(|s| s.name != name)
        .map(|s| serde_json::to_value(s).unwrap_or_default())
        .collect()
}

async fn render(
    state: &AppState,
    staff: &Staff,
    f: &HashMap<String, String>,
    error: Option<&str>,
) -> UiResult<Markup> {
    let all = rapport_app::scores::custom_scores(&state.store).await?;
    let market = staff.role.can_market();
    let v = |k: &str| f.get(k).cloned().unwrap_or_default();
    Ok(layout::page(
        staff,
        "Scores",
        "/segments",
        html! {
            div.grid {
                div.card.wide {
                    h2 { "Custom scores" }
                    p.small.muted { "RFM (rfm_r, rfm_f, rfm_m…) and engagement are computed for everyone; custom scores add points for the conditions a person meets. Use them in segments as score.<name>." }
                    @if all.is_empty() { p.empty { "No custom score yet." } }
                    table { @for s in &all { tr {
                        td { a href=(format!("/scores?name={}", layout::urlencode(&s.name))) { (s.name) } }
                        td.small { (s.terms.len()) " conditions" } td.small.muted { (s.description) }
                    } } }
                    @if market {
                        form method="post" action="/scores/recompute" {
                            (csrf(staff))
                            button.secondary type="submit" { "Recompute scores and micro-segments now" }
                        }
                    }
                }
                @if market {
                    div.card.wide {
                        h2 { @if v("name").is_empty() { "New score" } @else { "Score " (v("name")) } }
                        @if let Some(e) = error { div.error role="alert" { (e) } }
                        form method="post" action="/scores" {
                            (csrf(staff))
                            label for="name" { "Name" }
                            input #name name="name" value=(v("name")) required placeholder="lead_score";
                            label for="description" { "Description" }
                            input #description name="description" value=(v("description"));
                            (forms::term_rows(f, TERMS))
                            button type="submit" { "Save score" }
                        }
                        @if !v("name").is_empty() {
                            form method="post" action="/scores/delete" onsubmit="return confirm('Delete this score?')" {
                                (csrf(staff)) input type="hidden" name="name" value=(v("name"));
                                button.danger type="submit" { "Delete score" }
                            }
                        }
                    }
                }
            }
        },
    ))
}

pub async fn page(
    State(state): State<AppState>,
    staff: Staff,
    Query(q): Query<HashMap<String, String>>,
) -> UiResult<Markup> {
    let mut f = HashMap::new();
    if let Some(n) = q.get("name") {
        if let Some(s) = rapport_app::scores::custom_scores(&state.store)
            .await?
            .into_iter()
            .find(|s| &s.name == n)
        {
            f.insert("name".to_string(), s.name.clone());
            f.insert("description".to_string(), s.description.clone());
            let terms = serde_json::to_value(&s.terms).unwrap_or_default();
            forms::terms_into(&terms, TERMS, &mut f);
        }
    }
    render(&state, &staff, &f, None).await
}

pub async fn submit(
    State(state): State<AppState>,
    staff: Staff,
    Form(f): Form<HashMap<String, String>>,
) -> UiResult<Response> {
    staff.check(&f)?;
    staff.require(staff.role.can_market(), "edit scores")?;
    let result = match score_from_form(&f) {
        Ok(score) => {
            let all = rapport_app::scores::custom_scores(&state.store).await?;
            let mut list = others(&all, score["name"].as_str().unwrap_or_default());
            list.push(score);
            save(&state, list).await
        }
        Err(e) => Err(e),
    };
    Ok(match result {
        Ok(()) => Redirect::to("/scores").into_response(),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            render(&state, &staff, &f, Some(&e)).await?,
        )
            .into_response(),
    })
}

pub async fn delete(
    State(state): State<AppState>,
    staff: Staff,
    Form(f): Form<HashMap<String, String>>,
) -> UiResult<Response> {
    staff.check(&f)?;
    staff.require(staff.role.can_market(), "edit scores")?;
    let name = f.get("name").cloned().unwrap_or_default();
    let all = rapport_app::scores::custom_scores(&state.store).await?;
    save(&state, others(&all, &name))
        .await
        .map_err(UiError::Invalid)?;
    Ok(Redirect::to("/scores").into_response())
}

pub async fn recompute(
    State(state): State<AppState>,
    staff: Staff,
    Form(f): Form<HashMap<String, String>>,
) -> UiResult<Response> {
    staff.check(&f)?;
    staff.require(staff.role.can_market(), "recompute scores")?;
    // Micro-segments recompute the scores first.
    rapport_app::micro::refresh_micro(&state.store, 6).await?;
    Ok(Redirect::to("/scores").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::ui::forms::fields as form;

    #[test]
    fn the_form_makes_the_api_score() {
        let s = score_from_form(&form(&[
            ("name", "lead"),
            ("when0", "has email"),
            ("points0", "10"),
            ("when2", "has wallet"),
            ("points2", "5"),
        ]))
        .unwrap();
        assert_eq!(
            s,
            json!({"name": "lead", "description": "", "terms": [{"when": "has email", "points": 10.0}, {"when": "has wallet", "points": 5.0}]})
        );
        assert!(score_from_form(&form(&[("name", "lead")]))
            .unwrap_err()
            .starts_with("when0:"));
        assert!(score_from_form(&form(&[("when0", "x"), ("points0", "1")]))
            .unwrap_err()
            .starts_with("name:"));
        assert!(score_from_form(&form(&[("name", "l"), ("when1", "x")]))
            .unwrap_err()
            .starts_with("points1:"));
        assert!(score_from_form(&form(&[("name", "l"), ("points1", "x")]))
            .unwrap_err()
            .starts_with("when1:"));
    }
}
