//! The SQL of the store, written once: `store_impl!` expands it into the store traits
//! of each backend. Both databases accept the same `$n` placeholders and
//! `RETURNING`; what differs (connecting, starting a write transaction) stays in the
//! backend's own module.

pub(super) mod arrays;
pub(super) mod audit;
pub(super) mod backfill;
pub(super) mod bulk;
pub(super) mod directory;
pub(super) mod identity;
pub(super) mod indexing;
pub(super) mod jobs;
pub(super) mod licenses;
pub(super) mod lockout;
pub(super) mod onboard;
pub(super) mod portable;
pub(super) mod ranks;
pub(super) mod request_changes;
pub(super) mod requests;
pub(super) mod retry;
pub(super) mod search;
pub(super) mod search_plan;
pub(super) mod setup;

use super::search::SearchField;
use super::{StoreError, unique_field};
use sqlx::error::ErrorKind;

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::Database(ref db) if db.kind() == ErrorKind::UniqueViolation => {
                StoreError::AlreadyExists {
                    field: unique_field(db.constraint(), db.message()),
                }
            }
            other => StoreError::Database(other),
        }
    }
}

/// The indexed expression of a prefix-matched field, as its index names it.
pub(super) fn field_column(field: SearchField, backend: super::Backend) -> &'static str {
    use super::Backend::{Postgres, Sqlite};
    match (field, backend) {
        (SearchField::Username, Sqlite) => "u.username",
        (SearchField::Username, Postgres) => "(u.username COLLATE \"C\")",
        (SearchField::Email, Sqlite) => "lower(u.email)",
        (SearchField::Email, Postgres) => "(lower(u.email) COLLATE \"C\")",
        (SearchField::Mobile, _) => "u.mobile_reversed",
    }
}

/// The last-seen time before which a session has been idle too long.
pub(crate) fn idle_cutoff(
    now: crate::domain::Timestamp,
    idle: std::time::Duration,
) -> crate::domain::Timestamp {
    let idle = chrono::TimeDelta::from_std(idle).unwrap_or(chrono::TimeDelta::MAX);
    now.checked_sub_signed(idle)
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC)
}

/// The first key of PostgreSQL advisory locks serializing the application of one
/// organization's requests (the second is the organization's ID).
pub(crate) const APPLY_LOCKS: i32 = 0x6761_7070;

/// Sessions are marked seen at most this often, so that reads do not all become writes.
pub(super) const SEEN_GRANULARITY: chrono::TimeDelta = chrono::TimeDelta::seconds(30);

/// One audit event written and read back (`$1` its organization, `$11` its hash).
macro_rules! insert_audit_event {
    () => {
        "INSERT INTO audit_events (org_id, seq, at, action, actor_id, subject_id, request_id, \
         ip, details, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
         RETURNING id, org_id, seq, at, action, actor_id, subject_id, request_id, ip, details, \
         prev_hash, hash"
    };
}
pub(crate) use insert_audit_event;

