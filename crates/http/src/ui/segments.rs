//! Segments: the list with sizes, the editor with a live count and errors as you type,
//! and a segment's page with its size over time and members.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Json, Redirect, Response};
use axum::Form;
use maud::{html, Markup, PreEscaped};
use rapport_domain::time::{now_millis, to_datetime};
use serde_json::{json, Value};
use std::collections::HashMap;

use super::auth::{Staff, UiResult};
use super::charts;
use super::layout::{csrf, page};
use crate::AppState;

pub async fn list(State(state): State<AppState>, staff: Staff) -> UiResult<Markup> {
    let segs = state.store.segments().await?;
    let market = staff.role.can_market();
    Ok(page(
        &staff,
        "Segments",
        "/segments",
        html! {
            div.grid {
                div.card.wide {
                    h2 { "Segments" }
                    @if segs.is_empty() { p.empty { "No segment yet. Write one below: the count updates as you type." } }
                    p.small { a href="/scores" { "Scores and micro-segments →" } }
                    table { tr { th { "Name" } th { "Definition" } th.num { "People" } th { "Kind" } }
                        @for s in &segs { tr {
                            td { a href=(format!("/segments/{}", s.id)) { (s.name) } }
                            td.small { code { (s.definition.chars().take(120).collect::<String>()) } }
                            td.num { (super::layout::thousands(s.size)) } td { span.badge { (s.kind) } }
                        } }
                    }
                }
                div.card.wide {
                    h2 { "New segment" }
                    @if !market { p.small.muted { "Your role can preview segments but not save them." } }
                    form method="post" action="/segments" #editor {
                        (csrf(&staff))
                        label for="name" { "Name" }
                        input #name name="name" required placeholder="Big spenders on chain";
                        label for="definition" { "Definition" }
                        textarea #definition name="definition" required spellcheck="false"
                            placeholder="count(track \"Order Completed\", 90d) >= 2 and has wallet" {}
                        div #live .muted { "Type a definition to see how many people match." }
                        @if market { button type="submit" { "Save segment" } }
                    }
                    p.small.muted { "Language: traits.x = \"…\", has email|wallet on eip155:1, count/sum/avg(track \"Event\"[.prop], 30d), days_since(…), score.rfm_r, graph.pagerank_pct, sentiment(30d), holds(\"TOKEN\"), in segment \"…\", consent(email, marketing) = granted; and/or/not. See docs/segments.md." }
                }
            }
            script { (PreEscaped(r#"
const d = document.getElementById('definition'), live = document.getElementById('live');
const csrf = document.querySelector('meta[name=csrf]').content; let t, seq = 0;
d.addEventListener('input', () => { clearTimeout(t); t = setTimeout(async () => {
  const mine = ++seq; if (!d.value.trim()) { live.textContent = ''; return; }
  const r = await fetch('/ui/segments/preview', { method: 'POST', headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf }, body: JSON.stringify({ definition: d.value }) });
  const b = await r.json(); if (mine !== seq) return;
  if (r.ok) { live.className = 'ok'; live.textContent = b.count.toLocaleString() + ' people match (' + b.took_ms.toFixed(0) + ' ms)'; }
  else { live.className = 'error'; live.textContent = b.detail; }
}, 250); });"#)) }
        },
    ))
}

/// The editor's live count (session and CSRF header; JSON like the API's preview).
pub async fn preview(
    State(state): State<AppState>,
    staff: Staff,
    headers: axum::http::HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let token_ok =
        headers.get("x-csrf-token").and_then(|v| v.to_str().ok()) == Some(staff.csrf.as_str());
    if !token_ok {
        return (
            axum::http::StatusCode::FORBIDDEN,
            Json(json!({"detail": "missing or wrong CSRF token"})),
        )
            .into_response();
    }
    let def = body.get("definition").and_then(Value::as_str).unwrap_or("");
    match rapport_app::segments::preview(&state.store, def, 5).await {
        Ok(p) => Json(json!({"count": p.count, "took_ms": p.took_ms})).into_response(),
        Err(e) => (
            axum::http::StatusCode::BAD_REQUEST,
            Json(json!({"detail": e.to_string()})),
        )
            .into_response(),
    }
}

pub async fn save(
    State(state): State<AppState>,
    staff: Staff,
    Form(f): Form<HashMap<String, String>>,
) -> UiResult<Redirect> {
    staff.check(&f)?;
    staff.require(staff.role.can_market(), "save segments")?;
    let name = f.get("name").map(String::as_str).unwrap_or("");
    let def = f.get("definition").map(String::as_str).unwrap_or("");
    let s = rapport_app::segments::create(&state.store, name, def, "").await?;
    rapport_app::segments::refresh(&state.store, s.id).await?;
    Ok(Redirect::to(&format!("/segments/{}", s.id)))
}

/// Changes a segment's definition and description (marketers and admins); members are
/// recomputed at once.
pub async fn update(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<i64>,
    Form(f): Form<HashMap<String, String>>,
) -> UiResult<Redirect> {
    staff.check(&f)?;
    staff.require(staff.role.can_market(), "edit segments")?;
    let def = f.get("definition").map(String::as_str);
    let desc = f.get("description").map(String::as_str);
    rapport_app::segments::update(&state.store, id, def, desc).await?;
    Ok(Redirect::to(&format!("/segments/{id}")))
}

/// Deletes a segment unless another refers to it (marketers and admins).
pub async fn delete(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<i64>,
    Form(f): Form<HashMap<String, String>>,
) -> UiResult<Redirect> {
    staff.check(&f)?;
    staff.require(staff.role.can_market(), "delete segments")?;
    rapport_app::segments::delete(&state.store, id).await?;
    Ok(Redirect::to("/segments"))
}

pub async fn detail(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<i64>,
) -> UiResult<Markup> {
    let s = state.store.segment(id).await?;
    let since = now_millis() - 90 * 86_400_000;
    let sizes = state.store.segment_sizes(id, since).await?;
    let members = state.store.segment_member_ids(id, 0, 50).await?;
    let names = super::names::Names::of(&state.store, members.iter().copied()).await?;
    let points: Vec<(String, f64)> = sizes
        .iter()
        .map(|p| {
            (
                to_datetime(p.at).format("%m-%d %H:%M").to_string(),
                p.size as f64,
            )
        })
        .collect();
    Ok(page(
        &staff,
        &s.name,
        "/segments",
        html! {
            div.grid {
                div.card {
                    h2 { "Definition" } code { (s.definition) }
                    @if !s.description.is_empty() { p.small { (s.description) } }
                    p.kpi { (super::layout::thousands(s.size)) " " small { "people now" } }
                    @if s.kind == "static" { p.small.muted { "A static list: rule actions add_to_segment and remove_from_segment change who is in it." } }
                }
                div.card.wide { (charts::bars(&points, "people", "Size over time (last 90 days)")) }
                @if staff.role.can_market() {
                    div.card.wide {
                        @if s.kind == "dynamic" {
                            h2 { "Edit" }
                            form method="post" action=(format!("/segments/{id}")) #editor {
                                (csrf(&staff))
                                label for="definition" { "Definition" }
                                textarea #definition name="definition" required spellcheck="false" { (s.definition) }
                                label for="description" { "Description" }
                                input #description name="description" value=(s.description);
                                button type="submit" { "Save changes" }
                            }
                        }
                        form method="post" action=(format!("/segments/{id}/delete")) onsubmit="return confirm('Delete this segment?')" {
                            (csrf(&staff))
                            button.danger type="submit" { "Delete segment" }
                        }
                    }
                }
                div.card.wide {
                    h2 { "Members" }
                    @if members.is_empty() { p.empty { "Nobody is in this segment right now." } }
                    @for m in &members { a.chip href=(format!("/people/{m}")) { (names.get(*m)) } }
                }
            }
        },
    ))
}
