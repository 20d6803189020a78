//! The agent inbox (`/support`): tickets by view (mine, unassigned, open, pending,
//! snoozed, resolved, all), a ticket's conversation with reply, note, status, priority
//! and assignee (`/support/{id}`), and a ticket opened for a customer (`/support/new`).
//! Agents and admins act; marketers and viewers read.

use axum::extract::{Path, Query, State};
use axum::response::Redirect;
use axum::Form;
use maud::{html, Markup};
use rapport_app::tickets::{self, Author, NewTicket, Patch};
use rapport_domain::ticket::{Due, Priority, Status};
use rapport_domain::time::to_datetime;
use rapport_store::{Ticket, TicketFilter};
use serde_json::json;
use std::collections::HashMap;

use super::auth::{Staff, UiError, UiResult};
use super::layout::{self, csrf};
use super::names::Names;
use crate::AppState;

const VIEWS: [(&str, &str); 8] = [
    ("mine", "Mine"),
    ("due", "Due soon"),
    ("unassigned", "Unassigned"),
    ("open", "Open"),
    ("pending", "Pending"),
    ("snoozed", "Snoozed"),
    ("resolved", "Resolved"),
    ("all", "All"),
];

fn filter(view: &str, me: &str, q: &HashMap<String, String>) -> TicketFilter {
    let given = |k: &str| q.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let mut f = TicketFilter {
        limit: 100,
        team: given("team").map(str::to_string),
        tag: given("tag").map(str::to_lowercase),
        ..Default::default()
    };
    match view {
        "mine" => f.assignee = Some(me.to_string()),
        "unassigned" => {
            f.unassigned = true;
            f.status = Some("open".into());
        }
        "all" => {}
        s => f.status = Some(s.to_string()),
    }
    f
}

/// The next promise of a ticket in words: "reply in 3 hours", "resolve was due 2 days
/// ago" (marked late), with the time on hover.
fn due(d: Option<(Due, i64)>, now: i64) -> Markup {
    let Some((what, at)) = d else {
        return html! { span.muted { "—" } };
    };
    let what = match what {
        Due::FirstResponse => "reply",
        Due::Resolution => "resolve",
    };
    let abs = to_datetime(at).format("%Y-%m-%d %H:%M UTC").to_string();
    let rel = layout::ago(at, now);
    html! {
        time datetime=(to_datetime(at).to_rfc3339()) title=(abs) {
            @if at <= now { span.badge.late { (what) " was due " (rel) } }
            @else { (what) " " (rel) }
        }
    }
}

fn status_badge(s: &str) -> Markup {
    let class = match s {
        "open" => "badge warn",
        "resolved" | "closed" => "badge verified",
        _ => "badge",
    };
    html! { span class=(class) { (s) } }
}

