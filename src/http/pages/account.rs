//! The "forgot password" form, and the password change a temporary password leads to.

use super::form::{Errors, Input, Page, csrf, csrf_field, csrf_ok};
use super::layout::{SignedIn, page};
use super::setup::{expired_form, password_rules, reset_form};
use super::{Cookies, SESSION, caller, client, failure, signin_then};
use crate::app::AppError;
use crate::http::AppState;
use axum::Form;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;
use std::net::SocketAddr;

pub(super) async fn reset_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (token, cookie) = csrf(&state, &headers);
    let body = html! {
        p { "Enter your username or email. If an account matches, we email it a link to set a new password." }
        (reset_form(&token, "", &Errors::default()))
    };
    Page {
        status: StatusCode::OK,
        cookies: cookie.into_iter().collect(),
        markup: page("Forgot your password?", None, body),
    }
    .into_response()
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct ResetForm {
    csrf: String,
    username: String,
}

pub(super) async fn reset_submit(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<ResetForm>,
) -> Response {
    if !csrf_ok(&state, &headers, &form.csrf) {
        return expired_form();
    }
    let client = client(&state, &headers, peer);
    match state
        .app
        .identity()
        .request_setup_email(form.username.trim(), &client)
        .await
    {
        // The same answer whether or not an account matched.
        Ok(()) => {
            let body = html! {
                div class="notice" role="status" {
                    p { "If an account matches, we have emailed it a link. It may take a minute to arrive." }
                }
                p { a href="/signin" { "Back to sign-in" } }
            };
            page("Check your email", None, body).into_response()
        }
        Err(other) => failure(other),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct PasswordForm {
    csrf: String,
    current_password: String,
    new_password: String,
    confirm_password: String,
}

pub(super) async fn password_page(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let client = client(&state, &headers, peer);
    match caller(&state, &headers, &client).await {
        Ok(Some(caller)) => password_form(
            &state,
            &headers,
            &caller.me().user.display_name(),
            &Errors::default(),
        ),
        Ok(None) => signin_then("/account/password"),
        Err(err) => failure(err),
    }
}

pub(super) async fn password_submit(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<PasswordForm>,
) -> Response {
    if !csrf_ok(&state, &headers, &form.csrf) {
        return expired_form();
    }
    let client = client(&state, &headers, peer);
    let caller = match caller(&state, &headers, &client).await {
        Ok(Some(caller)) => caller,
        Ok(None) => return signin_then("/account/password"),
        Err(err) => return failure(err),
    };
    let name = caller.me().user.display_name();
    let mut errors = Errors::default();
    if form.new_password != form.confirm_password {
        errors.add("confirm_password", "The two passwords are not the same.");
        return password_form(&state, &headers, &name, &errors);
    }
    let identity = state.app.identity();
    match identity
        .change_password(&caller, &form.current_password, &form.new_password, &client)
        .await
    {
        Ok(_) => {
            // Every session ended with the change: this browser signs in again.
            let cookies = Cookies::of(&state);
            let body = html! {
                div class="notice" role="status" { p { "Your password is changed. Sign in with the new one." } }
                p { a href="/signin" { "Sign in" } }
            };
            Page {
                status: StatusCode::OK,
                cookies: vec![cookies.set(SESSION, "", 0, "Lax")],
                markup: page("Password changed", None, body),
            }
            .into_response()
        }
        Err(AppError::Domain(refusal)) => {
            match refusal.field {
                Some("newPassword") => errors.add("new_password", refusal.message),
                Some("currentPassword") => errors.add("current_password", refusal.message),
                _ => errors.add("current_password", refusal.message),
            }
            password_form(&state, &headers, &name, &errors)
        }
        Err(other) => failure(other),
    }
}

fn password_form(state: &AppState, headers: &HeaderMap, name: &str, errors: &Errors) -> Response {
    let (token, cookie) = csrf(state, headers);
    let rules = password_rules();
    let body = html! {
        p { "Choose a new password before you continue." }
        (errors.summary(&["current_password", "new_password", "confirm_password"]))
        form method="post" action="/account/password" novalidate {
            (csrf_field(&token))
            (Input { name: "current_password", label: "Current password", kind: "password", value: "", autocomplete: "current-password", hint: None }.render(errors))
            (Input { name: "new_password", label: "New password", kind: "password", value: "", autocomplete: "new-password", hint: Some(&rules) }.render(errors))
            (Input { name: "confirm_password", label: "New password again", kind: "password", value: "", autocomplete: "new-password", hint: None }.render(errors))
            button type="submit" { "Change password" }
        }
    };
    let signed_in = SignedIn { name, csrf: &token };
    Page::form(
        errors,
        cookie,
        page("Change your password", Some(signed_in), body),
    )
    .into_response()
}
