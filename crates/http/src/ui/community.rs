//! The community desk (`/community-desk`): posts text analysis held for review
//! (publish or keep hidden), recent questions (lock, hide, mark an answer official),
//! ideas and their statuses (voters are e-mailed), and the knowledge base — articles
//! written and edited (`/community-desk/articles/{id}`), customers' proposals and
//! edits reviewed with their diff, and the tickets the help centre avoided. Agents and
//! admins act; marketers and viewers read.

use axum::extract::{Path, Query, State};
use axum::response::Redirect;
use axum::Form;
use maud::{html, Markup};
use rapport_app::community::{self, Actor, Moderation};
use rapport_app::kb::{self, ArticleInput};
use rapport_domain::community::{ArticleStatus, IdeaStatus};
use rapport_domain::time::to_datetime;
use rapport_store::{Post, PostFilter};
use std::collections::HashMap;

use super::auth::{Staff, UiResult};
use super::layout::{self, csrf};
use super::names::Names;
use crate::AppState;

const HOME: &str = "/community-desk";

fn posts(kind: Option<&str>, flagged: bool, limit: usize) -> PostFilter {
    PostFilter {
        kind: kind.map(str::to_string),
        flagged,
        with_hidden: true,
        limit,
        ..Default::default()
    }
}

fn author(p: &Post, names: &Names) -> Markup {
    match (p.profile_id, &p.staff) {
        (Some(id), _) => names.link(id),
        (None, Some(s)) => html! { (s) },
        _ => html! { span.muted { "erased" } },
    }
}

/// One button that posts an action on a post.
fn act(staff: &Staff, id: i64, action: &str, label: &str) -> Markup {
    html! {
        form.inline method="post" action=(format!("{HOME}/posts/{id}")) {
            (csrf(staff))
            button.secondary type="submit" name="action" value=(action) { (label) }
        }
    }
}

