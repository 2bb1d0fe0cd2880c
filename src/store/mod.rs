//! Persistence: the `Store` trait shaped by use case, with SQLite and PostgreSQL implementations
//! that share their SQL text (see `sql.rs`) and are held honest by one conformance suite.

mod migrations;
mod postgres;
mod rows;
mod sql;
mod sqlite;

pub use migrations::{Migrations, migrations_for};
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

use crate::domain::audit::AuditRecord;
use crate::domain::{
    AccountRequest, LicensePool, OrgId, Organization, Permission, Practice, PracticeId, Product,
    RequestDecision, RequestEvent, RequestId, RequestKind, RequestStatus, Role, SessionId,
    Timestamp, User, UserId, UserKind,
};
use crate::domain::{OutboxFor, OutboxMessage, SetupPurpose};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

pub type StoreResult<T> = Result<T, StoreError>;

/// What can go wrong below the use cases, in their terms.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A unique value is taken; `field` names it (`username`, `email`, `name`).
    #[error("{field} already exists")]
    AlreadyExists { field: &'static str },
    #[error("no {product} license available for {kind} users")]
    NoLicense { product: Product, kind: UserKind },
    /// A conditional change found the data no longer in the expected state.
    #[error("conflict: {0}")]
    Conflict(String),
    /// An approved change no longer applies to the data as it is now.
    #[error("{0}")]
    NotApplicable(crate::domain::request::NotApplicable),
    /// The acting user may no longer do this (locked, inactivated or demoted meanwhile).
    #[error("no longer allowed")]
    Forbidden,
    /// The change would leave the organization without an active owner.
    #[error("the last active owner")]
    LastOwner,
    /// Stored data that does not decode into the domain (a bug or a manual edit).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Database(sqlx::Error),
}

pub use crate::config::Backend;
pub use crate::domain::SessionRecord;
pub use crate::domain::audit::AuditEntry;

/// A user to create. Licenses of each product are taken from the pool of the user's kind.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub org_id: OrgId,
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub mobile: Option<String>,
    pub kind: UserKind,
    pub role: Role,
    pub products: Vec<Product>,
    pub permissions: Vec<crate::domain::Permission>,
    pub practice_ids: Vec<PracticeId>,
    /// Set: the user is ACTIVE with this argon2 hash. Unset: INVITED.
    pub password_hash: Option<String>,
    pub encryption_key: Vec<u8>,
    pub created_at: Timestamp,
}

/// How a new user is recorded: the audit event (its subject becomes the new user) and,
/// when invited, the setup email to queue in the same transaction.
#[derive(Debug, Clone)]
pub struct UserCreation {
    pub user: NewUser,
    pub audit: AuditEntry,
    /// The account-setup email to queue for the new user, when there is one.
    pub setup_email: Option<OutboxFor<UserId>>,
}

/// A new organization with its license pools and first OWNER.
#[derive(Debug, Clone)]
pub struct NewOrganization {
    pub name: String,
    pub created_at: Timestamp,
    pub pools: Vec<(Product, UserKind, i32)>,
    /// The owner; its `org_id` is ignored and set to the new organization.
    pub owner: UserCreation,
}

#[derive(Debug, Clone)]
pub struct NewSession {
    pub user_id: UserId,
    pub token_hash: Vec<u8>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    /// What the sign-in verified; the session starts only if it still holds.
    pub guard: Option<SignInGuard>,
}

/// The state a sign-in verified against: the session starts only if the password is still
/// the one checked (no change meanwhile) and no lock began meanwhile (except the
/// provisional lock this very check set, which its success ends).
#[derive(Debug, Clone)]
pub struct SignInGuard {
    pub verified_hash: String,
    pub check_lock: Option<Timestamp>,
    /// A stronger hash of the same password, written only over the verified one.
    pub rehash: Option<String>,
}

/// One claimed check of a user's secret (see `IdentityStore::claim_secret_check`).
#[derive(Debug, Clone)]
pub struct SecretCheck {
    pub password_hash: Option<String>,
    /// The lock this check started provisionally, being the threshold-th in a row.
    pub check_lock: Option<Timestamp>,
}

