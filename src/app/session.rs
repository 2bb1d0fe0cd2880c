//! Sign-in, lockout and sessions: who is calling, proven by a bearer token.

use super::crypto::{Verified, new_token, token_hash};
use super::{App, AppError, AppResult};
use crate::domain::{DomainError, ErrorCode, OrgId, SessionId, Timestamp, User, UserStatus, now};
use crate::store::{AuditEntry, FailedLogin, LockNotice, NewSession};
use gatehouse_workers::{Email, Job};

/// The authenticated caller of an operation.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user: User,
    pub session_id: SessionId,
    pub ip: Option<String>,
}

impl Actor {
    pub fn org_id(&self) -> OrgId {
        self.user.org_id
    }

    /// An audit event with this caller as actor, from their IP.
    pub fn audit(&self, action: &'static str) -> AuditEntry {
        AuditEntry::new(self.org_id(), now(), action)
            .actor(Some(self.user.id))
            .ip(self.ip.clone())
    }
}

/// Where a request comes from, for sessions and the audit log.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// A successful sign-in.
#[derive(Debug, Clone)]
pub struct LoggedIn {
    pub token: String,
    pub user: User,
}

pub(crate) fn invalid_credentials() -> DomainError {
    DomainError::new(
        ErrorCode::InvalidCredentials,
        "The username or password is incorrect.",
    )
}

pub(crate) fn later(at: Timestamp, by: std::time::Duration) -> Timestamp {
    at.checked_add_signed(chrono::TimeDelta::from_std(by).unwrap_or(chrono::TimeDelta::MAX))
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
}

impl App {
    /// Signs in. Unknown user, wrong password, INVITED, INACTIVE or locked all answer the
    /// same INVALID_CREDENTIALS after the same work: one argon2 verification, against a
    /// dummy hash when there is nothing real to check (a locked account's password is
    /// not even looked at).
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        client: &ClientInfo,
    ) -> AppResult<LoggedIn> {
        if let Some(ip) = &client.ip
            && !self.login_limiter.allow(ip)
        {
            return Err(AppError::RateLimited);
        }
        let username = username.trim().to_lowercase();
        let found = if username.len() <= 64 {
            self.store.credentials_by_username(&username).await?
        } else {
            None
        };
        let at = now();
        let Some((user, hash)) = found else {
            self.hasher.verify(password, None).await?;
            return Err(invalid_credentials().into());
        };
        let locked = user.is_locked(at);
        let usable = user.status == UserStatus::Active && !locked;
        let verified = self
            .hasher
            .verify(password, if usable { hash.as_deref() } else { None })
            .await?;
        if !usable {
            let reason = if locked {
                "account locked"
            } else {
                "account not active"
            };
            let audit = AuditEntry::new(user.org_id, at, "session.login_failed")
                .subject(user.id)
                .ip(client.ip.clone())
                .details(serde_json::json!({ "reason": reason }));
            self.store.append_audit(audit).await?;
            return Err(invalid_credentials().into());
        }
        let rehash = match verified {
            Verified::No => {
                self.count_failed_login(&user, client.ip.clone(), "wrong password")
                    .await?;
                return Err(invalid_credentials().into());
            }
            Verified::Yes => None,
            Verified::YesRehashed(new_hash) => Some(new_hash),
        };
        if let Some(new_hash) = rehash {
            self.store.update_password_hash(user.id, &new_hash).await?;
        }
        let (token, token_hash) = new_token();
        let session = NewSession {
            user_id: user.id,
            token_hash,
            created_at: at,
            expires_at: later(at, self.config.session_max),
            user_agent: client.user_agent.clone(),
            ip: client.ip.clone(),
        };
        let audit = AuditEntry::new(user.org_id, at, "session.login")
            .actor(Some(user.id))
            .subject(user.id)
            .ip(client.ip.clone());
        self.store.start_session(session, audit).await?;
        let user = self.store.user(user.org_id, user.id).await?;
        Ok(LoggedIn { token, user })
    }

    /// Counts a failed sign-in of `user` (a wrong password, a wrong security answer, a
    /// wrong password in an admin's step-up); the threshold-th in a row locks the account
    /// and emails its owner.
    pub(crate) async fn count_failed_login(
        &self,
        user: &User,
        ip: Option<String>,
        reason: &str,
    ) -> AppResult<()> {
        let at = now();
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
        let failure = FailedLogin {
            user_id: user.id,
            at,
            threshold: i32::try_from(self.config.lockout_threshold).unwrap_or(i32::MAX),
            lock_until,
            audit,
            lock: LockNotice {
                audit: lock_audit,
                email,
            },
        };
        if self.store.login_failed(failure).await? {
            tracing::info!(
                user_id = user.id.0,
                "account locked after repeated failures"
            );
        }
        Ok(())
    }

    /// The caller behind a bearer token, if the session is live.
    pub async fn authenticate(&self, token: &str, client: &ClientInfo) -> AppResult<Option<Actor>> {
        if token.is_empty() || token.len() > 256 {
            return Ok(None);
        }
        let found = self
            .store
            .session_by_token(&token_hash(token), now(), self.config.session_idle)
            .await?;
        Ok(found.map(|s| Actor {
            user: s.user,
            session_id: s.session_id,
            ip: client.ip.clone(),
        }))
    }

    /// Ends the caller's current session.
    pub async fn logout(&self, actor: &Actor) -> AppResult<()> {
        let audit = actor.audit("session.logout").subject(actor.user.id);
        self.store.end_session(actor.session_id, audit).await?;
        Ok(())
    }
}
