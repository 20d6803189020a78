//! Audience insight in the web app (`/audience`): the size of an audience and its
//! breakdown by a dimension, noisy and with small groups withheld, exactly as partners'
//! insight keys get them (`rapport_app::insight`). The only page an `insight` account
//! opens. Each staff member has a daily privacy budget of their own (spent under the
//! budget key `-user id`, apart from API keys' ids).

use axum::extract::State;
use axum::Form;
use maud::{html, Markup};
use rapport_app::insight::{self, InsightError};
use std::collections::HashMap;

use super::auth::{Staff, UiError, UiResult};
use super::layout;
use crate::AppState;

const DIMENSIONS: [(&str, &str); 5] = [
    ("", "Size only"),
    ("country", "Country"),
    ("tier", "Tier"),
    ("channel", "Channel"),
    ("community", "Community"),
];

fn budget_key(staff: &Staff) -> i64 {
    -staff.user.id
}

fn form(staff: &Staff, definition: &str, by: &str, trait_key: &str) -> Markup {
    html! {
        form method="post" action="/audience" {
            input type="hidden" name="_csrf" value=(staff.csrf);
            label for="definition" { "Audience (a segment definition; empty: everyone)" }
            textarea #definition name="definition" rows="3" { (definition) }
            label for="by" { "Break down by" }
            select #by name="by" {
                @for (v, l) in DIMENSIONS { option value=(v) selected[v == by] { (l) } }
            }
            label for="trait" { "… or by a trait (its key)" }
            input #trait name="trait" value=(trait_key) placeholder="e.g. plan";
            button type="submit" { "Ask" }
        }
    }
}

fn explain(s: &insight::InsightSettings) -> Markup {
    html! {
        p.muted.small {
            "Answers carry random noise (differential privacy, ε = " (s.epsilon) " per question) and numbers below "
            (s.min_group) " are withheld, so no answer reveals a person. Each of you may spend ε = "
            (s.daily_budget) " a day."
        }
    }
}

pub async fn page(State(state): State<AppState>, staff: Staff) -> UiResult<Markup> {
    let s = insight::settings(&state.store).await?;
    Ok(layout::page(
        &staff,
        "Audience insight",
        "/audience",
        html! { div.card.wide { (explain(&s)) (form(&staff, "", "", "")) } },
    ))
}

pub async fn ask(
    State(state): State<AppState>,
    staff: Staff,
    Form(f): Form<HashMap<String, String>>,
) -> UiResult<Markup> {
    staff.check(&f)?;
    let s = insight::settings(&state.store).await?;
    let definition = f.get("definition").map(|d| d.trim()).unwrap_or("");
    let by = f.get("by").map(String::as_str).unwrap_or("");
    let trait_key = f.get("trait").map(|t| t.trim()).unwrap_or("");
    let dimension = if trait_key.is_empty() {
        by.to_string()
    } else {
        format!("traits.{trait_key}")
    };
    let answer = if dimension.is_empty() {
        insight::audience(&state.store, budget_key(&staff), definition)
            .await
            .map(|a| {
                html! {
                    h2 { "Audience size" }
                    @match a.count {
                        Some(n) => p.big { "about " (n) },
                        None => p { "Withheld" @if let Some(r) = &a.reason { ": " (r) } },
                    }
                    p.muted.small { "ε spent " (a.epsilon_spent) "; left today " (format!("{:.2}", a.budget_left)) }
                }
            })
    } else {
        insight::breakdown(&state.store, budget_key(&staff), definition, &dimension)
            .await
            .map(|b| {
                html! {
                    h2 { "By " (b.by) }
                    @if b.groups.is_empty() { p.empty { "Every group is below the minimum size." } }
                    table {
                        tr { th { "Group" } th { "People (about)" } }
                        @for g in &b.groups { tr { td { (g.value.clone().unwrap_or_else(|| "(none)".into())) } td { (g.count) } } }
                    }
                    @if b.suppressed { p.muted.small { "Smaller groups are withheld." } }
                    p.muted.small { "ε spent " (b.epsilon_spent) "; left today " (format!("{:.2}", b.budget_left)) }
                }
            })
    };
    let answer = match answer {
        Ok(a) => a,
        Err(InsightError::Store(e)) => return Err(UiError::from(e)),
        Err(e @ InsightError::BudgetSpent { .. }) => {
            html! { div.error role="alert" { (e.to_string()) } }
        }
    };
    Ok(layout::page(
        &staff,
        "Audience insight",
        "/audience",
        html! {
            div.card.wide { (explain(&s)) (form(&staff, definition, by, trait_key)) }
            div.card.wide { (answer) }
        },
    ))
}