/// A wrong secret, to record.
#[derive(Debug, Clone)]
pub struct FailedCheck {
    pub user_id: UserId,
    pub check_lock: Option<Timestamp>,
    pub audit: AuditEntry,
    pub lock: LockNotice,
}

/// A live session and its user, found by token.
#[derive(Debug, Clone)]
pub struct SessionUser {
    pub session_id: SessionId,
    pub user: User,
}

/// A job waiting in the outbox to be handed to the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxJob {
    pub id: i64,
    pub message: OutboxMessage,
    pub created_at: Timestamp,
    pub attempts: i32,
}

/// Everything Gatehouse keeps, by area; each method is one atomic use case. Callers hold
/// an `Arc<dyn Store>`, on which every area's methods are callable.
#[async_trait]
pub trait Store:
    DirectoryStore + IdentityStore + AuditStore + JobStore + RequestStore + Send + Sync + 'static
{
    fn backend(&self) -> Backend;

    /// Cheap round trip, for readiness checks.
    async fn ping(&self) -> StoreResult<()>;

    /// Keeps the database's files in bounds; run periodically (SQLite: a write-ahead log
    /// grown large under constant use is checkpointed and truncated).
    async fn compact(&self) -> StoreResult<()>;

    /// Notified when a job was written to the outbox (by this process; on PostgreSQL by
    /// any process, through LISTEN/NOTIFY), so that the relay need not poll.
    fn outbox_signal(&self) -> Arc<tokio::sync::Notify>;
}

/// Organizations, practices, license pools and users.
#[async_trait]
pub trait DirectoryStore: Send + Sync {
    /// Creates the organization, its pools and its owner (taking the owner's licenses),
    /// with their audit events and the owner's setup email, all or nothing.
    async fn create_organization(&self, new: NewOrganization) -> StoreResult<(Organization, User)>;
    async fn organization(&self, id: OrgId) -> StoreResult<Organization>;
    async fn organization_ids(&self) -> StoreResult<Vec<OrgId>>;

    async fn create_practice(
        &self,
        org_id: OrgId,
        name: &str,
        audit: AuditEntry,
    ) -> StoreResult<Practice>;
    async fn practices(&self, org_id: OrgId) -> StoreResult<Vec<Practice>>;
    async fn license_pools(&self, org_id: OrgId) -> StoreResult<Vec<LicensePool>>;

    /// Creates a user, taking one license per product atomically (`NoLicense` changes nothing).
    async fn create_user(&self, creation: UserCreation) -> StoreResult<User>;
    /// A user of the organization; another organization's user is `NotFound`.
    async fn user(&self, org_id: OrgId, id: UserId) -> StoreResult<User>;
    async fn user_products(&self, id: UserId) -> StoreResult<Vec<Product>>;
    /// One page of an organization's users in directory order, with the total when asked.
    async fn search_users(&self, search: UserSearch) -> StoreResult<UserPage>;
    /// Fills in search keys of users that have none (rows written before search existed).
    async fn reindex_users(&self) -> StoreResult<u64>;
    async fn owners(&self, org_id: OrgId) -> StoreResult<Vec<User>>;
    /// Users of the organization among `ids` (others are left out).
    async fn users_by_ids(&self, org_id: OrgId, ids: &[UserId]) -> StoreResult<Vec<User>>;
    async fn practices_of_users(&self, ids: &[UserId]) -> StoreResult<Vec<(UserId, Practice)>>;
    async fn products_of_users(&self, ids: &[UserId]) -> StoreResult<Vec<(UserId, Product)>>;
    async fn permissions_of_users(&self, ids: &[UserId]) -> StoreResult<Vec<(UserId, Permission)>>;
    async fn update_user(&self, update: UserUpdate) -> StoreResult<User>;
    /// Reactivates an INACTIVE user with the given products, taking their licenses
    /// (`NoLicense` changes nothing; a user no longer inactive is a `Conflict`).
    async fn reactivate_user(&self, reactivation: Reactivation) -> StoreResult<User>;
}

