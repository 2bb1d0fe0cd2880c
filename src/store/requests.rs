//! Request contracts: filing, moving and applying account requests.

use super::*;

/// Account requests: filing, reading, and every change of status, each in one
/// transaction with its event, audit event and the jobs it causes.
#[async_trait]
pub trait RequestStore: Send + Sync {
    /// Files a request in SUBMITTED with its event, audit event, idempotency key and route
    /// job. The same idempotency key of the same requester within a day is `Repeat` of the
    /// first request; an open request of the same kind for the same subject is `Open`.
    async fn file_request(&self, new: NewRequest) -> StoreResult<Filing>;
    async fn request(&self, org_id: OrgId, id: RequestId) -> StoreResult<Option<AccountRequest>>;
    /// Any organization's request, for the workers.
    async fn request_anywhere(&self, id: RequestId) -> StoreResult<Option<AccountRequest>>;
    async fn requests_by_ids(
        &self,
        org_id: OrgId,
        ids: &[RequestId],
    ) -> StoreResult<Vec<AccountRequest>>;
    /// A page of requests, newest first, with the total when asked.
    async fn requests(
        &self,
        query: RequestQuery,
    ) -> StoreResult<(Vec<AccountRequest>, Option<i64>)>;
    async fn decisions_of(
        &self,
        ids: &[RequestId],
    ) -> StoreResult<Vec<(RequestId, RequestDecision)>>;
    async fn events_of(&self, ids: &[RequestId]) -> StoreResult<Vec<(RequestId, RequestEvent)>>;
    /// The approvers a request was routed to (who were emailed).
    async fn routed_approvers(&self, id: RequestId) -> StoreResult<Vec<UserId>>;
    /// Moves a request from one of `from` to `to` (`Conflict` when it is in none of them
    /// any more, or was decided meanwhile).
    async fn transition_request(&self, change: Transition) -> StoreResult<AccountRequest>;
    /// Applies an APPROVED request's change and marks it APPLIED, all or nothing; a change
    /// that no longer applies is `Conflict`, `LastOwner` or `NoLicense`, with nothing
    /// changed; a request not (or no longer) APPROVED is `NotFound`.
    async fn apply_request(&self, application: Application) -> StoreResult<AccountRequest>;
    /// Records the one reminder of a pending request with its emails; `false` when it was
    /// reminded already or is no longer pending.
    async fn remind_request(
        &self,
        id: RequestId,
        at: Timestamp,
        jobs: Vec<OutboxMessage>,
    ) -> StoreResult<bool>;
    /// Pending requests created before `created_before` that were never reminded, and
    /// open requests past their expiry, oldest first.
    async fn due_requests(
        &self,
        now: Timestamp,
        created_before: Timestamp,
        limit: i64,
    ) -> StoreResult<(Vec<AccountRequest>, Vec<AccountRequest>)>;
    /// Status changes recorded after event `after`, in order: (event, organization,
    /// request, status).
    async fn request_changes(&self, after: i64, limit: i64) -> StoreResult<Vec<RequestChange>>;
    /// The newest request event, where a change feed starts.
    async fn last_request_event(&self) -> StoreResult<i64>;
}

/// A request to file.
#[derive(Debug, Clone)]
pub struct NewRequest {
    /// The routing job, queued with the new request.
    pub route: OutboxFor<RequestId>,
    pub org_id: OrgId,
    pub requested_by: UserId,
    pub subject_id: Option<UserId>,
    pub justification: Option<String>,
    pub change: crate::domain::Change,
    pub terms_accepted: bool,
    /// The requester is an owner (their filing is their approval).
    pub filed_by_owner: bool,
    pub at: Timestamp,
    pub expires_at: Timestamp,
    pub idempotency_key: Option<String>,
    /// Keys older than this are forgotten.
    pub idempotency_since: Timestamp,
    /// `request.submitted`; its request is filled in.
    pub audit: AuditEntry,
}

/// The outcome of filing.
#[derive(Debug, Clone)]
pub enum Filing {
    New(AccountRequest),
    /// The idempotency key was used before: the first request.
    Repeat(AccountRequest),
    /// An open request of the same kind for the same subject.
    Open(AccountRequest),
}

/// A decision recorded with a transition.
#[derive(Debug, Clone)]
pub struct NewDecision {
    pub approver_id: UserId,
    pub approved: bool,
    pub comment: Option<String>,
    pub terms_accepted: bool,
}

/// A step of a request's workflow: it moves the request only from the step's statuses
/// (else `Conflict`), to the step's status.
#[derive(Debug, Clone)]
pub struct Transition {
    pub request_id: RequestId,
    pub step: crate::domain::request::Step,
    pub at: Timestamp,
    pub actor_id: Option<UserId>,
    pub note: Option<String>,
    pub failure_reason: Option<String>,
    pub decision: Option<NewDecision>,
    /// A person's decision: it stands only if they are still an active, unlocked owner
    /// (else `StoreError::Forbidden`).
    pub approver_must_be_owner: Option<UserId>,
    /// Who was asked to decide (PENDING_APPROVAL).
    pub approvers: Vec<UserId>,
    /// `request.<status>`, its request filled in.
    pub audit: AuditEntry,
    /// Emails and follow-up work, queued in the same transaction.
    pub jobs: Vec<OutboxMessage>,
}

/// Applying an approved request.
#[derive(Debug, Clone)]
pub struct Application {
    pub request_id: RequestId,
    pub at: Timestamp,
    /// The outcome emails.
    pub jobs: Vec<OutboxMessage>,
}

/// Which requests to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct RequestQuery {
    pub org_id: OrgId,
    pub status: Option<RequestStatus>,
    pub kind: Option<RequestKind>,
    pub subject_id: Option<i64>,
    /// Only requests filed by or about this user.
    pub involving: Option<UserId>,
    /// Only pending requests this user did not file and is not the subject of.
    pub awaiting: Option<UserId>,
    /// Only requests older than this ID (the cursor).
    pub before_id: Option<i64>,
    pub limit: i64,
    pub with_total: bool,
}

/// One status change, as the change feed reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestChange {
    pub event_id: i64,
    pub org_id: OrgId,
    pub request_id: RequestId,
    pub status: RequestStatus,
}

/// What the store pushes to the change feed as request statuses change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// A change, pushed at its commit.
    Change(RequestChange),
    /// Changes may have gone by unpushed (the push channel listens again after losing its
    /// connection): read the events table from the last change seen.
    Resync,
}
