//! Persistence: the `Store` trait shaped by use case, with SQLite and PostgreSQL implementations
//! that share their SQL text (see `sql.rs`) and are held honest by one conformance suite.

mod audit;
mod directory;
mod identity;
mod import;
mod jobs;
mod lockout;
mod migrations;
pub mod portable;
mod postgres;
mod requests;
mod rows;
pub mod search;
mod setup;
mod sql;
mod sqlite;

/// SQLite's page cache per connection (`PRAGMA cache_size`: negative is KiB), which a
/// bulk write widens for its transaction and sets back to this.
const SQLITE_CACHE_SIZE: &str = "-4096";
/// What SQLite may hold in memory in all, across connections (`PRAGMA soft_heap_limit`,
/// bytes: past it, cached pages are reused before more is allocated). Without it the
/// server's connections held 85 MB at a million users, where the page caches alone are
/// 16 MiB. A bulk write lifts it for its transaction, as it widens its cache.
const SQLITE_HEAP_LIMIT: &str = "33554432";

pub use audit::*;
pub use directory::*;
pub use identity::*;
pub use import::*;
pub use jobs::*;
pub use lockout::*;
pub use migrations::{Migrations, migrations_for};
pub use portable::PortableStore;
pub use postgres::PostgresStore;
pub use requests::*;
pub use search::{AnyMatch, SearchStore, UserPage, UserSearch};
pub use setup::*;
pub use sqlite::SqliteStore;

use crate::domain::audit::AuditRecord;
use crate::domain::{
    AccountRequest, LicensePool, OrgId, Organization, Permission, Practice, PracticeId, Product,
    RequestDecision, RequestEvent, RequestId, RequestKind, RequestStatus, Role, SessionId,
    Timestamp, User, UserId, UserKind,
};
use crate::domain::{OutboxFor, OutboxMessage, SetupPurpose};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

pub type StoreResult<T> = Result<T, StoreError>;

/// What can go wrong below the use cases, in their terms.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A unique value is taken; `field` names it (`username`, `email`, `name`).
    #[error("{field} already exists")]
    AlreadyExists { field: &'static str },
    #[error("no {product} license available for {kind} users")]
    NoLicense { product: Product, kind: UserKind },
    /// A conditional change found the data no longer in the expected state.
    #[error("conflict: {0}")]
    Conflict(String),
    /// An approved change no longer applies to the data as it is now.
    #[error("{0}")]
    NotApplicable(crate::domain::request::NotApplicable),
    /// The acting user may no longer do this (locked, inactivated or demoted meanwhile).
    #[error("no longer allowed")]
    Forbidden,
    /// The change would leave the organization without an active owner.
    #[error("the last active owner")]
    LastOwner,
    /// Stored data that does not decode into the domain (a bug or a manual edit).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// An export that cannot be written or loaded: the message says why.
    #[error("{0}")]
    Portable(String),
    #[error(transparent)]
    Database(sqlx::Error),
}

pub use crate::config::Backend;

/// Request changes a store buffers for a change feed that has fallen behind; past it, the
/// feed is told to read the events table.
const PUSH_BUFFER: usize = 4096;
pub use crate::domain::SessionRecord;
pub use crate::domain::audit::AuditEntry;

/// Everything Gatehouse keeps, by area; each method is one atomic use case. Callers hold
/// an `Arc<dyn Store>`, on which every area's methods are callable.
#[async_trait]
pub trait Store:
    DirectoryStore
    + SearchStore
    + IdentityStore
    + LockoutStore
    + ImportStore
    + PortableStore
    + SetupStore
    + AuditStore
    + JobStore
    + RequestStore
    + Send
    + Sync
    + 'static
{
    fn backend(&self) -> Backend;

    /// Cheap round trip, for readiness checks.
    async fn ping(&self) -> StoreResult<()>;

    /// Keeps the database's files in bounds; run periodically (SQLite: a write-ahead log
    /// grown large under constant use is checkpointed and truncated).
    async fn compact(&self) -> StoreResult<()>;

    /// Notified when a job was written to the outbox (by this process; on PostgreSQL by
    /// any process, through LISTEN/NOTIFY), so that the relay need not poll.
    fn outbox_signal(&self) -> Arc<tokio::sync::Notify>;

    /// Request status changes as they commit: those this process commits on SQLite, those
    /// of every process on PostgreSQL (LISTEN/NOTIFY). Returns once listening: every
    /// change committed after it comes through, or a [`Pushed::Resync`] after it says
    /// that some may have gone by.
    async fn request_pushes(&self) -> StoreResult<tokio::sync::broadcast::Receiver<Pushed>>;

    /// What an operator watches, read now: each a count on an index or a small table.
    async fn gauges(&self, now: Timestamp) -> StoreResult<Gauges>;
}

