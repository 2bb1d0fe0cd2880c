//! The job queue: apalis on SQLite (its own file) or on Redis, chosen by URL.

use crate::job::Envelope;
use crate::tls::TrustedCa;
use apalis::prelude::{Metrics as _, TaskBuilder, TaskSink};
use apalis_redis::{ConnectionManager, RedisStorage};
use apalis_sqlite::SqliteStorage;
use futures_channel::mpsc;
use futures_util::{Stream, StreamExt as _};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

/// How many jobs the queue holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepth {
    pub pending: u64,
    pub running: u64,
}

/// The queue every Gatehouse job goes through.
pub const QUEUE_NAME: &str = "gatehouse-jobs";

/// How long a queue call may take before it counts as the backend being down.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct QueueError(pub String);

#[derive(Clone)]
pub enum Queue {
    Sqlite(SqliteStorage<Envelope>, Wakers),
    Redis(RedisStorage<Envelope>, Wakers),
}

/// How often an idle worker looks for due jobs that nobody woke it for (a retry's
/// scheduled time coming round, a job pushed by another process, a wake-up lost). The
/// same pace as the outbox relay's own safety poll: one cheap queue read a tick, and a
/// lost wake-up then costs half a second rather than the five it was (seen on Redis in
/// a loaded test run: an owner's request APPLIED after 4.3 s).
pub const SAFETY_POLL: Duration = Duration::from_millis(500);

/// The workers of this process waiting for jobs; every push wakes them, so that a job
/// starts at once instead of at the worker's next poll.
#[derive(Clone, Default)]
pub struct Wakers(Arc<Mutex<Vec<mpsc::Sender<()>>>>);

