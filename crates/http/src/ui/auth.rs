//! Sign-in, sign-out, the `Staff` extractor (the signed-in user or a redirect to
//! `/login`) and CSRF checks.

use axum::extract::{FromRequestParts, Query, State};
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::html;
use rapport_app::users::{self, Role};
use rapport_store::UserRow;
use std::collections::HashMap;

use super::layout;
use crate::AppState;

pub const COOKIE_NAME: &str = "rapport_session";

/// The signed-in staff member of a request.
pub struct Staff {
    pub user: UserRow,
    pub role: Role,
    pub csrf: String,
    token: String,
}

/// What a UI handler answers when it cannot go on: a page saying why.
pub enum UiError {
    SignIn(String),
    Forbidden(&'static str),
    NotFound(String),
    Invalid(String),
    Internal(String),
}

impl From<rapport_store::StoreError> for UiError {
    fn from(e: rapport_store::StoreError) -> Self {
        use rapport_store::StoreError as E;
        match e {
            E::NotFound(w) => UiError::NotFound(format!("{w} not found")),
            E::Invalid { field, reason } => UiError::Invalid(format!("{field}: {reason}")),
            E::Conflict(c) | E::Unavailable(c) => UiError::Invalid(c),
            E::Backend(b) => UiError::Internal(b),
            E::Rejected(r) => UiError::Invalid(r),
        }
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let (status, msg) = match self {
            UiError::SignIn(next) => {
                return Redirect::to(&format!(
                    "/login?next={}",
                    crate::ui::layout::urlencode(&next)
                ))
                .into_response()
            }
            UiError::Forbidden(what) => (
                StatusCode::FORBIDDEN,
                format!("Your role cannot {what}. Ask an admin if you need to."),
            ),
            UiError::NotFound(m) => (StatusCode::NOT_FOUND, m),
            UiError::Invalid(m) => (StatusCode::BAD_REQUEST, m),
            UiError::Internal(m) => {
                tracing::error!(error = %m, "internal error in the web app");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong on our side; the server log has the details.".into(),
                )
            }
        };
        let page = layout::bare(
            "Error",
            html! { main.narrow { div.error role="alert" { (msg) } p { a href="/" { "Back to the dashboard" } } } },
        );
        (status, page).into_response()
    }
}

pub type UiResult<T> = Result<T, UiError>;

fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE_NAME)
        .map(|(_, v)| v.to_string())
}

impl FromRequestParts<AppState> for Staff {
    type Rejection = UiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, UiError> {
        let next = parts
            .uri
            .path_and_query()
            .map_or("/".to_string(), |p| p.to_string());
        let token = cookie(&parts.headers).ok_or_else(|| UiError::SignIn(next.clone()))?;
        match users::session(&state.store, &token).await? {
            Some((user, role, csrf)) => Ok(Staff {
                user,
                role,
                csrf,
                token,
            }),
            None => Err(UiError::SignIn(next)),
        }
    }
}

impl Staff {
    /// Every form carries `_csrf`; a mismatch changes nothing.
    pub fn check(&self, form: &HashMap<String, String>) -> UiResult<()> {
        match form.get("_csrf") {
            Some(t) if t == &self.csrf => Ok(()),
            _ => Err(UiError::Invalid(
                "This form has expired (its security token does not match). Reload the page and try again.".into(),
            )),
        }
    }

    pub fn require(&self, ok: bool, what: &'static str) -> UiResult<()> {
        if ok {
            Ok(())
        } else {
            Err(UiError::Forbidden(what))
        }
    }
}

pub async fn login_page(Query(q): Query<HashMap<String, String>>) -> Response {
    login_form(
        q.get("next").map(String::as_str).unwrap_or("/"),
        None,
        StatusCode::OK,
    )
}

fn login_form(next: &str, error: Option<&str>, status: StatusCode) -> Response {
    let page = layout::bare(
        "Sign in",
        html! {
            main.narrow.login {
                h1 { "Rapport" }
                p.muted { "Sign in with your staff account." }
                @if let Some(e) = error { div.error role="alert" { (e) } }
                form method="post" action="/login" {
                    input type="hidden" name="next" value=(next);
                    label for="email" { "E-mail" }
                    input #email type="email" name="email" required autocomplete="username" autofocus;
                    label for="password" { "Password" }
                    input #password type="password" name="password" required autocomplete="current-password";
                    button type="submit" { "Sign in" }
                }
                p.muted.small { "No account yet? An admin creates one under Settings, or on the server: "
                    code { "rapport users create --email … --password … --role admin" } }
            }
        },
    );
    (status, page).into_response()
}

fn safe_next(next: Option<&String>) -> String {
    // Only local paths: never redirect off-site after sign-in.
    next.filter(|n| n.starts_with('/') && !n.starts_with("//"))
        .cloned()
        .unwrap_or_else(|| "/".into())
}

pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> UiResult<Response> {
    let next = safe_next(f.get("next"));
    let email = f.get("email").map(String::as_str).unwrap_or("");
    let password = f.get("password").map(String::as_str).unwrap_or("");
    let Some((_, token, _)) = users::login(&state.store, email, password).await? else {
        return Ok(login_form(
            &next,
            Some("That e-mail and password do not match an account."),
            StatusCode::UNAUTHORIZED,
        ));
    };
    let secure = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p == "https");
    let cookie = format!(
        "{COOKIE_NAME}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{}",
        users::SESSION_DAYS * 86_400,
        if secure { "; Secure" } else { "" }
    );
    let mut r = Redirect::to(&next).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(SET_COOKIE, v);
    }
    Ok(r)
}

pub async fn logout(
    State(state): State<AppState>,
    staff: Staff,
    Form(f): Form<HashMap<String, String>>,
) -> UiResult<Response> {
    staff.check(&f)?;
    users::logout(&state.store, &staff.token).await?;
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut().insert(
        SET_COOKIE,
        HeaderValue::from_static("rapport_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"),
    );
    Ok(r)
}
