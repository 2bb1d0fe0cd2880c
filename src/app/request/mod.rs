//! Account requests, the use cases: filing (`filing`), deciding and cancelling
//! (`deciding`), reading (here), and the workers' side (`workflow`): routing each to its
//! approvers, applying approved ones, reminding and expiring. The rules themselves (the
//! workflow table, who may decide, why a change no longer applies) are in
//! `domain::request`.

mod deciding;
mod filing;
pub(in crate::app) mod parties;

use super::feed::LiveChange;
use super::identity::session::later;
use super::page::{Page, decode_cursor, encode_cursor, page_size};
use super::policy::Action;
use super::{Actor, AppError, AppResult, service};
use crate::domain::id::ClientId;
use crate::domain::request::{NotDecidable, Step, audit_action, may_decide, needs_terms};
use crate::domain::{
    AccountRequest, Change, DomainError, ErrorCode, LicenseChange, Permission, PermissionChange,
    Product, RequestId, RequestKind, RequestStatus, Role, User, UserId, UserKind, UserStatus,
};
use crate::store::{Filing, NewDecision, NewRequest, RequestQuery, StoreError, Transition};
use gatehouse_workers::{Job, Outcome};

/// Longest justification, reason or comment kept.
const MAX_NOTE: usize = 2000;
/// How long an idempotency key returns the first request.
const IDEMPOTENCY_WINDOW: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// `requestLicenses` as typed.
#[derive(Debug, Clone)]
pub struct LicenseRequest {
    pub product: Product,
    pub kind: UserKind,
    pub quantity: i32,
    pub justification: Option<String>,
    pub accept_terms: Option<bool>,
    pub idempotency_key: Option<String>,
}

/// `requestPermissionChange` as typed.
#[derive(Debug, Clone)]
pub struct PermissionRequest {
    pub user_id: UserId,
    pub grant: Vec<Permission>,
    pub revoke: Vec<Permission>,
    pub role: Option<Role>,
    pub justification: Option<String>,
    pub idempotency_key: Option<String>,
}

/// `requestInactivation` as typed.
#[derive(Debug, Clone)]
pub struct InactivationRequest {
    pub user_id: UserId,
    pub reason: Option<String>,
    pub idempotency_key: Option<String>,
}

/// What `requests` filters on.
#[derive(Debug, Clone, Default)]
pub struct RequestFilter {
    pub status: Option<RequestStatus>,
    pub kind: Option<RequestKind>,
    /// Absent is no filter; `Some(None)` names nothing (no request matches).
    pub subject_id: Option<ClientId<UserId>>,
    pub awaiting_my_decision: Option<bool>,
}

/// The outcome of filing: the request, or the open request that stands in its way.
#[derive(Debug, Clone)]
pub enum Filed {
    Request(AccountRequest),
    AlreadyOpen(AccountRequest, DomainError),
}

/// Trims a free-text note; blank is none; too long is refused.
fn note(field: &'static str, text: Option<String>) -> AppResult<Option<String>> {
    let Some(text) = text.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if text.chars().count() > MAX_NOTE {
        return Err(
            DomainError::invalid(field, format!("Keep it under {MAX_NOTE} characters.")).into(),
        );
    }
    Ok(Some(text))
}

fn idempotency_key(key: Option<String>) -> AppResult<Option<String>> {
    let Some(key) = key.map(|k| k.trim().to_owned()) else {
        return Ok(None);
    };
    if key.is_empty() || key.len() > 128 {
        return Err(DomainError::invalid(
            "idempotencyKey",
            "An idempotency key has 1 to 128 characters.",
        )
        .into());
    }
    Ok(Some(key))
}

fn not_found(field: &'static str) -> AppError {
    DomainError::new(ErrorCode::NotFound, "No such request.")
        .on(field)
        .into()
}

fn last_owner(user: &User) -> AppError {
    DomainError::new(
        ErrorCode::LastOwner,
        format!(
            "{} is the organization's last active owner: make someone else an owner first.",
            user.username
        ),
    )
    .on("userId")
    .into()
}

service!(
    /// Account requests: filing, reading, deciding.
    Requests
);

impl Requests {
    /// Whether the caller may see the request: staff with oversight see all, members
    /// those filed by or about themselves.
    /// Whether `actor` may see `request` (of their organization).
    pub fn may_see(actor: &Actor, request: &AccountRequest) -> bool {
        actor.may(Action::SeeAllRequests) || request.involves(actor.user.id)
    }

    /// A request the caller may see; anything else is as unknown as a missing one.
    pub async fn request(&self, actor: &Actor, id: RequestId) -> AppResult<Option<AccountRequest>> {
        let request = self.store.request(actor.org_id(), id).await?;
        Ok(request.filter(|r| Self::may_see(actor, r)))
    }

