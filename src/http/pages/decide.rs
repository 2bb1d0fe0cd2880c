//! Approve and Reject: the forms on a request's page and what they post.

use super::form::{Errors, csrf_field, csrf_ok};
use super::requests::{show, signed_in};
use super::{failure, not_found};
use crate::app::AppError;
use crate::domain::{AccountRequest, RequestId};
use crate::http::AppState;
use axum::Form;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use std::net::SocketAddr;

pub(super) fn decide_forms(
    request: &AccountRequest,
    target: &str,
    token: &str,
    errors: &Errors,
) -> Markup {
    let terms_error = errors_of(errors, "accept_terms");
    let reason_error = errors_of(errors, "reason");
    html! {
        div class="card" {
            h2 { "Approve" }
            form method="post" action={ (target) "/approve" } {
                (csrf_field(token))
                @if request.needs_terms() {
                    div class={ "field" @if terms_error.is_some() { " invalid" } } {
                        @if let Some(e) = &terms_error { p class="error" id="accept_terms-error" { (e) } }
                        label class="check" for="accept_terms" {
                            input type="checkbox" id="accept_terms" name="accept_terms" value="yes"
                                aria-describedby=[terms_error.as_ref().map(|_| "accept_terms-error")]
                                autofocus[terms_error.is_some()];
                            span { "I agree with the terms of service and authorize this addition to my invoice" }
                        }
                    }
                }
                div class="field" {
                    label for="comment" { "Comment (optional)" }
                    textarea id="comment" name="comment" maxlength="2000" {}
                }
                button type="submit" { "Approve" }
            }
        }
        div class="card" {
            h2 { "Reject" }
            form method="post" action={ (target) "/reject" } {
                (csrf_field(token))
                div class={ "field" @if reason_error.is_some() { " invalid" } } {
                    label for="reason" { "Reason (sent to the requester)" }
                    @if let Some(e) = &reason_error { p class="error" id="reason-error" { (e) } }
                    textarea id="reason" name="reason" maxlength="2000"
                        aria-describedby=[reason_error.as_ref().map(|_| "reason-error")]
                        autofocus[reason_error.is_some()] {}
                }
                button type="submit" class="danger" { "Reject" }
            }
        }
    }
}

fn errors_of(errors: &Errors, field: &str) -> Option<String> {
    errors.message(field).map(str::to_owned)
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct DecisionForm {
    csrf: String,
    accept_terms: Option<String>,
    comment: String,
    reason: String,
}

pub(super) async fn approve(
    state: State<AppState>,
    peer: ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    id: Path<String>,
    form: Form<DecisionForm>,
) -> Response {
    decide(state, peer, headers, id, form, true).await
}

pub(super) async fn reject(
    state: State<AppState>,
    peer: ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    id: Path<String>,
    form: Form<DecisionForm>,
) -> Response {
    decide(state, peer, headers, id, form, false).await
}

async fn decide(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<DecisionForm>,
    approve: bool,
) -> Response {
    let target = format!("/requests/{}", super::form::encode(&id));
    let caller = match signed_in(&state, &headers, peer, &target).await {
        Ok(caller) => caller,
        Err(response) => return response,
    };
    let mut errors = Errors::default();
    if !csrf_ok(&state, &headers, &form.csrf) {
        errors.add(
            "form",
            "The form was open too long or came from another site; try again.",
        );
        return show(
            &state,
            &headers,
            &caller,
            &id,
            &errors,
            StatusCode::FORBIDDEN,
        )
        .await;
    }
    let Ok(actor) = caller.actor() else {
        return failure(AppError::PasswordChangeRequired);
    };
    let requests = state.app.requests();
    let request_id = RequestId::from_global(&id);
    let note = |text: &str| Some(text.trim().to_owned()).filter(|t| !t.is_empty());
    let outcome = if approve {
        requests
            .approve(
                actor,
                request_id,
                note(&form.comment),
                Some(form.accept_terms.is_some()),
            )
            .await
    } else {
        requests
            .reject(actor, request_id, form.reason.clone())
            .await
    };
    match outcome {
        Ok(_) => Redirect::to(&target).into_response(),
        Err(AppError::Domain(refusal)) => {
            match refusal.field {
                Some("acceptTerms") => errors.add(
                    "accept_terms",
                    "Tick the box to agree with the terms and authorize this addition to your invoice.",
                ),
                Some("reason") => errors.add("reason", refusal.message),
                _ => errors.add("form", refusal.message),
            }
            show(
                &state,
                &headers,
                &caller,
                &id,
                &errors,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(AppError::Forbidden) => not_found(),
        Err(other) => failure(other),
    }
}
