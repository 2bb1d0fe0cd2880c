//! An owner's requests: the inbox (awaiting my decision, then recent) and one request
//! with its change, justification, timeline, and Approve / Reject.

use super::form::{Errors, Page, csrf};
use super::layout::{SignedIn, page};
use super::{caller, client, failure, not_found, signin_then};
use crate::app::policy::Action;
use crate::app::request::RequestFilter;
use crate::app::{Actor, AppError, Caller};
use crate::domain::request::{NotDecidable, may_decide};
use crate::domain::{AccountRequest, Change, RequestId, RequestStatus, User, UserId};
use crate::http::AppState;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use std::net::SocketAddr;

/// The signed-in actor of a page, or the response that stands instead (sign in first,
/// change the password first).
pub(super) async fn signed_in(
    state: &AppState,
    headers: &HeaderMap,
    peer: SocketAddr,
    path: &str,
) -> Result<Caller, Response> {
    let client = client(state, headers, peer);
    match caller(state, headers, &client).await {
        Ok(Some(caller)) => match caller.actor() {
            Ok(_) => Ok(caller),
            Err(err) => Err(failure(err)),
        },
        Ok(None) => Err(signin_then(path)),
        Err(err) => Err(failure(err)),
    }
}

fn status_text(status: RequestStatus) -> String {
    status.as_str().replace('_', " ").to_lowercase()
}

fn item(request: &AccountRequest, names: &[User]) -> Markup {
    let subject = request
        .subject_id
        .and_then(|id| names.iter().find(|u| u.id == id))
        .map(|u| u.username.as_str());
    html! {
        li {
            a href={ "/requests/" (request.id.to_global()) } { (request.describe(subject)) }
            " "
            span class="status" { (status_text(request.status)) }
        }
    }
}

pub(super) async fn inbox(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let caller = match signed_in(&state, &headers, peer, "/requests").await {
        Ok(caller) => caller,
        Err(response) => return response,
    };
    let Ok(actor) = caller.actor() else {
        return failure(AppError::PasswordChangeRequired);
    };
    let requests = state.app.requests();
    let awaiting = RequestFilter {
        awaiting_my_decision: Some(true),
        ..Default::default()
    };
    let lists = tokio::try_join!(
        requests.list(actor, awaiting, Some(50), None, false),
        requests.list(actor, RequestFilter::default(), Some(20), None, false),
    );
    let (awaiting, recent) = match lists {
        Ok(lists) => lists,
        Err(err) => return failure(err),
    };
    let ids: Vec<UserId> = awaiting
        .items
        .iter()
        .chain(&recent.items)
        .filter_map(|(_, r)| r.subject_id)
        .collect();
    let names = match state.app.view(&caller).users(actor.org_id(), &ids).await {
        Ok(names) => names,
        Err(err) => return failure(err),
    };
    let (token, cookie) = csrf(&state, &headers);
    let body = html! {
        h2 { "Awaiting your decision" }
        @if awaiting.items.is_empty() { p { "Nothing is waiting for you." } }
        ul class="list" { @for (_, r) in &awaiting.items { (item(r, &names)) } }
        h2 { "Recent" }
        @if recent.items.is_empty() { p { "No requests yet." } }
        ul class="list" { @for (_, r) in &recent.items { (item(r, &names)) } }
    };
    let name = actor.user.display_name();
    Page {
        status: StatusCode::OK,
        cookies: cookie.into_iter().collect(),
        markup: page(
            "Requests",
            Some(SignedIn {
                name: &name,
                csrf: &token,
            }),
            body,
        ),
    }
    .into_response()
}

/// The request of the path, if the caller may see it (anything else is the same 404).
async fn find(
    state: &AppState,
    actor: &Actor,
    id: &str,
) -> Result<Option<AccountRequest>, AppError> {
    match RequestId::from_global(id) {
        Some(id) => state.app.requests().request(actor, id).await,
        None => Ok(None),
    }
}

pub(super) async fn detail(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let path = format!("/requests/{}", super::form::encode(&id));
    let caller = match signed_in(&state, &headers, peer, &path).await {
        Ok(caller) => caller,
        Err(response) => return response,
    };
    show(
        &state,
        &headers,
        &caller,
        &id,
        &Errors::default(),
        StatusCode::OK,
    )
    .await
}

