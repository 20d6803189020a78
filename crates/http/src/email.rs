//! The e-mail API (admin key): settings, sending domains and their DKIM records,
//! templates and previews, sends, messages, suppressions, a person's addresses; and the
//! public tracking routes a message's links point to (`/e/o` open pixel, `/e/c` click
//! redirect, `/e/u` unsubscribe page and RFC 8058 one-click POST), which need no key:
//! their signed token is the authority.

use crate::auth::AdminKey;
use crate::problem::{typed_body, ApiError, ApiResult, Id, Problem};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use rapport_app::email::campaigns::{self, CampaignInput};
use rapport_app::email::{EmailSettings, SendRequest};
use rapport_email::template::Source;
use rapport_email::token::Action;
use rapport_store::{EmailCampaign, EmailMessage, EmailTemplate, MessageQuery, Suppression};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;

/// The e-mail settings; the relay URL's password is never shown.
#[utoipa::path(get, path = "/api/email/settings", tag = "email",
    responses((status = 200, body = EmailSettings)), security(("bearer" = [])))]
pub async fn settings(
    State(state): State<AppState>,
    _key: AdminKey,
) -> ApiResult<Json<EmailSettings>> {
    Ok(Json(state.email.shown_settings().await?))
}

/// Replaces the settings. `relay_url` absent or null keeps the stored relay (it is
/// write-only); `""` removes it.
#[utoipa::path(put, path = "/api/email/settings", tag = "email",
    request_body = EmailSettings,
    responses((status = 200, body = EmailSettings), (status = 400, body = Problem)), security(("bearer" = [])))]
pub async fn set_settings(
    State(state): State<AppState>,
    _key: AdminKey,
    b: Bytes,
) -> ApiResult<Json<EmailSettings>> {
    let s: EmailSettings = typed_body(&b)?;
    Ok(Json(state.email.set_settings(s).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainBody {
    pub domain: String,
    /// Which keys to make: `ed25519`, `rsa` (default both).
    #[serde(default)]
    pub keys: Option<Vec<String>>,
}

fn domain_view(d: &rapport_store::EmailDomain) -> Value {
    let records: Vec<Value> = d
        .keys
        .iter()
        .map(|k| {
            json!({
                "algorithm": k.algorithm, "selector": k.selector,
                "dns_name": format!("{}._domainkey.{}", k.selector, d.domain),
                "dns_txt": format!("v=DKIM1; k={}; p={}", k.algorithm, k.public_key),
            })
        })
        .collect();
    // The Ed25519 record first: the one the scripts read at the top level.
    let first = records
        .iter()
        .find(|r| r["algorithm"] == "ed25519")
        .or(records.first())
        .cloned()
        .unwrap_or_else(|| json!({}));
    json!({
        "domain": d.domain, "selector": first["selector"], "dns_name": first["dns_name"],
        "dns_txt": first["dns_txt"], "records": records, "created_at": d.created_at,
    })
}

/// Sets up a sending domain: an Ed25519 and an RSA-2048 DKIM key, and the TXT records to
/// publish (`dns_name`, `dns_txt`; both keys in `records`). Every message is signed with both.
#[utoipa::path(post, path = "/api/email/domains", tag = "email",
    request_body = DomainBody,
    responses((status = 201, body = Object), (status = 400, body = Problem), (status = 409, body = Problem)), security(("bearer" = [])))]
pub async fn add_domain(
    State(state): State<AppState>,
    _key: AdminKey,
    b: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let body: DomainBody = typed_body(&b)?;
    let d = state
        .email
        .add_domain(&body.domain, body.keys.as_deref())
        .await?;
    Ok((StatusCode::CREATED, Json(domain_view(&d))))
}

/// The sending domains and their DKIM records.
#[utoipa::path(get, path = "/api/email/domains", tag = "email",
    responses((status = 200, body = Object)), security(("bearer" = [])))]