pub async fn page(
    State(state): State<AppState>,
    staff: Staff,
    Query(q): Query<HashMap<String, String>>,
) -> UiResult<Markup> {
    let held = community::list(&state.store, posts(None, true, 50)).await?;
    let questions = community::list(&state.store, posts(Some("question"), false, 20)).await?;
    let mut ideas = community::list(&state.store, posts(Some("idea"), false, 50)).await?;
    ideas.sort_by_key(|p| -p.score);
    let proposals = state
        .store
        .articles(Some("proposed".into()), None, 50)
        .await?;
    let edits = state.store.proposed_revisions(50).await?;
    let mut diffs = Vec::new();
    for e in &edits {
        diffs.push(kb::diff(&state.store, e.id).await?.1);
    }
    let articles = state.store.articles(None, None, 100).await?;
    let deflection = kb::deflection(&state.store, 30).await?;
    let names = Names::of(
        &state.store,
        held.iter()
            .chain(&questions)
            .chain(&ideas)
            .filter_map(|p| p.profile_id)
            .chain(proposals.iter().filter_map(|a| a.author_profile))
            .chain(edits.iter().filter_map(|r| r.author_profile)),
    )
    .await?;
    let can = staff.role.can_support();
    Ok(layout::page(
        &staff,
        "Community",
        HOME,
        html! {
            @if let Some(m) = q.get("msg") { div.ok role="status" { (m) } }
            div.figures {
                span.figure { span.muted { "Held for review " } strong { (held.len()) } }
                span.figure { span.muted { "Proposals " } strong { (proposals.len() + edits.len()) } }
                span.figure { span.muted { "Help articles opened from the ticket form (30 days) " } strong { (deflection.suggested_opened) } }
                span.figure { span.muted { "Tickets avoided " } strong { (deflection.tickets_avoided) } }
                " " a href="/community" { "Public community" } " · " a href="/help" { "Help centre" } " · " a href="/ideas" { "Ideas" }
            }
            div.grid.wide-cards {
                div.card.half {
                    h2 { "Held for review" }
                    @if held.is_empty() { p.empty { "Nothing waits. Posts text analysis finds spam or toxic wait here." } }
                    @for p in &held {
                        article.message {
                            div.small.muted { span.badge.warn { (p.flag.clone().unwrap_or_default()) } " " (p.kind) " by " (author(p, &names)) " · " (layout::when(to_datetime(p.created_at))) }
                            @if let Some(t) = &p.title { strong { (t) } }
                            div.body { (p.body) }
                            @if can { (act(&staff, p.id, "publish", "Publish")) " " (act(&staff, p.id, "hide", "Keep hidden")) }
                        }
                    }
                }
                div.card {
                    h2 { "Knowledge base proposals" }
                    @if proposals.is_empty() && edits.is_empty() { p.empty { "No proposal waits." } }
                    @for a in &proposals {
                        article.message {
                            div.small.muted { "New article by " (a.author_profile.map(|p| names.link(p)).unwrap_or_default()) }
                            strong { (a.title) }
                            div.body { (a.body) }
                            @if can {
                                form.inline method="post" action=(format!("{HOME}/articles/{}/review", a.id)) {
                                    (csrf(&staff))
                                    button type="submit" name="accept" value="1" { "Publish" }
                                    " "
                                    button.secondary type="submit" name="accept" value="0" { "Reject" }
                                }
                            }
                        }
                    }
                    @for (e, d) in edits.iter().zip(&diffs) {
                        article.message {
                            div.small.muted { "Edit of article " (e.article_id) " by " (e.author_profile.map(|p| names.link(p)).unwrap_or_default()) @if let Some(n) = &e.note { " — " (n) } }
                            // Focusable: a long diff scrolls, and keyboards must reach it.
                            pre.small tabindex="0" { (d) }
                            @if can {
                                form.inline method="post" action=(format!("{HOME}/revisions/{}", e.id)) {
                                    (csrf(&staff))
                                    button type="submit" name="accept" value="1" { "Accept edit" }
                                    " "
                                    button.secondary type="submit" name="accept" value="0" { "Reject" }
                                }
                            }
                        }
                    }
                }
            }
            div.grid.wide-cards {
                div.card.half {
                    h2 { "Ideas" }
                    @if ideas.is_empty() { p.empty { "No idea yet: customers suggest them on /ideas." } }
                    @else { table {
                        tr { th { "Votes" } th { "Idea" } th { "Status" } }
                        @for p in ideas.iter().filter(|p| p.status != "duplicate") { tr {
                            td.num { (p.score) }
                            td.wrap { (p.title.clone().unwrap_or_default()) div.small.muted { "by " (author(p, &names)) } }
                            td {
                                @if can {
                                    form method="post" action=(format!("{HOME}/ideas/{}", p.id)) {
                                        (csrf(&staff))
                                        label.sr for=(format!("st{}", p.id)) { "Status" }
                                        select id=(format!("st{}", p.id)) name="status" {
                                            @for s in IdeaStatus::ALL.iter().filter(|s| **s != IdeaStatus::Duplicate) {
                                                option value=(s.as_str()) selected[s.as_str() == p.status] { (s.as_str()) }
                                            }
                                        }
                                        label.sr for=(format!("note{}", p.id)) { "A word to the voters" }
                                        input id=(format!("note{}", p.id)) name="note" placeholder="A word to the voters";
                                        button.secondary type="submit" { "Save" }
                                    }
                                } @else { (p.status) }
                            }
                        } }
                    } }
                }
                div.card {
                    h2 { "Recent questions" }
                    table { @for p in &questions { tr {
                        td.wrap { a href=(format!("/community/questions/{}", p.id)) { (p.title.clone().unwrap_or_default()) }
                            @if p.hidden { " " span.badge { "hidden" } } @if p.locked { " " span.badge { "locked" } } }
                        td.small.muted.num { (p.score) "▲" }
                        td { @if can {
                            @if p.locked { (act(&staff, p.id, "unlock", "Unlock")) } @else { (act(&staff, p.id, "lock", "Lock")) }
                            " "
                            @if p.hidden { (act(&staff, p.id, "show", "Show")) } @else { (act(&staff, p.id, "hide", "Hide")) }
                        } }
                    } } }
                }
            }
            div.card.wide {
                h2 { "Articles" }
                table {
                    tr { th { "Title" } th { "Category" } th { "Status" } th { "Helpful" } th { "Updated" } }
                    @for a in &articles { tr {
                        td.wrap { a href=(format!("{HOME}/articles/{}", a.id)) { (a.title) } }
                        td.small { (a.category.clone().unwrap_or_default()) }
                        td { span.badge { (a.status) } }
                        td.small.muted { (a.helpful_yes) " yes · " (a.helpful_no) " no" }
                        td.small.muted { (layout::when(to_datetime(a.updated_at))) }
                    } }
                }
                @if can {
                    h3 { "New article" }
                    (article_form(&staff, None))
                }
            }
        },
    ))
}

fn article_form(staff: &Staff, a: Option<&rapport_store::Article>) -> Markup {
    let action = a.map_or(format!("{HOME}/articles"), |a| {
        format!("{HOME}/articles/{}", a.id)
    });
    html! {
        form method="post" action=(action) {
            (csrf(staff))
            label for="a-title" { "Title" }
            input #a-title name="title" required maxlength="200" value=(a.map(|a| a.title.clone()).unwrap_or_default());
            label for="a-category" { "Category" }
            input #a-category name="category" maxlength="60" value=(a.and_then(|a| a.category.clone()).unwrap_or_default());
            label for="a-body" { "Text" }
            textarea #a-body name="body" required rows="10" { (a.map(|a| a.body.clone()).unwrap_or_default()) }
            label for="a-status" { "Status" }
            select #a-status name="status" {
                @for s in [ArticleStatus::Draft, ArticleStatus::Published, ArticleStatus::Archived] {
                    option value=(s.as_str()) selected[a.is_some_and(|a| a.status == s.as_str())] { (s.as_str()) }
                }
            }
            label for="a-note" { "What changed (for the history)" }
            input #a-note name="note" maxlength="500";
            button type="submit" { "Save article" }
        }
    }
}

