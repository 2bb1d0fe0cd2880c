//! Lockout contract: checks of a secret claimed before they are verified, so that however
//! many arrive at once no more than the threshold of wrong ones is ever verified.

use super::*;

/// One claimed check of a user's secret (see `LockoutStore::claim_secret_check`).
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

/// What is recorded when a lock starts.
#[derive(Debug, Clone)]
pub struct LockNotice {
    pub audit: AuditEntry,
    pub email: OutboxMessage,
}

/// Claims, failures and successes of secret checks (sign-in, step-up, security answers).
#[async_trait]
pub trait LockoutStore: Send + Sync {
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
    /// A claimed secret that was never verified: the pending lock its check set ends (the
    /// check stays counted as a failure).
    async fn secret_check_abandoned(
        &self,
        user_id: UserId,
        check_lock: Timestamp,
    ) -> StoreResult<()>;
    /// A right secret: the count starts over and a pending lock ends, unless the account
    /// was locked meanwhile by wrong secrets (then `false`, and the lock stands).
    async fn secret_check_passed(
        &self,
        user_id: UserId,
        check_lock: Option<Timestamp>,
        now: Timestamp,
    ) -> StoreResult<bool>;
}