/// Credentials, sessions, setup tokens and lockout.
#[async_trait]
pub trait IdentityStore: Send + Sync {
    /// The user and their password hash, for sign-in.
    async fn credentials_by_username(
        &self,
        username: &str,
    ) -> StoreResult<Option<(User, Option<String>)>>;

    /// Starts a session after a successful sign-in: resets the failure count, stamps the
    /// login time and records the audit event.
    async fn start_session(&self, session: NewSession, audit: AuditEntry)
    -> StoreResult<SessionId>;
    /// The live session for a token hash (not ended, not expired, not idle past `idle`,
    /// user ACTIVE), marking it seen.
    async fn session_by_token(
        &self,
        token_hash: &[u8],
        now: Timestamp,
        idle: Duration,
    ) -> StoreResult<Option<SessionUser>>;
    async fn end_session(&self, id: SessionId, audit: AuditEntry) -> StoreResult<()>;
    /// Which of these sessions are live (not ended, expired or idle, user ACTIVE), without
    /// marking them seen.
    async fn live_sessions(
        &self,
        ids: &[SessionId],
        now: Timestamp,
        idle: Duration,
    ) -> StoreResult<Vec<SessionId>>;

    /// Voids the user's open setup tokens and stores a new one, with its audit event, if
    /// the account may receive it (an invitation needs INVITED; a reset INVITED or ACTIVE).
    /// Returns the user and their organization's name, or `None` when it may not.
    async fn issue_setup_token(
        &self,
        token: NewSetupToken,
        audit: AuditEntry,
    ) -> StoreResult<Option<(User, String)>>;

    /// Ends sessions past their lifetime or idle time and deletes setup tokens expired
    /// for a week. Returns how many of each.
    async fn expire_credentials(&self, now: Timestamp, idle: Duration) -> StoreResult<(u64, u64)>;

