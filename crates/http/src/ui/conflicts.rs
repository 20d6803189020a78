//! Ties to review (`/people/conflicts`): what merge protection refused to join — two
//! people with different user ids sharing an identifier (a household e-mail, a shared
//! device) — with both people by name; agents and above merge a pair that is one person
//! (the API's `POST /api/profiles/{id}/merge`, which resolves the conflict).

use axum::extract::State;
use axum::response::Redirect;
use axum::Form;
use maud::{html, Markup};
use rapport_domain::time::now_millis;
use std::collections::HashMap;

use super::auth::{Staff, UiError, UiResult};
use super::layout::{self, csrf};
use super::names::Names;
use crate::AppState;

pub async fn page(
    State(state): State<AppState>,
    staff: Staff,
    axum::extract::Query(q): axum::extract::Query<HashMap<String, String>>,
) -> UiResult<Markup> {
    let conflicts = state.store.conflicts(200).await?;
    let names = Names::of(
        &state.store,
        conflicts.iter().flat_map(|c| [c.profile_a, c.profile_b]),
    )
    .await?;
    let edit = staff.role.can_edit_people();
    Ok(layout::page(
        &staff,
        "Ties to review",
        "/people",
        html! {
            @if let Some(m) = q.get("msg") { div.ok role="status" { (m) } }
            div.card.wide {
                p.small.muted { "Merge protection keeps two people with different user ids apart even when they share an identifier; each such tie waits here. Merge a pair that is one person; leave a pair that is two (a household, a shared device): the identifier stays with its first owner." }
                @if conflicts.is_empty() { p.empty { "Nothing to review: no tie was refused." } }
                @else {
                    table {
                        tr { th { "Last seen" } th { "Person" } th { "and" } th { "Tied by" } th { "Why kept apart" } th.num { "Times" } th { "" } }
                        @for c in &conflicts { tr {
                            td.small.muted { (layout::when(c.last_at)) }
                            td { (names.link(c.profile_a)) } td { (names.link(c.profile_b)) }
                            td.small { code { (c.identifier) } } td.small { (c.reason) } td.num { (c.count) }
                            td { @if edit {
                                form method="post" action="/people/conflicts/merge" {
                                    (csrf(&staff))
                                    input type="hidden" name="a" value=(c.profile_a);
                                    input type="hidden" name="b" value=(c.profile_b);
                                    button.secondary type="submit" aria-label=(format!("Merge them: {} and {}", names.get(c.profile_a), names.get(c.profile_b))) { "Merge them" }
                                }
                            } }
                        } }
                    }
                }
                @if !edit { p.small.muted { "Your role can view but not merge." } }
            }
        },
    ))
}

/// Merges a reviewed pair (agents and above); the older profile survives.
pub async fn merge(
    State(state): State<AppState>,
    staff: Staff,
    Form(f): Form<HashMap<String, String>>,
) -> UiResult<Redirect> {
    staff.check(&f)?;
    staff.require(staff.role.can_edit_people(), "merge people")?;
    let id = |k: &str| {
        f.get(k)
            .and_then(|v| v.parse::<i64>().ok())
            .ok_or_else(|| UiError::Invalid(format!("{k}: a profile id")))
    };
    let m = rapport_app::profiles::merge(
        &state.store,
        id("a")?,
        id("b")?,
        &format!("ui:{}", staff.user.email),
        now_millis(),
    )
    .await?;
    let names = Names::of(&state.store, [m.survivor_id]).await?;
    let msg = format!("Merged into {}.", names.get(m.survivor_id));
    Ok(layout::done("/people/conflicts", &msg))
}
