//! PostgreSQL backend, for production.

use super::sql::store_impl;
use super::{Backend, Pushed, migrations};
use anyhow::Context as _;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres};
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::{Notify, broadcast, watch};

pub struct PostgresStore {
    totals: super::SearchTotals,
    /// Write transactions run again after the database aborted them.
    retried: std::sync::atomic::AtomicU64,
    plans: super::search::PlanCache,
    organizations: super::directory::KnownOrganizations,
    pool: PgPool,
    /// Writes share the pool: PostgreSQL locks rows, not the database.
    writer: PgPool,
    /// Connections for searches, which are planned for their own values.
    search: PgPool,
    /// Connections for searches led by postings, written to have one plan whatever
    /// the values: planned once per connection, and few, so that each connection
    /// reuses its plans.
    postings: PgPool,
    outbox: Arc<Notify>,
    /// Request changes any process committed, as notified.
    pushes: broadcast::Sender<Pushed>,
    /// Whether the listener listens now.
    listening: watch::Sender<bool>,
    listener: OnceLock<()>,
}

/// The channel a trigger on `job_outbox` notifies at each commit that wrote jobs.
const OUTBOX_CHANNEL: &str = "gatehouse_outbox";
/// The channel a trigger on `request_events` notifies with each change, at its commit.
const REQUEST_CHANNEL: &str = "gatehouse_request_events";
/// How long a first subscriber waits for the listener to listen.
const LISTEN_WAIT: Duration = Duration::from_secs(10);

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
            .connect_lazy_with(
                options
                    .clone()
                    .options([("plan_cache_mode", "force_custom_plan")]),
            );
        let postings = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(options.options([("plan_cache_mode", "force_generic_plan")]));
        if migrate {
            migrations::migrator(Backend::Postgres)
                .run(&pool)
                .await
                .with_context(|| format!("cannot migrate the PostgreSQL database {shown}"))?;
        }
        let store = Self {
            writer: pool.clone(),
            pool,
            search,
            postings,
            totals: Default::default(),
            retried: Default::default(),
            plans: Default::default(),
            organizations: Default::default(),
            outbox: Arc::new(Notify::new()),
            pushes: broadcast::channel(super::PUSH_BUFFER).0,
            listening: watch::channel(false).0,
            listener: OnceLock::new(),
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
        self.listen();
        self.outbox.clone()
    }

    /// Changes are pushed by NOTIFY from whichever process committed them.
    async fn request_pushes_impl(&self) -> super::StoreResult<broadcast::Receiver<Pushed>> {
        self.listen();
        let receiver = self.pushes.subscribe();
        let mut listening = self.listening.subscribe();
        match tokio::time::timeout(LISTEN_WAIT, listening.wait_for(|l| *l)).await {
            Ok(Ok(_)) => Ok(receiver),
            // As unavailable as a database that cannot be reached.
            _ => Err(super::StoreError::Database(sqlx::Error::PoolTimedOut)),
        }
    }

    /// The trigger notifies; nothing to do in process.
    fn committed(&self, _change: super::RequestChange) {}

    /// Starts the one listening connection of this store, on first use.
    fn listen(&self) {
        self.listener.get_or_init(|| {
            tokio::spawn(listen(Listener {
                pool: self.pool.clone(),
                outbox: Arc::downgrade(&self.outbox),
                pushes: self.pushes.clone(),
                listening: self.listening.clone(),
            }));
        });
    }

    /// The pool whose connections the metrics count (writes share it).
    fn connections(&self) -> [&PgPool; 1] {
        [&self.pool]
    }

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Postgres>, sqlx::Error> {
        self.pool.begin().await
    }

    /// PostgreSQL keeps its own files in bounds (autovacuum, checkpoints).
    async fn compact_files(&self) -> super::StoreResult<()> {
        Ok(())
    }
}

/// What the listening connection hands notifications to.
struct Listener {
    pool: PgPool,
    /// Gone with the store, which ends the listener.
    outbox: std::sync::Weak<Notify>,
    pushes: broadcast::Sender<Pushed>,
    listening: watch::Sender<bool>,
}

/// Relays LISTEN/NOTIFY to the process: outbox notifications wake the relay, request
/// changes go to the change feed. After a lost connection it listens again, then wakes the
/// relay once and tells the feed to catch up, for whatever was committed meanwhile.
async fn listen(to: Listener) {
    loop {
        let listener = async {
            let mut listener = sqlx::postgres::PgListener::connect_with(&to.pool).await?;
            listener
                .listen_all([OUTBOX_CHANNEL, REQUEST_CHANNEL])
                .await?;
            Ok::<_, sqlx::Error>(listener)
        };
        match listener.await {
            Ok(mut listener) => {
                to.listening.send_replace(true);
                let _ = to.pushes.send(Pushed::Resync);
                let Some(outbox) = to.outbox.upgrade() else {
                    return;
                };
                outbox.notify_one();
                drop(outbox);
                loop {
                    // `try_recv` reports a lost connection (`None`) instead of silently
                    // reconnecting, so that the catch-up above runs after it.
                    match listener.try_recv().await {
                        Ok(Some(note)) if note.channel() == REQUEST_CHANNEL => {
                            match parse_change(note.payload()) {
                                Some(change) => {
                                    let _ = to.pushes.send(Pushed::Change(change));
                                }
                                None => {
                                    tracing::warn!(
                                        payload = note.payload(),
                                        "unreadable request change notification"
                                    );
                                    let _ = to.pushes.send(Pushed::Resync);
                                }
                            }
                        }
                        Ok(Some(_)) => match to.outbox.upgrade() {
                            Some(outbox) => outbox.notify_one(),
                            None => return,
                        },
                        Ok(None) => {
                            tracing::warn!("notifications interrupted; listening again");
                            break;
                        }
                        Err(err) => {
                            tracing::warn!(error = %err, "notifications interrupted; listening again");
                            break;
                        }
                    }
                }
                to.listening.send_replace(false);
            }
            Err(err) => tracing::warn!(error = %err, "cannot listen for notifications"),
        }
        if to.outbox.strong_count() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// A change as the `request_events` trigger notifies it: "event org request STATUS".
fn parse_change(payload: &str) -> Option<super::RequestChange> {
    let mut parts = payload.split(' ');
    let mut number = || parts.next()?.parse::<i64>().ok();
    let (event_id, org, request) = (number()?, number()?, number()?);
    let status = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some(super::RequestChange {
        event_id,
        org_id: crate::domain::OrgId(org),
        request_id: crate::domain::RequestId(request),
        status,
    })
}

store_impl!(PostgresStore, Postgres, Backend::Postgres);