    async fn user_by_username_or_email(&self, text: &str) -> StoreResult<Option<User>>;
    /// Any user by ID, for flows authenticated by an emailed token rather than a session.
    async fn user_by_id(&self, id: UserId) -> StoreResult<Option<User>>;
    /// Decides, in one statement, that the ACTIVE user is not locked and counts this check
    /// of their secret as a failure until it is proven right; the threshold-th check in a
    /// row locks the account until `lock_until` at once (Keycloak's brute-force detector
    /// decides before verifying, likewise). `None`: locked or not active; nothing may be
    /// verified. However many checks arrive at once, at most `threshold` are verified.
    async fn claim_secret_check(
        &self,
        user_id: UserId,
        now: Timestamp,
        threshold: i32,
        lock_until: Timestamp,
    ) -> StoreResult<Option<SecretCheck>>;
    /// Records a wrong secret; when its check started the lock (and it still stands), the
    /// lock's audit event and email with it. Returns whether the lock started.
    async fn secret_check_failed(&self, failure: FailedCheck) -> StoreResult<bool>;
    /// A right secret: the count starts over and the check's own lock ends, unless other
    /// checks locked the account meanwhile (then `false`, and the lock stands).
    async fn secret_check_passed(
        &self,
        user_id: UserId,
        check_lock: Option<Timestamp>,
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// Counts a security answer given with a setup link; `false` when the link is used,
    /// voided, or has had `threshold` answers checked already.
    async fn claim_answer_attempt(&self, token_id: i64, threshold: i32) -> StoreResult<bool>;
    /// Sets a password (and whether it must be changed at next sign-in), ends every
    /// session of the user, clears any lock, with the audit event and email.
    async fn set_password(&self, change: PasswordChange) -> StoreResult<User>;
    async fn setup_token(&self, token_hash: &[u8]) -> StoreResult<Option<SetupTokenRecord>>;
    async fn security_answers(&self, user_id: UserId) -> StoreResult<Vec<SecurityAnswer>>;
    /// Uses the token (once: a token used or voided meanwhile is a `Conflict`), sets the
    /// password and security questions, activates an INVITED user, clears any lock and
    /// ends every session.
    async fn complete_setup(&self, setup: CompleteSetup) -> StoreResult<User>;
    /// New key material, version + 1 (a `Conflict` if the version moved meanwhile), every
    /// session ended.
    async fn reset_encryption_key(&self, reset: KeyReset) -> StoreResult<User>;
    /// Ends every session of the user; returns how many were open.
    async fn revoke_sessions(&self, user_id: UserId, audit: AuditEntry) -> StoreResult<u64>;
    async fn unlock_user(&self, user_id: UserId, audit: AuditEntry) -> StoreResult<User>;
    /// The user's open sessions, newest first.
    async fn user_sessions(
        &self,
        user_id: UserId,
        now: Timestamp,
        idle: Duration,
    ) -> StoreResult<Vec<SessionRecord>>;
    /// Files a self-requested setup email unless `max` were filed since `since`; returns
    /// whether it was filed.
    async fn file_setup_email_request(
        &self,
        user_id: UserId,
        at: Timestamp,
        since: Timestamp,
        max: i64,
        job: OutboxMessage,
    ) -> StoreResult<bool>;
}

/// The audit chain.
#[async_trait]
pub trait AuditStore: Send + Sync {
    async fn append_audit(&self, entry: AuditEntry) -> StoreResult<AuditRecord>;
    /// Events of one organization with `seq > after_seq`, ascending, at most `limit`.
    async fn audit_chain_page(
        &self,
        org_id: OrgId,
        after_seq: i64,
        limit: i64,
    ) -> StoreResult<Vec<AuditRecord>>;
    /// The organization's recorded chain head: last sequence number and hash.
    async fn audit_head(&self, org_id: OrgId) -> StoreResult<(i64, Vec<u8>)>;
    /// A page of the organization's events, newest first, with the total when asked.
    async fn audit_events(&self, query: AuditQuery)
    -> StoreResult<(Vec<AuditRecord>, Option<i64>)>;
    async fn audit_event(&self, org_id: OrgId, id: i64) -> StoreResult<Option<AuditRecord>>;
}

/// The job outbox and the record of emails sent.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Files a job in the outbox on its own.
    async fn enqueue(&self, job: OutboxMessage, at: Timestamp) -> StoreResult<i64>;
    /// Outbox jobs not yet relayed, oldest first.
    async fn pending_jobs(&self, limit: i64) -> StoreResult<Vec<OutboxJob>>;
    /// Leases up to `limit` due outbox jobs until `lease_until`; a job leased by another
    /// relay is skipped.
    async fn claim_jobs(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: i64,
    ) -> StoreResult<Vec<OutboxJob>>;
    async fn mark_job_relayed(&self, id: i64, now: Timestamp) -> StoreResult<()>;
    async fn job_relay_failed(&self, id: i64, error: &str, retry_at: Timestamp) -> StoreResult<()>;

    /// Whether the email with this key was sent or given up.
    async fn email_handled(&self, key: &str) -> StoreResult<bool>;
    /// Records an email's outcome once; a second record of the same key is ignored.
    async fn record_email(&self, delivery: EmailDelivery) -> StoreResult<()>;
    /// Claims the sending of an email, in one statement: `false` when another run holds a
    /// claim renewed since `stale_before`.
    async fn claim_email(
        &self,
        key: &str,
        now: Timestamp,
        stale_before: Timestamp,
    ) -> StoreResult<bool>;
    /// Keeps a claim fresh while its email is being sent.
    async fn renew_email_claim(&self, key: &str, now: Timestamp) -> StoreResult<()>;
    /// Gives a claim up (the send failed and will be retried).
    async fn release_email_claim(&self, key: &str) -> StoreResult<()>;
}

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

/// A users query: what to match (already in matching form) and which page.
#[derive(Debug, Clone, Default)]
pub struct UserSearch {
    pub org_id: OrgId,
    /// Folded; a substring of "first last" or "last first".
    pub name: Option<String>,
    /// Lower-cased; the start of the username.
    pub username: Option<String>,
    /// Lower-cased; the start of the email.
    pub email: Option<String>,
    /// Digits; the end of the mobile number.
    pub mobile: Option<String>,
    /// Any of the above at once.
    pub any: Option<AnyMatch>,
    pub status: Option<crate::domain::UserStatus>,
    pub kind: Option<UserKind>,
    pub locked: Option<bool>,
    pub practice_id: Option<PracticeId>,
    pub now: Timestamp,
    /// The sort key after which the page starts.
    pub after: Option<String>,
    pub limit: i64,
    pub with_total: bool,
}

