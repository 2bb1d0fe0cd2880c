//! SQLite backend: the embedded default, a WAL-mode file created on first start.

use super::sql::store_impl;
use super::{Backend, migrations};
use anyhow::Context as _;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteOperation, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, broadcast};

/// Write-ahead log size past which it is checkpointed in full and truncated.
const WAL_LIMIT_BYTES: i64 = 64 * 1024 * 1024;

/// How long a write waits for the database's one write lock: for another process's
/// transaction (a large `gatehouse users import` holds it for about 0.1 ms a row) and for
/// this process's writes queued before it. A sign-in behind an import of the largest
/// organization (100,000 rows, about 12 s on the benchmark machine) waits and succeeds.
const WRITE_WAIT: Duration = Duration::from_secs(60);

/// How long a checkpoint that empties the write-ahead log waits for readers (holding
/// writers back meanwhile) before it leaves the log for later.
const CHECKPOINT_WAIT: Duration = Duration::from_secs(1);

/// Connections that read the database file: two per core (at least 4, at most 16), beside
/// the one that writes. Each holds its own page cache, prepared statements and worker
/// thread (about 9 MB when warm), and SQLite reads no faster with more than the cores can
/// run: at 100,000 users 4 instead of 8 took the server's peak memory from 155 to 120 MB
/// with searches as fast.
fn connections() -> u32 {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    (2 * cores as u32).clamp(4, 16)
}

pub struct SqliteStore {
    totals: super::SearchTotals,
    /// Write transactions run again after the database aborted them.
    retried: std::sync::atomic::AtomicU64,
    plans: super::search::PlanCache,
    organizations: super::directory::KnownOrganizations,
    /// Connections that only read (`query_only`): in WAL mode they never wait for a
    /// writer, so reads are answered while writes queue for the lock.
    pool: SqlitePool,
    /// The one connection that writes. SQLite lets one transaction write at a time; this
    /// process's writes queue for this connection in order (no polling for the lock), so
    /// that a long write elsewhere holds back only writes, never reads.
    writer: SqlitePool,
    /// Searches use the reading connections (SQLite plans each statement once).
    search: SqlitePool,
    postings: SqlitePool,
    outbox: Arc<Notify>,
    /// Request changes this process committed, for the change feed.
    pushes: broadcast::Sender<super::Pushed>,
}

/// The options of SQLite's pools. sqlx checks each connection it hands out with a round
/// trip to the connection's thread by default: before every statement, a fifth of a
/// search's time. A SQLite connection is a file this process holds open, which nothing
/// can drop under it, so it is handed out unchecked. (PostgreSQL's pools keep the check:
/// a server restarted or failed over drops every connection, and without it the first
/// statement on each dropped one fails: 37 requests of 160 right after a restart, none
/// with it.)
fn pool_options() -> sqlx::sqlite::SqlitePoolOptions {
    sqlx::sqlite::SqlitePoolOptions::new().test_before_acquire(false)
}

/// Whether SQLite keeps the query planner stability guarantee: a plan never depends on
/// the values bound to its statement, so a prepared statement is never prepared again
/// for new values (`.cargo/config.toml` compiles the bundled SQLite so).
async fn plans_ignore_bound_values(pool: &SqlitePool) -> anyhow::Result<bool> {
    let options: Vec<String> = sqlx::query_scalar("PRAGMA compile_options")
        .fetch_all(pool)
        .await
        .context("cannot read SQLite's compile options")?;
    Ok(options.iter().any(|o| o == "ENABLE_QPSG"))
}