pub async fn inbox(
    State(state): State<AppState>,
    staff: Staff,
    Query(q): Query<HashMap<String, String>>,
) -> UiResult<Markup> {
    let view = q
        .get("view")
        .map(String::as_str)
        .filter(|v| VIEWS.iter().any(|(k, _)| k == v))
        .unwrap_or(if staff.role.can_support() {
            "mine"
        } else {
            "open"
        });
    let now = rapport_domain::time::now_millis();
    let list: Vec<Ticket> = if view == "due" {
        // Overdue, or due within the hour, soonest first.
        tickets::breaching(&state.store, now + 3_600_000)
            .await?
            .into_iter()
            .map(|(t, _, _)| t)
            .collect()
    } else {
        tickets::list(&state.store, filter(view, &staff.user.email, &q)).await?
    };
    let support = tickets::settings(&state.store).await?;
    let names = Names::of(&state.store, list.iter().map(|t| t.profile_id)).await?;
    let team = q.get("team").cloned().unwrap_or_default();
    let tag = q.get("tag").cloned().unwrap_or_default();
    Ok(layout::page(
        &staff,
        "Support",
        "/support",
        html! {
            nav.tabs aria-label="Views" {
                @for (k, label) in VIEWS {
                    a href=(format!("/support?view={k}")) aria-current=[(k == view).then_some("page")] { (label) }
                }
                @if staff.role.can_support() { " " a.button href="/support/new" { "New ticket" } }
            }
            @if view != "due" {
                form.row method="get" action="/support" aria-label="Filter" {
                    input type="hidden" name="view" value=(view);
                    @if !support.teams.is_empty() {
                        div {
                            label for="team" { "Team" }
                            select #team name="team" {
                                option value="" { "any" }
                                @for t in &support.teams { option value=(t.name) selected[t.name == team] { (t.name) } }
                            }
                        }
                    }
                    div {
                        label for="tag" { "Tag" }
                        input #tag name="tag" value=(tag) placeholder="intent:complaint";
                    }
                    div { button.secondary type="submit" { "Filter" } }
                }
            }
            div.card.wide {
                @if list.is_empty() {
                    p.empty { @match view {
                        "mine" => "Nothing assigned to you. Unassigned tickets wait under Unassigned.",
                        "due" => "No promise is due within the hour.",
                        _ => "No ticket here. Customers open them by e-mail to the support address (Settings → Support) or through the API.",
                    } }
                } @else {
                    table {
                        tr { th { "#" } th { "Subject" } th { "Customer" } th { "Status" } th { "Priority" } th { "Assignee" } th { "Due" } th { "Updated" } th { "Tags" } }
                        @for t in &list { tr {
                            td.num { a href=(format!("/support/{}", t.id)) { "#" (t.number) } }
                            td { a href=(format!("/support/{}", t.id)) { (t.subject) } }
                            td { (names.link(t.profile_id)) }
                            td { (status_badge(&t.status)) }
                            td.small { (t.priority) }
                            td.small.muted { (t.assignee.clone().unwrap_or_else(|| "—".into())) }
                            td.small { (due(support.due(t), now)) }
                            td.small.muted { (layout::when(to_datetime(t.updated_at))) }
                            td.small {
                                @if let Some(team) = &t.team { span.chip { (team) } " " }
                                @for x in t.tags.iter().take(4) {
                                    a.chip href=(format!("/support?view={view}&tag={}", layout::urlencode(x))) { (x) } " "
                                }
                            }
                        } }
                    }
                }
            }
        },
    ))
}

