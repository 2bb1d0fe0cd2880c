//! Credentials: password changes, account setup by emailed link, security questions,
//! temporary passwords, encryption keys, sessions and locks.

use super::Identity;
use super::crypto::{Verified, random_bytes, token_hash};
use super::session::{Caller, ClientInfo, invalid_credentials};
use crate::app::policy::Action;
use crate::app::{Actor, AppResult};
use crate::domain::password::Password;
use crate::domain::{DomainError, ErrorCode, User, UserId, UserStatus, now};
use crate::store::{
    CompleteSetup, KeyReset, PasswordChange, SecurityAnswer, SessionRecord, StoreError,
};
use gatehouse_workers::{Email, Job, SetupPurpose};

/// Self-requested setup emails allowed per account and hour.
const SETUP_EMAILS_PER_HOUR: i64 = 3;
const MIN_QUESTIONS: usize = 3;
const MAX_QUESTIONS: usize = 10;

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
    fn may_see_private(self, user: &User) -> AppResult<()> {
        match self {
            Viewer::Themself => Ok(()),
            Viewer::Actor(actor) if actor.user.id == user.id => Ok(()),
            Viewer::Actor(actor) => actor.require(Action::SeePrivateDetailsOfOthers),
        }
    }
}

/// What `completeAccountSetup` receives.
#[derive(Debug, Clone)]
pub struct AccountSetup {
    pub token: String,
    pub new_password: String,
    pub questions: Vec<(String, String)>,
    pub current_answer: Option<(String, String)>,
}

/// Answers are compared trimmed and lower-cased.
fn normalize_answer(answer: &str) -> String {
    answer.trim().to_lowercase()
}

fn password_changed_email(user: &User, how: &str) -> Job {
    Job::Email {
        to_name: user.display_name(),
        to_address: user.email.clone(),
        email: Email::PasswordChanged {
            name: user.display_name(),
            username: user.username.clone(),
            how: how.into(),
        },
    }
}

/// Checks the questions: at least three, distinct, each with an answer.
fn parse_questions(questions: &[(String, String)]) -> Result<Vec<(String, String)>, DomainError> {
    let field = "securityQuestions";
    if questions.len() < MIN_QUESTIONS || questions.len() > MAX_QUESTIONS {
        return Err(DomainError::invalid(
            field,
            "Give 3 to 10 security questions with their answers.",
        ));
    }
    let mut seen = std::collections::HashSet::new();
    let mut parsed = Vec::with_capacity(questions.len());
    for (question, answer) in questions {
        let question = question.trim();
        let answer = normalize_answer(answer);
        if question.is_empty()
            || question.chars().count() > 200
            || question.chars().any(char::is_control)
        {
            return Err(DomainError::invalid(
                field,
                "Each question must be 1 to 200 characters.",
            ));
        }
        if answer.is_empty() || answer.chars().count() > 200 {
            return Err(DomainError::invalid(
                field,
                "Each answer must be 1 to 200 characters.",
            ));
        }
        if !seen.insert(question.to_lowercase()) {
            return Err(DomainError::invalid(
                field,
                "The security questions must be different from each other.",
            ));
        }
        parsed.push((question.to_owned(), answer));
    }
    Ok(parsed)
}

impl Identity {
    /// Checks the caller's own password under the lockout rules: `Some(hash verified)`
    /// when right; a wrong one counts as a failed sign-in of the caller, and while they are
    /// locked nothing is verified at all.
    async fn verify_own_password(
        &self,
        actor: &Actor,
        password: &str,
        reason: &str,
    ) -> AppResult<Option<String>> {
        let Some(check) = self.claim_check(actor.user.id).await? else {
            self.hasher.verify(password, None).await?;
            return Ok(None);
        };
        match self
            .hasher
            .verify(password, check.password_hash.as_deref())
            .await?
        {
            Verified::No => {
                self.check_failed(&actor.user, &check, actor.ip.clone(), reason)
                    .await?;
                Ok(None)
            }
            Verified::Yes | Verified::YesRehashed(_) => {
                if self.check_passed(actor.user.id, &check).await? {
                    Ok(check.password_hash)
                } else {
                    Ok(None)
                }
            }
        }
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
        let audit = actor
            .audit("user.unlocked")
            .subject(user.id)
            .details(serde_json::json!({ "wasLocked": user.is_locked(now()) }));
        Ok(self.store.unlock_user(user.id, audit).await?)
    }