/// The `search` filter: folded text for names, usernames and emails, and the digits for
/// mobiles when the query looks like a phone number.
#[derive(Debug, Clone, Default)]
pub struct AnyMatch {
    pub text: String,
    pub digits: Option<String>,
}

/// A page of users with their sort keys (the cursors), and the total when asked.
#[derive(Debug, Clone, Default)]
pub struct UserPage {
    pub users: Vec<(String, User)>,
    pub total: Option<i64>,
}

impl UserPage {
    /// No users, and a total of 0 when one is wanted.
    pub fn none(with_total: bool) -> Self {
        Self {
            users: Vec::new(),
            total: with_total.then_some(0),
        }
    }
}

/// `auditEvents.totalCount` counts at most this many events (a log can be long; a count
/// must stay cheap).
pub const AUDIT_COUNT_LIMIT: i64 = 100_000;

/// Totals of users searches, each good for one version of its organization's directory
/// (moved on by the database whenever a user or their practices change).
#[derive(Debug, Default)]
pub struct SearchTotals(std::sync::Mutex<HashMap<(OrgId, SearchKey), (i64, i64)>>);

/// A search's filter, hashed: what is remembered per search stays the same small size
/// however long the filter's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SearchKey([u8; 32]);

impl SearchTotals {
    /// Remembered searches (about 80 bytes each); past this, the oldest knowledge is
    /// dropped all at once.
    const CAPACITY: usize = 10_000;

    /// What identifies a search's matches: its filter, not its page.
    pub fn key(search: &UserSearch) -> SearchKey {
        use sha2::Digest as _;
        let filter = UserSearch {
            after: None,
            limit: 0,
            with_total: false,
            now: Timestamp::default(),
            ..search.clone()
        };
        SearchKey(sha2::Sha256::digest(format!("{filter:?}").as_bytes()).into())
    }

    pub fn get(&self, org: OrgId, key: &SearchKey, version: i64) -> Option<i64> {
        let totals = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        totals
            .get(&(org, *key))
            .filter(|(at, _)| *at == version)
            .map(|(_, total)| *total)
    }

    pub fn put(&self, org: OrgId, key: SearchKey, version: i64, total: i64) {
        let mut totals = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if totals.len() >= Self::CAPACITY {
            totals.clear();
        }
        totals.insert((org, key), (version, total));
    }
}

/// A change of a user's profile; `None` leaves a field as it is.
#[derive(Debug, Clone)]
pub struct UserUpdate {
    pub org_id: OrgId,
    pub user_id: UserId,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// `Some(None)` clears the mobile.
    pub mobile: Option<Option<String>>,
    pub practice_ids: Option<Vec<PracticeId>>,
    pub audit: AuditEntry,
}

#[derive(Debug, Clone)]
pub struct Reactivation {
    pub org_id: OrgId,
    pub user_id: UserId,
    pub products: Vec<Product>,
    pub audit: AuditEntry,
}

/// Which audit events to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub org_id: OrgId,
    pub actor_id: Option<i64>,
    pub subject_id: Option<i64>,
    pub request_id: Option<i64>,
    pub action: Option<String>,
    /// Actions starting with this (it ends in a dot).
    pub action_prefix: Option<String>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    /// Only events older than this sequence number (the cursor).
    pub before_seq: Option<i64>,
    pub limit: i64,
    pub with_total: bool,
}

/// What is recorded when a lock starts.
#[derive(Debug, Clone)]
pub struct LockNotice {
    pub audit: AuditEntry,
    pub email: OutboxMessage,
}

