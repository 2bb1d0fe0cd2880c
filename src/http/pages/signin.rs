//! Signing in and out with a session cookie: the same sessions, lockout, rate limit, idle
//! and absolute limits as bearer tokens, listed in `User.sessions`.

use super::form::{Errors, Input, Page, csrf, csrf_field, csrf_ok};
use super::layout::page;
use super::{Cookies, SESSION, caller, client, failure};
use crate::app::AppError;
use crate::http::AppState;
use axum::Form;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;
use std::net::SocketAddr;

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct Next {
    next: String,
}

/// Only a path of this site: never another host (`//evil.example`) or scheme.
fn safe_next(next: &str) -> &str {
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && next.len() <= 512
        && !next.chars().any(char::is_control);
    if local { next } else { "/requests" }
}

pub(super) async fn signin_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<Next>,
) -> Response {
    signin_form(
        &state,
        &headers,
        safe_next(&query.next),
        "",
        &Errors::default(),
    )
}

fn signin_form(
    state: &AppState,
    headers: &HeaderMap,
    next: &str,
    username: &str,
    errors: &Errors,
) -> Response {
    let (token, cookie) = csrf(state, headers);
    let body = html! {
        (errors.summary(&["username", "password"]))
        form method="post" action="/signin" novalidate {
            (csrf_field(&token))
            input type="hidden" name="next" value=(next);
            (Input { name: "username", label: "Username", kind: "text", value: username, autocomplete: "username", hint: None }.render(errors))
            (Input { name: "password", label: "Password", kind: "password", value: "", autocomplete: "current-password", hint: None }.render(errors))
            button type="submit" { "Sign in" }
        }
        p { a href="/account/reset" { "Forgot your password?" } }
    };
    Page::form(errors, cookie, page("Sign in", None, body)).into_response()
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct SigninForm {
    csrf: String,
    username: String,
    password: String,
    next: String,
}

pub(super) async fn signin_submit(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<SigninForm>,
) -> Response {
    let next = safe_next(&form.next);
    if !csrf_ok(&state, &headers, &form.csrf) {
        let mut errors = Errors::default();
        errors.add(
            "form",
            "The form was open too long or came from another site; try again.",
        );
        return signin_form(&state, &headers, next, &form.username, &errors);
    }
    let client = client(&state, &headers, peer);
    match state
        .app
        .identity()
        .login(&form.username, &form.password, &client)
        .await
    {
        Ok(logged_in) => {
            let max_age = state.app.config().session_max.as_secs();
            let cookie = Cookies::of(&state).set(SESSION, &logged_in.token, max_age, "Lax");
            let to = if logged_in.user.password_change_required {
                "/account/password"
            } else {
                next
            };
            let mut response = Redirect::to(to).into_response();
            response.headers_mut().append(header::SET_COOKIE, cookie);
            response
        }
        Err(AppError::Domain(refusal)) => {
            let mut errors = Errors::default();
            errors.add("password", refusal.message);
            signin_form(&state, &headers, next, &form.username, &errors)
        }
        Err(AppError::RateLimited) => {
            let mut errors = Errors::default();
            errors.add(
                "form",
                "Too many sign-in attempts from your address. Wait a minute and try again.",
            );
            signin_form(&state, &headers, next, &form.username, &errors)
        }
        Err(other) => failure(other),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct SignoutForm {
    csrf: String,
}

pub(super) async fn signout(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<SignoutForm>,
) -> Response {
    if !csrf_ok(&state, &headers, &form.csrf) {
        return Redirect::to("/requests").into_response();
    }
    let client = client(&state, &headers, peer);
    if let Ok(Some(caller)) = caller(&state, &headers, &client).await
        && let Err(err) = state.app.identity().logout(&caller).await
    {
        return failure(err);
    }
    let mut response = Redirect::to("/signin").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        Cookies::of(&state).set(SESSION, "", 0, "Lax"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(safe_next("/requests/abc"), "/requests/abc");
        for bad in [
            "//evil.example",
            "https://evil.example",
            "/\\evil.example",
            "",
            "requests",
        ] {
            assert_eq!(safe_next(bad), "/requests", "{bad}");
        }
    }
}
