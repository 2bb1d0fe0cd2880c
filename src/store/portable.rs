//! Portable data: every table written as JSON lines from a consistent snapshot, and loaded
//! into an empty database of either kind, so that moving from the embedded SQLite to
//! PostgreSQL is an export and an import.
//!
//! The file: a first line `{"gatehouse_export":1,"migration":N,"source":"sqlite"}`; for
//! each table a line `{"table":"users","columns":[["id","int"],…]}` followed by one JSON
//! array per row; a last line `{"end":true,"rows":N}` (a file without it was cut short).
//! Column types: `int`, `real`, `text`, `bool`, `time` (RFC 3339), `bytes` (base64).
//! Secrets stay as stored: password and answer hashes, token hashes, encryption keys.

use super::*;

/// Every table, parents before children. Tables the database has beyond these and
/// [`DERIVED`] stop an export, so that a new table cannot be left behind unnoticed.
pub const TABLES: &[&str] = &[
    "organizations",
    "practices",
    "users",
    "user_products",
    "user_permissions",
    "user_practices",
    "license_pools",
    "security_answers",
    "sessions",
    "setup_tokens",
    "setup_forms",
    "setup_email_requests",
    "requests",
    "request_approvers",
    "request_decisions",
    "request_events",
    "idempotency_keys",
    "audit_events",
    "job_outbox",
    "email_deliveries",
    "email_claims",
    "user_search_postings",
    "user_search_counts",
];

/// Tables the database keeps by itself: the migrations' bookkeeping, each directory's
/// version (moved by triggers as the users are loaded), and how far the postings added
/// by a migration are filled in (an export of the same version holds them all; filling
/// in again posts nothing twice).
pub const DERIVED: &[&str] = &[
    "_sqlx_migrations",
    "sqlite_sequence",
    "directory_versions",
    "search_backfills",
];

/// The format's version, in the first line.
pub const FORMAT: i64 = 1;

#[async_trait]
pub trait PortableStore: Send + Sync {
    /// Writes every table from one snapshot; calls `progress` with each table and the
    /// rows written so far. Returns the number of rows.
    async fn export(
        &self,
        out: &mut (dyn std::io::Write + Send),
        progress: &(dyn for<'t> Fn(&'t str, u64) + Send + Sync),
    ) -> StoreResult<u64>;

    /// Loads an export into this database, which must hold no organization: all or
    /// nothing, in one transaction. Returns the number of rows.
    async fn import(
        &self,
        input: &mut (dyn std::io::BufRead + Send),
        progress: &(dyn for<'t> Fn(&'t str, u64) + Send + Sync),
    ) -> StoreResult<u64>;
}
