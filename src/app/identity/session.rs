//! Sign-in and sessions: who is calling, proven by a bearer token (lockout in `lockout.rs`).

use super::Identity;
use super::crypto::{Verified, new_token, token_hash};
use super::lockout::decided;
use crate::app::stats::LoginOutcome;
use crate::app::{AppError, AppResult};
use crate::domain::{
    DomainError, ErrorCode, OrgId, SessionId, Timestamp, User, UserId, UserStatus,
};
use crate::store::{AuditEntry, NewSession, SignInGuard, StoreError};

/// The authenticated caller of an operation.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user: User,
    pub session_id: SessionId,
    pub ip: Option<String>,
    /// When the operation started, by the app's clock.
    pub at: Timestamp,
}

impl Actor {
    pub fn org_id(&self) -> OrgId {
        self.user.org_id
    }

    /// An audit event with this caller as actor, from their IP.
    pub fn audit(&self, action: &'static str) -> AuditEntry {
        AuditEntry::new(self.org_id(), self.at, action)
            .actor(Some(self.user.id))
            .ip(self.ip.clone())
    }
}

/// Who is calling, as authentication found them. A caller whose password was set by an
/// administrator must change it first: until then they are not an [`Actor`], and only
/// `me` (who they are), `change_password` and `logout` accept them.
#[derive(Debug, Clone)]
pub enum Caller {
    Actor(Actor),
    MustChangePassword(Actor),
}

/// What a caller may see of themself: everything, or (password to be changed) only who
/// they are.
#[derive(Debug, Clone)]
pub struct SelfView {
    pub user: User,
    pub restricted: bool,
}

impl Caller {
    /// The caller as an actor that may use every operation its role allows.
    pub fn actor(&self) -> AppResult<&Actor> {
        match self {
            Caller::Actor(actor) => Ok(actor),
            Caller::MustChangePassword(_) => Err(AppError::PasswordChangeRequired),
        }
    }

    pub fn session_id(&self) -> SessionId {
        self.inner().session_id
    }

    pub fn me(&self) -> SelfView {
        SelfView {
            user: self.inner().user.clone(),
            restricted: matches!(self, Caller::MustChangePassword(_)),
        }
    }