pub async fn domains(State(state): State<AppState>, _key: AdminKey) -> ApiResult<Json<Value>> {
    let ds = state.store.domains().await?;
    Ok(Json(
        json!({"domains": ds.iter().map(domain_view).collect::<Vec<_>>()}),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateBody {
    pub name: String,
    pub subject: String,
    pub html: String,
    /// Derived from the HTML when absent.
    #[serde(default)]
    pub text: Option<String>,
}

async fn save(state: &AppState, id: i64, b: &Bytes) -> ApiResult<EmailTemplate> {
    let t: TemplateBody = typed_body(b)?;
    Ok(state
        .email
        .save_template(
            id,
            &t.name,
            Source {
                subject: t.subject,
                html: t.html,
                text: t.text,
            },
        )
        .await?)
}

/// Saves a new template after checking it (a syntax error or an unknown variable is a
/// 400 naming the part, line and column).
#[utoipa::path(post, path = "/api/email/templates", tag = "email",
    request_body = TemplateBody,
    responses((status = 201, body = EmailTemplate), (status = 400, body = Problem), (status = 409, body = Problem)), security(("bearer" = [])))]
pub async fn create_template(
    State(state): State<AppState>,
    _key: AdminKey,
    b: Bytes,
) -> ApiResult<(StatusCode, Json<EmailTemplate>)> {
    Ok((StatusCode::CREATED, Json(save(&state, 0, &b).await?)))
}

/// The templates.
#[utoipa::path(get, path = "/api/email/templates", tag = "email",
    responses((status = 200, body = Vec<EmailTemplate>)), security(("bearer" = [])))]
pub async fn templates(
    State(state): State<AppState>,
    _key: AdminKey,
) -> ApiResult<Json<Vec<EmailTemplate>>> {
    Ok(Json(state.store.templates().await?))
}

async fn template_by_id(state: &AppState, id: i64) -> ApiResult<EmailTemplate> {
    state
        .store
        .template(&id.to_string())
        .await?
        .filter(|t| t.id == id)
        .ok_or_else(|| ApiError::NotFound(format!("template {id}")))
}

/// One template.
#[utoipa::path(get, path = "/api/email/templates/{id}", tag = "email", params(("id" = i64, Path)),
    responses((status = 200, body = EmailTemplate), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn template(
    State(state): State<AppState>,
    _key: AdminKey,
    Id(id): Id,
) -> ApiResult<Json<EmailTemplate>> {
    Ok(Json(template_by_id(&state, id).await?))
}

/// Replaces a template.
#[utoipa::path(put, path = "/api/email/templates/{id}", tag = "email", params(("id" = i64, Path)),
    request_body = TemplateBody,
    responses((status = 200, body = EmailTemplate), (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)), security(("bearer" = [])))]
pub async fn update_template(
    State(state): State<AppState>,
    _key: AdminKey,
    Id(id): Id,
    b: Bytes,
) -> ApiResult<Json<EmailTemplate>> {
    template_by_id(&state, id).await?;
    Ok(Json(save(&state, id, &b).await?))
}