    /// An admin (or a champion, for an invited user) sends a user the setup email.
    pub async fn send_setup_email(&self, actor: &Actor, user_id: UserId) -> AppResult<User> {
        actor.require(Action::SendSetupEmailToInvited)?;
        let user = self.target(actor, user_id).await?;
        let purpose = match user.status {
            UserStatus::Invited => SetupPurpose::Invitation,
            UserStatus::Active => {
                actor.require(Action::SendSetupEmailToActive)?;
                actor.require_credentials_of(&user)?;
                SetupPurpose::Reset
            }
            UserStatus::Inactive => {
                return Err(DomainError::new(
                    ErrorCode::InvalidState,
                    "An inactive user must be reactivated first.",
                )
                .on("userId")
                .into());
            }
        };
        let job = Job::AccountSetupEmail {
            user_id: user.id.0,
            purpose,
            self_requested: false,
        };
        self.store.enqueue(job.into(), now()).await?;
        Ok(user)
    }

    /// Public: files a setup email for an INVITED or ACTIVE account named by username or
    /// email, at most three an hour. Says nothing of whether the account exists.
    pub async fn request_setup_email(
        &self,
        username_or_email: &str,
        client: &ClientInfo,
    ) -> AppResult<()> {
        self.limit_public_operation(client).await?;
        if username_or_email.len() > 320 {
            return Ok(());
        }
        let Some(user) = self
            .store
            .user_by_username_or_email(username_or_email)
            .await?
        else {
            return Ok(());
        };
        let purpose = match user.status {
            UserStatus::Invited => SetupPurpose::Invitation,
            UserStatus::Active => SetupPurpose::Reset,
            UserStatus::Inactive => return Ok(()),
        };
        let at = now();
        let job = Job::AccountSetupEmail {
            user_id: user.id.0,
            purpose,
            self_requested: true,
        };
        let since = at - chrono::TimeDelta::hours(1);
        if !self
            .store
            .file_setup_email_request(user.id, at, since, SETUP_EMAILS_PER_HOUR, job.into())
            .await?
        {
            tracing::info!(
                user_id = user.id.0,
                "setup email not sent: hourly limit reached"
            );
        }
        Ok(())
    }