/// Implements every store trait for `$store` on database `$db`, with the shared SQL.
/// Expanded in the backend's module, which provides `$store::begin_write` and `pool`.
macro_rules! store_impl {
    ($store:ident, $db:ty, $backend:expr) => {
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
        use $crate::domain::{OutboxMessage, SetupPurpose};
        use sqlx::Transaction;
        use $crate::store::sql::retry::retrying;

        type Db = $db;
        type Tx = Transaction<'static, $db>;
        const BACKEND: $crate::store::Backend = $backend;
        use $crate::store::search::{PostingWalk, SearchDriver, SearchField};

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
                let (details, hash) = Self::chained(entry, seq, &prev);
                let actor = entry.actor_id.map(|u| u.0);
                let subject = entry.subject_id.map(|u| u.0);
                // PostgreSQL moves the head in the same statement (one round trip less
                // while the organization's row is locked); SQLite in a second one.
                let postgres = BACKEND == $crate::store::Backend::Postgres;
                let sql = if postgres {
                    concat!(
                        "WITH event AS (", $crate::store::sql::insert_audit_event!(), "), \
                         head AS (UPDATE organizations SET audit_head = $11 WHERE id = $1) \
                         SELECT * FROM event"
                    )
                } else {
                    $crate::store::sql::insert_audit_event!()
                };
                let row: AuditRow = sqlx::query_as(sql)
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
                if !postgres {
                    sqlx::query("UPDATE organizations SET audit_head = $2 WHERE id = $1")
                        .bind(entry.org_id.0)
                        .bind(&hash)
                        .execute(&mut **tx)
                        .await?;
                }
                Ok(row.into())
            }

            async fn enqueue_in(tx: &mut Tx, job: &OutboxMessage, at: Timestamp) -> StoreResult<i64> {
                let id = sqlx::query_scalar(
                    "INSERT INTO job_outbox (kind, payload, created_at, available_at) \
                     VALUES ($1, $2, $3, $3) RETURNING id",
                )
                .bind(&job.kind)
                .bind(&job.payload)
                .bind(at)
                .fetch_one(&mut **tx)
                .await?;
                Ok(id)
            }

            /// (user, value) pairs of a two-column query whose text ends in `IN (`.
            async fn user_values(pool: &sqlx::Pool<$db>, sql: &str, ids: &[UserId]) -> StoreResult<Vec<(i64, String)>> {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let mut b = sqlx::QueryBuilder::<$db>::new(sql);
                let mut list = b.separated(", ");
                for id in ids {
                    list.push_bind(id.0);
                }
                b.push(") ORDER BY 2");
                Ok(b.build_query_as().fetch_all(pool).await?)
            }

            /// Ends every open session of the user; returns how many.
            async fn end_sessions_in(tx: &mut Tx, user_id: UserId, at: Timestamp) -> StoreResult<u64> {
                let ended = sqlx::query("UPDATE sessions SET ended_at = $2 WHERE user_id = $1 AND ended_at IS NULL")
                    .bind(user_id.0)
                    .bind(at)
                    .execute(&mut **tx)
                    .await?
                    .rows_affected();
                Ok(ended)
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
                let mut audits = Vec::new();
                // An import's practices come from the organization's own; these were named
                // by a caller.
                Self::check_practices(tx, creation.user.org_id, std::slice::from_ref(creation)).await?;
                let ids = Self::create_users_in(tx, creation.user.org_id, std::slice::from_ref(creation), &mut audits, false).await?;
                Self::append_audits_in(tx, creation.user.org_id, &audits).await?;
                Self::user_in(tx, ids[0]).await
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

            async fn compact(&self) -> StoreResult<()> {
                self.compact_files().await
            }

            fn outbox_signal(&self) -> std::sync::Arc<tokio::sync::Notify> {
                self.outbox_signal_impl()
            }

            async fn request_pushes(
                &self,
            ) -> StoreResult<tokio::sync::broadcast::Receiver<$crate::store::Pushed>> {
                self.request_pushes_impl().await
            }

            async fn gauges(&self, now: Timestamp) -> StoreResult<$crate::store::Gauges> {
                let requests: Vec<(String, String, i64)> = sqlx::query_as(
                    "SELECT kind, status, COUNT(*) FROM requests GROUP BY kind, status ORDER BY kind, status",
                )
                .fetch_all(&self.pool)
                .await?;
                let (outbox_backlog, outbox_oldest): (i64, Option<Timestamp>) = sqlx::query_as(
                    "SELECT COUNT(*), MIN(created_at) FROM job_outbox WHERE relayed_at IS NULL",
                )
                .fetch_one(&self.pool)
                .await?;
                let (users_locked,): (i64,) = sqlx::query_as(
                    "SELECT COUNT(*) FROM users WHERE locked_until IS NOT NULL AND locked_until > $1",
                )
                .bind(now)
                .fetch_one(&self.pool)
                .await?;
                let pools = self.connections();
                Ok($crate::store::Gauges {
                    requests,
                    outbox_backlog,
                    outbox_oldest,
                    users_locked,
                    pool_open: pools.iter().map(|pool| pool.size()).sum(),
                    pool_idle: pools
                        .iter()
                        .map(|pool| u32::try_from(pool.num_idle()).unwrap_or(u32::MAX))
                        .sum(),
                    pool_max: pools.iter().map(|pool| pool.options().get_max_connections()).sum(),
                    writes_retried: self.retried.load(std::sync::atomic::Ordering::Relaxed),
                })
            }

        }

        mod directory_sql {
            use super::*;
            $crate::store::sql::directory::directory_impl!($store);
        }
        mod identity_sql {
            use super::*;
            $crate::store::sql::identity::identity_impl!($store);
        }
        mod lockout_sql {
            use super::*;
            $crate::store::sql::lockout::lockout_impl!($store);
        }
        mod audit_sql {
            use super::*;
            $crate::store::sql::audit::audit_impl!($store);
        }
        mod jobs_sql {
            use super::*;
            $crate::store::sql::jobs::jobs_impl!($store);
        }
        mod requests_sql {
            use super::*;
            $crate::store::sql::requests::requests_impl!($store);
        }
        mod request_changes_sql {
            use super::*;
            $crate::store::sql::request_changes::request_changes_impl!($store);
        }
        mod setup_sql {
            use super::*;
            $crate::store::sql::setup::setup_impl!($store);
        }
        mod bulk_sql {
            use super::*;
            $crate::store::sql::bulk::bulk_impl!($store);
        }
        mod onboard_sql {
            use super::*;
            $crate::store::sql::onboard::onboard_impl!($store);
        }
        mod portable_sql {
            use super::*;
            $crate::store::sql::portable::portable_impl!($store);
        }
        mod search_sql {
            use super::*;
            $crate::store::sql::search::search_impl!($store);
        }
        mod search_plan_sql {
            use super::*;
            $crate::store::sql::search_plan::search_plan_impl!($store);
        }
        mod indexing_sql {
            use super::*;
            $crate::store::sql::indexing::indexing_impl!($store);
        }
        mod ranks_sql {
            use super::*;
            $crate::store::sql::ranks::ranks_impl!($store);
        }
        mod licenses_sql {
            use super::*;
            $crate::store::sql::licenses::licenses_impl!($store);
        }
        mod backfill_sql {
            use super::*;
            $crate::store::sql::backfill::backfill_impl!($store);
        }
    };
}

pub(super) use store_impl;
