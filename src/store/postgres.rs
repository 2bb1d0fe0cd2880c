//! PostgreSQL backend, for production.

use super::sql::store_impl;
use super::{Backend, migrations};
use anyhow::Context as _;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres};
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::Notify;

pub struct PostgresStore {
    totals: super::SearchTotals,
    plans: super::search::PlanCache,
    pool: PgPool,
    /// Connections for searches, which are planned for their own values.
    search: PgPool,
    outbox: Arc<Notify>,
    listening: OnceLock<()>,
}

/// The channel a trigger on `job_outbox` notifies at each commit that wrote jobs.
const OUTBOX_CHANNEL: &str = "gatehouse_outbox";

impl PostgresStore {
    pub async fn connect(url: &str, migrate: bool, ca: Option<&[u8]>) -> anyhow::Result<Self> {
        let shown = crate::config::redact_url(url);
        let mut options = PgConnectOptions::from_str(url)
            .with_context(|| format!("invalid PostgreSQL URL {shown}"))?
            // Every statement reads a page or a few rows: starting parallel workers costs
            // more than any of them (a search of the largest organization took 18 ms with
            // two workers and 4 ms without).
            .options([("max_parallel_workers_per_gather", "0")]);
        // A root certificate named in the URL (`sslrootcert=`) is the one it means.
        if let Some(ca) = ca.filter(|_| !url.contains("sslrootcert=")) {
            options = options.ssl_root_cert_from_pem(ca.to_vec());
        }
        // Statements are prepared once per connection and planned once for any values
        // (a generic plan): planning afresh would cost more than running them.
        let pool = PgPoolOptions::new()
            .max_connections(32)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(
                options
                    .clone()
                    .options([("plan_cache_mode", "force_generic_plan")]),
            )
            .await
            .with_context(|| format!("cannot connect to PostgreSQL at {shown}"))?;
        // Except searches: organizations differ in size a thousandfold, and a plan made
        // for the average one walked all 100,000 users of the largest to count 100
        // matches (120 ms against 6 ms at 1,000,000 users). They are planned for their
        // own values (0.4-1.2 ms) on connections of their own.
        let search = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(options.options([("plan_cache_mode", "force_custom_plan")]));
        if migrate {
            migrations::migrator(Backend::Postgres)
                .run(&pool)
                .await
                .with_context(|| format!("cannot migrate the PostgreSQL database {shown}"))?;
        }
        let store = Self {
            pool,
            search,
            totals: Default::default(),
            plans: Default::default(),
            outbox: Arc::new(Notify::new()),
            listening: OnceLock::new(),
        };
        if migrate {
            use super::SearchStore as _;
            store
                .reindex_users()
                .await
                .context("cannot index users for search")?;
        }
        Ok(store)
    }

    /// Listens (from the first call on) for jobs written by any process.
    fn outbox_signal_impl(&self) -> Arc<Notify> {
        self.listening.get_or_init(|| {
            tokio::spawn(listen(self.pool.clone(), Arc::downgrade(&self.outbox)));
        });
        self.outbox.clone()
    }

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Postgres>, sqlx::Error> {
        self.pool.begin().await
    }

    /// PostgreSQL keeps its own files in bounds (autovacuum, checkpoints).
    async fn compact_files(&self) -> super::StoreResult<()> {
        Ok(())
    }
}

/// Relays LISTEN/NOTIFY to the in-process signal, reconnecting after a lost connection
/// (and then waking the relay once, for whatever was written meanwhile).
async fn listen(pool: PgPool, signal: std::sync::Weak<Notify>) {
    loop {
        let listener = async {
            let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await?;
            listener.listen(OUTBOX_CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        match listener.await {
            Ok(mut listener) => {
                if let Some(signal) = signal.upgrade() {
                    signal.notify_one();
                }
                loop {
                    match listener.recv().await {
                        Ok(_) => match signal.upgrade() {
                            Some(signal) => signal.notify_one(),
                            None => return,
                        },
                        Err(err) => {
                            tracing::warn!(error = %err, "outbox notifications interrupted; reconnecting");
                            break;
                        }
                    }
                }
            }
            Err(err) => tracing::warn!(error = %err, "cannot listen for outbox notifications"),
        }
        if signal.strong_count() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

store_impl!(PostgresStore, Postgres, Backend::Postgres);