    pub(in crate::app) fn inner(&self) -> &Actor {
        match self {
            Caller::Actor(actor) | Caller::MustChangePassword(actor) => actor,
        }
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

fn refused_sign_in(user: &User, client: &ClientInfo, reason: &str, at: Timestamp) -> AuditEntry {
    AuditEntry::new(user.org_id, at, "session.login_failed")
        .subject(user.id)
        .ip(client.ip.clone())
        .details(serde_json::json!({ "reason": reason }))
}

pub(crate) fn later(at: Timestamp, by: std::time::Duration) -> Timestamp {
    at.checked_add_signed(chrono::TimeDelta::from_std(by).unwrap_or(chrono::TimeDelta::MAX))
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
}

impl Identity {
    /// Signs in. Unknown user, wrong password, INVITED, INACTIVE or locked all answer the
    /// same INVALID_CREDENTIALS after the same work: one claim statement and one argon2
    /// verification (against a dummy hash when there is nothing real to check; a locked
    /// account's password is not even looked at). What only a failure records (its audit
    /// event, a lock's email) is written after the answer, so that it cannot be timed.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        client: &ClientInfo,
    ) -> AppResult<LoggedIn> {
        let app = self.clone();
        let (username, password, client) =
            (username.to_owned(), password.to_owned(), client.clone());
        let result = decided(async move { app.sign_in(&username, &password, &client).await }).await;
        self.stats.login(match &result {
            Ok(_) => LoginOutcome::Success,
            Err(AppError::RateLimited) => LoginOutcome::RateLimited,
            Err(AppError::Domain(e)) if e.code == ErrorCode::InvalidCredentials => {
                LoginOutcome::InvalidCredentials
            }
            Err(_) => LoginOutcome::Error,
        });
        result
    }

    async fn sign_in(
        &self,
        username: &str,
        password: &str,
        client: &ClientInfo,
    ) -> AppResult<LoggedIn> {
        self.limit_public_operation(client).await?;
        let username = username.trim().to_lowercase();
        let found = if username.len() <= 64 {
            self.store.credentials_by_username(&username).await?
        } else {
            None
        };
        let user = match found {
            Some((user, _)) if user.status == UserStatus::Active => user,
            other => {
                // The same claim a real account gets, matching nobody.
                self.claim_check(UserId(0)).await?;
                self.hasher.verify(password, None).await?;
                if let Some((user, _)) = other {
                    self.record_later(refused_sign_in(
                        &user,
                        client,
                        "account not active",
                        self.now(),
                    ));
                }
                return Err(invalid_credentials().into());
            }
        };
        let Some(check) = self.claim_check(user.id).await? else {
            self.hasher.verify(password, None).await?;
            self.record_later(refused_sign_in(&user, client, "account locked", self.now()));
            return Err(invalid_credentials().into());
        };
        let verified = self
            .hasher
            .verify_by(
                password,
                check.password_hash.as_deref(),
                Some(check.wanted.clone()),
            )
            .await?;
        let Some(verified) = verified else {
            // Its client left, or the hashing queue was a minute long.
            self.check_abandoned(user.id, &check).await;
            return Err(invalid_credentials().into());
        };
        let rehash = match verified {
            Verified::No => {
                let app = self.clone();
                let ip = client.ip.clone();
                tokio::spawn(async move {
                    if let Err(err) = app.check_failed(&user, &check, ip, "wrong password").await {
                        tracing::error!(error = ?err, "cannot record a failed sign-in");
                    }
                });
                return Err(invalid_credentials().into());
            }
            Verified::Yes => None,
            Verified::YesRehashed(new_hash) => Some(new_hash),
        };
        let at = self.now();
        let (token, token_hash) = new_token();
        let session = NewSession {
            user_id: user.id,
            token_hash,
            created_at: at,
            expires_at: later(at, self.config.session_max),
            user_agent: client.user_agent.clone(),
            ip: client.ip.clone(),
            guard: check
                .password_hash
                .clone()
                .map(|verified_hash| SignInGuard {
                    verified_hash,
                    check_lock: check.check_lock,
                    rehash,
                }),
        };
        let audit = AuditEntry::new(user.org_id, at, "session.login")
            .actor(Some(user.id))
            .subject(user.id)
            .ip(client.ip.clone());
        let user = match self.store.start_session(session, audit).await {
            Ok((_, user)) => user,
            // The password changed, or other attempts locked the account, after this one
            // was verified: it must not sign in.
            Err(StoreError::Conflict(_)) => {
                self.record_later(refused_sign_in(
                    &user,
                    client,
                    "changed or locked meanwhile",
                    self.now(),
                ));
                return Err(invalid_credentials().into());
            }
            Err(other) => return Err(other.into()),
        };
        Ok(LoggedIn { token, user })
    }

    /// Appends an audit event after the answer has gone out.
    fn record_later(&self, audit: AuditEntry) {
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Err(err) = store.append_audit(audit).await {
                tracing::error!(error = ?err, "cannot record a refused sign-in");
            }
        });
    }

    /// The caller behind a bearer token, if the session is live.
    pub async fn authenticate(
        &self,
        token: &str,
        client: &ClientInfo,
    ) -> AppResult<Option<Caller>> {
        if token.is_empty() || token.len() > 256 {
            return Ok(None);
        }
        let at = self.now();
        let found = self
            .store
            .session_by_token(&token_hash(token), at, self.config.session_idle)
            .await?;
        Ok(found.map(|s| {
            let restricted = s.user.password_change_required;
            let actor = Actor {
                user: s.user,
                session_id: s.session_id,
                ip: client.ip.clone(),
                at,
            };
            if restricted {
                Caller::MustChangePassword(actor)
            } else {
                Caller::Actor(actor)
            }
        }))
    }

    /// Ends the caller's current session.
    pub async fn logout(&self, caller: &Caller) -> AppResult<()> {
        let actor = caller.inner();
        let audit = actor.audit("session.logout").subject(actor.user.id);
        self.store.end_session(actor.session_id, audit).await?;
        Ok(())
    }
}
