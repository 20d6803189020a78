//! The customer portal at `/me`, server-rendered, without JavaScript: sign-in by e-mail
//! link, my profile, the preference centre, "why am I seeing this", download my data
//! and delete my account. Its own cookie (`rapport_me`), its own sessions; no staff
//! route accepts them, and no portal route accepts a staff session.

use crate::browser::ClientInfo;
use crate::AppState;
use axum::extract::{Query, State};
use axum::http::header::{CONTENT_DISPOSITION, RETRY_AFTER, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use rapport_app::portal::{self, PortalSettings};
use rapport_domain::model::Frequency;
use rapport_domain::resolve::ProfileId;
use rapport_domain::time::now_millis;
use rapport_store::StoreError;
use std::collections::{BTreeMap, HashMap};

const COOKIE_NAME: &str = "rapport_me";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/me", get(home))
        .route("/me/sign-in", post(request_link))
        .route("/me/link", get(link_page).post(use_link))
        .route("/me/sign-out", post(sign_out))
        .route("/me/traits", post(edit_traits))
        .route("/me/preferences", post(preferences))
        .route("/me/primary", post(primary))
        .route("/me/emails", post(add_email))
        .route("/me/wallet", get(wallet_page).post(wallet_message))
        .route("/me/wallet/verify", post(wallet_verify))
        .route("/me/identities/remove", post(remove_identity))
        .route("/me/download", get(download))
        .route("/me/delete", get(delete_page).post(delete))
        .merge(crate::portal_tickets::routes())
        .merge(crate::portal_loyalty::routes())
}