    /// Completes an account setup or reset with the emailed token.
    pub async fn complete_setup(
        &self,
        setup: AccountSetup,
        client: &ClientInfo,
    ) -> AppResult<User> {
        self.limit_public_operation(client).await?;
        let invalid = || {
            DomainError::new(
                ErrorCode::TokenInvalid,
                "This setup link is not valid; ask for a new one.",
            )
            .on("token")
        };
        let record = if setup.token.is_empty() || setup.token.len() > 256 {
            None
        } else {
            self.store.setup_token(&token_hash(&setup.token)).await?
        };
        let Some(record) = record else {
            return Err(invalid().into());
        };
        let at = now();
        if record.used_at.is_some() || record.voided_at.is_some() {
            return Err(invalid().into());
        }
        if record.expires_at <= at {
            return Err(DomainError::new(
                ErrorCode::TokenExpired,
                "This setup link has expired; ask for a new one.",
            )
            .on("token")
            .into());
        }
        let Some(user) = self.store.user_by_id(record.user_id).await? else {
            return Err(invalid().into());
        };
        let password =
            Password::parse(&setup.new_password, &user.username, local_part(&user.email))
                .map_err(|e| e.on("newPassword"))?;
        let questions = parse_questions(&setup.questions)?;
        let existing = self.store.security_answers(user.id).await?;
        if record.purpose == crate::domain::SetupPurpose::Reset
            && record.self_requested
            && !existing.is_empty()
        {
            // The link itself allows only as many answers as the lockout threshold.
            let threshold = i32::try_from(self.config.lockout_threshold).unwrap_or(i32::MAX);
            if !self
                .store
                .claim_answer_attempt(record.id, threshold)
                .await?
            {
                return Err(invalid().into());
            }
            self.check_security_answer(&user, &existing, setup.current_answer.as_ref(), client)
                .await?;
        }
        let hash = self.hasher.hash(password.expose()).await?;
        let mut answers = Vec::with_capacity(questions.len());
        for (question, answer) in questions {
            answers.push(SecurityAnswer {
                question,
                answer_hash: self.hasher.hash(&answer).await?,
            });
        }
        let was_active = user.status == UserStatus::Active;
        let audit = crate::store::AuditEntry::new(user.org_id, at, "user.setup_completed")
            .actor(Some(user.id))
            .subject(user.id)
            .ip(client.ip.clone())
            .details(serde_json::json!({
                "purpose": record.purpose.as_str(),
                "before": { "status": user.status.as_str(), "locked": user.is_locked(at) },
                "after": { "status": "ACTIVE", "locked": false },
            }));
        let complete = CompleteSetup {
            token_id: record.id,
            user_id: user.id,
            password_hash: hash,
            answers,
            audit,
            email: was_active.then(|| {
                password_changed_email(&user, "you set a new one with an emailed link").into()
            }),
        };
        match self.store.complete_setup(complete).await {
            Err(StoreError::Conflict(_)) => Err(invalid().into()),
            other => Ok(other?),
        }
    }

    /// A self-requested reset must also answer one of the user's security questions; a
    /// wrong answer counts as a failed sign-in.
    async fn check_security_answer(
        &self,
        user: &User,
        existing: &[SecurityAnswer],
        given: Option<&(String, String)>,
        client: &ClientInfo,
    ) -> AppResult<()> {
        let mismatch = || {
            DomainError::new(
                ErrorCode::SecurityAnswerMismatch,
                "The answer to the security question does not match.",
            )
            .on("currentSecurityAnswer")
        };
        let Some((question, answer)) = given else {
            return Err(mismatch().into());
        };
        let stored = existing
            .iter()
            .find(|a| a.question.trim().eq_ignore_ascii_case(question.trim()));
        let answer = normalize_answer(answer);
        let Some(check) = self.claim_check(user.id).await? else {
            // Locked: the answer is not even looked at.
            self.hasher.verify(&answer, None).await?;
            return Err(mismatch().into());
        };
        let verified = self
            .hasher
            .verify(&answer, stored.map(|a| a.answer_hash.as_str()))
            .await?;
        if verified == Verified::No {
            self.check_failed(user, &check, client.ip.clone(), "security answer mismatch")
                .await?;
            return Err(mismatch().into());
        }
        if !self.check_passed(user.id, &check).await? {
            return Err(mismatch().into());
        }
        Ok(())
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
            .user_sessions(user.id, now(), self.config.session_idle)
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

fn local_part(email: &str) -> &str {
    email.rsplit_once('@').map_or(email, |(local, _)| local)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn questions_must_be_three_distinct_with_answers() {
        assert!(parse_questions(&q(&[("a?", "1"), ("b?", "2")])).is_err());
        assert!(
            parse_questions(&q(&[("a?", "1"), ("A? ", "2"), ("c?", "3")])).is_err(),
            "case-insensitively distinct"
        );
        assert!(parse_questions(&q(&[("a?", "1"), ("b?", "  "), ("c?", "3")])).is_err());
        let ok =
            parse_questions(&q(&[("First pet?", "  Rex "), ("b?", "2"), ("c?", "3")])).unwrap();
        assert_eq!(
            ok[0],
            ("First pet?".to_owned(), "rex".to_owned()),
            "answers trimmed and lower-cased"
        );
    }
}
