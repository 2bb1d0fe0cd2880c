//! Identity contracts: credentials and sessions (lockout in `lockout.rs`).

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
/// pending lock, which its success ends).
#[derive(Debug, Clone)]
pub struct SignInGuard {
    pub verified_hash: String,
    pub check_lock: Option<Timestamp>,
    /// A stronger hash of the same password, written only over the verified one.
    pub rehash: Option<String>,
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