/// A portal page's frame: the brand's name, colour and logo; readable contrast.
pub(crate) fn page(s: &PortalSettings, title: &str, body: Markup) -> Markup {
    let css = format!(
        ":root{{--accent:{}}}
*{{box-sizing:border-box}}
body{{margin:0;font:16px/1.55 system-ui,-apple-system,'Segoe UI',sans-serif;color:#1d2330;background:#f6f7f9}}
header{{background:#fff;border-bottom:4px solid var(--accent);padding:.8rem 1.2rem;display:flex;gap:.8rem;align-items:center}}
header img{{height:32px}} header strong{{font-size:1.2rem}}
main{{max-width:46rem;margin:1.5rem auto;padding:0 1rem}}
section{{background:#fff;border:1px solid #dfe3e8;border-radius:8px;padding:1rem 1.2rem;margin-bottom:1.2rem}}
h1{{font-size:1.5rem}} h2{{font-size:1.15rem;margin-top:0}}
label{{display:block;font-weight:600;margin:.6rem 0 .2rem}}
input[type=text],input[type=email]{{width:100%;padding:.5rem;border:1px solid #8a93a3;border-radius:6px;font:inherit}}
button{{background:var(--accent);color:#fff;border:0;border-radius:6px;padding:.55rem 1rem;font:inherit;font-weight:600;cursor:pointer;margin-top:.6rem}}
button.danger{{background:#a61b1b}}
.note{{color:#4a5261;font-size:.92rem}} .ok{{background:#e7f6ec;border:1px solid #9fd3b0;padding:.6rem;border-radius:6px}}
.error{{background:#fdecec;border:1px solid #e3a3a3;padding:.6rem;border-radius:6px}}
table{{border-collapse:collapse;width:100%}} td,th{{text-align:left;padding:.3rem .4rem;border-bottom:1px solid #eef0f3;vertical-align:top}}
fieldset{{border:1px solid #dfe3e8;border-radius:6px}} .choice{{display:flex;gap:.5rem;align-items:center;font-weight:400}}
.pref{{display:flex;flex-wrap:wrap;gap:.2rem 1rem;align-items:center;justify-content:space-between}} .pref .choice{{margin:.3rem 0}}
select{{padding:.35rem;border:1px solid #8a93a3;border-radius:6px;font:inherit;background:#fff}}
.sr{{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap;margin:0}}
a{{color:#1f3fb0}}",
        s.color
    );
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · " (s.brand) }
                style { (PreEscaped(css)) }
            }
            body {
                header {
                    @if let Some(logo) = &s.logo_url { img src=(logo) alt=(format!("{} logo", s.brand)); }
                    strong { (s.brand) }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

fn status_page(s: &PortalSettings, status: StatusCode, title: &str, msg: &str) -> Response {
    (
        status,
        page(
            s,
            title,
            html! { div.error role="alert" { (msg) } p { a href="/me" { "Back" } } },
        ),
    )
        .into_response()
}

/// What a portal handler may fail with.
pub(crate) struct PortalError(StoreError);

impl From<StoreError> for PortalError {
    fn from(e: StoreError) -> Self {
        PortalError(e)
    }
}

impl IntoResponse for PortalError {
    fn into_response(self) -> Response {
        let s = PortalSettings::default();
        match self.0 {
            StoreError::Invalid { field, reason } => status_page(
                &s,
                StatusCode::BAD_REQUEST,
                "Not saved",
                &format!("{field}: {reason}"),
            ),
            StoreError::NotFound(_) => status_page(
                &s,
                StatusCode::NOT_FOUND,
                "Not found",
                "There is nothing here.",
            ),
            e => {
                tracing::error!(error = %e, "internal error in the customer portal");
                status_page(
                    &s,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "Something went wrong on our side. Please try again later.",
                )
            }
        }
    }
}

pub(crate) type PResult<T> = Result<T, PortalError>;

/// The signed-in customer: person, CSRF token, session token.
pub struct Customer {
    pub(crate) person: ProfileId,
    pub(crate) csrf: String,
    token: String,
}

pub(crate) async fn customer(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Customer>, StoreError> {
    let Some(token) = crate::ui::auth::cookie(headers, COOKIE_NAME) else {
        return Ok(None);
    };
    Ok(portal::session(&state.store, &token)
        .await?
        .map(|(person, csrf)| Customer {
            person,
            csrf,
            token,
        }))
}

pub(crate) fn checked(c: &Customer, form: &HashMap<String, String>) -> Result<(), StoreError> {
    match form.get("_csrf") {
        Some(t) if t == &c.csrf => Ok(()),
        _ => Err(StoreError::invalid(
            "form",
            "this form has expired; reload the page and try again",
        )),
    }
}

fn sign_in_form(s: &PortalSettings, status: StatusCode, note: Option<&str>) -> Response {
    (
        status,
        page(
            s,
            "Your data, your choices",
            html! {
                section {
                    p { "See what " (s.brand) " knows about you, choose what you receive, download your data or delete your account." }
                    @if let Some(n) = note { div.note role="status" { (n) } }
                    form method="post" action="/me/sign-in" {
                        label for="email" { "Your e-mail address" }
                        input #email type="email" name="email" required autocomplete="email";
                        button type="submit" { "Send me a sign-in link" }
                    }
                    p { "Or " a href="/me/wallet" { "sign in with your wallet" } " (one you have added to your profile before)." }
                }
            },
        ),
    )
        .into_response()
}

async fn home(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> PResult<Response> {
    let s = portal::settings(&state.store).await?;
    let Some(c) = customer(&state, &headers).await? else {
        return Ok(sign_in_form(&s, StatusCode::OK, None));
    };
    let p = state.store.profile(c.person).await?;
    let traits = portal::shown_traits(&s, &p.traits);
    let (segments, scores, emails) = portal::why(&state.store, c.person).await?;
    let primary = state.email.choose(c.person).await?;
    let tickets = rapport_app::tickets::of_person(&state.store, &p, 20).await?;
    let points = rapport_app::loyalty::view(&state.store, c.person, 0).await?;
    let show_points = points.available + points.pending > 0
        || !points.redemptions.is_empty()
        || !state.store.reward_catalogue().await?.is_empty();
    let now = now_millis();
    let consent = |ch: &str, pu: &str| {
        p.consents
            .iter()
            .find(|x| x.channel == ch && x.purpose == pu)
    };
    let csrf = html! { input type="hidden" name="_csrf" value=(c.csrf); };
    let body = html! {
        @if let Some(m) = q.get("msg") { div.ok role="status" { (m) } }
        section aria-labelledby="profile" {
            h2 #profile { "My profile" }
            table {
                @for i in &p.identities {
                    tr { th scope="row" { (i.kind.as_str().replace('_', " ")) } td { (i.value) } }
                }
            }
            @if let Some((address, _)) = &primary { p.note { "We write to " strong { (address) } "." } }
            @let addresses: Vec<&str> = p.identities.iter().filter(|i| i.kind == rapport_domain::IdentityKind::Email).map(|i| i.value.as_str()).collect();
            @if addresses.len() > 1 {
                form method="post" action="/me/primary" {
                    (csrf)
                    fieldset {
                        legend { "Write to me at" }
                        @for (n, e) in addresses.iter().enumerate() {
                            label.choice for=(format!("primary-{n}")) {
                                input type="radio" id=(format!("primary-{n}")) name="address" value=(e) checked[primary.as_ref().is_some_and(|(a, _)| a == e)];
                                (e)
                            }
                        }
                    }
                    button type="submit" { "Use this address" }
                }
            }
            form method="post" action="/me/emails" {
                (csrf)
                label for="new-email" { "Add an e-mail address" }
                input #new-email type="email" name="email" required autocomplete="email";
                button type="submit" { "Send a confirmation link" }
            }
            p { a href="/me/wallet?for=add" { "Add a wallet" } " (you sign a message to prove it is yours)." }
            @if p.identities.len() > 1 {
                form method="post" action="/me/identities/remove" {
                    (csrf)
                    label for="remove" { "Remove one of these from your profile" }
                    select #remove name="identity" {
                        @for i in &p.identities { option value=(format!("{}:{}", i.kind.as_str(), i.value)) { (i.kind.as_str().replace('_', " ")) ": " (i.value) } }
                    }
                    button type="submit" { "Remove" }
                }
            }
            @if !traits.is_empty() {
                form method="post" action="/me/traits" {
                    (csrf)
                    @for (k, v, editable) in &traits {
                        @let shown = v.as_str().map(str::to_string).unwrap_or_else(|| if v.is_null() { String::new() } else { v.to_string() });
                        @if *editable {
                            label for=(format!("t-{k}")) { (k.replace('_', " ")) }
                            input type="text" id=(format!("t-{k}")) name=(format!("trait.{k}")) value=(shown);
                        } @else {
                            p { strong { (k.replace('_', " ")) ": " } (shown) }
                        }
                    }
                    button type="submit" { "Save my details" }
                }
            }
        }
        section aria-labelledby="prefs" {
            h2 #prefs { "What you receive" }
            form method="post" action="/me/preferences" {
                (csrf)
                @for ch in &s.channels {
                    fieldset {
                        legend { (ch) }
                        @for pu in &s.purposes {
                            @let id = format!("pref-{ch}-{pu}");
                            @let c = consent(ch, pu);
                            @let freq = c.map(|c| portal::current_frequency(c, now)).unwrap_or_default();
                            div.pref {
                                label.choice for=(id) {
                                    input type="checkbox" id=(id) name=(format!("pref.{ch}.{pu}")) value="granted" checked[c.is_some_and(|c| c.status == rapport_domain::model::ConsentStatus::Granted)];
                                    (pu)
                                }
                                label.sr for=(format!("freq-{ch}-{pu}")) { "How often: " (ch) " " (pu) }
                                select id=(format!("freq-{ch}-{pu}")) name=(format!("freq.{ch}.{pu}")) {
                                    option value="all" selected[freq == Frequency::All] { "Every message" }
                                    option value="weekly" selected[freq == Frequency::Weekly] { "At most one a week" }
                                    option value="paused" selected[freq == Frequency::Paused] { "Pause for 30 days" }
                                }
                                @if let Some(c) = c.filter(|_| freq == Frequency::Paused) {
                                    span.note { " Paused until " (rapport_domain::time::to_datetime(c.at.timestamp_millis() + rapport_domain::model::PAUSE_MS).format("%Y-%m-%d")) "." }
                                }
                            }
                        }
                    }
                }
                p.note { "Every change is recorded as your consent, with the time." }
                button type="submit" { "Save my choices" }
            }
        }
        @if show_points { (crate::portal_loyalty::section(&points)) }
        (crate::portal_tickets::section(&tickets, &csrf))
        section aria-labelledby="why" {
            h2 #why { "Why am I seeing this?" }
            h3 { "The groups you are in" }
            @if segments.is_empty() { p.note { "None." } }
            ul { @for r in &segments { li { strong { (r.title) } @if !r.detail.is_empty() { " — " (r.detail) } } } }
            h3 { "The scores our offers use" }
            @if scores.is_empty() { p.note { "None." } }
            ul { @for r in &scores { li { strong { (r.title) } @if !r.detail.is_empty() { " — " (r.detail) } } } }
            h3 { "E-mails we sent you" }
            @if emails.is_empty() { p.note { "None." } }
            ul { @for r in &emails { li { strong { (r.title) } br; (r.detail) } } }
        }
        section aria-labelledby="data" {
            h2 #data { "Your data" }
            p { a href="/me/download" download { "Download my data" } " (one JSON file with everything we store about you)." }
            p { a href="/me/delete" { "Delete my account" } }
            form method="post" action="/me/sign-out" { (csrf) button type="submit" { "Sign out" } }
        }
    };
    Ok(page(&s, "Your data, your choices", body).into_response())
}

async fn request_link(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> PResult<Response> {
    let s = portal::settings(&state.store).await?;
    let email = f
        .get("email")
        .map(|e| e.trim().to_lowercase())
        .unwrap_or_default();
    let ip = client.ip(&state.web.settings().await?);
    let wait = state.portal_links.wait(&email, ip);
    if !wait.is_zero() {
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        let mut r = sign_in_form(
            &s,
            StatusCode::TOO_MANY_REQUESTS,
            Some(&format!(
                "Too many sign-in requests: try again in {secs} seconds."
            )),
        );
        r.headers_mut().insert(RETRY_AFTER, HeaderValue::from(secs));
        return Ok(r);
    }
    // Every request counts, known address or not: a flood waits either way.
    state.portal_links.failed(&email, ip);
    let base = base_url(&state, &headers).await?;
    if let Err(StoreError::Invalid { reason, .. }) =
        portal::request_link(state.store.clone(), state.email.clone(), &email, base)
    {
        return Ok(sign_in_form(
            &s,
            StatusCode::BAD_REQUEST,
            Some(&format!("E-mail address: {reason}")),
        ));
    }
    Ok(page(
        &s,
        "Check your inbox",
        html! { section role="status" { p { "If " strong { (email) } " is an address we know, a sign-in link is on its way. It works once, within 15 minutes." } } },
    )
    .into_response())
}

/// Where links point: the e-mail settings' public URL, else this request's host.
pub(crate) async fn base_url(state: &AppState, headers: &HeaderMap) -> Result<String, StoreError> {
    let configured = state.email.shown_settings().await?.public_url;
    if !configured.is_empty() {
        return Ok(configured);
    }
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    Ok(format!("http://{host}"))
}

/// The link's landing page: a button, so mail scanners that open links do not use them.
async fn link_page(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> PResult<Response> {
    let s = portal::settings(&state.store).await?;
    let token = q.get("token").cloned().unwrap_or_default();
    Ok(page(
        &s,
        "Sign in",
        html! { section { form method="post" action="/me/link" {
            input type="hidden" name="token" value=(token);
            button type="submit" { "Sign in to " (s.brand) }
        } } },
    )
    .into_response())
}

async fn use_link(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> PResult<Response> {
    let s = portal::settings(&state.store).await?;
    let token = f.get("token").map(String::as_str).unwrap_or("");
    Ok(
        match portal::use_link(&state.store, &state.ingestor, token).await? {
            Err(e) => status_page(&s, StatusCode::BAD_REQUEST, "Sign-in link", &e.to_string()),
            Ok(portal::LinkDone::SignedIn(session)) => {
                signed_in(&headers, &session, Redirect::to("/me").into_response())
            }
            Ok(portal::LinkDone::EmailAdded { session, email }) => signed_in(
                &headers,
                &session,
                done(&format!("{email} is added to your profile.")),
            ),
        },
    )
}

/// `r` with the customer session's cookie set.
fn signed_in(headers: &HeaderMap, session: &str, mut r: Response) -> Response {
    let secure = https(headers);
    let cookie = format!(
        "{COOKIE_NAME}={session}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{}",
        portal::SESSION_HOURS * 3600,
        if secure { "; Secure" } else { "" }
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(SET_COOKIE, v);
    }
    r
}

/// A second e-mail address: a confirmation link goes to it; it joins the profile when
/// the link is used.
async fn add_email(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> PResult<Response> {
    let Some(c) = customer(&state, &headers).await? else {
        return Ok(signed_out());
    };
    checked(&c, &f)?;
    let raw = f
        .get("email")
        .map(|e| e.trim().to_lowercase())
        .unwrap_or_default();
    let ip = client.ip(&state.web.settings().await?);
    let wait = state.portal_links.wait(&raw, ip);
    if !wait.is_zero() {
        return Err(StoreError::invalid(
            "email",
            format!(
                "too many requests: try again in {} seconds",
                wait.as_secs().max(1)
            ),
        )
        .into());
    }
    state.portal_links.failed(&raw, ip);
    let base = base_url(&state, &headers).await?;
    let address =
        portal::request_add_email(&state.store, &state.email, c.person, &raw, &base).await?;
    Ok(done(&format!(
        "We sent a confirmation link to {address}: open it within 15 minutes to add the address."
    )))
}

/// What a wallet page is for: signing in, or adding the wallet to the signed-in person.
fn wallet_purpose(q: &HashMap<String, String>) -> &'static str {
    match q.get("for").map(String::as_str) {
        Some("add") => "add",
        _ => "sign-in",
    }
}

/// What a wallet form posts for, and who: adding needs a signed-in customer and the
/// form's CSRF token; `None` when it needs a session and has none.
async fn wallet_step(
    state: &AppState,
    headers: &HeaderMap,
    f: &HashMap<String, String>,
) -> Result<Option<(&'static str, Option<Customer>)>, StoreError> {
    let purpose = wallet_purpose(f);
    let c = customer(state, headers).await?;
    match (&c, purpose) {
        (None, "add") => return Ok(None),
        (Some(c), "add") => checked(c, f)?,
        _ => {}
    }
    Ok(Some((purpose, c)))
}

/// Whether the request came over HTTPS (per the proxy's `X-Forwarded-Proto`).
fn https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p == "https")
}

/// The host SIWE messages name and are checked against, and the page's URI.
fn siwe_origin(headers: &HeaderMap) -> (String, String) {
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_string();
    let scheme = if https(headers) { "https" } else { "http" };
    (host.clone(), format!("{scheme}://{host}/me/wallet"))
}

/// Step 1 of wallet sign-in (or adding one): which address and chain.
async fn wallet_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> PResult<Response> {
    let s = portal::settings(&state.store).await?;
    let purpose = wallet_purpose(&q);
    let c = customer(&state, &headers).await?;
    if purpose == "add" && c.is_none() {
        return Ok(signed_out());
    }
    let chains = state.store.chains().await?;
    let title = if purpose == "add" {
        "Add a wallet"
    } else {
        "Sign in with your wallet"
    };
    Ok(page(
        &s,
        title,
        html! { section {
            p { "You will sign a message with your wallet to prove it is yours. Signing costs nothing and sends no transaction." }
            form method="post" action="/me/wallet" {
                input type="hidden" name="for" value=(purpose);
                @if let Some(c) = &c { input type="hidden" name="_csrf" value=(c.csrf); }
                label for="address" { "Your wallet address" }
                input #address type="text" name="address" required placeholder="0x…" autocomplete="off" spellcheck="false";
                label for="chain" { "Network" }
                select #chain name="chain" {
                    @if chains.is_empty() { option value="1" { "Ethereum (chain 1)" } }
                    @for ch in &chains {
                        @if let Some(id) = ch.id.strip_prefix("eip155:") { option value=(id) { (ch.name) " (chain " (id) ")" } }
                    }
                }
                button type="submit" { "Next: the message to sign" }
            }
        } },
    )
    .into_response())
}

/// Step 2: the exact message to sign, with a field for the signature. A browser wallet
/// can fill it (a few lines of script); without script, sign the message in the wallet
/// app and paste the signature.
async fn wallet_message(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> PResult<Response> {
    let s = portal::settings(&state.store).await?;
    let Some((purpose, c)) = wallet_step(&state, &headers, &f).await? else {
        return Ok(signed_out());
    };
    let chain: u64 = f
        .get("chain")
        .and_then(|c| c.trim().parse().ok())
        .ok_or_else(|| StoreError::invalid("chain", "a chain id, e.g. 1"))?;
    let address = f.get("address").map(String::as_str).unwrap_or("");
    let (host, uri) = siwe_origin(&headers);
    let statement = if purpose == "add" {
        format!("Add this wallet to my profile at {}.", s.brand)
    } else {
        format!("Sign in to my profile at {}.", s.brand)
    };
    let message =
        rapport_app::siwe::message(&state.store, &host, &uri, address, chain, &statement).await?;
    Ok(page(
        &s,
        "Sign this message",
        html! { section {
            p { "Sign this exact message with your wallet (in its app: “sign message”), then paste the signature below. It works once, within 10 minutes." }
            pre #siwe-message style="white-space:pre-wrap;background:#f6f7f9;padding:.6rem;border-radius:6px" { (message) }
            form #siwe method="post" action="/me/wallet/verify" {
                input type="hidden" name="for" value=(purpose);
                @if let Some(c) = &c { input type="hidden" name="_csrf" value=(c.csrf); }
                input type="hidden" name="message" value=(message);
                label for="signature" { "Signature (0x…)" }
                input #signature type="text" name="signature" required autocomplete="off" spellcheck="false";
                button type="submit" { "Check my signature" }
                button #use-wallet type="button" hidden { "Sign with my browser wallet" }
            }
            script { (PreEscaped(SIGN_SCRIPT)) }
        } },
    )
    .into_response())
}

/// Fills the signature from a browser wallet (EIP-1193) when there is one.
const SIGN_SCRIPT: &str = r##"(function(){var b=document.getElementById("use-wallet");if(!window.ethereum||!b)return;b.hidden=false;b.onclick=async function(){try{var m=document.querySelector("#siwe input[name=message]").value;var a=(await window.ethereum.request({method:"eth_requestAccounts"}))[0];document.getElementById("signature").value=await window.ethereum.request({method:"personal_sign",params:[m,a]});document.getElementById("siwe").submit();}catch(e){alert(e.message||e);}};})();"##;

async fn wallet_verify(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> PResult<Response> {
    let s = portal::settings(&state.store).await?;
    let Some((purpose, c)) = wallet_step(&state, &headers, &f).await? else {
        return Ok(signed_out());
    };
    let (host, _) = siwe_origin(&headers);
    let message = f.get("message").map(String::as_str).unwrap_or("");
    let signature = f.get("signature").map(String::as_str).unwrap_or("");
    let w = rapport_app::siwe::check(&state.store, message, signature, &host).await?;
    match (purpose, c) {
        ("add", Some(c)) => {
            portal::add_wallet(&state.store, &state.ingestor, c.person, &w).await?;
            Ok(done(&format!(
                "Your wallet {} is added to your profile.",
                w.address
            )))
        }
        _ => match portal::wallet_sign_in(&state.store, &w).await? {
            Ok(session) => Ok(signed_in(
                &headers,
                &session,
                Redirect::to("/me").into_response(),
            )),
            Err(e) => Ok(status_page(
                &s,
                StatusCode::BAD_REQUEST,
                "Wallet sign-in",
                &e.to_string(),
            )),
        },
    }
}

pub(crate) fn signed_out() -> Response {
    let mut r = Redirect::to("/me").into_response();
    r.headers_mut().insert(
        SET_COOKIE,
        HeaderValue::from_static("rapport_me=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"),
    );
    r
}

async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> PResult<Response> {
    let Some(c) = customer(&state, &headers).await? else {
        return Ok(signed_out());
    };
    checked(&c, &f)?;
    portal::sign_out(&state.store, &c.token).await?;
    Ok(signed_out())
}

pub(crate) fn done(msg: &str) -> Response {
    Redirect::to(&format!("/me?msg={}", crate::ui::layout::urlencode(msg))).into_response()
}

async fn edit_traits(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> PResult<Response> {
    let Some(c) = customer(&state, &headers).await? else {
        return Ok(signed_out());
    };
    checked(&c, &f)?;
    let values: BTreeMap<String, String> = f
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("trait.")?.to_string(), v.clone())))
        .collect();
    portal::edit_traits(&state.store, c.person, &values).await?;
    Ok(done("Your details are saved."))
}

async fn preferences(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> PResult<Response> {
    let Some(c) = customer(&state, &headers).await? else {
        return Ok(signed_out());
    };
    checked(&c, &f)?;
    let choices = choices(&f)?;
    let ip = client
        .ip(&state.web.settings().await?)
        .map(|i| i.to_string())
        .unwrap_or_default();
    let proof = format!(
        "customer portal, signed in by e-mail link; at {}; client {ip}",
        rapport_domain::time::to_datetime(now_millis()).to_rfc3339()
    );
    let n = portal::set_preferences(&state.store, c.person, &choices, &proof).await?;
    Ok(done(&format!("Your choices are saved ({n} changed).")))
}

/// The preference form's fields: `pref.<channel>.<purpose>` (a ticked box) and
/// `freq.<channel>.<purpose>` (all, weekly or paused).
fn choices(f: &HashMap<String, String>) -> Result<Vec<portal::Choice>, StoreError> {
    let mut out: BTreeMap<(String, String), portal::Choice> = BTreeMap::new();
    for (k, v) in f {
        let (granted, rest) = if let Some(r) = k.strip_prefix("pref.") {
            (true, r)
        } else if let Some(r) = k.strip_prefix("freq.") {
            (false, r)
        } else {
            continue;
        };
        let Some((ch, pu)) = rest.split_once('.') else {
            return Err(StoreError::invalid(k, "expected <channel>.<purpose>"));
        };
        let c = out
            .entry((ch.to_string(), pu.to_string()))
            .or_insert_with(|| portal::Choice {
                channel: ch.to_string(),
                purpose: pu.to_string(),
                granted: false,
                frequency: Frequency::All,
            });
        if granted {
            c.granted = true;
        } else {
            c.frequency = Frequency::parse(v)
                .ok_or_else(|| StoreError::invalid(k, "choose all, weekly or paused"))?;
        }
    }
    Ok(out.into_values().collect())
}

async fn primary(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> PResult<Response> {
    let Some(c) = customer(&state, &headers).await? else {
        return Ok(signed_out());
    };
    checked(&c, &f)?;
    let address = f.get("address").map(String::as_str).unwrap_or("");
    portal::set_primary(&state.store, c.person, address).await?;
    Ok(done(&format!("We will write to {address}.")))
}

async fn remove_identity(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> PResult<Response> {
    let Some(c) = customer(&state, &headers).await? else {
        return Ok(signed_out());
    };
    checked(&c, &f)?;
    let identity = f.get("identity").map(String::as_str).unwrap_or("");
    portal::remove_identity(&state.store, c.person, identity).await?;
    Ok(done("Removed from your profile."))
}

async fn download(State(state): State<AppState>, headers: HeaderMap) -> PResult<Response> {
    let Some(c) = customer(&state, &headers).await? else {
        return Ok(signed_out());
    };
    let doc = rapport_app::privacy::export(&state.store, c.person).await?;
    Ok((
        [(
            CONTENT_DISPOSITION,
            HeaderValue::from_static("attachment; filename=\"my-data.json\""),
        )],
        axum::Json(doc),
    )
        .into_response())
}

async fn delete_page(State(state): State<AppState>, headers: HeaderMap) -> PResult<Response> {
    let s = portal::settings(&state.store).await?;
    let Some(c) = customer(&state, &headers).await? else {
        return Ok(signed_out());
    };
    Ok(page(
        &s,
        "Delete my account",
        html! { section {
            p { "This deletes everything we store about you: your details, identities, choices, history and e-mails. It cannot be undone." }
            p { "We keep a fingerprint (a one-way hash) of your identifiers so that we do not collect data about you again." }
            form method="post" action="/me/delete" {
                input type="hidden" name="_csrf" value=(c.csrf);
                label.choice for="confirm" { input #confirm type="checkbox" name="confirm" value="yes" required; "I understand: delete my account and all my data" }
                button.danger type="submit" { "Delete my account" }
            }
        } },
    )
    .into_response())
}

async fn delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> PResult<Response> {
    let s = portal::settings(&state.store).await?;
    let Some(c) = customer(&state, &headers).await? else {
        return Ok(signed_out());
    };
    checked(&c, &f)?;
    if f.get("confirm").map(String::as_str) != Some("yes") {
        return Err(StoreError::invalid("confirm", "tick the box to confirm").into());
    }
    state
        .ingestor
        .erased()
        .erase(c.person, true, &portal::who(c.person), now_millis())
        .await?;
    let mut r = page(
        &s,
        "Your account is deleted",
        html! { section role="status" { p { "Everything we stored about you is deleted." } } },
    )
    .into_response();
    r.headers_mut().insert(
        SET_COOKIE,
        HeaderValue::from_static("rapport_me=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"),
    );
    Ok(r)
}

/// The portal's settings: brand name, colour and logo, the sign-in sender, which traits
/// customers see or edit, and the preference centre's channels and purposes.
#[utoipa::path(get, path = "/api/portal/settings", tag = "privacy",
    responses((status = 200, body = PortalSettings)), security(("bearer" = [])))]
pub async fn settings(
    State(state): State<AppState>,
    _key: crate::auth::AdminKey,
) -> crate::problem::ApiResult<axum::Json<PortalSettings>> {
    Ok(axum::Json(portal::settings(&state.store).await?))
}

#[utoipa::path(put, path = "/api/portal/settings", tag = "privacy", request_body = PortalSettings,
    responses((status = 200, body = PortalSettings), (status = 400, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn set_settings(
    State(state): State<AppState>,
    key: crate::auth::AdminKey,
    body: axum::body::Bytes,
) -> crate::problem::ApiResult<axum::Json<PortalSettings>> {
    let s: PortalSettings = crate::problem::typed_body(&body)?;
    portal::set_settings(&state.store, &s).await?;
    rapport_app::privacy::audit(
        &state.store,
        &key.who(),
        "portal.settings",
        "settings:portal".into(),
        serde_json::Value::Null,
    )
    .await?;
    Ok(axum::Json(s))
}
