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
/// The pages an insight account may open.
const INSIGHT_PATHS: [&str; 2] = ["/audience", "/logout"];

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
    /// The page for this account is elsewhere.
    Elsewhere(&'static str),
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
            e @ E::TimedOut => UiError::Invalid(e.to_string()),
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
            UiError::Elsewhere(to) => return Redirect::to(to).into_response(),
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

/// The value of the cookie `name` (the staff session's here, the customer's in the
/// portal).
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

impl FromRequestParts<AppState> for Staff {
    type Rejection = UiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, UiError> {
        let next = parts
            .uri
            .path_and_query()
            .map_or("/".to_string(), |p| p.to_string());
        let token =
            cookie(&parts.headers, COOKIE_NAME).ok_or_else(|| UiError::SignIn(next.clone()))?;
        match users::session(&state.store, &token).await? {
            // Insight accounts see aggregates only: one page, whatever they ask for.
            Some((_, Role::Insight, _)) if !INSIGHT_PATHS.contains(&parts.uri.path()) => {
                Err(match parts.uri.path() {
                    "/" => UiError::Elsewhere(INSIGHT_PATHS[0]),
                    _ => UiError::Forbidden(
                        "open this page: this account sees aggregate audience insight only",
                    ),
                })
            }
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

/// Where to go after sign-in: only a path on this site. Browsers read `/\host` and
/// `/<tab>/host` as `//host` (another site), so a backslash or any control character
/// anywhere sends the person home instead; so does anything else.
fn safe_next(next: Option<&String>) -> String {
    next.filter(|n| {
        n.starts_with('/')
            && !n.starts_with("//")
            && !n.chars().any(|c| c == '\\' || c.is_control())
    })
    .cloned()
    .unwrap_or_else(|| "/".into())
}

pub async fn login(
    State(state): State<AppState>,
    client: crate::browser::ClientInfo,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> UiResult<Response> {
    let next = safe_next(f.get("next"));
    let email = f.get("email").map(String::as_str).unwrap_or("");
    let password = f.get("password").map(String::as_str).unwrap_or("");
    let ip = client.ip(&state.web.settings().await?);
    // Throttled before the password is checked: a guesser learns nothing while waiting.
    let wait = state.sign_ins.wait(email, ip);
    if !wait.is_zero() {
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        let mut r = login_form(
            &next,
            Some(&format!(
                "Too many failed sign-ins: try again in {secs} seconds."
            )),
            StatusCode::TOO_MANY_REQUESTS,
        );
        r.headers_mut()
            .insert(axum::http::header::RETRY_AFTER, HeaderValue::from(secs));
        return Ok(r);
    }
    let Some((_, token, _)) = users::login(&state.store, email, password).await? else {
        state.sign_ins.failed(email, ip);
        return Ok(login_form(
            &next,
            Some("That e-mail and password do not match an account."),
            StatusCode::UNAUTHORIZED,
        ));
    };
    state.sign_ins.succeeded(email);
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

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn sign_in_only_redirects_on_this_site() {
        let next = |s: &str| safe_next(Some(&s.to_string()));
        assert_eq!(next("/people/3?tab=x"), "/people/3?tab=x");
        for evil in [
            "//evil.example",
            "/\\evil.example",
            "/\t/evil.example",
            "/\tevil",
            "/a\r\nSet-Cookie: x=1",
            "https://evil.example",
            "evil.example",
            "",
        ] {
            assert_eq!(next(evil), "/", "{evil:?}");
        }
        assert_eq!(safe_next(None), "/");
    }
}
