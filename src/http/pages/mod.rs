//! The pages behind the emailed links, server-rendered and working without JavaScript:
//! account setup (`/account/setup`), the "forgot password" form (`/account/reset`),
//! sign-in and sign-out with a session cookie, a forced password change, and an owner's
//! requests (`/requests`, `/requests/<id>`). They call the same app as the GraphQL API, so
//! every rule, audit event and email is the same.
//!
//! Every form carries a CSRF token that must match the browser's CSRF cookie; every page
//! is sent with a CSP that allows no inline script or style, `frame-ancestors 'none'`,
//! `Referrer-Policy: no-referrer` and `nosniff`.

mod account;
mod decide;
mod form;
mod layout;
mod requests;
mod setup;
mod signin;

use super::AppState;
use crate::app::{AppError, Caller, ClientInfo};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

/// Largest form a page accepts (the longest field, a justification, is 2,000 characters).
const MAX_FORM_BYTES: usize = 64 * 1024;

/// The page routes, merged into the HTTP router.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/static/gatehouse.css", get(layout::stylesheet))
        .route(
            "/account/setup",
            get(setup::setup_page).post(setup::setup_submit),
        )
        .route(
            "/account/reset",
            get(account::reset_page).post(account::reset_submit),
        )
        .route(
            "/account/password",
            get(account::password_page).post(account::password_submit),
        )
        .route(
            "/signin",
            get(signin::signin_page).post(signin::signin_submit),
        )
        .route("/signout", post(signin::signout))
        .route("/requests", get(requests::inbox))
        .route("/requests/{id}", get(requests::detail))
        .route("/requests/{id}/approve", post(decide::approve))
        .route("/requests/{id}/reject", post(decide::reject))
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(middleware::map_response(security_headers))
}

async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// The cookies of one browser, named for how the site is served: with the `__Host-`
/// prefix (and `Secure`) when browsers come over https.
#[derive(Clone, Copy)]
pub(super) struct Cookies {
    secure: bool,
}

/// The browser's session.
pub(super) const SESSION: &str = "gh_session";
/// The CSRF token every form echoes.
pub(super) const CSRF: &str = "gh_csrf";
/// The setup link's token, once it left the URL.
pub(super) const SETUP: &str = "gh_setup";

impl Cookies {
    pub(super) fn of(state: &AppState) -> Self {
        Cookies {
            secure: state.app.config().https(),
        }
    }

    fn name(self, base: &str) -> String {
        if self.secure {
            format!("__Host-{base}")
        } else {
            base.to_owned()
        }
    }

    /// The value of one of our cookies in the request.
    pub(super) fn get(self, headers: &HeaderMap, base: &str) -> Option<String> {
        let name = self.name(base);
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_owned())
            .filter(|v| !v.is_empty() && v.len() <= 512)
    }

    /// A `Set-Cookie` value: HttpOnly, path `/`, `Secure` on https; `max_age` 0 deletes.
    pub(super) fn set(self, base: &str, value: &str, max_age: u64, same_site: &str) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let text = format!(
            "{}={value}; Path=/; HttpOnly; SameSite={same_site}; Max-Age={max_age}{secure}",
            self.name(base)
        );
        HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

/// The signed-in caller of a page, from the session cookie (the same sessions, limits and
/// lockout as bearer tokens).
pub(super) async fn caller(
    state: &AppState,
    headers: &HeaderMap,
    client: &ClientInfo,
) -> Result<Option<Caller>, AppError> {
    match Cookies::of(state).get(headers, SESSION) {
        Some(token) => state.app.identity().authenticate(&token, client).await,
        None => Ok(None),
    }
}

/// Where to go to sign in and come back to `path`.
pub(super) fn signin_then(path: &str) -> Response {
    Redirect::to(&format!("/signin?next={}", form::encode(path))).into_response()
}

/// A page answering an error the caller cannot fix on a form: the app refused, or the
/// server failed (logged, never shown).
pub(super) fn failure(err: AppError) -> Response {
    let (status, title, text) = match err {
        AppError::Unauthenticated => (
            StatusCode::UNAUTHORIZED,
            "Please sign in",
            "Your session ended. Sign in again to continue.".to_owned(),
        ),
        AppError::Forbidden => (
            StatusCode::FORBIDDEN,
            "Not allowed",
            "Your role does not allow this.".to_owned(),
        ),
        AppError::RateLimited => (
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts",
            "Too many attempts from your address. Wait a minute and try again.".to_owned(),
        ),
        AppError::PasswordChangeRequired => {
            return Redirect::to("/account/password").into_response();
        }
        AppError::BadUserInput(message) => (StatusCode::BAD_REQUEST, "Not accepted", message),
        AppError::Domain(refusal) => (StatusCode::BAD_REQUEST, "Not accepted", refusal.message),
        AppError::Unexpected(cause) => {
            tracing::error!(error = ?cause, "a page failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "Something went wrong on our side; it has been logged. Try again in a moment."
                    .to_owned(),
            )
        }
    };
    let body = maud::html! { p { (text) } };
    (status, layout::page(title, None, body)).into_response()
}

/// A page that is not there (an unknown request, another organization's).
pub(super) fn not_found() -> Response {
    let body = maud::html! {
        p { "There is nothing here: the link may be mistyped, or it is not for your account." }
        p { a href="/requests" { "Go to your requests" } }
    };
    (StatusCode::NOT_FOUND, layout::page("Not found", None, body)).into_response()
}

/// Where a page's request comes from (the client address as the proxies tell it).
pub(super) fn client(
    state: &AppState,
    headers: &HeaderMap,
    peer: std::net::SocketAddr,
) -> ClientInfo {
    super::client_info(headers, peer, &state.app.config().trusted_proxies)
}
