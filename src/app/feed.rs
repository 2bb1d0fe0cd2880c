//! The change feed of request statuses. The store pushes each change at its commit (in
//! process on SQLite; through LISTEN/NOTIFY from every process on PostgreSQL) and one task
//! per process hands it to this process's subscribers. The events table is read only to
//! catch up: when the push channel listens again after losing its connection, when the
//! feed fell behind, and on an SQLite API node whose workers run in another process (which
//! cannot push to it), every `catch_up_every`.

use crate::domain::AccountRequest;
use crate::store::{Pushed, RequestChange, Store, StoreResult};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;
use tokio::sync::broadcast::{self, error::RecvError};

/// Changes buffered per subscriber before a slow one starts missing some.
const BUFFER: usize = 1024;
/// Events read back behind the newest seen when catching up, so that one committed late
/// on PostgreSQL (identities are handed out before commit) is still delivered, once.
const LOOKBACK: i64 = 64;
/// Event ids remembered behind the newest, so that one both read and pushed goes out once.
const REMEMBERED: i64 = 4096;
/// Events read per step of catching up.
const PAGE: i64 = 500;

/// A change as handed to subscribers, with its request read once for all of them.
#[derive(Debug, Clone)]
pub struct LiveChange {
    pub change: RequestChange,
    /// The request as read after the change (`None` when it could not be read: each
    /// subscriber reads it then).
    pub request: Option<Arc<AccountRequest>>,
}

pub struct RequestFeed {
    sender: broadcast::Sender<LiveChange>,
    started: OnceCell<()>,
}

impl Default for RequestFeed {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(BUFFER).0,
            started: OnceCell::new(),
        }
    }
}

impl RequestFeed {
    /// Starts the feed (once; later calls return at once): from when this returns, every
    /// change committed reaches the receivers.
    pub async fn start(
        &self,
        store: &Arc<dyn Store>,
        catch_up_every: Option<Duration>,
    ) -> StoreResult<()> {
        self.started
            .get_or_try_init(|| async {
                let pushes = store.request_pushes().await?;
                let start = store.last_request_event().await?;
                tokio::spawn(relay(
                    store.clone(),
                    pushes,
                    self.sender.clone(),
                    Seen::after(start),
                    catch_up_every,
                ));
                Ok(())
            })
            .await
            .map(|_| ())
    }

    /// The changes handed out from now on (once the feed is started).
    pub fn receiver(&self) -> broadcast::Receiver<LiveChange> {
        self.sender.subscribe()
    }
}

/// The changes handed out already, so that none goes out twice.
struct Seen {
    /// Events up to this one came before the feed started.
    start: i64,
    newest: i64,
    recent: BTreeSet<i64>,
}

impl Seen {
    fn after(start: i64) -> Self {
        Self {
            start,
            newest: start,
            recent: BTreeSet::new(),
        }
    }

    /// Whether `change` is news; it no longer is afterwards.
    fn news(&mut self, change: &RequestChange) -> bool {
        if change.event_id <= self.start || !self.recent.insert(change.event_id) {
            return false;
        }
        self.newest = self.newest.max(change.event_id);
        if self.recent.len() as i64 > 2 * REMEMBERED {
            self.recent = self.recent.split_off(&(self.newest - REMEMBERED));
        }
        true
    }
}

/// Hands pushed changes to the subscribers; reads the table when told to catch up.
async fn relay(
    store: Arc<dyn Store>,
    mut pushes: broadcast::Receiver<Pushed>,
    sender: broadcast::Sender<LiveChange>,
    mut seen: Seen,
    catch_up_every: Option<Duration>,
) {
    let mut tick = catch_up_every.map(|every| {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick
    });
    loop {
        let catch_up = tokio::select! {
            pushed = pushes.recv() => match pushed {
                Ok(Pushed::Change(change)) => {
                    if seen.news(&change) {
                        hand_out(&*store, &sender, change).await;
                    }
                    false
                }
                Ok(Pushed::Resync) => true,
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "the request feed fell behind its pushes; reading them");
                    true
                }
                Err(RecvError::Closed) => return,
            },
            _ = async { tick.as_mut()?.tick().await; Some(()) }, if tick.is_some() => true,
        };
        if catch_up {
            catch_up_from_table(&*store, &sender, &mut seen).await;
        }
    }
}

/// Hands out the changes recorded since the newest seen (and a little before it).
async fn catch_up_from_table(
    store: &dyn Store,
    sender: &broadcast::Sender<LiveChange>,
    seen: &mut Seen,
) {
    let mut after = seen.newest.saturating_sub(LOOKBACK).max(0);
    loop {
        let changes = match store.request_changes(after, PAGE).await {
            Ok(changes) => changes,
            Err(err) => {
                // The next push, interruption or tick tries again.
                tracing::warn!(error = %err, "request feed cannot read changes");
                return;
            }
        };
        let full = changes.len() as i64 == PAGE;
        for change in changes {
            after = change.event_id;
            if seen.news(&change) {
                hand_out(store, sender, change).await;
            }
        }
        if !full {
            return;
        }
    }
}

/// Hands a change to every subscriber of the process, with its request read once.
async fn hand_out(
    store: &dyn Store,
    sender: &broadcast::Sender<LiveChange>,
    change: RequestChange,
) {
    if sender.receiver_count() == 0 {
        return;
    }
    let request = match store.request_anywhere(change.request_id).await {
        Ok(request) => request.map(Arc::new),
        Err(err) => {
            tracing::warn!(error = %err, "request feed cannot read a changed request");
            None
        }
    };
    // No subscriber at the moment is fine.
    let _ = sender.send(LiveChange { change, request });
}
