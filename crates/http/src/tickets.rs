//! The support API (admin key): tickets opened, listed, read, answered and changed; the
//! support settings (address, mailbox); and a raw e-mail handed in by a relay that pipes
//! mail rather than keeping a mailbox.

use crate::auth::AdminKey;
use crate::problem::{query_count, typed_body, ApiError, ApiResult, Id, Problem};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use rapport_app::tickets::{self, Author, NewTicket, Patch, SupportSettings};
use rapport_domain::ticket::Status;
use rapport_store::{Ticket, TicketFilter, TicketMessage};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;

/// A ticket with its conversation.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TicketView {
    #[serde(flatten)]
    pub ticket: Ticket,
    pub messages: Vec<TicketMessage>,
    /// The next promise the ticket owes under its service level, if any.
    pub due: Option<DueView>,
    /// Published knowledge-base articles that may answer it, best first.
    pub suggested_articles: Vec<rapport_store::ArticleHit>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct DueView {
    /// `first_response` or `resolution`.
    pub promise: String,
    pub at: i64,
    pub breached: bool,
}

/// Opens a ticket for a requester (`email:<address>`, made a person if new, or a
/// profile id). Answers its id and number (`#number` in e-mail subjects).
#[utoipa::path(post, path = "/api/tickets", tag = "support",
    request_body = NewTicket,
    responses((status = 201, body = Ticket), (status = 400, body = Problem)), security(("bearer" = [])))]
pub async fn open(
    State(state): State<AppState>,
    _key: AdminKey,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Ticket>)> {
    let t: NewTicket = typed_body(&body)?;
    Ok((
        StatusCode::CREATED,
        Json(tickets::open(&state.store, t, "api").await?),
    ))
}

/// The inbox, newest change first: `status`, `assignee` (an e-mail), `unassigned=true`,
/// `team`, `tag` (`intent:complaint`, say), `limit` (1–500, default 50); or `due_within=MINUTES`: active tickets whose next
/// promise is due within that many minutes or overdue, soonest first.
#[utoipa::path(get, path = "/api/tickets", tag = "support",
    params(("status" = Option<String>, Query), ("assignee" = Option<String>, Query),
           ("unassigned" = Option<bool>, Query), ("team" = Option<String>, Query), ("tag" = Option<String>, Query),
           ("limit" = Option<usize>, Query, minimum = 1, maximum = 500),
           ("due_within" = Option<i64>, Query, minimum = 0, maximum = 525600)),
    responses((status = 200, body = Vec<Ticket>), (status = 400, body = Problem)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    _key: AdminKey,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Vec<Ticket>>> {
    if let Some(m) = q.get("due_within") {
        let m: i64 = m
            .parse()
            .ok()
            .filter(|m| (0..=525_600).contains(m))
            .ok_or_else(|| ApiError::invalid("due_within", "minutes from 0 to 525,600"))?;
        let until = rapport_domain::time::now_millis() + m * 60_000;
        let due = tickets::breaching(&state.store, until).await?;
        return Ok(Json(due.into_iter().map(|(t, _, _)| t).collect()));
    }
    let unassigned = match q.get("unassigned").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::invalid("unassigned", "true or false")),
    };
    let f = TicketFilter {
        status: q.get("status").cloned(),
        assignee: q.get("assignee").cloned(),
        unassigned,
        team: q.get("team").cloned(),
        tag: q.get("tag").map(|t| t.trim().to_lowercase()),
        profiles: None,
        limit: query_count(&q, "limit", 50, 500)?,
    };
    Ok(Json(tickets::list(&state.store, f).await?))
}

