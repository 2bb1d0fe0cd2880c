//! SQL of the `IdentityStore`: credentials and sessions.

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

            async fn start_session(&self, session: NewSession, audit: AuditEntry) -> StoreResult<(SessionId, User)> {
                retrying(&self.retried, || async {
                    let mut tx = self.begin_write().await?;
                    let user_updated: Option<UserRow> = match &session.guard {
                        Some(guard) => sqlx::query_as(concat!(
                            "UPDATE users SET failed_logins = 0, locked_until = NULL, lock_pending = FALSE, \
                             last_login_at = $2, password_hash = $5 \
                             WHERE id = $1 AND status = 'ACTIVE' AND password_hash = $3 \
                             AND (locked_until IS NULL OR locked_until <= $2 OR locked_until = $4 OR lock_pending) \
                             RETURNING ",
                            user_columns!("")
                        ))
                        .bind(session.user_id.0)
                        .bind(session.created_at)
                        .bind(&guard.verified_hash)
                        .bind(guard.check_lock)
                        .bind(guard.rehash.as_ref().unwrap_or(&guard.verified_hash)),
                        None => sqlx::query_as(concat!(
                            "UPDATE users SET failed_logins = 0, locked_until = NULL, lock_pending = FALSE, \
                             last_login_at = $2 WHERE id = $1 RETURNING ",
                            user_columns!("")
                        ))
                        .bind(session.user_id.0)
                        .bind(session.created_at),
                    }
                    .fetch_optional(&mut *tx)
                    .await?;
                    let Some(user) = user_updated else {
                        return Err(StoreError::Conflict(
                            "the password changed or the account locked meanwhile".into(),
                        ));
                    };
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
                    Self::append_audit_in(&mut tx, &audit).await?;
                    tx.commit().await?;
                    Ok((SessionId(id), user.try_into()?))
                })
                .await
            }

            async fn session_by_token(
                &self,
                token_hash: &[u8],
                now: Timestamp,
                idle: std::time::Duration,
            ) -> StoreResult<Option<SessionUser>> {
                let idle_cutoff = $crate::store::sql::idle_cutoff(now, idle);
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
                        .execute(&self.writer)
                        .await?;
                }
                Ok(Some(SessionUser { session_id: SessionId(row.session_id), user: row.user.try_into()? }))
            }

            async fn live_sessions(
                &self,
                ids: &[SessionId],
                now: Timestamp,
                idle: std::time::Duration,
            ) -> StoreResult<Vec<SessionId>> {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let idle_cutoff = $crate::store::sql::idle_cutoff(now, idle);
                let mut b = sqlx::QueryBuilder::<Db>::new(
                    "SELECT s.id FROM sessions s JOIN users u ON u.id = s.user_id \
                     WHERE s.ended_at IS NULL AND u.status = 'ACTIVE' AND s.expires_at > ",
                );
                b.push_bind(now).push(" AND s.last_seen_at > ").push_bind(idle_cutoff).push(" AND s.id IN (");
                let mut list = b.separated(", ");
                for id in ids {
                    list.push_bind(id.0);
                }
                b.push(")");
                let live: Vec<i64> = b.build_query_scalar().fetch_all(&self.pool).await?;
                Ok(live.into_iter().map(SessionId).collect())
            }

            async fn end_session(&self, id: SessionId, audit: AuditEntry) -> StoreResult<()> {
                retrying(&self.retried, || async {
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
                })
                .await
            }

            async fn expire_credentials(&self, now: Timestamp, idle: std::time::Duration) -> StoreResult<(u64, u64)> {
                let idle_cutoff = $crate::store::sql::idle_cutoff(now, idle);
                let sessions = sqlx::query(
                    "UPDATE sessions SET ended_at = $1 \
                     WHERE ended_at IS NULL AND (expires_at <= $1 OR last_seen_at <= $2)",
                )
                .bind(now)
                .bind(idle_cutoff)
                .execute(&self.writer)
                .await?
                .rows_affected();
                // Expired tokens already fail on their own (TOKEN_EXPIRED); a week later
                // they are deleted, and from then on are simply unknown.
                let week_ago = now - chrono::TimeDelta::days(7);
                let tokens = sqlx::query("DELETE FROM setup_tokens WHERE expires_at <= $1")
                    .bind(week_ago)
                    .execute(&self.writer)
                    .await?
                    .rows_affected();
                Ok((sessions, tokens))
            }

            async fn user_by_username_or_email(&self, text: &str) -> StoreResult<Option<User>> {
                let text = text.trim().to_lowercase();
                let row: Option<UserRow> = sqlx::query_as(concat!(
                    "SELECT ", user_columns!(), " FROM users u WHERE u.username = $1 OR lower(u.email) = $1"
                ))
                .bind(&text)
                .fetch_optional(&self.pool)
                .await?;
                row.map(User::try_from).transpose()
            }

            async fn user_by_id(&self, id: UserId) -> StoreResult<Option<User>> {
                let row: Option<UserRow> =
                    sqlx::query_as(concat!("SELECT ", user_columns!(), " FROM users u WHERE u.id = $1"))
                        .bind(id.0)
                        .fetch_optional(&self.pool)
                        .await?;
                row.map(User::try_from).transpose()
            }

            async fn set_password(&self, change: $crate::store::PasswordChange) -> StoreResult<User> {
                retrying(&self.retried, || async {
                    let mut tx = self.begin_write().await?;
                    let at = change.audit.at;
                    // With `replaces`, only over the password the caller proved (decided in the
                    // write itself, so a concurrent change cannot slip in between).
                    let updated = sqlx::query(
                        "UPDATE users SET password_hash = $2, password_change_required = $3, failed_logins = 0, \
                         locked_until = NULL, lock_pending = FALSE, updated_at = $4 WHERE id = $1 AND ($5 IS NULL OR password_hash = $5)",
                    )
                    .bind(change.user_id.0)
                    .bind(&change.hash)
                    .bind(change.change_required)
                    .bind(at)
                    .bind(change.replaces.as_deref())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if updated == 0 {
                        return Err(StoreError::Conflict("the password changed meanwhile".into()));
                    }
                    Self::end_sessions_in(&mut tx, change.user_id, at).await?;
                    Self::append_audit_in(&mut tx, &change.audit).await?;
                    if let Some(email) = &change.email {
                        Self::enqueue_in(&mut tx, email, at).await?;
                    }
                    let user = Self::user_in(&mut tx, change.user_id).await?;
                    tx.commit().await?;
                    Ok(user)
                })
                .await
            }

            async fn reset_encryption_key(&self, reset: $crate::store::KeyReset) -> StoreResult<User> {
                retrying(&self.retried, || async {
                    let mut tx = self.begin_write().await?;
                    let at = reset.audit.at;
                    let changed = sqlx::query(
                        "UPDATE users SET encryption_key = $2, encryption_key_version = encryption_key_version + 1, \
                         updated_at = $4 WHERE id = $1 AND encryption_key_version = $3",
                    )
                    .bind(reset.user_id.0)
                    .bind(&reset.key)
                    .bind(reset.from_version)
                    .bind(at)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if changed == 0 {
                        return Err(StoreError::Conflict("the key was reset meanwhile".into()));
                    }
                    Self::end_sessions_in(&mut tx, reset.user_id, at).await?;
                    Self::append_audit_in(&mut tx, &reset.audit).await?;
                    Self::enqueue_in(&mut tx, &reset.email, at).await?;
                    let user = Self::user_in(&mut tx, reset.user_id).await?;
                    tx.commit().await?;
                    Ok(user)
                })
                .await
            }

            async fn revoke_sessions(&self, user_id: UserId, audit: AuditEntry) -> StoreResult<u64> {
                retrying(&self.retried, || async {
                    let mut tx = self.begin_write().await?;
                    let ended = Self::end_sessions_in(&mut tx, user_id, audit.at).await?;
                    let mut audit = audit.clone();
                    if let serde_json::Value::Object(map) = &mut audit.details {
                        map.insert("sessionsEnded".into(), ended.into());
                    }
                    Self::append_audit_in(&mut tx, &audit).await?;
                    tx.commit().await?;
                    Ok(ended)
                })
                .await
            }

            async fn unlock_user(&self, user_id: UserId, audit: AuditEntry) -> StoreResult<User> {
                retrying(&self.retried, || async {
                    let mut tx = self.begin_write().await?;
                    sqlx::query("UPDATE users SET locked_until = NULL, lock_pending = FALSE, failed_logins = 0, updated_at = $2 WHERE id = $1")
                        .bind(user_id.0)
                        .bind(audit.at)
                        .execute(&mut *tx)
                        .await?;
                    Self::append_audit_in(&mut tx, &audit).await?;
                    let user = Self::user_in(&mut tx, user_id).await?;
                    tx.commit().await?;
                    Ok(user)
                })
                .await
            }

            async fn user_sessions(
                &self,
                user_id: UserId,
                now: Timestamp,
                idle: std::time::Duration,
            ) -> StoreResult<Vec<$crate::store::SessionRecord>> {
                let idle_cutoff = $crate::store::sql::idle_cutoff(now, idle);
                let rows: Vec<(i64, Timestamp, Timestamp, Timestamp, Option<String>, Option<String>)> = sqlx::query_as(
                    "SELECT id, created_at, last_seen_at, expires_at, user_agent, ip FROM sessions \
                     WHERE user_id = $1 AND ended_at IS NULL AND expires_at > $2 AND last_seen_at > $3 \
                     ORDER BY created_at DESC, id DESC",
                )
                .bind(user_id.0)
                .bind(now)
                .bind(idle_cutoff)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(id, created_at, last_seen_at, expires_at, user_agent, ip)| $crate::store::SessionRecord {
                        id: SessionId(id),
                        created_at,
                        last_seen_at,
                        expires_at: expires_at.min(last_seen_at.checked_add_signed(chrono::TimeDelta::from_std(idle).unwrap_or(chrono::TimeDelta::MAX)).unwrap_or(expires_at)),
                        user_agent,
                        ip,
                    })
                    .collect())
            }

        }
    };
}

pub(crate) use identity_impl;
