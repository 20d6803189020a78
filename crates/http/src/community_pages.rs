//! The public community and help centre, in the portal's frame: anybody reads; a
//! signed-in customer (the portal's session) asks, answers, votes, accepts, suggests
//! ideas and proposes articles. What people wrote is always rendered escaped; the
//! schema.org `QAPage` data escapes `<` so no text can close its script element.
//!
//! - `/community` (search, newest or top questions, ask), `/community/questions/{id}`
//! - `/ideas` (top ideas, vote within a budget, suggest)
//! - `/help` (search, articles by category), `/help/articles/{id}` ("was this
//!   helpful?", suggest an edit), `/help/propose`, `/help/suggest?q=` (JSON, the ticket
//!   form's suggestions)

use crate::portal::{checked, customer, page, Customer, PResult};
use crate::AppState;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use maud::{html, Markup, PreEscaped};
use rapport_app::community::{self, Actor};
use rapport_app::kb::{self, ArticleInput};
use rapport_domain::community::IdeaStatus;
use rapport_domain::resolve::ProfileId;
use rapport_domain::time::to_datetime;
use rapport_store::{Post, PostFilter, StoreError};
use serde_json::json;
use std::collections::HashMap;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/community", get(questions))
        .route("/community/ask", post(ask))
        .route("/community/questions/{id}", get(question))
        .route("/community/questions/{id}/answers", post(answer))
        .route("/community/questions/{id}/accept", post(accept))
        .route("/community/posts/{id}/vote", post(vote))
        .route("/community/posts/{id}/comment", post(comment))
        .route("/community/posts/{id}/edit", post(edit))
        .route("/ideas", get(ideas).post(suggest))
        .route("/ideas/{id}/vote", post(idea_vote))
        .route("/help", get(help))
        .route("/help/suggest", get(suggestions))
        .route("/help/propose", get(propose_page).post(propose))
        .route("/help/articles/{id}", get(article))
        .route("/help/articles/{id}/helpful", post(helpful))
        .route("/help/articles/{id}/edit", post(propose_edit))
}

type F = Form<HashMap<String, String>>;

fn val<'a>(f: &'a HashMap<String, String>, k: &str) -> &'a str {
    f.get(k).map(String::as_str).unwrap_or("")
}

/// The signed-in customer whose form this is (its token checked); `None` when signed
/// out (the handler sends them to sign in).
async fn acting(
    state: &AppState,
    headers: &HeaderMap,
    f: &HashMap<String, String>,
) -> Result<Option<Customer>, StoreError> {
    let c = customer(state, headers).await?;
    if let Some(c) = &c {
        checked(c, f)?;
    }
    Ok(c)
}

fn sign_in_first() -> Response {
    Redirect::to("/me").into_response()
}

fn nav(active: &str) -> Markup {
    html! {
        nav aria-label="Community" style="display:flex;gap:1rem;margin-bottom:1rem" {
            @for (href, label) in [("/community", "Questions"), ("/ideas", "Ideas"), ("/help", "Help centre"), ("/me", "My account")] {
                @if href == active { strong { (label) } } @else { a href=(href) { (label) } }
            }
        }
    }
}

fn csrf(c: &Option<Customer>) -> Markup {
    html! { @if let Some(c) = c { input type="hidden" name="_csrf" value=(c.csrf); } }
}

/// How a customer appears in public: first name and initial, and their reputation.
async fn byline(state: &AppState, p: &Post, cache: &mut HashMap<ProfileId, String>) -> String {
    if p.staff.is_some() {
        return "Staff".into();
    }
    let Some(id) = p.profile_id else {
        return "A former member".into();
    };
    if let Some(n) = cache.get(&id) {
        return n.clone();
    }
    let name = match state.store.profile(id).await {
        Ok(v) => {
            let t = |k: &str| v.traits.get(k).and_then(|x| x.as_str()).map(str::to_string);
            let full = t("name").or_else(|| {
                t("first_name").map(|f| format!("{f} {}", t("last_name").unwrap_or_default()))
            });
            let shown = match full.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
                Some(f) => {
                    let mut w = f.split_whitespace();
                    let first = w.next().unwrap_or_default().to_string();
                    match w.last().and_then(|l| l.chars().next()) {
                        Some(i) => format!("{first} {i}."),
                        None => first,
                    }
                }
                None => format!("Member {}", v.id),
            };
            let rep = community::reputation(&state.store, v.id)
                .await
                .map(|r| r.0)
                .unwrap_or(0);
            format!("{shown} · {rep} rep")
        }
        Err(_) => "A former member".into(),
    };
    cache.insert(id, name.clone());
    name
}

