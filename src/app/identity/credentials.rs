//! Credentials: password changes, temporary passwords, encryption keys, sessions and
//! locks, and who may see a user's private details.

use super::Identity;
use super::crypto::random_bytes;
use super::session::{Caller, ClientInfo, invalid_credentials};
use crate::app::policy::Action;
use crate::app::{Actor, AppResult};
use crate::domain::password::Password;
use crate::domain::{DomainError, ErrorCode, User, UserId};
use crate::store::{KeyReset, PasswordChange, SessionRecord, StoreError};
use gatehouse_workers::{Email, Job};

/// Who is looking at a user's private details (sessions, security questions).
#[derive(Debug, Clone, Copy)]
pub enum Viewer<'a> {
    /// A signed-in caller.
    Actor(&'a Actor),
    /// The user themself, proven by a password or an emailed token in this very request
    /// (the payloads of `login` and `completeAccountSetup`).
    Themself,
}

impl Viewer<'_> {
    pub(super) fn may_see_private(self, user: &User) -> AppResult<()> {
        match self {
            Viewer::Themself => Ok(()),
            Viewer::Actor(actor) if actor.user.id == user.id => Ok(()),
            Viewer::Actor(actor) => actor.require(Action::SeePrivateDetailsOfOthers),
        }
    }
}

pub(super) fn password_changed_email(user: &User, how: &str) -> Job {
    Job::Email {
        org_id: Some(user.org_id.0),
        to_name: user.display_name(),
        to_address: user.email.clone(),
        email: Email::PasswordChanged {
            name: user.display_name(),
            username: user.username.clone(),
            how: how.into(),
        },
    }
}

impl Identity {
    /// Checks the caller's own password under the lockout rules: `Some(hash verified)`
    /// when right; a wrong one counts as a failed sign-in of the caller, and while they are
    /// locked nothing is verified at all.
    async fn verify_own_password(
        &self,
        actor: &Actor,
        password: &str,
        reason: &'static str,
    ) -> AppResult<Option<String>> {
        let check = self
            .check_secret(
                &actor.user,
                actor.ip.clone(),
                password.to_owned(),
                |check| check.password_hash.clone(),
                reason,
            )
            .await?;
        Ok(check.and_then(|check| check.password_hash))
    }

    /// Step-up re-authentication: the caller re-enters their own password. A wrong one
    /// counts as a failed sign-in of the caller.
    async fn step_up(&self, actor: &Actor, password: &str) -> AppResult<()> {
        match self
            .verify_own_password(actor, password, "wrong password in step-up")
            .await?
        {
            Some(_) => Ok(()),
            None => Err(DomainError {
                field: Some("adminPassword"),
                ..invalid_credentials()
            }
            .into()),
        }
    }

    /// The caller changes their own password; every session, this one too, ends.
    pub async fn change_password(
        &self,
        caller: &Caller,
        current: &str,
        new: &str,
        client: &ClientInfo,
    ) -> AppResult<User> {
        self.limit_public_operation(client).await?;
        let actor = caller.inner();
        let Some(verified) = self
            .verify_own_password(actor, current, "wrong current password")
            .await?
        else {
            return Err(DomainError {
                field: Some("currentPassword"),
                ..invalid_credentials()
            }
            .into());
        };
        let user = &actor.user;
        let password = Password::parse(new, &user.username, local_part(&user.email))
            .map_err(|e| e.on("newPassword"))?;
        let hash = self.hasher.hash(password.expose()).await?;
        let change = PasswordChange {
            user_id: user.id,
            replaces: Some(verified),
            hash,
            change_required: false,
            audit: actor
                .audit("user.password_changed")
                .subject(user.id)
                .details(serde_json::json!({ "by": "self" })),
            email: Some(password_changed_email(user, "you changed it").into()),
        };
        match self.store.set_password(change).await {
            Err(StoreError::Conflict(_)) => Err(DomainError {
                field: Some("currentPassword"),
                ..invalid_credentials()
            }
            .into()),
            other => Ok(other?),
        }
    }

