//! Open WebSocket connections watch their sessions: one task per process asks the store
//! every few seconds which of the watched sessions are still live, in batches, and tells
//! the connections whose session ended (logout, revocation, a password change, an
//! inactivation, idle or absolute expiry, on any node) so that they close.

use crate::domain::SessionId;
use crate::domain::clock::Clock;
use crate::store::Store;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;
use tokio::sync::watch;

/// How often live sessions are checked: a session that ends is noticed within this.
pub const CHECK_EVERY: Duration = Duration::from_secs(2);
/// Session IDs asked about in one statement.
const BATCH: usize = 500;

#[derive(Default)]
pub struct SessionWatch {
    watched: Mutex<HashMap<SessionId, Watched>>,
    started: OnceLock<()>,
}

struct Watched {
    connections: usize,
    ended: watch::Sender<bool>,
}

/// A connection's interest in its session; dropping it stops the watching.
pub struct Watching {
    session: SessionId,
    watch: Arc<SessionWatch>,
    pub ended: watch::Receiver<bool>,
}

impl Drop for Watching {
    fn drop(&mut self) {
        let mut watched = self.watch.lock();
        if let Some(entry) = watched.get_mut(&self.session) {
            entry.connections -= 1;
            if entry.connections == 0 {
                watched.remove(&self.session);
            }
        }
    }
}

impl SessionWatch {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, Watched>> {
        self.watched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Watches a session until the returned guard is dropped.
    pub fn watch(
        self: &Arc<Self>,
        session: SessionId,
        store: &Arc<dyn Store>,
        idle: Duration,
        clock: Clock,
    ) -> Watching {
        self.started.get_or_init(|| {
            tokio::spawn(check_loop(Arc::downgrade(self), store.clone(), idle, clock));
        });
        let mut watched = self.lock();
        let entry = watched.entry(session).or_insert_with(|| Watched {
            connections: 0,
            ended: watch::channel(false).0,
        });
        entry.connections += 1;
        Watching {
            session,
            watch: self.clone(),
            ended: entry.ended.subscribe(),
        }
    }

    /// Tells the connections of a session that it ended (this process saw it end).
    pub fn ended(&self, session: SessionId) {
        if let Some(entry) = self.lock().remove(&session) {
            let _ = entry.ended.send(true);
        }
    }
}

async fn check_loop(
    watch: Weak<SessionWatch>,
    store: Arc<dyn Store>,
    idle: Duration,
    clock: Clock,
) {
    loop {
        tokio::time::sleep(CHECK_EVERY).await;
        let Some(watch) = watch.upgrade() else { return };
        let ids: Vec<SessionId> = watch.lock().keys().copied().collect();
        for chunk in ids.chunks(BATCH) {
            match store.live_sessions(chunk, clock.now(), idle).await {
                Ok(live) => {
                    for id in chunk.iter().filter(|id| !live.contains(id)) {
                        watch.ended(*id);
                    }
                }
                Err(err) => tracing::warn!(error = %err, "cannot check open sessions"),
            }
        }
    }
}