impl SqliteStore {
    /// Opens (creating file and folder if needed) and optionally migrates the database.
    pub async fn connect(url: &str, migrate: bool) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .with_context(|| format!("invalid SQLite URL {url}"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(WRITE_WAIT)
            // A log reset by a checkpoint is cut back to this size.
            .pragma("journal_size_limit", WAL_LIMIT_BYTES.to_string())
            // Each connection keeps the pages it reads in a cache of its own (4 MiB, 32
            // MiB for the pool), beside the kernel's file cache. No memory map: each
            // connection would map the file anew, and the server's resident size would
            // count the same pages once per connection (1 GB at a million users).
            .pragma("mmap_size", "0")
            .pragma("cache_size", super::SQLITE_CACHE_SIZE)
            .pragma("soft_heap_limit", super::SQLITE_HEAP_LIMIT);
        if let Some(dir) = options
            .get_filename()
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create the database folder {}", dir.display()))?;
        }
        let outbox = Arc::new(Notify::new());
        let signal = outbox.clone();
        let writer = pool_options()
            // A job written to the outbox wakes the relay. The hook runs inside the
            // writing transaction, which holds the write lock, so the relay's claim (a
            // write) waits for its commit and then sees the job.
            .after_connect(move |conn, _| {
                let signal = signal.clone();
                Box::pin(async move {
                    let mut handle = conn.lock_handle().await?;
                    handle.set_update_hook(move |change| {
                        if change.table == "job_outbox"
                            && matches!(change.operation, SqliteOperation::Insert)
                        {
                            signal.notify_one();
                        }
                    });
                    Ok(())
                })
            })
            .max_connections(1)
            .acquire_timeout(WRITE_WAIT)
            .connect_with(options.clone())
            .await
            .with_context(|| format!("cannot open the SQLite database {url}"))?;
        if migrate {
            migrations::migrator(Backend::Sqlite)
                .run(&writer)
                .await
                .with_context(|| format!("cannot migrate the SQLite database {url}"))?;
        }
        // Readers wait only for a checkpoint that truncates the log (moments).
        let pool = pool_options()
            .max_connections(connections())
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(
                options
                    .busy_timeout(Duration::from_secs(10))
                    .pragma("query_only", "1"),
            );
        let store = Self {
            search: pool.clone(),
            postings: pool.clone(),
            pool,
            writer,
            totals: Default::default(),
            retried: Default::default(),
            plans: Default::default(),
            organizations: Default::default(),
            outbox,
            pushes: broadcast::channel(super::PUSH_BUFFER).0,
        };
        if !plans_ignore_bound_values(&store.writer).await? {
            tracing::warn!(
                "this SQLite was compiled without SQLITE_ENABLE_QPSG (see .cargo/config.toml): \
                 statements binding a LIMIT or a LIKE pattern are prepared again at every run"
            );
        }
        if migrate {
            use super::SearchStore as _;
            store
                .reindex_users()
                .await
                .context("cannot index users for search")?;
        }
        Ok(store)
    }

    fn outbox_signal_impl(&self) -> Arc<Notify> {
        self.outbox.clone()
    }

    /// Changes are pushed in process, right after the commit that recorded them. (A
    /// worker in another process on the same file is not heard; see `RequestFeed`.)
    async fn request_pushes_impl(&self) -> super::StoreResult<broadcast::Receiver<super::Pushed>> {
        Ok(self.pushes.subscribe())
    }

    /// Pushes a change just committed.
    fn committed(&self, change: super::RequestChange) {
        // No feed listening (no subscriber yet) is fine.
        let _ = self.pushes.send(super::Pushed::Change(change));
    }

    /// The pools whose connections the metrics count: the readers and the writer.
    fn connections(&self) -> [&SqlitePool; 2] {
        [&self.pool, &self.writer]
    }

    /// Write transactions take the database's write lock up front, so that a writer in
    /// another process and this one wait for each other (busy timeout) instead of failing
    /// on a lock upgrade.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Sqlite>, sqlx::Error> {
        self.writer.begin_with("BEGIN IMMEDIATE").await
    }

    /// SQLite's automatic checkpoints never reset the log while readers and writers keep
    /// overlapping, so under constant use it grows without bound. Past the limit, a
    /// TRUNCATE checkpoint briefly holds new writers back, copies the log into the
    /// database and empties it.
    async fn compact_files(&self) -> super::StoreResult<()> {
        let (_busy, frames, _copied): (i64, i64, i64) =
            sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
                .fetch_one(&self.pool)
                .await?;
        let page_size: i64 = sqlx::query_scalar("PRAGMA page_size")
            .fetch_one(&self.pool)
            .await?;
        if frames * page_size > WAL_LIMIT_BYTES {
            // On the writing connection, so that this process's writes queue behind it
            // rather than poll for the lock. While it waits for readers of an older
            // snapshot it holds every writer back: it waits a second at most and, should
            // a long read (an export) be running, leaves the log to the next round.
            let mut writer = self.writer.acquire().await?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "PRAGMA busy_timeout = {}",
                CHECKPOINT_WAIT.as_millis()
            )))
            .execute(&mut *writer)
            .await?;
            let checkpoint: Result<(i64, i64, i64), _> =
                sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
                    .fetch_one(&mut *writer)
                    .await;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "PRAGMA busy_timeout = {}",
                WRITE_WAIT.as_millis()
            )))
            .execute(&mut *writer)
            .await?;
            let (busy, _, _) = checkpoint?;
            tracing::info!(
                wal_bytes = frames * page_size,
                completed = busy == 0,
                "checkpointed the SQLite write-ahead log"
            );
        }
        Ok(())
    }
}

store_impl!(SqliteStore, Sqlite, Backend::Sqlite);

#[cfg(test)]
mod tests {
    /// Without the guarantee every search statement was prepared again at every run
    /// (its `LIMIT` and `LIKE` values are bound): two thirds of its time in SQLite.
    #[tokio::test]
    async fn the_bundled_sqlite_plans_without_looking_at_bound_values() {
        let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
        assert!(
            super::plans_ignore_bound_values(&pool).await.unwrap(),
            "SQLite compiled without SQLITE_ENABLE_QPSG: is .cargo/config.toml in place?"
        );
    }
}