/// The database's state as the metrics show it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Gauges {
    /// Requests by kind and status (`REQUEST_LICENSES`, `PENDING_APPROVAL`, count).
    pub requests: Vec<(String, String, i64)>,
    /// Outbox jobs not yet handed to the queue, and when the oldest of them was written.
    pub outbox_backlog: i64,
    pub outbox_oldest: Option<Timestamp>,
    /// Accounts locked now.
    pub users_locked: i64,
    /// Connections of the pool: open, idle, and the most it opens.
    pub pool_open: u32,
    pub pool_idle: u32,
    pub pool_max: u32,
    /// Write transactions run again since the start, after the database aborted them as
    /// a deadlock's victim (a sign that two writes lock in opposite orders).
    pub writes_retried: u64,
}

/// Opens the store named by a database URL (`sqlite://…` or `postgres://…`) and migrates it.
pub async fn connect(url: &str, migrate: bool) -> anyhow::Result<Arc<dyn Store>> {
    connect_trusting(url, migrate, None).await
}

/// [`connect`], a PostgreSQL server's certificate verified (with `sslmode=verify-ca` or
/// `verify-full`) against the public roots and the PEM certificates of `ca`.
pub async fn connect_trusting(
    url: &str,
    migrate: bool,
    ca: Option<&[u8]>,
) -> anyhow::Result<Arc<dyn Store>> {
    let backend = crate::config::database_scheme(url).map_err(anyhow::Error::msg)?;
    Ok(match backend {
        Backend::Sqlite => Arc::new(SqliteStore::connect(url, migrate).await?),
        Backend::Postgres => Arc::new(PostgresStore::connect(url, migrate, ca).await?),
    })
}

/// Which input each unique index guards: by the index's name (PostgreSQL names the
/// constraint; SQLite names an index on an expression) or by the columns SQLite reports
/// for an index on plain columns.
const UNIQUE_INDEXES: &[(&str, &str, &str)] = &[
    ("users_username_key", "users.username", "username"),
    ("users_email_key", "users.email", "email"),
    ("practices_org_name_key", "practices.org_id", "name"),
    (
        "idempotency_keys_pkey",
        "idempotency_keys.requester_id",
        "idempotencyKey",
    ),
];

/// The input a unique violation is about, from the constraint the database names.
fn unique_field(constraint: Option<&str>, message: &str) -> &'static str {
    UNIQUE_INDEXES
        .iter()
        .find(|(index, columns, _)| {
            constraint == Some(*index)
                || message.contains(&format!("'{index}'"))
                || message.contains(&format!("failed: {columns}"))
        })
        .map_or("record", |(_, _, field)| field)
}

#[cfg(test)]
mod tests {
    #[test]
    fn unique_violations_name_their_field_on_both_databases() {
        use super::unique_field;
        assert_eq!(
            unique_field(Some("users_email_key"), "duplicate key value"),
            "email"
        );
        assert_eq!(
            unique_field(None, "UNIQUE constraint failed: users.username"),
            "username"
        );
        assert_eq!(
            unique_field(None, "UNIQUE constraint failed: index 'users_email_key'"),
            "email"
        );
        assert_eq!(
            unique_field(
                None,
                "UNIQUE constraint failed: idempotency_keys.requester_id, idempotency_keys.key"
            ),
            "idempotencyKey"
        );
        assert_eq!(
            unique_field(
                None,
                "UNIQUE constraint failed: index 'practices_org_name_key'"
            ),
            "name"
        );
        assert_eq!(unique_field(Some("sessions_token_hash_key"), ""), "record");
    }
}