pub async fn article(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<i64>,
    Query(q): Query<HashMap<String, String>>,
) -> UiResult<Markup> {
    let a = kb::get(&state.store, id, true).await?;
    let revisions = state.store.revisions(id).await?;
    Ok(layout::page(
        &staff,
        &a.title,
        HOME,
        html! {
            @if let Some(m) = q.get("msg") { div.ok role="status" { (m) } }
            div.grid.wide-cards {
                div.card.half {
                    h2 { "Article" }
                    @if staff.role.can_support() { (article_form(&staff, Some(&a))) } @else { div.body { (a.body) } }
                    @if a.status == "published" { p.small { a href=(format!("/help/articles/{id}")) { "As customers see it" } } }
                }
                div.card {
                    h2 { "History" }
                    table { @for r in &revisions { tr {
                        td.small { (layout::when(to_datetime(r.at))) }
                        td { span.badge { (r.status) } }
                        td.small.muted { (r.author_staff.clone().unwrap_or_else(|| "a customer".into())) @if let Some(n) = &r.note { " — " (n) } }
                    } } }
                }
            }
        },
    ))
}

fn input(f: &HashMap<String, String>) -> ArticleInput {
    let get = |k: &str| f.get(k).cloned();
    ArticleInput {
        title: get("title").unwrap_or_default(),
        body: get("body").unwrap_or_default(),
        category: get("category"),
        status: get("status"),
        note: get("note"),
    }
}

pub async fn create_article(
    State(state): State<AppState>,
    staff: Staff,
    Form(f): Form<HashMap<String, String>>,
) -> UiResult<Redirect> {
    staff.check(&f)?;
    staff.require(staff.role.can_support(), "write articles")?;
    let a = kb::create(
        &state.store,
        &Actor::Staff(staff.user.email.clone()),
        input(&f),
    )
    .await?;
    Ok(layout::done(
        &format!("{HOME}/articles/{}", a.id),
        "Article saved.",
    ))
}

pub async fn save_article(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<i64>,
    Form(f): Form<HashMap<String, String>>,
) -> UiResult<Redirect> {
    staff.check(&f)?;
    staff.require(staff.role.can_support(), "write articles")?;
    kb::update(&state.store, &staff.user.email, id, input(&f)).await?;
    Ok(layout::done(
        &format!("{HOME}/articles/{id}"),
        "Article saved.",
    ))
}

fn accepted(f: &HashMap<String, String>) -> bool {
    f.get("accept").map(String::as_str) == Some("1")
}

pub async fn review(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<i64>,
    Form(f): Form<HashMap<String, String>>,
) -> UiResult<Redirect> {
    staff.check(&f)?;
    staff.require(staff.role.can_support(), "review proposals")?;
    let a = kb::review(&state.store, &staff.user.email, id, accepted(&f)).await?;
    Ok(layout::done(
        HOME,
        &format!("“{}” is {}.", a.title, a.status),
    ))
}

pub async fn decide(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<i64>,
    Form(f): Form<HashMap<String, String>>,
) -> UiResult<Redirect> {
    staff.check(&f)?;
    staff.require(staff.role.can_support(), "review proposals")?;
    let yes = accepted(&f);
    kb::decide_edit(&state.store, &staff.user.email, id, yes).await?;
    Ok(layout::done(
        HOME,
        if yes {
            "Edit accepted."
        } else {
            "Edit rejected."
        },
    ))
}

pub async fn moderate(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<i64>,
    Form(f): Form<HashMap<String, String>>,
) -> UiResult<Redirect> {
    staff.check(&f)?;
    staff.require(staff.role.can_support(), "moderate")?;
    let m = match f.get("action").map(String::as_str).unwrap_or("") {
        "publish" => Moderation {
            hidden: Some(false),
            reviewed: true,
            ..Default::default()
        },
        "hide" => Moderation {
            hidden: Some(true),
            reviewed: true,
            ..Default::default()
        },
        "show" => Moderation {
            hidden: Some(false),
            ..Default::default()
        },
        "lock" => Moderation {
            locked: Some(true),
            ..Default::default()
        },
        "unlock" => Moderation {
            locked: Some(false),
            ..Default::default()
        },
        "official" => Moderation {
            official: Some(true),
            ..Default::default()
        },
        other => {
            return Err(super::auth::UiError::Invalid(format!(
                "action: `{other}` is not a moderation"
            )))
        }
    };
    community::moderate(&state.store, id, m).await?;
    Ok(layout::done(HOME, "Done."))
}

pub async fn idea(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<i64>,
    Form(f): Form<HashMap<String, String>>,
) -> UiResult<Redirect> {
    staff.check(&f)?;
    staff.require(staff.role.can_support(), "move ideas")?;
    let status = f.get("status").map(String::as_str).unwrap_or("");
    let (p, told) = community::set_idea_status(
        &state.store,
        &state.email,
        id,
        status,
        f.get("note").map(String::as_str),
    )
    .await?;
    Ok(layout::done(
        HOME,
        &format!(
            "“{}” is {}; {told} voters told.",
            p.title.unwrap_or_default(),
            p.status
        ),
    ))
}
