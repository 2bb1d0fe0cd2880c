//! Account setup by the emailed link: the token leaves the URL, the form, its errors.

use super::form::{Errors, Input, Page, csrf, csrf_field, csrf_ok};
use super::layout::page;
use super::{Cookies, SETUP, client, failure};
use crate::app::AppError;
use crate::app::identity::setup::{AccountSetup, SETUP_FORM_LIFETIME, SetupKey, SetupLink};
use crate::domain::ErrorCode;
use crate::domain::password::{MAX_CHARS, MIN_CHARS};
use crate::http::AppState;
use axum::Form;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use std::net::SocketAddr;

pub(super) fn password_rules() -> String {
    format!(
        "At least {MIN_CHARS} characters (at most {MAX_CHARS}); a passphrase of a few words \
         is good. Not a common or breached password, not a keyboard run, not your username \
         or email."
    )
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct LinkQuery {
    token: Option<String>,
}

/// The emailed link: its token is exchanged at once for a short-lived server-side form
/// state whose handle the browser keeps in a cookie, and the token leaves the URL, so it
/// never stays in history, a log or a Referer.
pub(super) async fn setup_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<LinkQuery>,
) -> Response {
    let cookies = Cookies::of(&state);
    if let Some(token) = query.token {
        return match state.app.identity().open_setup_form(&token).await {
            Ok(handle) => {
                let cookie = cookies.set(SETUP, &handle, SETUP_FORM_LIFETIME.as_secs(), "Lax");
                let mut response = Redirect::to("/account/setup").into_response();
                response
                    .headers_mut()
                    .append(axum::http::header::SET_COOKIE, cookie);
                response
            }
            Err(error) => link_refused(&state, &headers, error),
        };
    }
    let Some(handle) = cookies.get(&headers, SETUP) else {
        return link_problem(&state, &headers, "no link");
    };
    refill(
        &state,
        &headers,
        handle,
        &SetupForm::default(),
        &Errors::default(),
    )
    .await
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct SetupForm {
    csrf: String,
    new_password: String,
    confirm_password: String,
    question1: String,
    answer1: String,
    question2: String,
    answer2: String,
    question3: String,
    answer3: String,
    current_question: String,
    current_answer: String,
}

pub(super) async fn setup_submit(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<SetupForm>,
) -> Response {
    if !csrf_ok(&state, &headers, &form.csrf) {
        return expired_form();
    }
    let cookies = Cookies::of(&state);
    let Some(handle) = cookies.get(&headers, SETUP) else {
        return link_problem(&state, &headers, "no link");
    };
    let mut errors = Errors::default();
    if form.new_password != form.confirm_password {
        errors.add("confirm_password", "The two passwords are not the same.");
        return refill(&state, &headers, handle, &form, &errors).await;
    }
    let questions = [
        (&form.question1, &form.answer1),
        (&form.question2, &form.answer2),
        (&form.question3, &form.answer3),
    ]
    .into_iter()
    .filter(|(q, a)| !q.trim().is_empty() || !a.trim().is_empty())
    .map(|(q, a)| (q.clone(), a.clone()))
    .collect();
    let setup = AccountSetup {
        key: SetupKey::Form(handle.clone()),
        new_password: form.new_password.clone(),
        questions,
        // Checked only for a self-requested reset of a user who has questions.
        current_answer: (!form.current_question.is_empty())
            .then(|| (form.current_question.clone(), form.current_answer.clone())),
    };
    let client = client(&state, &headers, peer);
    match state.app.identity().complete_setup(setup, &client).await {
        Ok(user) => {
            let body = html! {
                div class="notice" role="status" {
                    p { "Your account " strong { (user.username) } " is ready." }
                }
                p { a href="/signin" { "Sign in" } }
            };
            Page {
                status: StatusCode::OK,
                cookies: vec![cookies.set(SETUP, "", 0, "Lax")],
                markup: page("Account ready", None, body),
            }
            .into_response()
        }
        Err(AppError::Domain(refusal)) => {
            match refusal.field {
                Some("token" | "form") => {
                    return link_refused(&state, &headers, AppError::Domain(refusal));
                }
                Some("newPassword") => errors.add("new_password", refusal.message),
                Some("currentSecurityAnswer") => errors.add("current_answer", refusal.message),
                Some("securityQuestions") => errors.add("question1", refusal.message),
                _ => errors.add("form", refusal.message),
            }
            refill(&state, &headers, handle, &form, &errors).await
        }
        Err(other) => failure(other),
    }
}

/// The form (again, with what was typed and its errors): the link is read for whose
/// account it is.
async fn refill(
    state: &AppState,
    headers: &HeaderMap,
    handle: String,
    form: &SetupForm,
    errors: &Errors,
) -> Response {
    match state
        .app
        .identity()
        .setup_link(&SetupKey::Form(handle))
        .await
    {
        Ok(link) => setup_form(state, headers, &link, form, errors),
        Err(error) => link_refused(state, headers, error),
    }
}

/// The page for a link the app refused: expired, used or replaced.
fn link_refused(state: &AppState, headers: &HeaderMap, error: AppError) -> Response {
    match error {
        AppError::Domain(refusal) if refusal.code == ErrorCode::TokenExpired => {
            link_problem(state, headers, "expired")
        }
        AppError::Domain(refusal) if refusal.field == Some("form") => {
            link_problem(state, headers, "form expired")
        }
        AppError::Domain(_) => link_problem(state, headers, "invalid"),
        other => failure(other),
    }
}

fn setup_form(
    state: &AppState,
    headers: &HeaderMap,
    link: &SetupLink,
    form: &SetupForm,
    errors: &Errors,
) -> Response {
    let (token, cookie) = csrf(state, headers);
    let user = &link.user;
    let rules = password_rules();
    let fields = [
        "new_password",
        "confirm_password",
        "question1",
        "current_answer",
    ];
    let title = match link.purpose {
        crate::domain::SetupPurpose::Invitation => "Set up your account",
        crate::domain::SetupPurpose::Reset => "Reset your password",
    };
    let question = |n: usize, q: &str, a: &str| -> Markup {
        let q_name = ["question1", "question2", "question3"][n - 1];
        let a_name = ["answer1", "answer2", "answer3"][n - 1];
        html! {
            fieldset {
                legend { "Security question " (n) }
                (Input { name: q_name, label: "Question", kind: "text", value: q, autocomplete: "off", hint: None }.render(errors))
                (Input { name: a_name, label: "Answer", kind: "text", value: a, autocomplete: "off", hint: None }.render(errors))
            }
        }
    };
    let body = html! {
        div class="card" {
            dl {
                dt { "Name" } dd { (user.display_name()) }
                dt { "Username" } dd { (user.username) }
                dt { "Organization" } dd { (link.organization) }
            }
        }
        (errors.summary(&fields))
        form method="post" action="/account/setup" novalidate {
            (csrf_field(&token))
            @if !link.current_questions.is_empty() {
                fieldset {
                    legend { "Confirm it is you" }
                    div class="field" {
                        label for="current_question" { "One of your security questions" }
                        select id="current_question" name="current_question" {
                            @for q in &link.current_questions {
                                option value=(q) selected[*q == form.current_question] { (q) }
                            }
                        }
                    }
                    (Input { name: "current_answer", label: "Your answer", kind: "text", value: "", autocomplete: "off", hint: None }.render(errors))
                }
            }
            (Input { name: "new_password", label: "New password", kind: "password", value: "", autocomplete: "new-password", hint: Some(&rules) }.render(errors))
            (Input { name: "confirm_password", label: "New password again", kind: "password", value: "", autocomplete: "new-password", hint: None }.render(errors))
            p class="hint" { "Choose three questions only you can answer; an answer is needed when you reset your password yourself." }
            (question(1, &form.question1, &form.answer1))
            (question(2, &form.question2, &form.answer2))
            (question(3, &form.question3, &form.answer3))
            button type="submit" { "Save and activate" }
        }
    };
    Page::form(errors, cookie, page(title, None, body)).into_response()
}

/// A link that cannot be used: none in this browser, expired, used or replaced.
fn link_problem(state: &AppState, headers: &HeaderMap, why: &str) -> Response {
    let (token, cookie) = csrf(state, headers);
    let (title, text) = match why {
        "expired" => (
            "This link has expired",
            "Setup links are good for a limited time. Ask for a new email below.",
        ),
        "invalid" => (
            "This link cannot be used",
            "It was already used, or a newer email replaced it. Ask for a new email below.",
        ),
        "form expired" => (
            "Open the link from your email again",
            "A page opened from the link lasts 15 minutes. Open the link from your email \
             again, or ask for a new email below.",
        ),
        _ => (
            "Open the link from your email",
            "This page needs the link from your account-setup email. You can ask for a new one.",
        ),
    };
    let body = html! {
        p { (text) }
        (reset_form(&token, "", &Errors::default()))
    };
    Page {
        status: StatusCode::BAD_REQUEST,
        cookies: cookie.into_iter().collect(),
        markup: page(title, None, body),
    }
    .into_response()
}

pub(super) fn expired_form() -> Response {
    let body = html! {
        p { "This form was open too long or came from another site. Reload the page and try again." }
    };
    (StatusCode::FORBIDDEN, page("Please try again", None, body)).into_response()
}

pub(super) fn reset_form(csrf_token: &str, value: &str, errors: &Errors) -> Markup {
    html! {
        form method="post" action="/account/reset" {
            (csrf_field(csrf_token))
            (Input { name: "username", label: "Username or email", kind: "text", value, autocomplete: "username", hint: None }.render(errors))
            button type="submit" { "Email me a link" }
        }
    }
}