pub(super) async fn show(
    state: &AppState,
    headers: &HeaderMap,
    caller: &Caller,
    id: &str,
    errors: &Errors,
    status: StatusCode,
) -> Response {
    let Ok(actor) = caller.actor() else {
        return failure(AppError::PasswordChangeRequired);
    };
    let request = match find(state, actor, id).await {
        Ok(Some(request)) => request,
        Ok(None) => return not_found(),
        Err(err) => return failure(err),
    };
    let view = state.app.view(caller);
    let mut people = vec![request.requested_by];
    people.extend(request.subject_id);
    let ids = [request.id];
    let details = tokio::try_join!(
        view.users(request.org_id, &people),
        view.events_of(&ids),
        view.decisions_of(&ids),
    );
    let (users, events, decisions) = match details {
        Ok(found) => found,
        Err(err) => return failure(err),
    };
    let name_of = |id: Option<UserId>| -> String {
        id.and_then(|id| users.iter().find(|u| u.id == id))
            .map(|u| format!("{} ({})", u.display_name(), u.username))
            .unwrap_or_else(|| "the system".to_owned())
    };
    let subject = request
        .subject_id
        .and_then(|id| users.iter().find(|u| u.id == id))
        .map(|u| u.username.clone());
    let why_not = if !actor.may(Action::DecideRequest) {
        Some("Only an owner of the organization decides requests.")
    } else {
        match may_decide(&request, actor.user.id, state.app.now()) {
            Ok(()) => None,
            Err(NotDecidable::Involved) => {
                Some("You filed this request or it is about you: another owner must decide it.")
            }
            Err(NotDecidable::NotAwaiting) => {
                Some("This request is no longer waiting for a decision.")
            }
        }
    };
    let (token, cookie) = csrf(state, headers);
    let target = format!("/requests/{}", request.id.to_global());
    let body = html! {
        (errors.summary(&["accept_terms", "reason"]))
        div class="card" {
            p { strong { (request.describe(subject.as_deref())) } }
            dl {
                dt { "Status" } dd { span class="status" { (status_text(request.status)) } }
                dt { "Asked by" } dd { (name_of(Some(request.requested_by))) }
                @if request.subject_id.is_some() { dt { "About" } dd { (name_of(request.subject_id)) } }
                dt { "Filed" } dd { (request.created_at.format("%Y-%m-%d %H:%M UTC")) }
                @if let Some(reason) = &request.failure_reason { dt { "Why it failed" } dd { (reason) } }
            }
            (change(&request.change))
            @if let Some(text) = &request.justification { h2 { "Justification" } p { (text) } }
        }
        @if let Some(why) = why_not {
            p class="notice" { (why) }
        } @else {
            (super::decide::decide_forms(&request, &target, &token, errors))
        }
        h2 { "Timeline" }
        ol class="timeline" {
            @for (_, event) in &events {
                li {
                    (event.at.format("%Y-%m-%d %H:%M")) " — " (status_text(event.status)) " by " (name_of(event.actor_id))
                    @if let Some(note) = &event.note { ": " (note) }
                }
            }
            @for (_, d) in &decisions {
                li { (d.decided_at.format("%Y-%m-%d %H:%M")) " — " (name_of(Some(d.approver_id))) (if d.approved { " approved" } else { " rejected" })
                    @if let Some(comment) = &d.comment { ": " (comment) } }
            }
        }
        p { a href="/requests" { "All requests" } }
    };
    let name = actor.user.display_name();
    Page {
        status,
        cookies: cookie.into_iter().collect(),
        markup: page(
            "Account request",
            Some(SignedIn {
                name: &name,
                csrf: &token,
            }),
            body,
        ),
    }
    .into_response()
}

fn change(change: &Change) -> Markup {
    html! {
        @match change {
            Change::Licenses(c) => {
                p { (c.quantity) " more " (c.product) " license" @if c.quantity != 1 { "s" } " for " (c.kind.as_str().to_lowercase()) " users." }
                p { "Approving adds them to the organization's invoice." }
            }
            Change::Permissions(c) => {
                dl {
                    @if !c.grant.is_empty() { dt { "Grant" } dd { (join(&c.grant)) } }
                    @if !c.revoke.is_empty() { dt { "Revoke" } dd { (join(&c.revoke)) } }
                    @if let Some(role) = c.role { dt { "New role" } dd { (role) } }
                }
            }
            Change::Inactivation => { p { "The user is inactivated: their sessions end and their licenses return to the pool." } }
            Change::Reactivation { products } => {
                p { "The provider comes back with " (join(products)) "." }
                p { "Approving adds their licenses to the organization's invoice." }
            }
        }
    }
}

fn join<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
