//! The E-mail section: campaigns with their state and report, templates with a preview
//! for any person, the suppression list, and the sending set-up (relay, domains and the
//! DKIM records to publish). Edits go through the API (docs/email.md).

use axum::extract::{Path, Query, State};
use maud::{html, Markup};
use rapport_domain::time::to_datetime;
use std::collections::HashMap;

use super::auth::{Staff, UiResult};
use super::layout::page;
use crate::AppState;

fn when(t: Option<i64>) -> String {
    t.map(|t| to_datetime(t).format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|| "—".into())
}

pub async fn email(State(state): State<AppState>, staff: Staff) -> UiResult<Markup> {
    let campaigns = state.store.campaigns().await?;
    let mut reports = Vec::new();
    for c in campaigns.iter().take(20) {
        reports.push(state.store.campaign_report(c.id).await?);
    }
    let templates = state.store.templates().await?;
    let suppressions = state.store.suppressions(50).await?;
    let domains = state.store.domains().await?;
    let settings = state.email.shown_settings().await?;
    Ok(page(
        &staff,
        "E-mail",
        "/email",
        html! {
            div.grid {
                div.card.wide {
                    h2 { "Campaigns" }
                    @if campaigns.is_empty() { p.empty { "No campaign yet. Make one with POST /api/email/campaigns (docs/email.md)." } }
                    @else { table {
                        tr { th { "Campaign" } th { "State" } th.num { "Planned" } th.num { "Skipped" } th.num { "Delivered" } th.num { "Bounced" } th.num { "Opened" } th.num { "Clicked" } th.num { "Unsubscribed" } th { "Started" } }
                        @for (c, r) in campaigns.iter().zip(&reports) {
                            tr {
                                td { (c.name) }
                                td { span.badge { (c.status) } @if let Some(e) = &c.error { " " span.small.muted { (e) } } }
                                td.num { (c.planned) } td.num { (c.skipped) }
                                td.num { (r.statuses.get("delivered").copied().unwrap_or(0)) }
                                td.num { (r.statuses.get("bounced").copied().unwrap_or(0)) }
                                td.num { (r.opened) } td.num { (r.clicked) } td.num { (r.unsubscribed) }
                                td.small { (when(c.started_at)) }
                            }
                            @if !r.links.is_empty() {
                                tr { td colspan="10" class="small muted" {
                                    "Clicks per link: "
                                    @for (url, n) in &r.links { code { (url) } " " (n) "  " }
                                } }
                            }
                        }
                    } }
                }
                div.card {
                    h2 { "Templates" }
                    @if templates.is_empty() { p.empty { "No template yet (POST /api/email/templates)." } }
                    table { @for t in &templates { tr {
                        td { a href=(format!("/email/templates/{}", t.id)) { (t.name) } }
                        td.small { (t.subject) }
                        td.small.muted { (when(Some(t.updated_at))) }
                    } } }
                }
                div.card {
                    h2 { "Suppressed addresses" }
                    @if suppressions.is_empty() { p.empty { "None: no hard bounce, complaint or manual suppression." } }
                    table { @for s in &suppressions { tr {
                        td { code { (s.address) } } td { span.badge { (s.reason) } } td.small.muted { (when(Some(s.created_at))) }
                    } } }
                }
                div.card {
                    h2 { "Sending" }
                    p { "Relay: " code { (settings.relay_url.clone().unwrap_or_else(|| "none (start with --smtp-url)".into())) } }
                    p { "Links point to " code { (settings.public_url) } "; marketing needs consent " (settings.marketing_consent) "." }
                    @for d in &domains {
                        h3 { (d.domain) }
                        table { @for k in &d.keys { tr {
                            td.small { code { (k.selector) "._domainkey." (d.domain) } }
                            td.small { code { "v=DKIM1; k=" (k.algorithm) "; p=" (k.public_key) } }
                        } } }
                    }
                    @if domains.is_empty() { p.empty { "No sending domain yet (POST /api/email/domains)." } }
                }
            }
        },
    ))
}

/// A template and its preview for one person (`?profile=ID`, default: none).
pub async fn template(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<i64>,
    Query(q): Query<HashMap<String, String>>,
) -> UiResult<Markup> {
    let t = state
        .store
        .template(&id.to_string())
        .await?
        .filter(|t| t.id == id)
        .ok_or_else(|| super::auth::UiError::NotFound(format!("template {id}")))?;
    let person = q.get("profile").and_then(|p| p.trim().parse::<i64>().ok());
    let preview = match person {
        Some(p) => Some(
            state
                .email
                .preview(&id.to_string(), p, &serde_json::json!({}))
                .await,
        ),
        None => None,
    };
    Ok(page(
        &staff,
        &format!("Template: {}", t.name),
        "/email",
        html! {
            div.card.wide {
                form method="get" {
                    div.row {
                        div { label for="profile" { "Preview for person (id)" } input #profile name="profile" value=(person.map(|p| p.to_string()).unwrap_or_default()); }
                    }
                    button type="submit" { "Preview" }
                }
                @match &preview {
                    None => { p.empty { "Choose a person to see the message as they would get it." } }
                    Some(Err(e)) => { div.error role="alert" { (e.to_string()) } }
                    Some(Ok(v)) => {
                        p { "To " code { (v["to"].as_str().unwrap_or("")) } " · Subject: " b { (v["subject"].as_str().unwrap_or("")) } }
                        iframe title="preview" sandbox="" style="width:100%;height:28rem;border:1px solid #ddd" srcdoc=(v["html"].as_str().unwrap_or("")) {}
                        details { summary { "Text part" } pre { (v["text"].as_str().unwrap_or("")) } }
                    }
                }
                h2 { "Source" }
                p { "Subject: " code { (t.subject) } }
                pre.small { (t.html) }
            }
        },
    ))
}
