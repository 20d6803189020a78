//! Support in the customer portal: a signed-in customer writes to the brand (a ticket,
//! channel `portal`), sees their tickets and the answers, and replies — which reopens a
//! resolved ticket like a reply by e-mail. Staff notes never show here; another
//! person's ticket is "not found".

use crate::portal::{checked, customer, done, page, signed_out, PResult};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::{html, Markup, PreEscaped};
use rapport_app::tickets::{self, Author, NewTicket};
use rapport_domain::time::to_datetime;
use rapport_store::{StoreError, Ticket};
use serde_json::json;
use std::collections::HashMap;

/// Asks `/help/suggest` as the subject is typed (after a pause) and lists what it finds;
/// results are put in as text, never as markup.
const SUGGEST_JS: &str = r#"(function(){
var i=document.getElementById("t-subject"),o=document.getElementById("t-suggest"),t;
if(!i||!o||!window.fetch)return;
i.addEventListener("input",function(){clearTimeout(t);t=setTimeout(function(){
var q=i.value.trim();if(q.length<3){o.textContent="";return;}
fetch("/help/suggest?q="+encodeURIComponent(q)).then(function(r){return r.json();}).then(function(d){
o.textContent="";if(!d.items||!d.items.length)return;
var p=document.createElement("p");p.className="note";p.textContent="These articles may answer it:";o.appendChild(p);
var ul=document.createElement("ul");d.items.forEach(function(a){var li=document.createElement("li"),l=document.createElement("a");
l.href="/help/articles/"+a.id+"?from=ticket";l.textContent=a.title;li.appendChild(l);ul.appendChild(li);});o.appendChild(ul);
}).catch(function(){});},250);});})();"#;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/me/tickets", post(open))
        .route("/me/tickets/{id}", get(show).post(reply))
}

/// The home page's section: the person's tickets and a form to write to the brand.
pub fn section(list: &[Ticket], csrf: &Markup) -> Markup {
    html! {
        section aria-labelledby="support" {
            h2 #support { "Questions and requests" }
            p.note { "Search the " a href="/help" { "help centre" } ", ask the " a href="/community" { "community" } " or suggest an " a href="/ideas" { "idea" } "; or write to us here." }
            @if !list.is_empty() {
                table { @for t in list { tr {
                    td { a href=(format!("/me/tickets/{}", t.id)) { "#" (t.number) " " (t.subject) } }
                    td { (match t.status.as_str() { "pending" => "waiting for you", "resolved" | "closed" => "answered", _ => "with us" }) }
                    td.note { (to_datetime(t.updated_at).format("%Y-%m-%d")) }
                } } }
            }
            form method="post" action="/me/tickets" {
                (csrf)
                label for="t-subject" { "Subject" }
                input #t-subject type="text" name="subject" required maxlength="300" autocomplete="off" aria-describedby="t-suggest";
                // Help articles suggested as the customer types (with JavaScript; the
                // form works without it). Opened from here, they count as deflection.
                div #t-suggest aria-live="polite" {}
                script { (PreEscaped(SUGGEST_JS)) }
                label for="t-body" { "Your message" }
                textarea #t-body name="body" required rows="4" style="width:100%;font:inherit" {}
                button type="submit" { "Send" }
            }
        }
    }
}

async fn open(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> PResult<Response> {
    let Some(c) = customer(&state, &headers).await? else {
        return Ok(signed_out());
    };
    checked(&c, &f)?;
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    let t = tickets::open(
        &state.store,
        NewTicket {
            requester: json!(c.person),
            subject: get("subject"),
            body: get("body"),
            priority: None,
            tags: Vec::new(),
        },
        "portal",
    )
    .await?;
    Ok(Redirect::to(&format!("/me/tickets/{}", t.id)).into_response())
}

/// The ticket, if it is this person's (else not found: whose it is stays unsaid).
async fn own(state: &AppState, person: i64, id: i64) -> Result<Ticket, StoreError> {
    let t = tickets::get(&state.store, id).await?;
    if state.store.profile(t.profile_id).await?.id == person {
        Ok(t)
    } else {
        Err(StoreError::NotFound(format!("ticket {id}")))
    }
}

async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> PResult<Response> {
    let s = rapport_app::portal::settings(&state.store).await?;
    let Some(c) = customer(&state, &headers).await? else {
        return Ok(signed_out());
    };
    let t = own(&state, c.person, id).await?;
    let messages = state.store.ticket_messages(id).await?;
    let body = html! {
        section {
            @for m in messages.iter().filter(|m| m.author != "note") {
                div style="border-left:3px solid #dfe3e8;padding:.2rem .8rem;margin:.6rem 0" {
                    div.note { strong { @if m.author == "customer" { "You" } @else { (s.brand) } } " · " (to_datetime(m.at).format("%Y-%m-%d %H:%M UTC")) }
                    // Escaped: what anybody wrote is shown as text.
                    div style="white-space:pre-wrap" { (m.body) }
                }
            }
            form method="post" action=(format!("/me/tickets/{id}")) {
                input type="hidden" name="_csrf" value=(c.csrf);
                label for="t-body" { "Reply" }
                textarea #t-body name="body" required rows="4" style="width:100%;font:inherit" {}
                button type="submit" { "Send" }
            }
            p { a href="/me" { "Back" } }
        }
    };
    Ok(page(&s, &format!("#{} {}", t.number, t.subject), body).into_response())
}

async fn reply(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(f): Form<HashMap<String, String>>,
) -> PResult<Response> {
    let Some(c) = customer(&state, &headers).await? else {
        return Ok(signed_out());
    };
    checked(&c, &f)?;
    own(&state, c.person, id).await?;
    let body = f.get("body").map(String::as_str).unwrap_or("");
    tickets::reply(&state.store, &state.email, id, body, Author::Customer, None).await?;
    Ok(done(&format!("Your message on #{id} is sent.")))
}
