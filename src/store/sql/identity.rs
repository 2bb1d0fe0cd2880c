//! SQL of the `IdentityStore`: credentials, sessions, setup tokens and lockout.

macro_rules! identity_impl {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::IdentityStore for $store {
            async fn credentials_by_username(&self, username: &str) -> StoreResult<Option<(User, Option<String>)>> {
                #[derive(sqlx::FromRow)]
                struct Row {
                    #[sqlx(flatten)]
                    user: UserRow,
                    password_hash: Option<String>,
                }
                let row: Option<Row> = sqlx::query_as(concat!(
                    "SELECT ", user_columns!(), ", u.password_hash FROM users u WHERE u.username = $1"
                ))
                .bind(username)
                .fetch_optional(&self.pool)
                .await?;
                row.map(|r| Ok((r.user.try_into()?, r.password_hash))).transpose()
            }

            async fn start_session(&self, session: NewSession, audit: AuditEntry) -> StoreResult<SessionId> {
                let mut tx = self.begin_write().await?;
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO sessions (user_id, token_hash, created_at, last_seen_at, expires_at, \
                     user_agent, ip) VALUES ($1, $2, $3, $3, $4, $5, $6) RETURNING id",
                )
                .bind(session.user_id.0)
                .bind(&session.token_hash)
                .bind(session.created_at)
                .bind(session.expires_at)
                .bind(session.user_agent.as_deref())
                .bind(session.ip.as_deref())
                .fetch_one(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE users SET failed_logins = 0, locked_until = NULL, last_login_at = $2 \
                     WHERE id = $1",
                )
                .bind(session.user_id.0)
                .bind(session.created_at)
                .execute(&mut *tx)
                .await?;
                Self::append_audit_in(&mut tx, &audit).await?;
                tx.commit().await?;
                Ok(SessionId(id))
            }

            async fn session_by_token(
                &self,
                token_hash: &[u8],
                now: Timestamp,
                idle: std::time::Duration,
            ) -> StoreResult<Option<SessionUser>> {
                let idle = chrono::TimeDelta::from_std(idle).unwrap_or(chrono::TimeDelta::MAX);
                let idle_cutoff = now.checked_sub_signed(idle).unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
                let row: Option<SessionUserRow> = sqlx::query_as(concat!(
                    "SELECT s.id AS session_id, s.last_seen_at AS session_seen, ", user_columns!(),
                    " FROM sessions s JOIN users u ON u.id = s.user_id \
                     WHERE s.token_hash = $1 AND s.ended_at IS NULL AND s.expires_at > $2 \
                     AND s.last_seen_at > $3 AND u.status = 'ACTIVE'"
                ))
                .bind(token_hash)
                .bind(now)
                .bind(idle_cutoff)
                .fetch_optional(&self.pool)
                .await?;
                let Some(row) = row else { return Ok(None) };
                if now - row.session_seen >= $crate::store::sql::SEEN_GRANULARITY {
                    sqlx::query("UPDATE sessions SET last_seen_at = $2 WHERE id = $1 AND ended_at IS NULL")
                        .bind(row.session_id)
                        .bind(now)
                        .execute(&self.pool)
                        .await?;
                }
                Ok(Some(SessionUser { session_id: SessionId(row.session_id), user: row.user.try_into()? }))
            }

            async fn end_session(&self, id: SessionId, audit: AuditEntry) -> StoreResult<()> {
                let mut tx = self.begin_write().await?;
                let ended = sqlx::query("UPDATE sessions SET ended_at = $2 WHERE id = $1 AND ended_at IS NULL")
                    .bind(id.0)
                    .bind(audit.at)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if ended == 0 {
                    return Err(StoreError::Conflict("session already ended".into()));
                }
                Self::append_audit_in(&mut tx, &audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn issue_setup_token(&self, token: NewSetupToken, audit: AuditEntry) -> StoreResult<Option<(User, String)>> {
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
                let mut audit = audit;
                audit.org_id = user.org_id;
                audit.subject_id = Some(user.id);
                Self::append_audit_in(&mut tx, &audit).await?;
                let org: String = sqlx::query_scalar("SELECT name FROM organizations WHERE id = $1")
                    .bind(user.org_id.0)
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(Some((user, org)))
            }

            async fn expire_credentials(&self, now: Timestamp, idle: std::time::Duration) -> StoreResult<(u64, u64)> {
                let idle = chrono::TimeDelta::from_std(idle).unwrap_or(chrono::TimeDelta::MAX);
                let idle_cutoff = now.checked_sub_signed(idle).unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
                let sessions = sqlx::query(
                    "UPDATE sessions SET ended_at = $1 \
                     WHERE ended_at IS NULL AND (expires_at <= $1 OR last_seen_at <= $2)",
                )
                .bind(now)
                .bind(idle_cutoff)
                .execute(&self.pool)
                .await?
                .rows_affected();
                let tokens = sqlx::query(
                    "UPDATE setup_tokens SET voided_at = $1 \
                     WHERE used_at IS NULL AND voided_at IS NULL AND expires_at <= $1",
                )
                .bind(now)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok((sessions, tokens))
            }
        }
    };
}

pub(crate) use identity_impl;