/// A ticket with its messages, oldest first.
#[utoipa::path(get, path = "/api/tickets/{id}", tag = "support",
    params(("id" = i64, Path)),
    responses((status = 200, body = TicketView), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    _key: AdminKey,
    Id(id): Id,
) -> ApiResult<Json<TicketView>> {
    let (ticket, messages) = tickets::thread(&state.store, id).await?;
    let first = messages.first().map_or("", |m| m.body.as_str());
    let suggested_articles =
        rapport_app::kb::for_ticket(&state.store, &ticket.subject, first).await?;
    let due = tickets::settings(&state.store)
        .await?
        .due(&ticket)
        .map(|(d, at)| DueView {
            promise: d.as_str().into(),
            at,
            breached: at <= rapport_domain::time::now_millis(),
        });
    Ok(Json(TicketView {
        ticket,
        messages,
        due,
        suggested_articles,
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplyBody {
    /// What to say; or leave it out and name a `canned` reply.
    #[serde(default)]
    pub body: Option<String>,
    /// The name of one of the support settings' canned replies, written out for this
    /// ticket's person (instead of `body`).
    #[serde(default)]
    pub canned: Option<String>,
    /// `staff` (default: e-mailed to the customer), `customer` (typed in for them), or
    /// `note` (internal, never sent).
    #[serde(default)]
    pub from: Option<String>,
    /// With a staff reply or a note: the status it leaves the ticket in (a staff reply
    /// leaves it `pending` by default).
    #[serde(default)]
    pub status: Option<String>,
}

/// Adds a message. A staff reply goes out by e-mail from the support address, threaded
/// under the customer's last message; a customer's reopens a resolved ticket.
#[utoipa::path(post, path = "/api/tickets/{id}/replies", tag = "support",
    params(("id" = i64, Path)), request_body = ReplyBody,
    responses((status = 201, body = TicketMessage), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn reply(
    State(state): State<AppState>,
    key: AdminKey,
    Id(id): Id,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<TicketMessage>)> {
    let b: ReplyBody = typed_body(&body)?;
    let author = match b.from.as_deref().unwrap_or("staff") {
        "staff" => Author::Staff(key.who()),
        "customer" => Author::Customer,
        "note" => Author::Note(key.who()),
        other => {
            return Err(ApiError::invalid(
                "from",
                format!("`{other}`: staff, customer or note"),
            ))
        }
    };
    let then = match &b.status {
        Some(s) if author == Author::Customer => {
            return Err(ApiError::invalid(
                "status",
                format!("`{s}`: a customer's reply always reopens the ticket"),
            ))
        }
        Some(s) => {
            Some(Status::parse("status", s).map_err(|e| ApiError::invalid(&e.field, e.reason))?)
        }
        None => None,
    };
    let m = match (b.body, &b.canned) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "canned",
                "either body or canned, not both",
            ))
        }
        (Some(body), None) => {
            tickets::reply(&state.store, &state.email, id, &body, author, then).await?
        }
        (None, Some(name)) => {
            let who = key.who();
            tickets::reply_canned(&state.store, &state.email, id, name, &who, author, then).await?
        }
        (None, None) => return Err(ApiError::invalid("body", "a body or a canned reply")),
    };
    Ok((StatusCode::CREATED, Json(m)))
}

/// Changes status, priority, assignee, team, tags; `snoozed` needs `snooze_until`.
#[utoipa::path(patch, path = "/api/tickets/{id}", tag = "support",
    params(("id" = i64, Path)), request_body = Patch,
    responses((status = 200, body = Ticket), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    _key: AdminKey,
    Id(id): Id,
    body: Bytes,
) -> ApiResult<Json<Ticket>> {
    let p: Patch = typed_body(&body)?;
    Ok(Json(
        tickets::update(&state.store, &state.email, id, p).await?,
    ))
}

/// A person's tickets, newest change first.
#[utoipa::path(get, path = "/api/profiles/{id}/tickets", tag = "support",
    params(("id" = i64, Path)),
    responses((status = 200, body = Vec<Ticket>), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn of_profile(
    State(state): State<AppState>,
    _key: AdminKey,
    Id(id): Id,
) -> ApiResult<Json<Vec<Ticket>>> {
    let p = state.store.profile(id).await?;
    Ok(Json(tickets::of_person(&state.store, &p, 100).await?))
}

/// The support settings; the mailbox's password is never shown.
#[utoipa::path(get, path = "/api/support/settings", tag = "support",
    responses((status = 200, body = SupportSettings)), security(("bearer" = [])))]