    async fn request_for(
        &self,
        actor: &Actor,
        id: ClientId<RequestId>,
    ) -> AppResult<AccountRequest> {
        let id = id.ok_or_else(|| not_found("requestId"))?;
        self.request(actor, id)
            .await?
            .ok_or_else(|| not_found("requestId"))
    }

    /// The requests the caller may see, newest first.
    pub async fn list(
        &self,
        actor: &Actor,
        filter: RequestFilter,
        first: Option<i32>,
        after: Option<String>,
        with_total: bool,
    ) -> AppResult<Page<AccountRequest>> {
        let size = page_size(first, self.config.limits.max_page_size)?;
        let before_id = match after.as_deref().map(decode_cursor).transpose()? {
            Some(key) => Some(key.parse::<i64>().map_err(|_| {
                AppError::BadUserInput("`after` is not a cursor from this list.".into())
            })?),
            None => None,
        };
        let awaiting = filter.awaiting_my_decision == Some(true);
        if awaiting && !actor.may(Action::DecideRequest) {
            // Only owners ever decide.
            return Ok(Page {
                items: Vec::new(),
                has_next: false,
                total: Some(0),
            });
        }
        let query = RequestQuery {
            org_id: actor.org_id(),
            status: filter.status,
            kind: filter.kind,
            subject_id: filter.subject_id.map(|id| id.map_or(-1, |u| u.0)),
            involving: (!actor.may(Action::SeeAllRequests)).then_some(actor.user.id),
            awaiting: awaiting.then_some(actor.user.id),
            before_id,
            limit: size as i64 + 1,
            with_total,
        };
        let (mut requests, total) = self.store.requests(query).await?;
        let has_next = requests.len() > size;
        requests.truncate(size);
        Ok(Page {
            items: requests
                .into_iter()
                .map(|r| (encode_cursor(&r.id.0.to_string()), r))
                .collect(),
            has_next,
            total,
        })
    }

    /// Starts the feed of request changes of this process (API nodes do as they start).
    /// `catch_up_every`: how often to read changes no push announces (an SQLite node
    /// whose workers run in another process); `None` when every change is pushed.
    pub async fn start_feed(&self, catch_up_every: Option<std::time::Duration>) -> AppResult<()> {
        Ok(self.feed.start(&self.store, catch_up_every).await?)
    }

    /// The request changes handed out from this moment on, taken as soon as a subscription
    /// arrives (before it is authenticated and resolved), so that a change committed
    /// meanwhile (a request filed right after subscribing) is not missed.
    pub fn changes_from_now(&self) -> tokio::sync::broadcast::Receiver<LiveChange> {
        self.feed.receiver()
    }

    /// Every request's status changes, as they happen (for subscriptions): on `early`
    /// when given (from [`Self::changes_from_now`]), and the newest event recorded by
    /// now, up to which a subscriber catching up reads the table.
    pub async fn changes(
        &self,
        early: Option<tokio::sync::broadcast::Receiver<LiveChange>>,
    ) -> AppResult<(tokio::sync::broadcast::Receiver<LiveChange>, i64)> {
        self.start_feed(None).await?;
        let receiver = early.unwrap_or_else(|| self.feed.receiver());
        let newest = self.store.last_request_event().await?;
        Ok((receiver, newest))
    }

    /// The newest request event recorded.
    pub async fn newest_event(&self) -> AppResult<i64> {
        Ok(self.store.last_request_event().await?)
    }

    /// The status changes recorded after event `after` up to event `until`, oldest first
    /// (at most `limit`), for a subscriber catching up on what it missed. The caller
    /// filters them by what the subscriber may see.
    pub async fn changes_between(
        &self,
        after: i64,
        until: i64,
        limit: i64,
    ) -> AppResult<Vec<crate::store::RequestChange>> {
        let mut changes = self.store.request_changes(after, limit).await?;
        changes.retain(|c| c.event_id <= until);
        Ok(changes)
    }

    /// Users who may decide the request now: active, unlocked owners who neither filed it
    /// nor are its subject.
    pub fn current_approvers(&self, request: &AccountRequest, owners: &[User]) -> Vec<User> {
        if request.status != RequestStatus::PendingApproval {
            return Vec::new();
        }
        parties::eligible_approvers(request, owners, self.now())
    }
}

fn invalid_state(request: &AccountRequest) -> AppError {
    let status = if request.status == RequestStatus::PendingApproval {
        "expired".to_owned()
    } else {
        request.status.as_str().to_lowercase().replace('_', " ")
    };
    DomainError::new(
        ErrorCode::InvalidState,
        format!("The request is {status}: it can no longer be changed."),
    )
    .on("requestId")
    .into()
}
