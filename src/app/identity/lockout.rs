//! Lockout: each check of a secret (a password at sign-in or in a step-up, a security
//! answer) is claimed before it is verified and decided after, so that however many
//! arrive at once no more than the threshold of wrong ones is ever verified.

use super::Identity;
use super::crypto::{Verified, Wanted};
use super::session::later;
use crate::app::{AppError, AppResult};
use crate::domain::{User, UserId};
use crate::store::{AuditEntry, FailedCheck, LockNotice, SecretCheck, SecretClaim};
use gatehouse_workers::{Email, Job};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tracing::Instrument as _;

/// How long a check waits for the checks claimed before it to be decided, when the last of
/// them locked the account pending their outcome (25 right passwords at once: the sixth
/// waits for the first five). Longer, and it is refused as if locked.
pub const PENDING_WAIT: Duration = Duration::from_secs(10);

/// A claimed check's secret is verified within this of its claim, or not at all (a hashing
/// queue that long: the server is drowning)...
const VERIFY_WITHIN: Duration = Duration::from_secs(60);

/// ... so that a pending lock can end by itself after this, when the checks it waits for
/// were never decided (their process stopped): no check claimed before it can still be
/// verified then, and none is verified beyond the threshold.
pub const PENDING_HOLD: Duration = Duration::from_secs(120);

/// A granted check of a secret, to be verified while `wanted`.
pub(crate) struct Claimed {
    check: SecretCheck,
    pub wanted: Wanted,
}

impl std::ops::Deref for Claimed {
    type Target = SecretCheck;
    fn deref(&self) -> &SecretCheck {
        &self.check
    }
}

tokio::task_local! {
    /// Set once the client of the secret check running in this task (see `decided`) has
    /// gone: its secret is then not verified.
    static CLIENT_GONE: Arc<AtomicBool>;
}

impl Identity {
    /// Claims a check of the user's secret: `None` when they are locked (or not active),
    /// and then nothing may be verified. While checks claimed before are still deciding
    /// whether the account locks, waits for them (up to `PENDING_WAIT`).
    pub(crate) async fn claim_check(&self, user_id: UserId) -> AppResult<Option<Claimed>> {
        let threshold = i32::try_from(self.config.lockout_threshold).unwrap_or(i32::MAX);
        let waiting_since = tokio::time::Instant::now();
        let mut pause = Duration::from_millis(5);
        loop {
            let at = self.now();
            let pending_until = later(at, PENDING_HOLD);
            match self
                .store
                .claim_secret_check(user_id, at, threshold, pending_until)
                .await?
            {
                SecretClaim::Granted(check) => {
                    let wanted = Wanted {
                        by: std::time::Instant::now() + VERIFY_WITHIN,
                        client_gone: CLIENT_GONE.try_with(Arc::clone).unwrap_or_default(),
                    };
                    return Ok(Some(Claimed { check, wanted }));
                }
                SecretClaim::Pending if waiting_since.elapsed() < PENDING_WAIT => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                SecretClaim::Pending | SecretClaim::Refused => return Ok(None),
            }
        }
    }

    /// Checks a secret of `user` other than at sign-in (their password in a step-up or a
    /// change, a security answer) under the lockout rules, to its decision even if the
    /// caller goes away: `Some(check)` when right. `stored` picks the hash to verify
    /// against, given the claim (which holds the password hash). While the user is locked
    /// nothing is verified; a wrong secret is recorded as a failed sign-in for `reason`.
    pub(crate) async fn check_secret(
        &self,
        user: &User,
        ip: Option<String>,
        secret: String,
        stored: impl FnOnce(&SecretCheck) -> Option<String> + Send + 'static,
        reason: &'static str,
    ) -> AppResult<Option<SecretCheck>> {
        let (app, user) = (self.clone(), user.clone());
        decided(async move {
            let Some(check) = app.claim_check(user.id).await? else {
                app.hasher.verify(&secret, None).await?;
                return Ok(None);
            };
            let stored = stored(&check);
            let wanted = Some(check.wanted.clone());
            match app
                .hasher
                .verify_by(&secret, stored.as_deref(), wanted)
                .await?
            {
                None => {
                    app.check_abandoned(user.id, &check).await;
                    Ok(None)
                }
                Some(Verified::No) => {
                    app.check_failed(&user, &check, ip, reason).await?;
                    Ok(None)
                }
                Some(Verified::Yes | Verified::YesRehashed(_)) => {
                    let passed = app.check_passed(user.id, &check).await?;
                    Ok(passed.then_some(check.check))
                }
            }
        })
        .await
    }