pub async fn ticket(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<i64>,
    Query(q): Query<HashMap<String, String>>,
) -> UiResult<Markup> {
    let (t, messages) = tickets::thread(&state.store, id).await?;
    let support = tickets::settings(&state.store).await?;
    let first = messages.first().map_or("", |m| m.body.as_str());
    let articles = rapport_app::kb::for_ticket(&state.store, &t.subject, first).await?;
    let names = Names::of(&state.store, [t.profile_id]).await?;
    let act = staff.role.can_support();
    let who = names.get(t.profile_id);
    Ok(layout::page(
        &staff,
        &format!("#{} {}", t.number, t.subject),
        "/support",
        html! {
            @if let Some(m) = q.get("msg") { div.ok role="status" { (m) } }
            div.figures {
                span.figure { span.muted { "Customer " } strong { (names.link(t.profile_id)) } }
                span.figure { span.muted { "Status " } (status_badge(&t.status)) }
                span.figure { span.muted { "Priority " } strong { (t.priority) } }
                span.figure { span.muted { "Due " } (due(support.due(&t), rapport_domain::time::now_millis())) }
                span.figure { span.muted { "Assignee " } strong { (t.assignee.clone().unwrap_or_else(|| "nobody".into())) } }
                @if let Some(team) = &t.team { span.figure { span.muted { "Team " } strong { (team) } } }
                @if let Some(c) = t.csat { span.figure { span.muted { "Rated " } strong { (c) " / 5" } @if let Some(w) = &t.csat_comment { " “" (w) "”" } } }
                span.figure { span.muted { "Opened " } strong { (layout::when(to_datetime(t.created_at))) } " by " (t.channel) }
                @for tag in &t.tags { " " span.chip { (tag) } }
            }
            div.grid.wide-cards {
                div.card.half {
                    h2 { "Conversation" }
                    @for m in &messages {
                        article.message class=(m.author.as_str()) {
                            div.small.muted {
                                strong { @match m.author.as_str() {
                                    "customer" => { (who) }
                                    "note" => { "Note by " (m.staff.clone().unwrap_or_default()) }
                                    _ => { (m.staff.clone().unwrap_or_else(|| "Staff".into())) }
                                } }
                                " · " (layout::when(to_datetime(m.at)))
                                @if m.author == "staff" && m.email_id.is_some() { " · e-mailed" }
                            }
                            // Escaped by maud: what customers write is shown, never run.
                            div.body { (m.body) }
                        }
                    }
                    @if act {
                        form method="post" action=(format!("/support/{id}/reply")) {
                            (csrf(&staff))
                            label for="body" { "Reply (e-mailed to the customer) or note (staff only)" }
                            textarea #body name="body" {}
                            div.row {
                                @if !support.canned_replies.is_empty() {
                                    div {
                                        label for="canned" { "Or a canned reply (when the box is empty)" }
                                        select #canned name="canned" {
                                            option value="" { "—" }
                                            @for c in &support.canned_replies { option value=(c.name) { (c.name) } }
                                        }
                                    }
                                }
                                div {
                                    label for="then" { "Then the ticket is" }
                                    select #then name="then" {
                                        option value="" { "pending (waiting on the customer)" }
                                        option value="resolved" { "resolved" }
                                        option value="open" { "open" }
                                    }
                                }
                            }
                            button type="submit" name="as" value="reply" { "Send reply" }
                            " "
                            button.secondary type="submit" name="as" value="note" { "Add note" }
                        }
                    } @else { p.small.muted { "Your role can read tickets but not answer them." } }
                }
                div.card {
                    h2 { "Ticket" }
                    @if act {
                        form method="post" action=(format!("/support/{id}/update")) {
                            (csrf(&staff))
                            label for="status" { "Status" }
                            select #status name="status" {
                                @for s in Status::ALL { option value=(s.as_str()) selected[s.as_str() == t.status] { (s.as_str()) } }
                            }
                            label for="snooze_until" { "Snoozed until (with status snoozed)" }
                            input #snooze_until name="snooze_until" type="datetime-local";
                            label for="priority" { "Priority" }
                            select #priority name="priority" {
                                @for p in Priority::ALL { option value=(p.as_str()) selected[p.as_str() == t.priority] { (p.as_str()) } }
                            }
                            label for="assignee" { "Assignee (a staff e-mail; empty: nobody)" }
                            input #assignee name="assignee" value=(t.assignee.clone().unwrap_or_default()) placeholder=(staff.user.email);
                            @if !support.teams.is_empty() {
                                label for="team" { "Team" }
                                select #team name="team" {
                                    option value="" { "none" }
                                    @for x in &support.teams { option value=(x.name) selected[Some(&x.name) == t.team.as_ref()] { (x.name) } }
                                }
                            }
                            label for="tags" { "Tags (comma-separated)" }
                            input #tags name="tags" value=(t.tags.join(", "));
                            button type="submit" { "Save" }
                        }
                    }
                    h2 { "Articles that may answer it" }
                    @if articles.is_empty() {
                        p.small.muted { "No published article matches its words." }
                    } @else {
                        ul {
                            @for a in &articles {
                                li {
                                    a href=(format!("/help/articles/{}", a.id)) { (a.title) }
                                    br;
                                    span.small.muted { (a.snippet) }
                                }
                            }
                        }
                        p.small.muted { "Paste a link into the reply: customers read it on the help centre." }
                    }
                    p.small.muted { "Replies go from the support address with the ticket number in the subject; the customer's answers come back to this ticket, and reopen it once resolved." }
                }
            }
        },
    ))
}