    /// An admin sets a temporary password, to be changed at the user's next sign-in.
    pub async fn set_temporary_password(
        &self,
        actor: &Actor,
        user_id: UserId,
        temporary: &str,
        admin_password: &str,
    ) -> AppResult<User> {
        actor.require(Action::AdministerUser)?;
        let user = self.target(actor, user_id).await?;
        actor.require_credentials_of(&user)?;
        self.step_up(actor, admin_password).await?;
        let password = Password::parse(temporary, &user.username, local_part(&user.email))
            .map_err(|e| e.on("temporaryPassword"))?;
        let hash = self.hasher.hash(password.expose()).await?;
        let change = PasswordChange {
            user_id: user.id,
            replaces: None,
            hash,
            change_required: true,
            audit: actor.audit("user.temporary_password_set").subject(user.id),
            email: Some(
                password_changed_email(
                    &user,
                    "an administrator set a temporary password, which you must change when you next sign in",
                )
                .into(),
            ),
        };
        Ok(self.store.set_password(change).await?)
    }

    /// An admin resets a user's encryption key: new key material, version + 1, every
    /// session ended.
    pub async fn reset_encryption_key(
        &self,
        actor: &Actor,
        user_id: UserId,
        admin_password: &str,
    ) -> AppResult<User> {
        actor.require(Action::AdministerUser)?;
        let user = self.target(actor, user_id).await?;
        actor.require_credentials_of(&user)?;
        self.step_up(actor, admin_password).await?;
        let new_version = user.encryption_key_version + 1;
        let reset = KeyReset {
            user_id: user.id,
            key: random_bytes::<32>().to_vec(),
            from_version: user.encryption_key_version,
            audit: actor
                .audit("user.encryption_key_reset")
                .subject(user.id)
                .details(serde_json::json!({ "before": user.encryption_key_version, "after": new_version })),
            email: Job::Email {
                org_id: Some(user.org_id.0),
                to_name: user.display_name(),
                to_address: user.email.clone(),
                email: Email::EncryptionKeyReset { name: user.display_name(), username: user.username.clone(), new_version },
            }
            .into(),
        };
        Ok(self.store.reset_encryption_key(reset).await?)
    }

    /// Ends every session of a user: the caller's own, or anyone's for an admin.
    pub async fn revoke_sessions(&self, actor: &Actor, user_id: UserId) -> AppResult<User> {
        actor.require_on(user_id, Action::RevokeOwnSessions, Action::AdministerUser)?;
        let user = self.target(actor, user_id).await?;
        actor.require_credentials_of(&user)?;
        self.store
            .revoke_sessions(user.id, actor.audit("session.revoked").subject(user.id))
            .await?;
        Ok(user)
    }

    /// Ends a lock at once.
    pub async fn unlock_user(&self, actor: &Actor, user_id: UserId) -> AppResult<User> {
        actor.require(Action::AdministerUser)?;
        let user = self.target(actor, user_id).await?;
        // A session opened before the lock does not let its holder end it: the lock limits
        // guesses at their password (a step-up's count too), which would go on.
        if user.id == actor.user.id && user.is_locked(self.now()) {
            return Err(DomainError::new(
                ErrorCode::InvalidState,
                "Your account is locked: another administrator or owner can unlock it.",
            )
            .on("userId")
            .into());
        }
        let audit = actor
            .audit("user.unlocked")
            .subject(user.id)
            .details(serde_json::json!({ "wasLocked": user.is_locked(self.now()) }));
        Ok(self.store.unlock_user(user.id, audit).await?)
    }

    /// The user's open sessions: to the user and to admins.
    pub async fn sessions_of(
        &self,
        viewer: Viewer<'_>,
        user: &User,
    ) -> AppResult<Vec<SessionRecord>> {
        viewer.may_see_private(user)?;
        Ok(self
            .store
            .user_sessions(user.id, self.now(), self.config.session_idle)
            .await?)
    }

    /// The user's security questions (never answers): to the user and to admins.
    pub async fn security_questions_of(
        &self,
        viewer: Viewer<'_>,
        user: &User,
    ) -> AppResult<Vec<String>> {
        viewer.may_see_private(user)?;
        Ok(self
            .store
            .security_answers(user.id)
            .await?
            .into_iter()
            .map(|a| a.question)
            .collect())
    }
}

pub(super) fn local_part(email: &str) -> &str {
    email.rsplit_once('@').map_or(email, |(local, _)| local)
}
