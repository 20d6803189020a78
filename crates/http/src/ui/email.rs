//! The E-mail section: campaigns with their state and report (and an A/B test's
//! result), made and steered here; templates written and previewed for any person; the
//! suppression list; the sending set-up (relay, domains and the DKIM records to publish).

use axum::extract::{Path, Query, State};
use axum::response::Redirect;
use axum::Form;
use maud::{html, Markup};
use rapport_app::email::campaigns::{self, AbInput, CampaignInput, VariantInput};
use rapport_domain::time::to_datetime;
use rapport_email::template::Source;
use serde_json::json;
use std::collections::HashMap;

use super::auth::{Staff, UiError, UiResult};
use super::layout::{csrf, page};
use crate::AppState;

/// A form field, trimmed; empty counts as absent.
fn field<'a>(f: &'a HashMap<String, String>, k: &str) -> Option<&'a str> {
    f.get(k).map(|v| v.trim()).filter(|v| !v.is_empty())
}

fn number(f: &HashMap<String, String>, k: &str) -> UiResult<Option<i64>> {
    field(f, k)
        .map(|v| {
            v.parse::<i64>()
                .map_err(|_| UiError::Invalid(format!("{k}: a whole number, not `{v}`")))
        })
        .transpose()
}

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
    let segments = state.store.segments().await?;
    let market = staff.role.can_market();
    Ok(page(
        &staff,
        "E-mail",
        "/email",
        html! {
            div.grid {
                div.card.wide {
                    h2 { "Campaigns" }
                    @if campaigns.is_empty() {
                        p.empty { @if templates.is_empty() { "No campaign yet: write a template first (below), then make one here." } @else { "No campaign yet. Make one below." } }
                    }
                    @else { table {
                        tr { th { "Campaign" } th { "State" } th.num { "Planned" } th.num { "Skipped" } th.num { "Delivered" } th.num { "Bounced" } th.num { "Opened" } th.num { "Clicked" } th.num { "Unsubscribed" } th { "Started" } }
                        @for (c, r) in campaigns.iter().zip(&reports) {
                            tr {
                                td { a href=(format!("/email/campaigns/{}", c.id)) { (c.name) } @if c.ab.is_some() { " " span.badge { "A/B" } } }
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
                @if market && !templates.is_empty() {
                    div.card.wide {
                        h2 { "New campaign" }
                        form method="post" action="/email/campaigns" {
                            (csrf(&staff))
                            div.row {
                                div { label for="c-name" { "Name" } input #c-name name="name" required placeholder="Spring sale"; }
                                div { label for="c-template" { "Template" } select #c-template name="template" { @for t in &templates { option value=(t.id) { (t.name) } } } }
                                div { label for="c-from" { "From" } input #c-from name="from" required placeholder=(format!("news@{}", domains.first().map_or("example.com", |d| d.domain.as_str()))); }
                            }
                            div.row {
                                div { label for="c-segment" { "To the segment" } select #c-segment name="segment" { option value="" { "— or a list of people —" } @for s in &segments { option value=(s.id) { (s.name) " (" (s.size) ")" } } } }
                                div { label for="c-profiles" { "…or these people (ids)" } input #c-profiles name="profiles" placeholder="12, 40, 41"; }
                                div { label for="c-kind" { "Kind" } select #c-kind name="kind" { option value="marketing" { "marketing (needs consent)" } option value="transactional" { "transactional" } } }
                            }
                            div.row {
                                div { label for="c-rate" { "Messages per minute" } input #c-rate name="per_minute" inputmode="numeric" placeholder="as fast as the relay takes them"; }
                                div { label for="c-at" { "Send at (ISO-8601)" } input #c-at name="send_at" placeholder="2027-03-01T09:00:00Z"; }
                            }
                            details {
                                summary { "A/B test" }
                                p.small.muted { "The first variant is the campaign's template and subject; the second changes the subject, the template or both. A sample of the audience gets one of the two; after the wait the better open or click rate goes to the rest." }
                                div.row {
                                    div { label for="ab-subject" { "Variant B subject" } input #ab-subject name="ab_subject" placeholder="Only today: {{ traits.first_name }}, 20% off"; }
                                    div { label for="ab-template" { "Variant B template" } select #ab-template name="ab_template" { option value="" { "— the same —" } @for t in &templates { option value=(t.id) { (t.name) } } } }
                                }
                                div.row {
                                    div { label for="ab-sample" { "Sample (% of audience)" } input #ab-sample name="ab_sample" inputmode="numeric" value="20"; }
                                    div { label for="ab-metric" { "Winner by" } select #ab-metric name="ab_metric" { option value="open" { "open rate" } option value="click" { "click rate" } } }
                                    div { label for="ab-wait" { "Wait (minutes)" } input #ab-wait name="ab_wait" inputmode="numeric" value="240"; }
                                }
                            }
                            button type="submit" name="start" value="" { "Save draft" }
                            " "
                            button type="submit" name="start" value="now" { "Save and start" }
                        }
                    }
                }
                // Wide: the template editor needs the room.
                div.card.wide {
                    h2 { "Templates" }
                    @if templates.is_empty() { p.empty { "No template yet: write one below." } }
                    table { @for t in &templates { tr {
                        td { a href=(format!("/email/templates/{}", t.id)) { (t.name) } }
                        td.small { (t.subject) }
                        td.small.muted { (when(Some(t.updated_at))) }
                    } } }
                    @if market {
                        h3 { "New template" }
                        (template_form(&staff, "/email/templates", None))
                    }
                }
                div.card {
                    h2 { "Suppressed addresses" }
                    @if suppressions.is_empty() { p.empty { "None: no hard bounce, complaint or manual suppression." } }
                    table { @for s in &suppressions { tr {
                        td { code { (s.address) } } td { span.badge { (s.reason) } } td.small.muted { (when(Some(s.created_at))) }
                    } } }
                }
                div.card.wide {
                    h2 { "Sending" }
                    p { "Relay: " code { (settings.relay_url.clone().unwrap_or_else(|| "none (start with --smtp-url)".into())) } }
                    p { "Links point to " code { (settings.public_url) } "; marketing needs consent " (settings.marketing_consent) "." }
                    p { "Bounce mailbox: " code { (settings.bounce_mailbox.clone().unwrap_or_else(|| "none (bounces by POST /api/email/inbound)".into())) } }
                    @for d in &domains {
                        h3 { (d.domain) }
                        table { tr { th { "TXT record" } th { "Value to publish" } } @for k in &d.keys { tr {
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

/// The template editor: name (new ones only), subject, HTML, and an optional text part.
fn template_form(staff: &Staff, action: &str, t: Option<&rapport_store::EmailTemplate>) -> Markup {
    html! {
        form method="post" action=(action) {
            (csrf(staff))
            @if t.is_none() { label for="t-name" { "Name" } input #t-name name="name" required placeholder="welcome"; }
            label for="t-subject" { "Subject" }
            input #t-subject name="subject" required value=(t.map_or("", |t| t.subject.as_str())) placeholder="Welcome, {{ traits.first_name | default('friend') }}";
            label for="t-html" { "HTML" }
            textarea #t-html name="html" required rows="10" spellcheck="false" placeholder="<p>Hello {{ traits.first_name }}</p>" { (t.map_or("", |t| t.html.as_str())) }
            label for="t-text" { "Text part (derived from the HTML when empty)" }
            textarea #t-text name="text" rows="4" spellcheck="false" { (t.and_then(|t| t.text.as_deref()).unwrap_or("")) }
            p.small.muted { "Variables: person, traits, scores, segments, network, text, email, data, unsubscribe_url (docs/email.md)." }
            button type="submit" { "Save template" }
        }
    }
}

fn source(f: &HashMap<String, String>) -> Source {
    Source {
        subject: f.get("subject").cloned().unwrap_or_default(),
        html: f.get("html").cloned().unwrap_or_default(),
        text: field(f, "text").map(str::to_string),
    }
}

/// Saves a new template (marketers and admins); errors name the part, line and column.
pub async fn save_template(
    State(state): State<AppState>,
    staff: Staff,
    Form(f): Form<HashMap<String, String>>,
) -> UiResult<Redirect> {
    staff.check(&f)?;
    staff.require(staff.role.can_market(), "write templates")?;
    let name = f.get("name").map(String::as_str).unwrap_or("");
    let t = state.email.save_template(0, name, source(&f)).await?;
    Ok(Redirect::to(&format!("/email/templates/{}", t.id)))
}

/// Saves a changed template.
pub async fn update_template(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<i64>,
    Form(f): Form<HashMap<String, String>>,
) -> UiResult<Redirect> {
    staff.check(&f)?;
    staff.require(staff.role.can_market(), "write templates")?;
    let t = state
        .store
        .template(&id.to_string())
        .await?
        .filter(|t| t.id == id)
        .ok_or_else(|| UiError::NotFound(format!("template {id}")))?;
    state.email.save_template(id, &t.name, source(&f)).await?;
    let back = field(&f, "profile").map_or(String::new(), |p| format!("?profile={p}"));
    Ok(Redirect::to(&format!("/email/templates/{id}{back}")))
}

/// Makes a campaign from the form (a draft, or started), with an optional A/B test.
pub async fn save_campaign(
    State(state): State<AppState>,
    staff: Staff,
    Form(f): Form<HashMap<String, String>>,
) -> UiResult<Redirect> {
    staff.check(&f)?;
    staff.require(staff.role.can_market(), "make campaigns")?;
    let audience = match (field(&f, "segment"), field(&f, "profiles")) {
        (Some(s), _) => json!({"segment": s}),
        (None, Some(list)) => {
            let mut ids = Vec::new();
            for x in list
                .split([',', ' ', '\n'])
                .filter(|x| !x.trim().is_empty())
            {
                ids.push(x.trim().parse::<i64>().map_err(|_| {
                    UiError::Invalid(format!("profiles: `{x}` is not a profile id"))
                })?);
            }
            json!({"profiles": ids})
        }
        (None, None) => {
            return Err(UiError::Invalid(
                "audience: choose a segment or list people".into(),
            ))
        }
    };
    let ab = if field(&f, "ab_subject").is_some() || field(&f, "ab_template").is_some() {
        Some(AbInput {
            variants: vec![
                VariantInput {
                    template: None,
                    subject: None,
                },
                VariantInput {
                    template: field(&f, "ab_template").map(str::to_string),
                    subject: field(&f, "ab_subject").map(str::to_string),
                },
            ],
            sample_percent: number(&f, "ab_sample")?,
            metric: field(&f, "ab_metric").map(str::to_string),
            wait_seconds: number(&f, "ab_wait")?.map(|m| m.saturating_mul(60)),
        })
    } else {
        None
    };
    let c = campaigns::create(
        &state.email,
        CampaignInput {
            name: f.get("name").cloned().unwrap_or_default(),
            template: f.get("template").cloned().unwrap_or_default(),
            from: f.get("from").cloned().unwrap_or_default(),
            from_name: None,
            kind: field(&f, "kind").map(str::to_string),
            audience,
            send_at: field(&f, "send_at").map(str::to_string),
            per_minute: number(&f, "per_minute")?,
            start: field(&f, "start").is_some(),
            ab,
        },
    )
    .await?;
    Ok(Redirect::to(&format!("/email/campaigns/{}", c.id)))
}

/// Starts, pauses, resumes or cancels a campaign, or sends its test to a staff address.
pub async fn campaign_action(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<i64>,
    Form(f): Form<HashMap<String, String>>,
) -> UiResult<Redirect> {
    staff.check(&f)?;
    staff.require(staff.role.can_market(), "steer campaigns")?;
    match field(&f, "action") {
        Some("test") => {
            let to = field(&f, "to").unwrap_or("");
            let to = if to.starts_with("email:") {
                to.to_string()
            } else {
                format!("email:{to}")
            };
            campaigns::test_send(&state.email, id, &to).await?;
        }
        action => {
            campaigns::act(&state.email, id, action.unwrap_or("")).await?;
        }
    }
    Ok(Redirect::to(&format!("/email/campaigns/{id}")))
}

/// A campaign: its state, the report, an A/B test's result, and what staff can do.
pub async fn campaign(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<i64>,
) -> UiResult<Markup> {
    let c = state
        .store
        .campaign(id)
        .await?
        .ok_or_else(|| UiError::NotFound(format!("campaign {id}")))?;
    let r = state.store.campaign_report(id).await?;
    let ab: Option<campaigns::AbTest> = c.ab.clone().and_then(|v| serde_json::from_value(v).ok());
    let templates: HashMap<i64, String> = state
        .store
        .templates()
        .await?
        .into_iter()
        .map(|t| (t.id, t.name))
        .collect();
    let market = staff.role.can_market();
    let actions: &[&str] = match c.status.as_str() {
        "draft" => &["start", "cancel"],
        "scheduled" | "planning" | "testing" | "sending" => &["pause", "cancel"],
        "paused" => &["resume", "cancel"],
        _ => &[],
    };
    let stat = |k: &str| r.statuses.get(k).copied().unwrap_or(0);
    Ok(page(
        &staff,
        &format!("Campaign: {}", c.name),
        "/email",
        html! {
            div.grid {
                div.card.wide {
                    p {
                        span.badge { (c.status) } " · " (c.kind) " · from " code { (c.from_address) }
                        " · template " a href=(format!("/email/templates/{}", c.template_id)) { (templates.get(&c.template_id).cloned().unwrap_or_default()) }
                        " · audience " code { (c.audience) }
                        @if let Some(r) = c.per_minute { " · " (r) " a minute" }
                    }
                    @if let Some(e) = &c.error { div.error role="alert" { (e) } }
                    p.small.muted { "Made " (when(Some(c.created_at))) " · starts " (when(c.send_at)) " · started " (when(c.started_at)) " · finished " (when(c.finished_at)) }
                    @if market {
                        div.row {
                            @for a in actions {
                                form method="post" action=(format!("/email/campaigns/{id}/actions")) {
                                    (csrf(&staff)) input type="hidden" name="action" value=(a);
                                    button type="submit" { (a) }
                                }
                            }
                            form method="post" action=(format!("/email/campaigns/{id}/actions")) {
                                (csrf(&staff)) input type="hidden" name="action" value="test";
                                input name="to" aria-label="Staff address" placeholder="you@example.com" required;
                                button type="submit" { "Send a test" }
                            }
                        }
                    }
                }
                div.card.wide {
                    h2 { "Report" }
                    table {
                        tr { th.num { "Planned" } th.num { "Skipped" } th.num { "Queued" } th.num { "Delivered" } th.num { "Bounced" } th.num { "Failed" } th.num { "Opened" } th.num { "Clicked" } th.num { "Unsubscribed" } }
                        tr {
                            td.num { (c.planned) } td.num { (c.skipped) } td.num { (stat("queued") + stat("paused")) }
                            td.num { (stat("delivered")) } td.num { (stat("bounced")) } td.num { (stat("failed") + stat("unknown")) }
                            td.num { (r.opened) } td.num { (r.clicked) } td.num { (r.unsubscribed) }
                        }
                    }
                    @if !r.links.is_empty() {
                        h3 { "Clicks per link" }
                        table { @for (url, n) in &r.links { tr { td { code { (url) } } td.num { (n) } } } }
                    }
                    @if !r.skipped.is_empty() {
                        h3 { "Skipped, and why" }
                        table { @for (why, n) in &r.skipped { tr { td { (why) } td.num { (n) } } } }
                    }
                }
                @if let Some(t) = &ab {
                    div.card.wide {
                        h2 { "A/B test" }
                        p.small.muted {
                            (t.sample_percent) "% of the audience, winner by " (format!("{:?}", t.metric).to_lowercase()) " rate "
                            (t.wait_seconds / 60) " minutes after the sample is planned"
                            @if let Some(at) = t.test_ends_at { " (" (when(Some(at))) ")" }
                        }
                        table {
                            tr { th { "Variant" } th { "Template" } th { "Subject" } th.num { "Sent" } th.num { "Opened" } th.num { "Clicked" } th.num { "Rate" } th { "" } }
                            @for (i, v) in t.variants.iter().enumerate() {
                                @let live = r.variants.iter().find(|x| x.variant == i as i64);
                                @let tally = t.tallies.get(i).copied().unwrap_or(rapport_email::ab::Tally { sent: live.map_or(0, |x| x.sent), opened: live.map_or(0, |x| x.opened), clicked: live.map_or(0, |x| x.clicked) });
                                tr {
                                    td { (char::from(b'A' + i as u8)) }
                                    td { (templates.get(&v.template_id).cloned().unwrap_or_default()) }
                                    td.small { (v.subject.clone().unwrap_or_else(|| "(the template's)".into())) }
                                    td.num { (tally.sent) } td.num { (tally.opened) } td.num { (tally.clicked) }
                                    td.num { (format!("{:.1}%", tally.rate(t.metric) * 100.0)) }
                                    td { @if t.winner == Some(i) { span.badge { "winner" } } }
                                }
                            }
                        }
                    }
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
                @if staff.role.can_market() {
                    (template_form(&staff, &format!("/email/templates/{id}"), Some(&t)))
                } @else {
                    p { "Subject: " code { (t.subject) } }
                    pre.small { (t.html) }
                }
            }
        },
    ))
}