pub async fn settings(
    State(state): State<AppState>,
    _key: AdminKey,
) -> ApiResult<Json<SupportSettings>> {
    Ok(Json(tickets::shown(
        &tickets::settings(&state.store).await?,
    )))
}

/// Replaces the support settings: `address` (on a sending domain), `name`, `mailbox`
/// (IMAP; a value as shown, with `***`, keeps the saved password), `poll_seconds`.
#[utoipa::path(put, path = "/api/support/settings", tag = "support",
    request_body = SupportSettings,
    responses((status = 200, body = SupportSettings), (status = 400, body = Problem)), security(("bearer" = [])))]
pub async fn set_settings(
    State(state): State<AppState>,
    _key: AdminKey,
    body: Bytes,
) -> ApiResult<Json<SupportSettings>> {
    let s: SupportSettings = typed_body(&body)?;
    let saved = tickets::set_settings(&state.store, s).await?;
    Ok(Json(tickets::shown(&saved)))
}

/// A customer's e-mail to support as a raw RFC 5322 message (for relays that pipe mail):
/// a reply on the ticket it answers, or a new ticket. Answers what was done.
#[utoipa::path(post, path = "/api/support/inbound", tag = "support",
    request_body(content = String, content_type = "message/rfc822"),
    responses((status = 200, body = Object), (status = 400, body = Problem)), security(("bearer" = [])))]
pub async fn inbound(
    State(state): State<AppState>,
    _key: AdminKey,
    b: Bytes,
) -> ApiResult<Json<Value>> {
    if b.is_empty() {
        return Err(ApiError::invalid("body", "a raw RFC 5322 message"));
    }
    let v = tickets::receive(&state.store, &state.email, &b).await?;
    Ok(Json(json!(v)))
}

/// A rating link of the "How did we do?" e-mail (`/e/r/{token}`; no key, the signed
/// token is the authority): one click records the score, and the page offers a comment.
pub async fn rating(
    State(state): State<AppState>,
    axum::extract::Path(token): axum::extract::Path<String>,
) -> axum::response::Response {
    rated(&state, &token, None).await
}

/// The comment the rating page sends (`comment`), with the same link.
pub async fn rating_comment(
    State(state): State<AppState>,
    axum::extract::Path(token): axum::extract::Path<String>,
    axum::Form(f): axum::Form<HashMap<String, String>>,
) -> axum::response::Response {
    rated(
        &state,
        &token,
        Some(f.get("comment").map(String::as_str).unwrap_or("")),
    )
    .await
}

async fn rated(state: &AppState, token: &str, comment: Option<&str>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (number, score) = match state.email.rating_of(token).await {
        Ok(Some(r)) => r,
        Ok(None) => return crate::email::not_found(),
        Err(e) => return crate::email::failed(e),
    };
    match tickets::rate(&state.store, number, score, comment).await {
        Ok(_) if comment.is_some() => {
            crate::email::page("Thank you", "<p>Your words reach the team that helped you.</p>").into_response()
        }
        Ok(_) => crate::email::page(
            "Thank you",
            &format!(
                "<p>You rated our help {score} out of 5.</p><form method=post>\
                 <label for=comment>Anything to add?</label><br><textarea id=comment name=comment rows=4 cols=40 maxlength=2000></textarea><br>\
                 <button>Send</button></form>"
            ),
        )
        .into_response(),
        Err(rapport_store::StoreError::Invalid { field, reason }) => (
            StatusCode::BAD_REQUEST,
            crate::email::page("Not saved", &maud::html! { p { (field) ": " (reason) } }.into_string()),
        )
            .into_response(),
        Err(rapport_store::StoreError::NotFound(_)) => crate::email::not_found(),
        Err(e) => crate::email::failed(e),
    }
}