#[derive(Debug, Clone)]
pub struct PasswordChange {
    pub user_id: UserId,
    /// Set only if the password is still this one (the one the caller proved).
    pub replaces: Option<String>,
    pub hash: String,
    pub change_required: bool,
    pub audit: AuditEntry,
    pub email: Option<OutboxMessage>,
}

/// A stored setup token (its hash only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupTokenRecord {
    pub id: i64,
    pub user_id: UserId,
    pub purpose: SetupPurpose,
    pub self_requested: bool,
    pub expires_at: Timestamp,
    pub used_at: Option<Timestamp>,
    pub voided_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityAnswer {
    pub question: String,
    pub answer_hash: String,
}

#[derive(Debug, Clone)]
pub struct CompleteSetup {
    pub token_id: i64,
    pub user_id: UserId,
    pub password_hash: String,
    pub answers: Vec<SecurityAnswer>,
    pub audit: AuditEntry,
    pub email: Option<OutboxMessage>,
}

#[derive(Debug, Clone)]
pub struct KeyReset {
    pub user_id: UserId,
    pub key: Vec<u8>,
    /// The version the key has now; the reset makes it one more.
    pub from_version: i32,
    pub audit: AuditEntry,
    pub email: OutboxMessage,
}

/// A setup token to store (its hash only).
#[derive(Debug, Clone)]
pub struct NewSetupToken {
    pub user_id: UserId,
    pub token_hash: Vec<u8>,
    pub purpose: SetupPurpose,
    pub self_requested: bool,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// The outcome of one email.
#[derive(Debug, Clone)]
pub struct EmailDelivery {
    pub key: String,
    pub recipient: String,
    pub template: String,
    /// `None`: sent. `Some`: failed for good, with why.
    pub failure: Option<String>,
    pub at: Timestamp,
}

/// Opens the store named by a database URL (`sqlite://…` or `postgres://…`) and migrates it.
pub async fn connect(url: &str, migrate: bool) -> anyhow::Result<Arc<dyn Store>> {
    let backend = crate::config::database_scheme(url).map_err(anyhow::Error::msg)?;
    Ok(match backend {
        Backend::Sqlite => Arc::new(SqliteStore::connect(url, migrate).await?),
        Backend::Postgres => Arc::new(PostgresStore::connect(url, migrate).await?),
    })
}

/// Which input each unique index guards: by the index's name (PostgreSQL names the
/// constraint; SQLite names an index on an expression) or by the columns SQLite reports
/// for an index on plain columns.
const UNIQUE_INDEXES: &[(&str, &str, &str)] = &[
    ("users_username_key", "users.username", "username"),
    ("users_email_key", "users.email", "email"),
    ("practices_org_name_key", "practices.org_id", "name"),
    (
        "idempotency_keys_pkey",
        "idempotency_keys.requester_id",
        "idempotencyKey",
    ),
];

/// The input a unique violation is about, from the constraint the database names.
fn unique_field(constraint: Option<&str>, message: &str) -> &'static str {
    UNIQUE_INDEXES
        .iter()
        .find(|(index, columns, _)| {
            constraint == Some(*index)
                || message.contains(&format!("'{index}'"))
                || message.contains(&format!("failed: {columns}"))
        })
        .map_or("record", |(_, _, field)| field)
}

#[cfg(test)]
mod tests {
    #[test]
    fn unique_violations_name_their_field_on_both_databases() {
        use super::unique_field;
        assert_eq!(
            unique_field(Some("users_email_key"), "duplicate key value"),
            "email"
        );
        assert_eq!(
            unique_field(None, "UNIQUE constraint failed: users.username"),
            "username"
        );
        assert_eq!(
            unique_field(None, "UNIQUE constraint failed: index 'users_email_key'"),
            "email"
        );
        assert_eq!(
            unique_field(
                None,
                "UNIQUE constraint failed: idempotency_keys.requester_id, idempotency_keys.key"
            ),
            "idempotencyKey"
        );
        assert_eq!(
            unique_field(
                None,
                "UNIQUE constraint failed: index 'practices_org_name_key'"
            ),
            "name"
        );
        assert_eq!(unique_field(Some("sessions_token_hash_key"), ""), "record");
    }
}
