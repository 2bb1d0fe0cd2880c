//! The SQL of the store, written once: `shared_store_impl!` expands it into the `Store`
//! implementation of each backend. Both databases accept the same `$n` placeholders and
//! `RETURNING`; what differs (connecting, starting a write transaction) stays in the
//! backend's own module.

use super::{StoreError, unique_field};
use sqlx::error::ErrorKind;

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::Database(ref db) if db.kind() == ErrorKind::UniqueViolation => {
                let text = format!("{} {}", db.constraint().unwrap_or_default(), db.message());
                StoreError::AlreadyExists {
                    field: unique_field(&text),
                }
            }
            other => StoreError::Database(other),
        }
    }
}

/// Sessions are marked seen at most this often, so that reads do not all become writes.
pub(super) const SEEN_GRANULARITY: chrono::TimeDelta = chrono::TimeDelta::seconds(30);

macro_rules! shared_store_impl {
    ($store:ty, $db:ty, $backend:expr) => {
        use $crate::domain::audit::{self, AuditRecord};
        use $crate::domain::{
            LicensePool, OrgId, Organization, Practice, Product, SessionId, Timestamp, User, UserId,
            UserStatus,
        };
        use $crate::store::rows::{
            AuditRow, OrganizationRow, OutboxRow, PoolRow, PracticeRow, SessionUserRow, UserRow,
            user_columns,
        };
        use $crate::store::{
            AuditEntry, EmailDelivery, NewOrganization, NewSession, NewSetupToken, OutboxJob,
            SessionUser, Store, StoreError, StoreResult, UserCreation,
        };
        use gatehouse_workers::{Job, SetupPurpose};
        use sqlx::Transaction;

        type Tx = Transaction<'static, $db>;

        impl $store {
            /// Appends to the organization's chain. Bumping the head row first serializes
            /// appends per organization (a row lock on PostgreSQL, the write lock on SQLite).
            async fn append_audit_in(tx: &mut Tx, entry: &AuditEntry) -> StoreResult<AuditRecord> {
                let (seq, prev): (i64, Vec<u8>) = sqlx::query_as(
                    "UPDATE organizations SET audit_seq = audit_seq + 1 WHERE id = $1 \
                     RETURNING audit_seq, audit_head",
                )
                .bind(entry.org_id.0)
                .fetch_one(&mut **tx)
                .await?;
                let details = entry.details.to_string();
                let actor = entry.actor_id.map(|u| u.0);
                let subject = entry.subject_id.map(|u| u.0);
                let canonical = audit::EventContent {
                    org_id: entry.org_id.0,
                    seq,
                    at: &entry.at,
                    action: entry.action,
                    actor_id: actor,
                    subject_id: subject,
                    request_id: entry.request_id,
                    ip: entry.ip.as_deref(),
                    details: &details,
                }
                .canonical();
                let hash = audit::chain_hash(&prev, &canonical).to_vec();
                let row: AuditRow = sqlx::query_as(
                    "INSERT INTO audit_events (org_id, seq, at, action, actor_id, subject_id, \
                     request_id, ip, details, prev_hash, hash) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                     RETURNING id, org_id, seq, at, action, actor_id, subject_id, request_id, ip, \
                     details, prev_hash, hash",
                )
                .bind(entry.org_id.0)
                .bind(seq)
                .bind(entry.at)
                .bind(entry.action)
                .bind(actor)
                .bind(subject)
                .bind(entry.request_id)
                .bind(entry.ip.as_deref())
                .bind(&details)
                .bind(&prev)
                .bind(&hash)
                .fetch_one(&mut **tx)
                .await?;
                sqlx::query("UPDATE organizations SET audit_head = $2 WHERE id = $1")
                    .bind(entry.org_id.0)
                    .bind(&hash)
                    .execute(&mut **tx)
                    .await?;
                Ok(row.into())
            }

            async fn enqueue_in(tx: &mut Tx, job: &Job, at: Timestamp) -> StoreResult<i64> {
                let id = sqlx::query_scalar(
                    "INSERT INTO job_outbox (kind, payload, created_at, available_at) \
                     VALUES ($1, $2, $3, $3) RETURNING id",
                )
                .bind(job.kind())
                .bind(job.to_json())
                .bind(at)
                .fetch_one(&mut **tx)
                .await?;
                Ok(id)
            }

            async fn user_in(tx: &mut Tx, id: UserId) -> StoreResult<User> {
                let row: UserRow =
                    sqlx::query_as(concat!("SELECT ", user_columns!(), " FROM users u WHERE u.id = $1"))
                        .bind(id.0)
                        .fetch_one(&mut **tx)
                        .await?;
                row.try_into()
            }

            async fn create_user_in(tx: &mut Tx, creation: &UserCreation) -> StoreResult<User> {
                let new = &creation.user;
                let status = if new.password_hash.is_some() { UserStatus::Active } else { UserStatus::Invited };
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO users (org_id, username, email, first_name, last_name, mobile, kind, \
                     role, status, password_hash, encryption_key, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) RETURNING id",
                )
                .bind(new.org_id.0)
                .bind(&new.username)
                .bind(&new.email)
                .bind(&new.first_name)
                .bind(&new.last_name)
                .bind(new.mobile.as_deref())
                .bind(new.kind.as_str())
                .bind(new.role.as_str())
                .bind(status.as_str())
                .bind(new.password_hash.as_deref())
                .bind(&new.encryption_key)
                .bind(new.created_at)
                .fetch_one(&mut **tx)
                .await?;
                let mut products = new.products.clone();
                products.sort();
                products.dedup();
                for product in products {
                    let taken = sqlx::query(
                        "UPDATE license_pools SET used = used + 1 \
                         WHERE org_id = $1 AND product = $2 AND kind = $3 AND used < total",
                    )
                    .bind(new.org_id.0)
                    .bind(product.as_str())
                    .bind(new.kind.as_str())
                    .execute(&mut **tx)
                    .await?
                    .rows_affected();
                    if taken == 0 {
                        return Err(StoreError::NoLicense { product, kind: new.kind });
                    }
                    sqlx::query("INSERT INTO user_products (user_id, product) VALUES ($1, $2)")
                        .bind(id)
                        .bind(product.as_str())
                        .execute(&mut **tx)
                        .await?;
                }
                for permission in &new.permissions {
                    sqlx::query(
                        "INSERT INTO user_permissions (user_id, permission) VALUES ($1, $2) \
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(id)
                    .bind(permission.as_str())
                    .execute(&mut **tx)
                    .await?;
                }
                for practice in &new.practice_ids {
                    // Only a practice of the same organization can be attached.
                    let attached = sqlx::query(
                        "INSERT INTO user_practices (user_id, practice_id) \
                         SELECT $1, p.id FROM practices p WHERE p.id = $2 AND p.org_id = $3 \
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(id)
                    .bind(practice.0)
                    .bind(new.org_id.0)
                    .execute(&mut **tx)
                    .await?
                    .rows_affected();
                    if attached == 0 {
                        return Err(StoreError::NotFound);
                    }
                }
                let mut audit = creation.audit.clone();
                audit.org_id = new.org_id;
                audit.subject_id = Some(UserId(id));
                Self::append_audit_in(tx, &audit).await?;
                if creation.send_setup_email {
                    let job = Job::AccountSetupEmail {
                        user_id: id,
                        purpose: SetupPurpose::Invitation,
                        self_requested: false,
                    };
                    Self::enqueue_in(tx, &job, new.created_at).await?;
                }
                Self::user_in(tx, UserId(id)).await
            }
        }

        #[async_trait::async_trait]
        impl Store for $store {
            fn backend(&self) -> $crate::store::Backend {
                $backend
            }

            async fn ping(&self) -> StoreResult<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn create_organization(&self, new: NewOrganization) -> StoreResult<(Organization, User)> {
                let mut tx = self.begin_write().await?;
                let org: OrganizationRow = sqlx::query_as(
                    "INSERT INTO organizations (name, created_at, audit_seq, audit_head) \
                     VALUES ($1, $2, 0, $3) RETURNING id, name, created_at",
                )
                .bind(&new.name)
                .bind(new.created_at)
                .bind(audit::GENESIS.to_vec())
                .fetch_one(&mut *tx)
                .await?;
                let org = Organization::from(org);
                for (product, kind, total) in &new.pools {
                    sqlx::query(
                        "INSERT INTO license_pools (org_id, product, kind, total, used) \
                         VALUES ($1, $2, $3, $4, 0)",
                    )
                    .bind(org.id.0)
                    .bind(product.as_str())
                    .bind(kind.as_str())
                    .bind(*total)
                    .execute(&mut *tx)
                    .await?;
                    let mut audit = AuditEntry::new(org.id, new.created_at, "license.pool_changed")
                        .details(serde_json::json!({
                            "product": product.as_str(), "kind": kind.as_str(),
                            "before": {"total": 0}, "after": {"total": total},
                        }));
                    audit.actor_id = None;
                    Self::append_audit_in(&mut tx, &audit).await?;
                }
                let mut owner = new.owner.clone();
                owner.user.org_id = org.id;
                let user = Self::create_user_in(&mut tx, &owner).await?;
                tx.commit().await?;
                Ok((org, user))
            }

            async fn organization(&self, id: OrgId) -> StoreResult<Organization> {
                let row: OrganizationRow =
                    sqlx::query_as("SELECT id, name, created_at FROM organizations WHERE id = $1")
                        .bind(id.0)
                        .fetch_one(&self.pool)
                        .await?;
                Ok(row.into())
            }

            async fn organization_ids(&self) -> StoreResult<Vec<OrgId>> {
                let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM organizations ORDER BY id")
                    .fetch_all(&self.pool)
                    .await?;
                Ok(ids.into_iter().map(OrgId).collect())
            }

            async fn create_practice(&self, org_id: OrgId, name: &str, audit: AuditEntry) -> StoreResult<Practice> {
                let mut tx = self.begin_write().await?;
                let row: PracticeRow = sqlx::query_as(
                    "INSERT INTO practices (org_id, name, created_at) VALUES ($1, $2, $3) \
                     RETURNING id, org_id, name, created_at",
                )
                .bind(org_id.0)
                .bind(name)
                .bind(audit.at)
                .fetch_one(&mut *tx)
                .await?;
                let practice = Practice::from(row);
                let mut audit = audit;
                audit.org_id = org_id;
                if let serde_json::Value::Object(map) = &mut audit.details {
                    map.insert("practiceId".into(), practice.id.to_global().into());
                    map.insert("name".into(), practice.name.clone().into());
                }
                Self::append_audit_in(&mut tx, &audit).await?;
                tx.commit().await?;
                Ok(practice)
            }

            async fn practices(&self, org_id: OrgId) -> StoreResult<Vec<Practice>> {
                let rows: Vec<PracticeRow> = sqlx::query_as(
                    "SELECT id, org_id, name, created_at FROM practices WHERE org_id = $1 ORDER BY name, id",
                )
                .bind(org_id.0)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(Practice::from).collect())
            }

            async fn license_pools(&self, org_id: OrgId) -> StoreResult<Vec<LicensePool>> {
                let rows: Vec<PoolRow> = sqlx::query_as(
                    "SELECT product, kind, total, used FROM license_pools WHERE org_id = $1 \
                     ORDER BY product, kind",
                )
                .bind(org_id.0)
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter().map(LicensePool::try_from).collect()
            }

            async fn create_user(&self, creation: UserCreation) -> StoreResult<User> {
                let mut tx = self.begin_write().await?;
                let user = Self::create_user_in(&mut tx, &creation).await?;
                tx.commit().await?;
                Ok(user)
            }

            async fn user(&self, org_id: OrgId, id: UserId) -> StoreResult<User> {
                let row: UserRow = sqlx::query_as(concat!(
                    "SELECT ", user_columns!(), " FROM users u WHERE u.id = $1 AND u.org_id = $2"
                ))
                .bind(id.0)
                .bind(org_id.0)
                .fetch_one(&self.pool)
                .await?;
                row.try_into()
            }

            async fn user_products(&self, id: UserId) -> StoreResult<Vec<Product>> {
                let names: Vec<String> =
                    sqlx::query_scalar("SELECT product FROM user_products WHERE user_id = $1 ORDER BY product")
                        .bind(id.0)
                        .fetch_all(&self.pool)
                        .await?;
                names
                    .iter()
                    .map(|n| n.parse().map_err(|e: $crate::domain::enums::UnknownValue| StoreError::Corrupt(e.to_string())))
                    .collect()
            }

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

            async fn append_audit(&self, entry: AuditEntry) -> StoreResult<AuditRecord> {
                let mut tx = self.begin_write().await?;
                let record = Self::append_audit_in(&mut tx, &entry).await?;
                tx.commit().await?;
                Ok(record)
            }

            async fn audit_chain_page(&self, org_id: OrgId, after_seq: i64, limit: i64) -> StoreResult<Vec<AuditRecord>> {
                let rows: Vec<AuditRow> = sqlx::query_as(
                    "SELECT id, org_id, seq, at, action, actor_id, subject_id, request_id, ip, details, \
                     prev_hash, hash FROM audit_events WHERE org_id = $1 AND seq > $2 \
                     ORDER BY seq LIMIT $3",
                )
                .bind(org_id.0)
                .bind(after_seq)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(AuditRecord::from).collect())
            }

            async fn audit_head(&self, org_id: OrgId) -> StoreResult<(i64, Vec<u8>)> {
                let head = sqlx::query_as("SELECT audit_seq, audit_head FROM organizations WHERE id = $1")
                    .bind(org_id.0)
                    .fetch_one(&self.pool)
                    .await?;
                Ok(head)
            }

            async fn pending_jobs(&self, limit: i64) -> StoreResult<Vec<OutboxJob>> {
                let rows: Vec<OutboxRow> = sqlx::query_as(
                    "SELECT id, payload, created_at, attempts FROM job_outbox \
                     WHERE relayed_at IS NULL ORDER BY id LIMIT $1",
                )
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter().map(OutboxJob::try_from).collect()
            }

            async fn claim_jobs(&self, now: Timestamp, lease_until: Timestamp, limit: i64) -> StoreResult<Vec<OutboxJob>> {
                // The due condition is repeated on the outer UPDATE so that a row claimed by a
                // concurrent relay meanwhile is re-checked (PostgreSQL) and skipped.
                let mut tx = self.begin_write().await?;
                let rows: Vec<OutboxRow> = sqlx::query_as(
                    "UPDATE job_outbox SET available_at = $2, attempts = attempts + 1 \
                     WHERE relayed_at IS NULL AND available_at <= $1 AND id IN ( \
                       SELECT id FROM job_outbox WHERE relayed_at IS NULL AND available_at <= $1 \
                       ORDER BY id LIMIT $3) \
                     RETURNING id, payload, created_at, attempts",
                )
                .bind(now)
                .bind(lease_until)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
                tx.commit().await?;
                let mut jobs = rows.into_iter().map(OutboxJob::try_from).collect::<StoreResult<Vec<_>>>()?;
                jobs.sort_by_key(|j| j.id);
                Ok(jobs)
            }

            async fn mark_job_relayed(&self, id: i64, now: Timestamp) -> StoreResult<()> {
                sqlx::query("UPDATE job_outbox SET relayed_at = $2, last_error = NULL WHERE id = $1 AND relayed_at IS NULL")
                    .bind(id)
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn job_relay_failed(&self, id: i64, error: &str, retry_at: Timestamp) -> StoreResult<()> {
                sqlx::query("UPDATE job_outbox SET last_error = $2, available_at = $3 WHERE id = $1 AND relayed_at IS NULL")
                    .bind(id)
                    .bind(error)
                    .bind(retry_at)
                    .execute(&self.pool)
                    .await?;
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

            async fn email_handled(&self, key: &str) -> StoreResult<bool> {
                let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM email_deliveries WHERE email_key = $1")
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(found.is_some())
            }

            async fn record_email(&self, delivery: EmailDelivery) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO email_deliveries (email_key, recipient, template, status, error, at) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (email_key) DO NOTHING",
                )
                .bind(&delivery.key)
                .bind(&delivery.recipient)
                .bind(&delivery.template)
                .bind(if delivery.failure.is_some() { "FAILED" } else { "SENT" })
                .bind(delivery.failure.as_deref())
                .bind(delivery.at)
                .execute(&self.pool)
                .await?;
                Ok(())
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

pub(super) use shared_store_impl;
