//! SQL of the `SetupStore`: setup links, security answers, completing a setup.

macro_rules! setup_impl {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::SetupStore for $store {
            async fn claim_answer_attempt(&self, token_id: i64, threshold: i32) -> StoreResult<bool> {
                let updated = sqlx::query(
                    "UPDATE setup_tokens SET failed_answers = failed_answers + 1 \
                     WHERE id = $1 AND failed_answers < $2 AND used_at IS NULL AND voided_at IS NULL",
                )
                .bind(token_id)
                .bind(threshold)
                .execute(&self.writer)
                .await?
                .rows_affected();
                Ok(updated > 0)
            }

            async fn issue_setup_token(&self, token: NewSetupToken, audit: AuditEntry) -> StoreResult<Option<(User, String)>> {
                retrying(&self.retried, || async {
                    let mut tx = self.begin_write().await?;
                    let user = match Self::user_in(&mut tx, token.user_id).await {
                        Ok(user) => user,
                        Err(StoreError::NotFound) => return Ok(None),
                        Err(other) => return Err(other),
                    };
                    let eligible = match token.purpose {
                        SetupPurpose::Invitation => user.status == UserStatus::Invited,
                        SetupPurpose::Reset => matches!(user.status, UserStatus::Invited | UserStatus::Active),
                    };
                    if !eligible {
                        return Ok(None);
                    }
                    sqlx::query(
                        "UPDATE setup_tokens SET voided_at = $2 \
                         WHERE user_id = $1 AND used_at IS NULL AND voided_at IS NULL",
                    )
                    .bind(user.id.0)
                    .bind(token.created_at)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query(
                        "INSERT INTO setup_tokens (user_id, token_hash, purpose, self_requested, created_at, expires_at) \
                         VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(user.id.0)
                    .bind(&token.token_hash)
                    .bind(token.purpose.as_str())
                    .bind(token.self_requested)
                    .bind(token.created_at)
                    .bind(token.expires_at)
                    .execute(&mut *tx)
                    .await?;
                    let mut audit = audit.clone();
                    audit.org_id = user.org_id;
                    audit.subject_id = Some(user.id);
                    Self::append_audit_in(&mut tx, &audit).await?;
                    let org: String = sqlx::query_scalar("SELECT name FROM organizations WHERE id = $1")
                        .bind(user.org_id.0)
                        .fetch_one(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(Some((user, org)))
                })
                .await
            }

            async fn setup_token(&self, token_hash: &[u8]) -> StoreResult<Option<$crate::store::SetupTokenRecord>> {
                let row: Option<$crate::store::sql::setup::TokenRow> = sqlx::query_as(
                    "SELECT id, user_id, purpose, self_requested, expires_at, used_at, voided_at \
                     FROM setup_tokens WHERE token_hash = $1",
                )
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await?;
                row.map($crate::store::sql::setup::TokenRow::record).transpose()
            }

            async fn open_setup_form(&self, form: $crate::store::NewSetupForm) -> StoreResult<()> {
                retrying(&self.retried, || async {
                    let mut tx = self.begin_write().await?;
                    sqlx::query("DELETE FROM setup_forms WHERE expires_at <= $1")
                        .bind(form.created_at)
                        .execute(&mut *tx)
                        .await?;
                    // A link opened again and again keeps its newest few forms (tabs), no more.
                    sqlx::query(
                        "DELETE FROM setup_forms WHERE token_id = $1 AND form_hash NOT IN \
                         (SELECT form_hash FROM setup_forms WHERE token_id = $1 ORDER BY expires_at DESC LIMIT 4)",
                    )
                    .bind(form.token_id)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query("INSERT INTO setup_forms (form_hash, token_id, expires_at) VALUES ($1, $2, $3)")
                        .bind(&form.form_hash)
                        .bind(form.token_id)
                        .bind(form.expires_at)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(())
                })
                .await
            }

            async fn setup_form_token(&self, form_hash: &[u8], at: Timestamp) -> StoreResult<Option<$crate::store::SetupTokenRecord>> {
                let row: Option<$crate::store::sql::setup::TokenRow> = sqlx::query_as(
                    "SELECT t.id, t.user_id, t.purpose, t.self_requested, t.expires_at, t.used_at, t.voided_at \
                     FROM setup_forms f JOIN setup_tokens t ON t.id = f.token_id \
                     WHERE f.form_hash = $1 AND f.expires_at > $2",
                )
                .bind(form_hash)
                .bind(at)
                .fetch_optional(&self.pool)
                .await?;
                row.map($crate::store::sql::setup::TokenRow::record).transpose()
            }

            async fn security_answers(&self, user_id: UserId) -> StoreResult<Vec<$crate::store::SecurityAnswer>> {
                let rows: Vec<(String, String)> = sqlx::query_as(
                    "SELECT question, answer_hash FROM security_answers WHERE user_id = $1 ORDER BY position",
                )
                .bind(user_id.0)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(question, answer_hash)| $crate::store::SecurityAnswer { question, answer_hash })
                    .collect())
            }

            async fn complete_setup(&self, setup: $crate::store::CompleteSetup) -> StoreResult<User> {
                retrying(&self.retried, || async {
                    let mut tx = self.begin_write().await?;
                    let at = setup.audit.at;
                    // The user's directory first (on PostgreSQL; the order of locks is in
                    // `create_users_in`): the status changes, and an inactivation of the
                    // user, which voids their links, takes it first too. (The audit event
                    // is the user's organization's.)
                    if BACKEND == $crate::store::Backend::Postgres {
                        Self::lock_directory(&mut tx, setup.audit.org_id).await?;
                    }
                    let used = sqlx::query(
                        "UPDATE setup_tokens SET used_at = $2 \
                         WHERE id = $1 AND used_at IS NULL AND voided_at IS NULL AND expires_at > $2",
                    )
                    .bind(setup.token_id)
                    .bind(at)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if used == 0 {
                        return Err(StoreError::Conflict("the setup link was used or replaced meanwhile".into()));
                    }
                    sqlx::query("DELETE FROM setup_forms WHERE token_id = $1")
                        .bind(setup.token_id)
                        .execute(&mut *tx)
                        .await?;
                    let activated = sqlx::query(
                        "UPDATE users SET password_hash = $2, status = 'ACTIVE', password_change_required = $3, \
                         failed_logins = 0, locked_until = NULL, lock_pending = FALSE, updated_at = $4 \
                         WHERE id = $1 AND status IN ('INVITED', 'ACTIVE')",
                    )
                    .bind(setup.user_id.0)
                    .bind(&setup.password_hash)
                    .bind(false)
                    .bind(at)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if activated == 0 {
                        return Err(StoreError::Conflict("the account is no longer open for setup".into()));
                    }
                    sqlx::query("DELETE FROM security_answers WHERE user_id = $1")
                        .bind(setup.user_id.0)
                        .execute(&mut *tx)
                        .await?;
                    for (position, answer) in setup.answers.iter().enumerate() {
                        sqlx::query(
                            "INSERT INTO security_answers (user_id, position, question, answer_hash) VALUES ($1, $2, $3, $4)",
                        )
                        .bind(setup.user_id.0)
                        .bind(position as i32)
                        .bind(&answer.question)
                        .bind(&answer.answer_hash)
                        .execute(&mut *tx)
                        .await?;
                    }
                    Self::end_sessions_in(&mut tx, setup.user_id, at).await?;
                    Self::append_audit_in(&mut tx, &setup.audit).await?;
                    if let Some(email) = &setup.email {
                        Self::enqueue_in(&mut tx, email, at).await?;
                    }
                    let user = Self::user_in(&mut tx, setup.user_id).await?;
                    tx.commit().await?;
                    Ok(user)
                })
                .await
            }

            async fn file_setup_email_request(
                &self,
                user_id: UserId,
                at: Timestamp,
                since: Timestamp,
                max: i64,
                job: OutboxMessage,
            ) -> StoreResult<bool> {
                retrying(&self.retried, || async {
                    let mut tx = self.begin_write().await?;
                    // Touching the user row first serializes concurrent requests for one account
                    // (a row lock on PostgreSQL; SQLite writes are serialized already).
                    sqlx::query("UPDATE users SET updated_at = updated_at WHERE id = $1")
                        .bind(user_id.0)
                        .execute(&mut *tx)
                        .await?;
                    let recent: i64 = sqlx::query_scalar(
                        "SELECT COUNT(*) FROM setup_email_requests WHERE user_id = $1 AND requested_at > $2",
                    )
                    .bind(user_id.0)
                    .bind(since)
                    .fetch_one(&mut *tx)
                    .await?;
                    if recent >= max {
                        return Ok(false);
                    }
                    sqlx::query("INSERT INTO setup_email_requests (user_id, requested_at) VALUES ($1, $2)")
                        .bind(user_id.0)
                        .bind(at)
                        .execute(&mut *tx)
                        .await?;
                    Self::enqueue_in(&mut tx, &job, at).await?;
                    tx.commit().await?;
                    Ok(true)
                })
                .await
            }
        }
    };
}

pub(crate) use setup_impl;

/// A `setup_tokens` row as read by both databases.
#[derive(sqlx::FromRow)]
pub(crate) struct TokenRow {
    id: i64,
    user_id: i64,
    purpose: String,
    self_requested: bool,
    expires_at: crate::domain::Timestamp,
    used_at: Option<crate::domain::Timestamp>,
    voided_at: Option<crate::domain::Timestamp>,
}

impl TokenRow {
    pub(crate) fn record(self) -> super::super::StoreResult<crate::store::SetupTokenRecord> {
        use crate::domain::SetupPurpose;
        let purpose = match self.purpose.as_str() {
            "INVITATION" => SetupPurpose::Invitation,
            "RESET" => SetupPurpose::Reset,
            other => {
                return Err(super::super::StoreError::Corrupt(format!(
                    "setup token purpose {other:?}"
                )));
            }
        };
        Ok(crate::store::SetupTokenRecord {
            id: self.id,
            user_id: crate::domain::UserId(self.user_id),
            purpose,
            self_requested: self.self_requested,
            expires_at: self.expires_at,
            used_at: self.used_at,
            voided_at: self.voided_at,
        })
    }
}
