//! Sign-in and sessions: who is calling, proven by a bearer token.

use super::crypto::{Verified, new_token, token_hash};
use super::{App, AppResult};
use crate::domain::{DomainError, ErrorCode, OrgId, SessionId, User, UserStatus, now};
use crate::store::{AuditEntry, NewSession};

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

impl App {
    /// Signs in. Every failure answers the same INVALID_CREDENTIALS, after the same work.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        client: &ClientInfo,
    ) -> AppResult<LoggedIn> {
        let denied = || {
            DomainError::new(
                ErrorCode::InvalidCredentials,
                "The username or password is incorrect.",
            )
        };
        let username = username.trim().to_lowercase();
        let found = if username.len() <= 64 {
            self.store.credentials_by_username(&username).await?
        } else {
            None
        };
        let at = now();
        let (user, hash) = match found {
            Some((user, hash)) => (Some(user), hash),
            None => (None, None),
        };
        let verified = self.hasher.verify(password, hash.as_deref()).await?;
        let Some(user) = user else {
            return Err(denied().into());
        };
        let usable = user.status == UserStatus::Active && !user.is_locked(at);
        if verified == Verified::No || !usable {
            let audit = AuditEntry::new(user.org_id, at, "session.login_failed")
                .subject(user.id)
                .ip(client.ip.clone())
                .details(serde_json::json!({ "reason": if usable { "wrong password" } else { "account not usable" } }));
            self.store.append_audit(audit).await?;
            return Err(denied().into());
        }
        let (token, token_hash) = new_token();
        let max =
            chrono::TimeDelta::from_std(self.config.session_max).unwrap_or(chrono::TimeDelta::MAX);
        let session = NewSession {
            user_id: user.id,
            token_hash,
            created_at: at,
            expires_at: at
                .checked_add_signed(max)
                .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC),
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
        let audit = AuditEntry::new(actor.org_id(), now(), "session.logout")
            .actor(Some(actor.user.id))
            .subject(actor.user.id)
            .ip(actor.ip.clone());
        self.store.end_session(actor.session_id, audit).await?;
        Ok(())
    }
}
