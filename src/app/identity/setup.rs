//! Account setup by emailed link: sending and asking for the email, completing the setup
//! (password and security questions), and the checks of a security answer.

use super::Identity;
use super::credentials::{local_part, password_changed_email};
use super::crypto::{new_token, token_hash};
use super::session::ClientInfo;
use super::session::later;
use crate::app::policy::Action;
use crate::app::{Actor, AppResult};
use crate::domain::password::Password;
use crate::domain::{DomainError, ErrorCode, User, UserId, UserStatus};
use crate::store::{CompleteSetup, NewSetupForm, SecurityAnswer, SetupTokenRecord, StoreError};
use gatehouse_workers::{Job, SetupPurpose};

/// Self-requested setup emails allowed per account and hour.
const SETUP_EMAILS_PER_HOUR: i64 = 3;
const MIN_QUESTIONS: usize = 3;
const MAX_QUESTIONS: usize = 10;
/// How long an opened setup link's form state lasts (never past the link itself).
pub const SETUP_FORM_LIFETIME: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// What names the setup being completed: the emailed token itself (the API), or the
/// handle of a form state opened from it (the pages, so the token leaves the URL at once).
#[derive(Clone)]
pub enum SetupKey {
    Link(String),
    Form(String),
}

impl std::fmt::Debug for SetupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Both are secrets: never in a log line.
        f.write_str(match self {
            SetupKey::Link(_) => "SetupKey::Link(..)",
            SetupKey::Form(_) => "SetupKey::Form(..)",
        })
    }
}

/// What the page of a setup link shows before it is used.
#[derive(Debug, Clone)]
pub struct SetupLink {
    pub user: User,
    pub organization: String,
    pub purpose: crate::domain::SetupPurpose,
    /// For a self-requested reset: the user's questions, one of which must be answered.
    pub current_questions: Vec<String>,
}

fn invalid_link() -> DomainError {
    DomainError::new(
        ErrorCode::TokenInvalid,
        "This setup link is not valid; ask for a new one.",
    )
    .on("token")
}

/// What `completeAccountSetup` receives.
#[derive(Debug, Clone)]
pub struct AccountSetup {
    pub key: SetupKey,
    pub new_password: String,
    pub questions: Vec<(String, String)>,
    pub current_answer: Option<(String, String)>,
}

/// Answers are compared trimmed and lower-cased.
fn normalize_answer(answer: &str) -> String {
    answer.trim().to_lowercase()
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
        self.store.enqueue(job.into(), self.now()).await?;
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
        let at = self.now();
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
        let (record, user) = self.valid_link(&setup.key).await?;
        let at = self.now();
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
                return Err(invalid_link().into());
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
            Err(StoreError::Conflict(_)) => Err(invalid_link().into()),
            other => Ok(other?),
        }
    }

    /// Whose account a setup link is for and what completing it asks, without using it:
    /// for the page the emailed link opens.
    pub async fn setup_link(&self, key: &SetupKey) -> AppResult<SetupLink> {
        let (record, user) = self.valid_link(key).await?;
        let organization = self.store.organization(user.org_id).await?.name;
        let questions: Vec<String> =
            if record.purpose == crate::domain::SetupPurpose::Reset && record.self_requested {
                let answers = self.store.security_answers(user.id).await?;
                answers.into_iter().map(|a| a.question).collect()
            } else {
                Vec::new()
            };
        Ok(SetupLink {
            user,
            organization,
            purpose: record.purpose,
            current_questions: questions,
        })
    }

    /// Opens a form state for an emailed link that may still be used and returns its
    /// handle, which names the setup from then on (for `SETUP_FORM_LIFETIME` at most).
    pub async fn open_setup_form(&self, token: &str) -> AppResult<String> {
        let (record, _) = self.valid_link(&SetupKey::Link(token.to_owned())).await?;
        let (handle, form_hash) = new_token();
        let at = self.now();
        self.store
            .open_setup_form(NewSetupForm {
                form_hash,
                token_id: record.id,
                created_at: at,
                expires_at: later(at, SETUP_FORM_LIFETIME).min(record.expires_at),
            })
            .await?;
        Ok(handle)
    }

    /// The link's stored record and its user, while the link may still be used.
    async fn valid_link(&self, key: &SetupKey) -> AppResult<(SetupTokenRecord, User)> {
        let record = match key {
            SetupKey::Link(secret) | SetupKey::Form(secret)
                if secret.is_empty() || secret.len() > 256 =>
            {
                None
            }
            SetupKey::Link(token) => self.store.setup_token(&token_hash(token)).await?,
            SetupKey::Form(handle) => {
                let record = self
                    .store
                    .setup_form_token(&token_hash(handle), self.now())
                    .await?;
                if record.is_none() {
                    return Err(DomainError::new(
                        ErrorCode::TokenInvalid,
                        "This page was open too long; open the link from your email again.",
                    )
                    .on("form")
                    .into());
                }
                record
            }
        };
        let Some(record) = record else {
            return Err(invalid_link().into());
        };
        if record.used_at.is_some() || record.voided_at.is_some() {
            return Err(invalid_link().into());
        }
        if record.expires_at <= self.now() {
            return Err(DomainError::new(
                ErrorCode::TokenExpired,
                "This setup link has expired; ask for a new one.",
            )
            .on("token")
            .into());
        }
        match self.store.user_by_id(record.user_id).await? {
            Some(user) => Ok((record, user)),
            None => Err(invalid_link().into()),
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
        let stored = stored.map(|a| a.answer_hash.clone());
        let right = self
            .check_secret(
                user,
                client.ip.clone(),
                normalize_answer(answer),
                |_| stored,
                "security answer mismatch",
            )
            .await?
            .is_some();
        if right {
            Ok(())
        } else {
            Err(mismatch().into())
        }
    }
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