pub async fn reply(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<i64>,
    Form(f): Form<HashMap<String, String>>,
) -> UiResult<Redirect> {
    staff.check(&f)?;
    staff.require(staff.role.can_support(), "answer tickets")?;
    let body = f.get("body").map(|b| b.trim()).unwrap_or("");
    let canned = f.get("canned").map(|c| c.as_str()).unwrap_or("");
    let then = match f.get("then").map(String::as_str).unwrap_or("") {
        "" => None,
        s => Some(Status::parse("then", s).map_err(|e| UiError::Invalid(e.to_string()))?),
    };
    let me = staff.user.email.clone();
    let (author, done) = match f.get("as").map(String::as_str) {
        Some("note") => (Author::Note(me), "Note added."),
        _ => (Author::Staff(me), "Reply sent."),
    };
    if body.is_empty() && !canned.is_empty() {
        let me = &staff.user.email;
        tickets::reply_canned(&state.store, &state.email, id, canned, me, author, then).await?;
    } else {
        tickets::reply(&state.store, &state.email, id, body, author, then).await?;
    }
    Ok(back(id, done))
}

fn back(id: i64, msg: &str) -> Redirect {
    layout::done(&format!("/support/{id}"), msg)
}

pub async fn update(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<i64>,
    Form(f): Form<HashMap<String, String>>,
) -> UiResult<Redirect> {
    staff.check(&f)?;
    staff.require(staff.role.can_support(), "change tickets")?;
    let get = |k: &str| f.get(k).map(|v| v.trim().to_string());
    // The browser's datetime-local has no zone: read as UTC, as the app shows times.
    let snooze = get("snooze_until").filter(|v| !v.is_empty()).map(|v| {
        if v.len() == 16 {
            format!("{v}:00Z")
        } else {
            v
        }
    });
    let p = Patch {
        status: get("status"),
        priority: get("priority"),
        assignee: get("assignee"),
        tags: get("tags").map(|t| {
            t.split(',')
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .map(str::to_string)
                .collect()
        }),
        snooze_until: snooze,
        team: get("team"),
    };
    tickets::update(&state.store, &state.email, id, p).await?;
    Ok(back(id, "Saved."))
}

pub async fn new_page(State(_state): State<AppState>, staff: Staff) -> UiResult<Markup> {
    staff.require(staff.role.can_support(), "open tickets")?;
    Ok(layout::page(
        &staff,
        "New ticket",
        "/support",
        html! {
            div.card.wide {
                form method="post" action="/support/new" {
                    (csrf(&staff))
                    label for="requester" { "Customer's e-mail" }
                    input #requester name="requester" type="email" required placeholder="ann@example.com";
                    label for="subject" { "Subject" }
                    input #subject name="subject" required;
                    label for="body" { "What they said" }
                    textarea #body name="body" required {}
                    button type="submit" { "Open ticket" }
                }
            }
        },
    ))
}

pub async fn create(
    State(state): State<AppState>,
    staff: Staff,
    Form(f): Form<HashMap<String, String>>,
) -> UiResult<Redirect> {
    staff.check(&f)?;
    staff.require(staff.role.can_support(), "open tickets")?;
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    let t = tickets::open(
        &state.store,
        NewTicket {
            requester: json!(format!("email:{}", get("requester").trim())),
            subject: get("subject"),
            body: get("body"),
            priority: None,
            tags: Vec::new(),
        },
        "app",
    )
    .await?;
    Ok(back(t.id, "Ticket opened."))
}

/// The 360 page's card: the person's latest tickets.
pub async fn card(
    state: &AppState,
    person: &rapport_domain::model::ProfileView,
) -> UiResult<Markup> {
    let list = tickets::of_person(&state.store, person, 10).await?;
    Ok(html! {
        div.card {
            h2 { "Tickets" }
            @if list.is_empty() { p.empty { "No ticket." } }
            table { @for t in &list { tr {
                td.wrap { a href=(format!("/support/{}", t.id)) { "#" (t.number) " " (t.subject) } }
                td { (status_badge(&t.status)) }
                td.small.muted { (layout::when(to_datetime(t.updated_at))) }
            } } }
        }
    })
}