    /// A claimed secret that was not verified (no longer wanted): the pending lock it set,
    /// if any, ends, so that those waiting for it claim again. Its failure stays counted.
    pub(crate) async fn check_abandoned(&self, user_id: UserId, check: &SecretCheck) {
        let Some(lock) = check.check_lock else { return };
        if let Err(err) = self.store.secret_check_abandoned(user_id, lock).await {
            tracing::error!(error = ?err, "cannot end the pending lock of an abandoned check");
        }
    }

    /// A right secret after `claim_check`: false when other checks locked the account
    /// meanwhile, and then the right secret must not be acted on.
    async fn check_passed(&self, user_id: UserId, check: &SecretCheck) -> AppResult<bool> {
        Ok(self
            .store
            .secret_check_passed(user_id, check.check_lock, self.now())
            .await?)
    }

    /// Records a wrong secret of `user` (a password, a security answer, a password in an
    /// admin's step-up); when its check started the lock, emails the user.
    pub(crate) async fn check_failed(
        &self,
        user: &User,
        check: &SecretCheck,
        ip: Option<String>,
        reason: &str,
    ) -> AppResult<()> {
        let at = self.now();
        let lock_until = later(at, self.config.lockout_duration);
        let audit = AuditEntry::new(user.org_id, at, "session.login_failed")
            .subject(user.id)
            .ip(ip.clone())
            .details(serde_json::json!({ "reason": reason }));
        let lock_audit = AuditEntry::new(user.org_id, at, "user.locked")
            .subject(user.id)
            .ip(ip)
            .details(
                serde_json::json!({ "until": lock_until, "after": self.config.lockout_threshold }),
            );
        let email = Job::Email {
            org_id: Some(user.org_id.0),
            to_name: user.display_name(),
            to_address: user.email.clone(),
            email: Email::AccountLocked {
                name: user.display_name(),
                username: user.username.clone(),
                locked_until: lock_until.format("%Y-%m-%d %H:%M UTC").to_string(),
                help_contact: "an administrator or owner of your practice, who can unlock it"
                    .into(),
            },
        };
        let failure = FailedCheck {
            user_id: user.id,
            check_lock: check.check_lock,
            lock_until,
            audit,
            lock: LockNotice {
                audit: lock_audit,
                email: email.into(),
            },
        };
        if self.store.secret_check_failed(failure).await? {
            self.stats.lockout();
            tracing::info!(
                user_id = user.id.0,
                "account locked after repeated failures"
            );
        }
        Ok(())
    }
}

/// Runs a secret check to its end even if its caller goes away (a client that hangs up):
/// a claimed check is always decided, never left pending and locking the account. A
/// secret whose client has gone before a hashing thread starts on it is not verified.
pub(crate) async fn decided<T: Send + 'static>(
    check: impl Future<Output = AppResult<T>> + Send + 'static,
) -> AppResult<T> {
    struct GoneWhenDropped(Arc<AtomicBool>);
    impl Drop for GoneWhenDropped {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let gone = Arc::new(AtomicBool::new(false));
    let _waiting = GoneWhenDropped(gone.clone());
    tokio::spawn(CLIENT_GONE.scope(gone, check).in_current_span())
        .await
        .map_err(|e| AppError::Unexpected(anyhow::anyhow!("a secret check stopped: {e}")))?
}
