//! Account-setup contracts: the emailed setup links, security answers, and completing a
//! setup.

use super::*;

#[async_trait]
pub trait SetupStore: Send + Sync {
    /// Voids the user's open setup tokens and stores a new one, with its audit event, if
    /// the account may receive it (an invitation needs INVITED; a reset INVITED or ACTIVE).
    /// Returns the user and their organization's name, or `None` when it may not.
    async fn issue_setup_token(
        &self,
        token: NewSetupToken,
        audit: AuditEntry,
    ) -> StoreResult<Option<(User, String)>>;

    /// Counts a security answer given with a setup link; `false` when the link is used,
    /// voided, or has had `threshold` answers checked already.
    async fn claim_answer_attempt(&self, token_id: i64, threshold: i32) -> StoreResult<bool>;
    async fn setup_token(&self, token_hash: &[u8]) -> StoreResult<Option<SetupTokenRecord>>;
    /// Keeps an opened link's form state (with at most four older ones of the same link;
    /// every expired one is dropped).
    async fn open_setup_form(&self, form: NewSetupForm) -> StoreResult<()>;
    /// The token behind a form state that has not expired.
    async fn setup_form_token(
        &self,
        form_hash: &[u8],
        at: Timestamp,
    ) -> StoreResult<Option<SetupTokenRecord>>;
    async fn security_answers(&self, user_id: UserId) -> StoreResult<Vec<SecurityAnswer>>;
    /// Uses the token (once: a token used or voided meanwhile is a `Conflict`), sets the
    /// password and security questions, activates an INVITED user, clears any lock and
    /// ends every session; the link's form states go with it.
    async fn complete_setup(&self, setup: CompleteSetup) -> StoreResult<User>;
    /// Files a self-requested setup email unless `max` were filed since `since`; returns
    /// whether it was filed.
    async fn file_setup_email_request(
        &self,
        user_id: UserId,
        at: Timestamp,
        since: Timestamp,
        max: i64,
        job: OutboxMessage,
    ) -> StoreResult<bool>;
}

/// A stored setup token (its hash only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupTokenRecord {
    pub id: i64,
    pub user_id: UserId,
    pub purpose: SetupPurpose,
    pub self_requested: bool,
    pub expires_at: Timestamp,
    pub used_at: Option<Timestamp>,
    pub voided_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityAnswer {
    pub question: String,
    pub answer_hash: String,
}

#[derive(Debug, Clone)]
pub struct CompleteSetup {
    pub token_id: i64,
    pub user_id: UserId,
    pub password_hash: String,
    pub answers: Vec<SecurityAnswer>,
    pub audit: AuditEntry,
    pub email: Option<OutboxMessage>,
}

/// A setup token to store (its hash only).
#[derive(Debug, Clone)]
pub struct NewSetupToken {
    pub user_id: UserId,
    pub token_hash: Vec<u8>,
    pub purpose: SetupPurpose,
    pub self_requested: bool,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// The server-side state of an opened setup link: the browser holds only the handle whose
/// hash is stored here.
#[derive(Debug, Clone)]
pub struct NewSetupForm {
    pub form_hash: Vec<u8>,
    pub token_id: i64,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}
