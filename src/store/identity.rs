//! Identity contracts: credentials, sessions and lockout.

use super::*;

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
    /// The lock this check started pending its outcome, being the threshold-th in a row.
    pub check_lock: Option<Timestamp>,
}

/// The answer to a claim of a secret check.
#[derive(Debug, Clone)]
pub enum SecretClaim {
    /// The secret may be verified against this.
    Granted(SecretCheck),
    /// Checks claimed before are still being verified and the last of them locked the
    /// account pending their outcome (or they have just been decided): claim again.
    Pending,
    /// Locked, or not active: nothing may be verified.
    Refused,
}

/// A wrong secret, to record.
#[derive(Debug, Clone)]
pub struct FailedCheck {
    pub user_id: UserId,
    pub check_lock: Option<Timestamp>,
    /// When the lock ends, should this check's pending lock become real.
    pub lock_until: Timestamp,
    pub audit: AuditEntry,
    pub lock: LockNotice,
}

/// A live session and its user, found by token.
#[derive(Debug, Clone)]
pub struct SessionUser {
    pub session_id: SessionId,
    pub user: User,
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
    /// login time and records the audit event. Returns the session and the user as signed
    /// in.
    async fn start_session(
        &self,
        session: NewSession,
        audit: AuditEntry,
    ) -> StoreResult<(SessionId, User)>;
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

    /// Ends sessions past their lifetime or idle time and deletes setup tokens expired
    /// for a week. Returns how many of each.
    async fn expire_credentials(&self, now: Timestamp, idle: Duration) -> StoreResult<(u64, u64)>;

    async fn user_by_username_or_email(&self, text: &str) -> StoreResult<Option<User>>;
    /// Any user by ID, for flows authenticated by an emailed token rather than a session.
    async fn user_by_id(&self, id: UserId) -> StoreResult<Option<User>>;
    /// Decides, in one statement, that the ACTIVE user is not locked and counts this check
    /// of their secret as a failure until it is proven right; the threshold-th check in a
    /// row locks the account until `lock_until` at once, pending the outcome of the checks
    /// claimed so far (Keycloak's brute-force detector decides before verifying,
    /// likewise). However many checks arrive at once, at most `threshold` are verified
    /// before a lock.
    async fn claim_secret_check(
        &self,
        user_id: UserId,
        now: Timestamp,
        threshold: i32,
        lock_until: Timestamp,
    ) -> StoreResult<SecretClaim>;
    /// Records a wrong secret; when its check started the pending lock (and it still
    /// stands), the lock becomes real, with its audit event and email. Returns whether the
    /// lock started.
    async fn secret_check_failed(&self, failure: FailedCheck) -> StoreResult<bool>;
    /// A right secret: the count starts over and a pending lock ends, unless the account
    /// was locked meanwhile by wrong secrets (then `false`, and the lock stands).
    async fn secret_check_passed(
        &self,
        user_id: UserId,
        check_lock: Option<Timestamp>,
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// Sets a password (and whether it must be changed at next sign-in), ends every
    /// session of the user, clears any lock, with the audit event and email.
    async fn set_password(&self, change: PasswordChange) -> StoreResult<User>;
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

#[derive(Debug, Clone)]
pub struct KeyReset {
    pub user_id: UserId,
    pub key: Vec<u8>,
    /// The version the key has now; the reset makes it one more.
    pub from_version: i32,
    pub audit: AuditEntry,
    pub email: OutboxMessage,
}