fn when(at: i64) -> String {
    to_datetime(at).format("%Y-%m-%d").to_string()
}

async fn settings(state: &AppState) -> Result<rapport_app::portal::PortalSettings, StoreError> {
    rapport_app::portal::settings(&state.store).await
}

async fn questions(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> PResult<Response> {
    let s = settings(&state).await?;
    let c = customer(&state, &headers).await?;
    let text = q
        .get("q")
        .map(String::as_str)
        .unwrap_or("")
        .trim()
        .to_string();
    let top = q.get("sort").map(String::as_str) == Some("top");
    let hits = if text.is_empty() {
        None
    } else {
        Some(community::search(&state.store, &text, 20).await?)
    };
    let list = community::list(
        &state.store,
        PostFilter {
            kind: Some("question".into()),
            top,
            limit: 50,
            ..Default::default()
        },
    )
    .await?;
    let body = html! {
        (nav("/community"))
        section {
            form method="get" action="/community" role="search" {
                label for="q" { "Search questions and answers" }
                input #q type="text" name="q" value=(text);
                button type="submit" { "Search" }
            }
        }
        @if let Some(hits) = &hits {
            section aria-labelledby="found" {
                h2 #found { (hits.len()) " found" }
                @for h in hits {
                    p {
                        a href=(format!("/community/questions/{}", h.topic)) { (h.title) }
                        br; span.note { (h.snippet) }
                    }
                }
            }
        }
        section aria-labelledby="list" {
            h2 #list { @if top { "Top questions" } @else { "Newest questions" } }
            p.note { a href="/community" { "Newest" } " · " a href="/community?sort=top" { "Top" } }
            table {
                @for p in &list { tr {
                    td { a href=(format!("/community/questions/{}", p.id)) { (p.title.as_deref().unwrap_or("")) } }
                    td.note { (p.score) " votes" }
                    td.note { @if p.accepted_id.is_some() { "answered" } @else { "open" } }
                    td.note { (when(p.created_at)) }
                } }
            }
        }
        section aria-labelledby="ask" {
            h2 #ask { "Ask the community" }
            @if c.is_some() {
                form method="post" action="/community/ask" {
                    (csrf(&c))
                    label for="ask-title" { "Your question" }
                    input #ask-title type="text" name="title" required maxlength="200";
                    label for="ask-body" { "Details" }
                    textarea #ask-body name="body" required rows="5" style="width:100%;font:inherit" {}
                    button type="submit" { "Ask" }
                }
            } @else {
                p { a href="/me" { "Sign in" } " to ask, answer and vote." }
            }
        }
    };
    Ok(page(&s, "Community", body).into_response())
}

async fn ask(State(state): State<AppState>, headers: HeaderMap, Form(f): F) -> PResult<Response> {
    let Some(c) = acting(&state, &headers, &f).await? else {
        return Ok(sign_in_first());
    };
    let p = community::ask(
        &state.store,
        &Actor::Customer(c.person),
        val(&f, "title"),
        val(&f, "body"),
    )
    .await?;
    Ok(Redirect::to(&format!("/community/questions/{}", p.id)).into_response())
}

/// The schema.org QAPage data for a question, with `<` escaped.
fn qa_json(q: &Post, answers: &[(Post, String)], asker: &str, base: &str) -> String {
    let answer = |a: &Post, by: &str| {
        json!({"@type": "Answer", "text": a.body, "upvoteCount": a.score,
            "dateCreated": to_datetime(a.created_at).to_rfc3339(),
            "url": format!("{base}/community/questions/{}#a{}", q.id, a.id),
            "author": {"@type": "Person", "name": by}})
    };
    let mut main = json!({"@type": "Question", "name": q.title, "text": q.body,
        "answerCount": answers.len(), "upvoteCount": q.score,
        "dateCreated": to_datetime(q.created_at).to_rfc3339(),
        "author": {"@type": "Person", "name": asker}});
    if let Some((a, by)) = answers.iter().find(|(a, _)| Some(a.id) == q.accepted_id) {
        main["acceptedAnswer"] = answer(a, by);
    }
    let suggested: Vec<_> = answers
        .iter()
        .filter(|(a, _)| Some(a.id) != q.accepted_id)
        .map(|(a, by)| answer(a, by))
        .collect();
    if !suggested.is_empty() {
        main["suggestedAnswer"] = json!(suggested);
    }
    json!({"@context": "https://schema.org", "@type": "QAPage", "mainEntity": main})
        .to_string()
        .replace('<', "\\u003c")
}

async fn question(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> PResult<Response> {
    let s = settings(&state).await?;
    let c = customer(&state, &headers).await?;
    let q = community::get(&state.store, id, false).await?;
    if q.kind != "question" {
        return Err(StoreError::NotFound(format!("question {id}")).into());
    }
    // The whole thread: answers, and comments on the question and on its answers.
    let replies = community::list(
        &state.store,
        PostFilter {
            topic: Some(id),
            limit: 2_000,
            ..Default::default()
        },
    )
    .await?;
    let mut names = HashMap::new();
    let asker = byline(&state, &q, &mut names).await;
    let mut answers = Vec::new();
    let mut comments = Vec::new();
    for r in replies {
        let by = byline(&state, &r, &mut names).await;
        if r.kind == "answer" {
            answers.push((r, by));
        } else {
            comments.push((r, by));
        }
    }
    // The accepted answer first, then official ones, then by score.
    answers.sort_by_key(|(a, _)| (Some(a.id) != q.accepted_id, !a.official, -a.score, a.id));
    let (mine, my_votes, my_ids) = match &c {
        Some(c) => {
            let me = state.store.profile(c.person).await?;
            let ids: Vec<i64> = std::iter::once(q.id)
                .chain(answers.iter().map(|(a, _)| a.id))
                .collect();
            let votes: HashMap<i64, i64> = state
                .store
                .votes_by(me.member_ids.clone(), ids)
                .await?
                .into_iter()
                .collect();
            (
                q.profile_id.is_some_and(|a| me.member_ids.contains(&a)),
                votes,
                me.member_ids,
            )
        }
        None => (false, HashMap::new(), Vec::new()),
    };
    let base = crate::portal::base_url(&state, &headers).await?;
    let ld = qa_json(&q, &answers, &asker, &base);
    let vote_form = |p: &Post| {
        let mine = my_votes.get(&p.id).copied().unwrap_or(0);
        let own = p.profile_id.is_some_and(|a| my_ids.contains(&a));
        html! {
            @if c.is_some() && !own {
                form method="post" action=(format!("/community/posts/{}/vote", p.id)) style="display:inline" {
                    (csrf(&c))
                    input type="hidden" name="back" value=(format!("/community/questions/{}", q.id));
                    button type="submit" name="value" value=(if mine == 1 { "0" } else { "1" })
                        aria-label=(format!("Vote up post {}", p.id)) aria-pressed=(mine == 1) { "▲ " (p.score) }
                    button type="submit" name="value" value=(if mine == -1 { "0" } else { "-1" })
                        aria-label=(format!("Vote down post {}", p.id)) aria-pressed=(mine == -1) style="margin-left:.3rem" { "▼" }
                }
            } @else {
                span.note { (p.score) " votes" }
            }
        }
    };
    let here = format!("/community/questions/{}", q.id);
    // A comment box under a post, and an edit box under the reader's own: folded away,
    // so the thread stays readable.
    let own_forms = |p: &Post| {
        let own = p.profile_id.is_some_and(|a| my_ids.contains(&a));
        html! {
            @if c.is_some() && !q.locked {
                details style="margin:.3rem 0" {
                    summary { "Comment" }
                    form method="post" action=(format!("/community/posts/{}/comment", p.id)) {
                        (csrf(&c))
                        input type="hidden" name="back" value=(here);
                        label for=(format!("comment-{}", p.id)) { "Your comment" }
                        textarea id=(format!("comment-{}", p.id)) name="body" required maxlength="2000" rows="2" style="width:100%;font:inherit" {}
                        button type="submit" { "Post comment" }
                    }
                }
                @if own {
                    details style="margin:.3rem 0" {
                        summary { "Edit" }
                        form method="post" action=(format!("/community/posts/{}/edit", p.id)) {
                            (csrf(&c))
                            input type="hidden" name="back" value=(here);
                            @if let Some(t) = &p.title {
                                label for=(format!("title-{}", p.id)) { "Title" }
                                input id=(format!("title-{}", p.id)) name="title" value=(t) required maxlength="200" style="width:100%";
                            }
                            label for=(format!("body-{}", p.id)) { "Text" }
                            textarea id=(format!("body-{}", p.id)) name="body" required rows="5" style="width:100%;font:inherit" { (p.body) }
                            button type="submit" { "Save" }
                        }
                    }
                }
            }
        }
    };
    let body = html! {
        script type="application/ld+json" { (PreEscaped(ld)) }
        (nav("/community"))
        section {
            div.note { (asker) " · " (when(q.created_at)) @if q.locked { " · locked" } }
            div style="white-space:pre-wrap;margin:.6rem 0" { (q.body) }
            (vote_form(&q))
            @for (cm, by) in comments.iter().filter(|(cm, _)| cm.parent_id == Some(q.id)) {
                p.note { (cm.body) " — " (by) }
            }
            (own_forms(&q))
        }
        section aria-labelledby="answers" {
            h2 #answers { (answers.len()) " answers" }
            @for (a, by) in &answers {
                div id=(format!("a{}", a.id)) style="border-left:3px solid #dfe3e8;padding:.2rem .8rem;margin:.8rem 0" {
                    div.note {
                        @if Some(a.id) == q.accepted_id { strong { "✓ Accepted answer" } " · " }
                        @if a.official { strong { "Official answer" } " · " }
                        (by) " · " (when(a.created_at))
                    }
                    div style="white-space:pre-wrap;margin:.4rem 0" { (a.body) }
                    (vote_form(a))
                    @if mine && Some(a.id) != q.accepted_id {
                        form method="post" action=(format!("/community/questions/{}/accept", q.id)) style="display:inline;margin-left:.6rem" {
                            (csrf(&c))
                            input type="hidden" name="answer" value=(a.id);
                            button type="submit" { "Accept this answer" }
                        }
                    }
                    @for (cm, cby) in comments.iter().filter(|(cm, _)| cm.parent_id == Some(a.id)) {
                        p.note { (cm.body) " — " (cby) }
                    }
                    (own_forms(a))
                }
            }
        }
        section aria-labelledby="reply" {
            h2 #reply { "Your answer" }
            @if q.locked {
                p { "This question is locked." }
            } @else if c.is_some() {
                form method="post" action=(format!("/community/questions/{}/answers", q.id)) {
                    (csrf(&c))
                    label for="answer-body" { "Answer" }
                    textarea #answer-body name="body" required rows="5" style="width:100%;font:inherit" {}
                    button type="submit" { "Post your answer" }
                }
            } @else {
                p { a href="/me" { "Sign in" } " to answer." }
            }
        }
    };
    Ok(page(&s, q.title.as_deref().unwrap_or("Question"), body).into_response())
}

async fn answer(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(f): F,
) -> PResult<Response> {
    let Some(c) = acting(&state, &headers, &f).await? else {
        return Ok(sign_in_first());
    };
    let a = community::answer(
        &state.store,
        &Actor::Customer(c.person),
        id,
        val(&f, "body"),
    )
    .await?;
    Ok(Redirect::to(&format!("/community/questions/{id}#a{}", a.id)).into_response())
}

async fn comment(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(f): F,
) -> PResult<Response> {
    let Some(c) = acting(&state, &headers, &f).await? else {
        return Ok(sign_in_first());
    };
    community::comment(
        &state.store,
        &Actor::Customer(c.person),
        id,
        val(&f, "body"),
    )
    .await?;
    Ok(Redirect::to(&back(&f, "/community")).into_response())
}

/// A customer's own question or answer, changed (anyone else's is "not found").
async fn edit(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(f): F,
) -> PResult<Response> {
    let Some(c) = acting(&state, &headers, &f).await? else {
        return Ok(sign_in_first());
    };
    let title = f.get("title").map(String::as_str);
    community::edit(
        &state.store,
        &Actor::Customer(c.person),
        id,
        title,
        val(&f, "body"),
    )
    .await?;
    Ok(Redirect::to(&back(&f, "/community")).into_response())
}

async fn accept(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(f): F,
) -> PResult<Response> {
    let Some(c) = acting(&state, &headers, &f).await? else {
        return Ok(sign_in_first());
    };
    let answer: i64 = val(&f, "answer")
        .parse()
        .map_err(|_| StoreError::invalid("answer", "an answer's id"))?;
    community::accept(&state.store, &Actor::Customer(c.person), id, answer).await?;
    Ok(Redirect::to(&format!("/community/questions/{id}")).into_response())
}

/// Where a form may send the reader back to: a path on this site only.
fn back(f: &HashMap<String, String>, default: &str) -> String {
    let b = val(f, "back");
    if b.starts_with('/') && !b.starts_with("//") && !b.contains('\\') {
        b.to_string()
    } else {
        default.to_string()
    }
}

async fn vote(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(f): F,
) -> PResult<Response> {
    let Some(c) = acting(&state, &headers, &f).await? else {
        return Ok(sign_in_first());
    };
    let value: i64 = val(&f, "value")
        .parse()
        .map_err(|_| StoreError::invalid("value", "1, -1 or 0"))?;
    community::vote(&state.store, c.person, id, value).await?;
    Ok(Redirect::to(&back(&f, "/community")).into_response())
}

async fn ideas(State(state): State<AppState>, headers: HeaderMap) -> PResult<Response> {
    let s = settings(&state).await?;
    let c = customer(&state, &headers).await?;
    let list = community::list(
        &state.store,
        PostFilter {
            kind: Some("idea".into()),
            top: true,
            limit: 100,
            ..Default::default()
        },
    )
    .await?;
    let budget = community::settings(&state.store).await?.idea_votes;
    let (votes, used) = match &c {
        Some(c) => {
            let me = state.store.profile(c.person).await?;
            let ids = list.iter().map(|p| p.id).collect();
            let votes: HashMap<i64, i64> = state
                .store
                .votes_by(me.member_ids.clone(), ids)
                .await?
                .into_iter()
                .collect();
            let holding = IdeaStatus::ALL
                .iter()
                .filter(|s| s.holds_votes())
                .map(|s| s.as_str().to_string())
                .collect();
            let used = state.store.idea_votes_used(me.member_ids, holding).await?;
            (votes, used)
        }
        None => (HashMap::new(), 0),
    };
    let body = html! {
        (nav("/ideas"))
        @if c.is_some() { p.note { "You have " ((budget - used).max(0)) " of " (budget) " votes left." } }
        section aria-labelledby="ideas" {
            h2 #ideas { "Ideas" }
            @for p in list.iter().filter(|p| p.status != "duplicate") {
                div style="display:flex;gap:1rem;align-items:flex-start;margin:.8rem 0" {
                    @if c.is_some() && IdeaStatus::parse("s", &p.status).is_ok_and(|s| s.holds_votes()) {
                        form method="post" action=(format!("/ideas/{}/vote", p.id)) {
                            (csrf(&c))
                            @let voted = votes.contains_key(&p.id);
                            input type="hidden" name="value" value=(if voted { "0" } else { "1" });
                            button type="submit" aria-pressed=(voted) aria-label=(format!("Vote for {}", p.title.as_deref().unwrap_or(""))) { "▲ " (p.score) }
                        }
                    } @else {
                        strong { (p.score) }
                    }
                    div {
                        strong { (p.title.as_deref().unwrap_or("")) } " " span.note { "(" (p.status) ")" }
                        div style="white-space:pre-wrap" { (p.body) }
                    }
                }
            }
        }
        section aria-labelledby="new-idea" {
            h2 #new-idea { "Suggest an idea" }
            @if c.is_some() {
                form method="post" action="/ideas" {
                    (csrf(&c))
                    label for="idea-title" { "Idea" }
                    input #idea-title type="text" name="title" required maxlength="200";
                    label for="idea-body" { "Why it matters" }
                    textarea #idea-body name="body" required rows="4" style="width:100%;font:inherit" {}
                    button type="submit" { "Suggest" }
                }
            } @else {
                p { a href="/me" { "Sign in" } " to suggest and vote." }
            }
        }
    };
    Ok(page(&s, "Ideas", body).into_response())
}

async fn suggest(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): F,
) -> PResult<Response> {
    let Some(c) = acting(&state, &headers, &f).await? else {
        return Ok(sign_in_first());
    };
    community::suggest(
        &state.store,
        &Actor::Customer(c.person),
        val(&f, "title"),
        val(&f, "body"),
    )
    .await?;
    Ok(Redirect::to("/ideas").into_response())
}

async fn idea_vote(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(f): F,
) -> PResult<Response> {
    let Some(c) = acting(&state, &headers, &f).await? else {
        return Ok(sign_in_first());
    };
    let value: i64 = val(&f, "value")
        .parse()
        .map_err(|_| StoreError::invalid("value", "1 or 0"))?;
    community::vote(&state.store, c.person, id, value).await?;
    Ok(Redirect::to("/ideas").into_response())
}

async fn help(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> PResult<Response> {
    let s = settings(&state).await?;
    let c = customer(&state, &headers).await?;
    let text = q
        .get("q")
        .map(String::as_str)
        .unwrap_or("")
        .trim()
        .to_string();
    let hits = if text.is_empty() {
        None
    } else {
        Some(kb::search(&state.store, &text, 20, false).await?)
    };
    let articles = state
        .store
        .articles(Some("published".into()), None, 200)
        .await?;
    let mut by_cat: std::collections::BTreeMap<String, Vec<&rapport_store::Article>> =
        Default::default();
    for a in &articles {
        by_cat
            .entry(a.category.clone().unwrap_or_else(|| "General".into()))
            .or_default()
            .push(a);
    }
    let body = html! {
        (nav("/help"))
        section {
            form method="get" action="/help" role="search" {
                label for="q" { "Search the help centre" }
                input #q type="text" name="q" value=(text);
                button type="submit" { "Search" }
            }
        }
        @if let Some(hits) = &hits {
            section aria-labelledby="found" {
                h2 #found { (hits.len()) " found" }
                @for h in hits {
                    p { a href=(format!("/help/articles/{}", h.id)) { (h.title) } br; span.note { (h.snippet) } }
                }
            }
        }
        @for (cat, list) in &by_cat {
            section {
                h2 { (cat) }
                ul { @for a in list { li { a href=(format!("/help/articles/{}", a.id)) { (a.title) } } } }
            }
        }
        section {
            @if c.is_some() {
                p { "Know something others should? " a href="/help/propose" { "Propose an article" } }
            } @else {
                p { a href="/me" { "Sign in" } " to propose articles and edits." }
            }
        }
    };
    Ok(page(&s, "Help centre", body).into_response())
}

/// The ticket form's suggestions as the customer types (published articles only).
async fn suggestions(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> PResult<Json<serde_json::Value>> {
    let text = q.get("q").map(String::as_str).unwrap_or("");
    let items = kb::search(&state.store, text, 5, true).await?;
    Ok(Json(json!({"items": items})))
}

async fn article(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Query(q): Query<HashMap<String, String>>,
) -> PResult<Response> {
    let s = settings(&state).await?;
    let c = customer(&state, &headers).await?;
    let a = kb::get(&state.store, id, false).await?;
    if let (Some(c), Some("ticket")) = (&c, q.get("from").map(String::as_str)) {
        kb::suggested_opened(&state.store, c.person, id).await?;
    }
    let thanks = q.contains_key("thanks");
    let body = html! {
        (nav("/help"))
        section {
            @if let Some(cat) = &a.category { div.note { (cat) } }
            div style="white-space:pre-wrap" { (a.body) }
        }
        section aria-labelledby="helpful" {
            h2 #helpful { "Was this helpful?" }
            @if thanks {
                p.ok role="status" { "Thank you for telling us." }
            } @else {
                form method="post" action=(format!("/help/articles/{id}/helpful")) {
                    (csrf(&c))
                    button type="submit" name="yes" value="1" { "Yes" }
                    " "
                    button type="submit" name="yes" value="0" { "No" }
                }
            }
        }
        @if c.is_some() {
            section aria-labelledby="edit" {
                h2 #edit { "Suggest an edit" }
                form method="post" action=(format!("/help/articles/{id}/edit")) {
                    (csrf(&c))
                    label for="e-title" { "Title" }
                    input #e-title type="text" name="title" value=(a.title) required maxlength="200";
                    label for="e-body" { "Text" }
                    textarea #e-body name="body" required rows="10" style="width:100%;font:inherit" { (a.body) }
                    label for="e-note" { "What you changed" }
                    input #e-note type="text" name="note" maxlength="500";
                    button type="submit" { "Send for review" }
                }
            }
        }
    };
    Ok(page(&s, &a.title, body).into_response())
}

async fn helpful(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(f): F,
) -> PResult<Response> {
    let c = customer(&state, &headers).await?;
    if let Some(c) = &c {
        checked(c, &f)?;
    }
    kb::helpful(&state.store, id, val(&f, "yes") == "1", c.map(|c| c.person)).await?;
    Ok(Redirect::to(&format!("/help/articles/{id}?thanks=1")).into_response())
}

fn input(f: &HashMap<String, String>) -> ArticleInput {
    ArticleInput {
        title: val(f, "title").into(),
        body: val(f, "body").into(),
        category: f.get("category").cloned(),
        status: None,
        note: f.get("note").cloned(),
    }
}

async fn propose_edit(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(f): F,
) -> PResult<Response> {
    let Some(c) = acting(&state, &headers, &f).await? else {
        return Ok(sign_in_first());
    };
    let a = kb::get(&state.store, id, false).await?;
    let mut i = input(&f);
    i.category = a.category;
    kb::propose_edit(&state.store, c.person, id, i).await?;
    Ok(crate::portal::done(
        "Thank you: your edit is sent for review.",
    ))
}

async fn propose_page(State(state): State<AppState>, headers: HeaderMap) -> PResult<Response> {
    let s = settings(&state).await?;
    let Some(c) = customer(&state, &headers).await? else {
        return Ok(sign_in_first());
    };
    let c = Some(c);
    let body = html! {
        (nav("/help"))
        section {
            p { "Staff review each proposal before it is published." }
            form method="post" action="/help/propose" {
                (csrf(&c))
                label for="p-title" { "Title" }
                input #p-title type="text" name="title" required maxlength="200";
                label for="p-category" { "Category" }
                input #p-category type="text" name="category" maxlength="60";
                label for="p-body" { "Text" }
                textarea #p-body name="body" required rows="12" style="width:100%;font:inherit" {}
                button type="submit" { "Send for review" }
            }
        }
    };
    Ok(page(&s, "Propose an article", body).into_response())
}

async fn propose(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): F,
) -> PResult<Response> {
    let Some(c) = acting(&state, &headers, &f).await? else {
        return Ok(sign_in_first());
    };
    kb::create(&state.store, &Actor::Customer(c.person), input(&f)).await?;
    Ok(crate::portal::done(
        "Thank you: your article is sent for review.",
    ))
}
