//! The migrations of both databases, embedded in the binary.

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use std::borrow::Cow;

/// One embedded migration: version, description and SQL.
pub type Migrations = &'static [(i64, &'static str, &'static str)];

macro_rules! embed {
    ($dir:literal: $($version:literal $name:literal),+ $(,)?) => {
        &[$(($version, $name, include_str!(concat!("../../migrations/", $dir, "/", $name, ".sql")))),+]
    };
}

const SQLITE: Migrations = embed!("sqlite": 1 "0001_initial", 2 "0002_setup_email_requests", 3 "0003_user_search", 4 "0004_search_statistics", 5 "0005_search_fields", 6 "0006_hardening", 7 "0007_setup_forms", 8 "0008_search_ranks", 9 "0009_request_event_push", 10 "0010_unranked_users", 11 "0011_directory_version_per_statement", 12 "0012_unreversed_mobiles", 13 "0013_short_name_pieces", 14 "0014_pending_locks", 15 "0015_audit_filters");
const POSTGRES: Migrations = embed!("postgres": 1 "0001_initial", 2 "0002_setup_email_requests", 3 "0003_user_search", 4 "0004_search_statistics", 5 "0005_search_fields", 6 "0006_hardening", 7 "0007_setup_forms", 8 "0008_search_ranks", 9 "0009_request_event_push", 10 "0010_unranked_users", 11 "0011_directory_version_per_statement", 12 "0012_unreversed_mobiles", 13 "0013_short_name_pieces", 14 "0014_pending_locks", 15 "0015_audit_filters");

/// The embedded migrations for `backend` ("sqlite" or "postgres").
pub fn migrations_for(backend: super::Backend) -> Migrations {
    match backend {
        super::Backend::Sqlite => SQLITE,
        super::Backend::Postgres => POSTGRES,
    }
}

pub(super) fn migrator(backend: super::Backend) -> Migrator {
    let list = migrations_for(backend)
        .iter()
        .map(|(version, name, sql)| {
            let description = name.split_once('_').map_or(*name, |(_, d)| d);
            Migration::new(
                *version,
                Cow::Borrowed(description),
                MigrationType::Simple,
                sql.into_sql_str(),
                false,
            )
        })
        .collect();
    Migrator::with_migrations(list)
}