/// Deletes a template (messages already made keep their copy).
#[utoipa::path(delete, path = "/api/email/templates/{id}", tag = "email", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn delete_template(
    State(state): State<AppState>,
    _key: AdminKey,
    Id(id): Id,
) -> ApiResult<StatusCode> {
    state.store.delete_template(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewBody {
    pub profile: i64,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub data: Value,
}

/// A template rendered for one person: `{to, subject, html, text}`.
#[utoipa::path(post, path = "/api/email/templates/{id}/preview", tag = "email", params(("id" = i64, Path)),
    request_body = PreviewBody,
    responses((status = 200, body = Object), (status = 400, body = Problem), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn preview(
    State(state): State<AppState>,
    _key: AdminKey,
    Id(id): Id,
    b: Bytes,
) -> ApiResult<Json<Value>> {
    let body: PreviewBody = typed_body(&b)?;
    template_by_id(&state, id).await?;
    let p = match state.store.profile(body.profile).await {
        Ok(p) => p,
        Err(rapport_store::StoreError::NotFound(_)) => {
            return Err(ApiError::invalid(
                "profile",
                format!("no person {}", body.profile),
            ))
        }
        Err(e) => return Err(e.into()),
    };
    Ok(Json(
        state
            .email
            .preview(&id.to_string(), p.id, &body.data)
            .await?,
    ))
}

fn sent_view(m: &EmailMessage) -> Value {
    json!({"id": m.public_id, "status": m.status, "to": m.to_address, "address_reason": m.address_reason,
           "profile_id": m.profile_id, "reason": if m.status == "skipped" { json!(m.last_error) } else { Value::Null }})
}

/// Sends one message (rendered, signed and stored now; handed to the relay within
/// seconds). `to` is `email:<address>` or a profile id. A suppressed address, or a
/// marketing send without consent, answers `status: skipped` with the reason.
#[utoipa::path(post, path = "/api/email/send", tag = "email",
    request_body = SendRequest,
    responses((status = 202, body = Object), (status = 400, body = Problem)), security(("bearer" = [])))]
pub async fn send(
    State(state): State<AppState>,
    _key: AdminKey,
    b: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let req: SendRequest = typed_body(&b)?;
    let m = state.email.send(req).await?;
    Ok((StatusCode::ACCEPTED, Json(sent_view(&m))))
}

/// Messages, newest first (`profile`, `status`, `limit` 1-1000, default 100).
#[utoipa::path(get, path = "/api/email/messages", tag = "email",
    params(("profile" = Option<i64>, Query), ("status" = Option<String>, Query), ("limit" = Option<usize>, Query, minimum = 1, maximum = 1000)),
    responses((status = 200, body = Vec<EmailMessage>), (status = 400, body = Problem), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn messages(
    State(state): State<AppState>,
    _key: AdminKey,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Vec<EmailMessage>>> {
    let limit = crate::problem::query_count(&q, "limit", 100, 1000)?;
    let profile = match q.get("profile") {
        None => None,
        Some(p) => {
            let id: i64 = p
                .parse()
                .map_err(|_| ApiError::invalid("profile", "a profile id"))?;
            Some(state.store.profile(id).await?.member_ids)
        }
    };
    Ok(Json(
        state
            .store
            .messages(MessageQuery {
                profile,
                status: q.get("status").cloned(),
                limit,
            })
            .await?,
    ))
}

/// One message by its id.
#[utoipa::path(get, path = "/api/email/messages/{id}", tag = "email", params(("id" = String, Path)),
    responses((status = 200, body = EmailMessage), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn message(
    State(state): State<AppState>,
    _key: AdminKey,
    Path(id): Path<String>,
) -> ApiResult<Json<EmailMessage>> {
    state
        .store
        .message(&id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("message {id}")))
}

/// Suppressed addresses, newest first.
#[utoipa::path(get, path = "/api/email/suppressions", tag = "email",
    params(("limit" = Option<usize>, Query, minimum = 1, maximum = 10000)),
    responses((status = 200, body = Vec<Suppression>), (status = 400, body = Problem)), security(("bearer" = [])))]
pub async fn suppressions(
    State(state): State<AppState>,
    _key: AdminKey,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Vec<Suppression>>> {
    let limit = crate::problem::query_count(&q, "limit", 100, 10_000)?;
    Ok(Json(state.store.suppressions(limit).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SuppressBody {
    pub address: String,
    #[serde(default)]
    pub detail: Option<String>,
}

/// Suppresses an address by hand.
#[utoipa::path(post, path = "/api/email/suppressions", tag = "email", request_body = SuppressBody,
    responses((status = 201, body = Suppression), (status = 400, body = Problem)), security(("bearer" = [])))]
pub async fn suppress(
    State(state): State<AppState>,
    _key: AdminKey,
    b: Bytes,
) -> ApiResult<(StatusCode, Json<Suppression>)> {
    let body: SuppressBody = typed_body(&b)?;
    Ok((
        StatusCode::CREATED,
        Json(state.email.suppress(&body.address, body.detail).await?),
    ))
}

/// Lifts a suppression.
#[utoipa::path(delete, path = "/api/email/suppressions/{address}", tag = "email", params(("address" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn unsuppress(
    State(state): State<AppState>,
    _key: AdminKey,
    Path(address): Path<String>,
) -> ApiResult<StatusCode> {
    let a = rapport_domain::identifier::normalize_email(&address)
        .map_err(|e| ApiError::invalid("address", e.to_string()))?;
    if !state.store.unsuppress(&a).await? {
        return Err(ApiError::NotFound(format!("suppression of {a}")));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// A person's e-mail: the address sends use and why, every address with what is known of
/// it, and their latest messages.
#[utoipa::path(get, path = "/api/profiles/{id}/email", tag = "email", params(("id" = i64, Path)),
    responses((status = 200, body = Object), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn of_profile(
    State(state): State<AppState>,
    _key: AdminKey,
    Id(id): Id,
) -> ApiResult<Json<Value>> {
    let p = state.store.profile(id).await?;
    let chosen = state.email.choose(p.id).await?;
    let addresses: Vec<String> = p
        .identities
        .iter()
        .filter(|i| i.kind == rapport_domain::IdentityKind::Email)
        .map(|i| i.value.clone())
        .collect();
    let facts = state.store.address_facts(addresses).await?;
    let messages = state
        .store
        .messages(MessageQuery {
            profile: Some(p.member_ids.clone()),
            status: None,
            limit: 20,
        })
        .await?;
    Ok(Json(json!({
        "address": chosen.as_ref().map(|c| c.0.clone()),
        "reason": chosen.map(|c| c.1),
        "addresses": facts.iter().map(|f| json!({"address": f.address, "primary": f.primary, "last_engaged": f.last_engaged, "suppressed": f.suppressed})).collect::<Vec<_>>(),
        "messages": messages,
    })))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PrimaryBody {
    pub address: String,
}

/// Marks one of the person's addresses as the one they chose (sends go there first).
#[utoipa::path(put, path = "/api/profiles/{id}/email/primary", tag = "email", params(("id" = i64, Path)),
    request_body = PrimaryBody,
    responses((status = 204), (status = 400, body = Problem), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn set_primary(
    State(state): State<AppState>,
    _key: AdminKey,
    Id(id): Id,
    b: Bytes,
) -> ApiResult<StatusCode> {
    let body: PrimaryBody = typed_body(&b)?;
    rapport_app::portal::set_primary(&state.store, id, &body.address).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A report that came back, as a raw RFC 5322 message (for MTAs that pipe bounces): a
/// DSN (RFC 3464) or an ARF complaint (RFC 5965). Answers what it was and which message
/// it concerned (`message` null when none of ours).
#[utoipa::path(post, path = "/api/email/inbound", tag = "email",
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
    Ok(Json(state.email.inbound(&b).await?))
}

/// Makes a campaign: a template to an audience (`{"segment": NAME_OR_ID}`, evaluated
/// when it starts, or `{"profiles": [ID, …]}`); a draft, or scheduled with `start: true`
/// or `send_at`; `per_minute` paces it.
#[utoipa::path(post, path = "/api/email/campaigns", tag = "email",
    request_body = CampaignInput,
    responses((status = 201, body = EmailCampaign), (status = 400, body = Problem), (status = 409, body = Problem)), security(("bearer" = [])))]
pub async fn create_campaign(
    State(state): State<AppState>,
    _key: AdminKey,
    b: Bytes,
) -> ApiResult<(StatusCode, Json<EmailCampaign>)> {
    let input: CampaignInput = typed_body(&b)?;
    Ok((
        StatusCode::CREATED,
        Json(campaigns::create(&state.email, input).await?),
    ))
}

/// Campaigns, newest first.
#[utoipa::path(get, path = "/api/email/campaigns", tag = "email",
    responses((status = 200, body = Vec<EmailCampaign>)), security(("bearer" = [])))]
pub async fn list_campaigns(
    State(state): State<AppState>,
    _key: AdminKey,
) -> ApiResult<Json<Vec<EmailCampaign>>> {
    Ok(Json(state.store.campaigns().await?))
}

/// A campaign and its report: messages by status, opens (people, not machines), clicks,
/// unsubscribes, clicks per link, why people were skipped.
#[utoipa::path(get, path = "/api/email/campaigns/{id}", tag = "email", params(("id" = i64, Path)),
    responses((status = 200, body = Object), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn campaign(
    State(state): State<AppState>,
    _key: AdminKey,
    Id(id): Id,
) -> ApiResult<Json<Value>> {
    Ok(Json(campaigns::view(&state.email, id).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignAction {
    /// `start`, `pause`, `resume` or `cancel`.
    pub action: String,
}

/// Starts a draft, pauses, resumes or cancels a campaign (queued messages wait, go or
/// are dropped).
#[utoipa::path(post, path = "/api/email/campaigns/{id}/actions", tag = "email", params(("id" = i64, Path)),
    request_body = CampaignAction,
    responses((status = 200, body = EmailCampaign), (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)), security(("bearer" = [])))]
pub async fn campaign_action(
    State(state): State<AppState>,
    _key: AdminKey,
    Id(id): Id,
    b: Bytes,
) -> ApiResult<Json<EmailCampaign>> {
    let a: CampaignAction = typed_body(&b)?;
    Ok(Json(campaigns::act(&state.email, id, &a.action).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestBody {
    /// `email:<address>` of a staff member.
    pub to: String,
}

/// A test send of the campaign's message to staff (not counted in the campaign).
#[utoipa::path(post, path = "/api/email/campaigns/{id}/test", tag = "email", params(("id" = i64, Path)),
    request_body = TestBody,
    responses((status = 202, body = Object), (status = 400, body = Problem), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn campaign_test(
    State(state): State<AppState>,
    _key: AdminKey,
    Id(id): Id,
    b: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let t: TestBody = typed_body(&b)?;
    let m = campaigns::test_send(&state.email, id, &t.to).await?;
    Ok((StatusCode::ACCEPTED, Json(sent_view(&m))))
}

// --- Public routes: the token is the authority. ---

/// A transparent 1×1 GIF.
const PIXEL: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

pub(crate) fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found").into_response()
}

pub(crate) fn failed(e: rapport_store::StoreError) -> Response {
    tracing::warn!(error = %e, "e-mail tracking could not be recorded");
    (StatusCode::SERVICE_UNAVAILABLE, "try again").into_response()
}

/// The open pixel.
pub async fn open(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    let ua = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let token = token.trim_end_matches(".gif");
    match state.email.opened(token, ua).await {
        Ok(true) => (
            [
                (header::CONTENT_TYPE, "image/gif"),
                (header::CACHE_CONTROL, "no-store, max-age=0"),
            ],
            PIXEL,
        )
            .into_response(),
        Ok(false) => not_found(),
        Err(e) => failed(e),
    }
}

/// A tracked link: redirects only to the URL the message held at that place.
pub async fn click(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    match state.email.clicked(&token).await {
        Ok(Some(url)) => (
            StatusCode::FOUND,
            [
                (header::LOCATION, url),
                (header::CACHE_CONTROL, "no-store".to_string()),
            ],
        )
            .into_response(),
        Ok(None) => not_found(),
        Err(e) => failed(e),
    }
}

pub(crate) fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=en><meta charset=utf-8><meta name=viewport content=\"width=device-width\"><title>{title}</title>\
         <body style=\"font-family:system-ui;max-width:32rem;margin:4rem auto;padding:0 1rem\"><h1>{title}</h1>{body}</body></html>"
    ))
}

/// The unsubscribe link's page: one button, no sign-in (it posts what mail clients post).
pub async fn unsubscribe_page(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Response {
    match state.email.message_for(&token, Action::Unsubscribe).await {
        Ok(Some((m, _))) => page(
            "Unsubscribe",
            &format!(
                "<p>Stop marketing e-mail to <b>{}</b>?</p><form method=post><input type=hidden name=List-Unsubscribe value=One-Click><button>Unsubscribe</button></form>\
                 <p>Or choose what you receive, and see what we know about you: <a href=\"/me\">your data and choices</a>.</p>",
                maud::html! { (m.to_address) }.into_string()
            ),
        )
        .into_response(),
        Ok(None) => not_found(),
        Err(e) => failed(e),
    }
}

/// RFC 8058 one-click unsubscribe (and the page's button): answers 200.
pub async fn unsubscribe(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    match state.email.unsubscribe(&token).await {
        Ok(Some(_)) => page(
            "You are unsubscribed",
            "<p>You will get no more marketing e-mail at this address.</p><p><a href=\"/me\">Your data and choices</a></p>",
        )
        .into_response(),
        Ok(None) => not_found(),
        Err(e) => failed(e),
    }
}
