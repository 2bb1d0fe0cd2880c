//! PostgreSQL backend, for production.

use super::sql::store_impl;
use super::{Backend, migrations};
use anyhow::Context as _;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres};
use std::str::FromStr;
use std::time::Duration;

pub struct PostgresStore {
    totals: super::SearchTotals,
    pool: PgPool,
}

impl PostgresStore {
    pub async fn connect(url: &str, migrate: bool) -> anyhow::Result<Self> {
        let shown = crate::config::redact_url(url);
        let options = PgConnectOptions::from_str(url)
            .with_context(|| format!("invalid PostgreSQL URL {shown}"))?
            // Statements are prepared once per connection; planning a search's joins
            // afresh for each execution costs more than running them.
            .options([("plan_cache_mode", "force_generic_plan")]);
        let pool = PgPoolOptions::new()
            .max_connections(32)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .with_context(|| format!("cannot connect to PostgreSQL at {shown}"))?;
        if migrate {
            migrations::migrator(Backend::Postgres)
                .run(&pool)
                .await
                .with_context(|| format!("cannot migrate the PostgreSQL database {shown}"))?;
        }
        let store = Self {
            pool,
            totals: Default::default(),
        };
        if migrate {
            use super::DirectoryStore as _;
            store
                .reindex_users()
                .await
                .context("cannot index users for search")?;
        }
        Ok(store)
    }

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Postgres>, sqlx::Error> {
        self.pool.begin().await
    }

    /// PostgreSQL keeps its own files in bounds (autovacuum, checkpoints).
    async fn compact_files(&self) -> super::StoreResult<()> {
        Ok(())
    }
}

store_impl!(PostgresStore, Postgres, Backend::Postgres);