impl Wakers {
    /// A new stream of wake-ups for one worker: one per push (coalesced while it is
    /// busy), and one every [`SAFETY_POLL`].
    pub fn subscribe(&self) -> Wakeups {
        let (sender, receiver) = mpsc::channel(1);
        self.lock().push(sender);
        let mut tick = tokio::time::interval(SAFETY_POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Wakeups { receiver, tick }
    }

    fn wake(&self) {
        // A full channel already holds a wake-up; a closed one belongs to a stopped worker.
        self.lock().retain_mut(|sender| match sender.try_send(()) {
            Ok(()) => true,
            Err(err) => err.is_full(),
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<mpsc::Sender<()>>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Wake-ups of one worker, as the poll strategy of its backend.
pub struct Wakeups {
    receiver: mpsc::Receiver<()>,
    tick: tokio::time::Interval,
}

impl Stream for Wakeups {
    type Item = ();

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<()>> {
        if let Poll::Ready(Some(())) = self.receiver.poll_next_unpin(cx) {
            return Poll::Ready(Some(()));
        }
        self.tick.poll_tick(cx).map(|_| Some(()))
    }
}

impl Queue {
    /// Connects to `sqlite://…` (created, migrated) or `redis://…`. `heartbeat` is how often
    /// workers report alive; a worker silent for two beats has its jobs taken over.
    pub async fn connect(
        url: &str,
        heartbeat: Duration,
        ca: Option<&TrustedCa>,
    ) -> Result<Self, QueueError> {
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(|e| QueueError(format!("invalid queue URL: {e}")))?
                .create_if_missing(true)
                .busy_timeout(Duration::from_secs(10));
            if let Some(dir) = options
                .get_filename()
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
            {
                std::fs::create_dir_all(dir)
                    .map_err(|e| QueueError(format!("cannot create {}: {e}", dir.display())))?;
            }
            // A file this process holds open: no round trip to check a connection
            // before each statement (sqlx's default), nothing can have dropped it.
            let pool = SqlitePoolOptions::new()
                .test_before_acquire(false)
                .max_connections(4)
                .connect_with(options)
                .await
                .map_err(|e| QueueError(format!("cannot open the SQLite queue: {e}")))?;
            SqliteStorage::setup(&pool)
                .await
                .map_err(|e| QueueError(format!("cannot prepare the SQLite queue: {e}")))?;
            let config = apalis_sqlite::Config::default()
                .queue(QUEUE_NAME)
                .heartbeat_interval(heartbeat);
            Ok(Queue::Sqlite(
                SqliteStorage::new(&pool).with_config(config),
                Wakers::default(),
            ))
        } else {
            // rediss:// is verified against the system's roots, and the private CA's when
            // one is configured.
            let client = match ca {
                Some(ca) if url.starts_with("rediss:") => redis::Client::build_with_tls(
                    url,
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(ca.with_system_roots()),
                    },
                ),
                _ => redis::Client::open(url),
            }
            .map_err(|e| QueueError(format!("invalid queue URL: {e}")))?;
            // One plain attempt first, so that a refusal (a certificate that does not
            // verify, a password) is reported as itself rather than as a timeout of the
            // manager's retries.
            tokio::time::timeout(CALL_TIMEOUT, client.get_multiplexed_async_connection())
                .await
                .map_err(|_| QueueError("Redis did not answer in time".into()))?
                .map_err(|e| QueueError(format!("cannot connect to Redis: {e}")))?;
            let conn = tokio::time::timeout(CALL_TIMEOUT, client.get_connection_manager())
                .await
                .map_err(|_| QueueError("Redis did not answer in time".into()))?
                .map_err(|e| QueueError(format!("cannot connect to Redis: {e}")))?;
            let config = apalis_redis::Config::default()
                .queue(QUEUE_NAME)
                .heartbeat_interval(heartbeat);
            Ok(Queue::Redis(
                RedisStorage::new(conn).with_config(config),
                Wakers::default(),
            ))
        }
    }

    /// Puts a job on the queue, to run after `delay` when given.
    pub async fn push(
        &self,
        envelope: Envelope,
        delay: Option<Duration>,
    ) -> Result<(), QueueError> {
        let mut task = TaskBuilder::new(envelope);
        if let Some(delay) = delay {
            task = task.run_after(delay);
        }
        let task = task.build();
        let pushed = match self {
            Queue::Sqlite(storage, _) => {
                let mut storage = storage.clone();
                tokio::time::timeout(CALL_TIMEOUT, async move {
                    storage.push_task(task).await.map_err(|e| e.to_string())
                })
                .await
            }
            Queue::Redis(storage, _) => {
                let mut storage = storage.clone();
                tokio::time::timeout(CALL_TIMEOUT, async move {
                    storage.push_task(task).await.map_err(|e| e.to_string())
                })
                .await
            }
        };
        match pushed {
            Ok(Ok(())) => {
                self.wakers().wake();
                Ok(())
            }
            Ok(Err(e)) => Err(QueueError(format!("the queue refused the job: {e}"))),
            Err(_) => Err(QueueError("the queue did not answer in time".into())),
        }
    }

    /// Jobs waiting on the queue (due or scheduled for a retry) and jobs running, as
    /// the queue backend counts them.
    pub async fn depth(&self) -> Result<QueueDepth, QueueError> {
        let stats = match self {
            Queue::Sqlite(storage, _) => {
                tokio::time::timeout(CALL_TIMEOUT, storage.fetch_by_queue())
                    .await
                    .map(|r| r.map_err(|e| e.to_string()))
            }
            Queue::Redis(storage, _) => {
                tokio::time::timeout(CALL_TIMEOUT, storage.fetch_by_queue())
                    .await
                    .map(|r| r.map_err(|e| e.to_string()))
            }
        };
        let stats = match stats {
            Ok(Ok(stats)) => stats,
            Ok(Err(e)) => return Err(QueueError(format!("cannot count the queue: {e}"))),
            Err(_) => return Err(QueueError("the queue did not answer in time".into())),
        };
        let count = |title: &str| {
            stats
                .iter()
                .find(|s| s.title == title)
                .and_then(|s| s.value.parse::<f64>().ok())
                .map_or(0, |v| v.max(0.0) as u64)
        };
        Ok(QueueDepth {
            pending: count("PENDING_JOBS"),
            running: count("RUNNING_JOBS"),
        })
    }

    /// A connection to the queue's Redis, for other shared state (rate limits).
    pub fn redis(&self) -> Option<ConnectionManager> {
        match self {
            Queue::Redis(storage, _) => Some(storage.clone().get_connection().clone()),
            Queue::Sqlite(..) => None,
        }
    }

    /// The workers of this process that pushes wake.
    pub fn wakers(&self) -> &Wakers {
        match self {
            Queue::Sqlite(_, wakers) | Queue::Redis(_, wakers) => wakers,
        }
    }

    /// Whether the queue backend answers.
    pub async fn ping(&self) -> Result<(), QueueError> {
        let answered = match self {
            Queue::Sqlite(storage, _) => {
                let pool = storage.pool().clone();
                tokio::time::timeout(CALL_TIMEOUT, async move {
                    sqlx::query("SELECT 1")
                        .execute(&pool)
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                })
                .await
            }
            Queue::Redis(storage, _) => {
                let mut conn: ConnectionManager = storage.clone().get_connection().clone();
                tokio::time::timeout(CALL_TIMEOUT, async move {
                    redis::cmd("PING")
                        .query_async::<String>(&mut conn)
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                })
                .await
            }
        };
        match answered {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(QueueError(e)),
            Err(_) => Err(QueueError("the queue did not answer in time".into())),
        }
    }
}
