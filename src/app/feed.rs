//! The change feed of request statuses. One poller per process reads the request events
//! that any process recorded (API nodes and workers alike) and broadcasts them to this
//! process's subscribers; it starts with the first subscriber, from the newest event that
//! subscriber saw recorded, so that nothing after it is missed.

use crate::store::{RequestChange, Store, StoreResult};
use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::broadcast;

/// Changes buffered per subscriber before a slow one starts missing some.
const BUFFER: usize = 1024;
/// Events read back behind the newest seen, so that one committed late on PostgreSQL
/// (identities are handed out before commit) is still delivered, once.
const LOOKBACK: i64 = 64;

pub struct RequestFeed {
    sender: broadcast::Sender<RequestChange>,
    started: OnceLock<()>,
    interval: Duration,
}

impl RequestFeed {
    pub fn new(interval: Duration) -> Self {
        Self {
            sender: broadcast::channel(BUFFER).0,
            started: OnceLock::new(),
            interval,
        }
    }

    /// Changes from now on, and the newest event already recorded: every event after it
    /// reaches the receiver. The poller starts on first use, from that event.
    pub async fn subscribe(
        &self,
        store: &Arc<dyn Store>,
    ) -> StoreResult<(broadcast::Receiver<RequestChange>, i64)> {
        let receiver = self.sender.subscribe();
        let newest = store.last_request_event().await?;
        self.started.get_or_init(|| {
            tokio::spawn(poll(
                store.clone(),
                self.sender.clone(),
                self.interval,
                newest,
            ));
        });
        Ok((receiver, newest))
    }
}

async fn poll(
    store: Arc<dyn Store>,
    sender: broadcast::Sender<RequestChange>,
    interval: Duration,
    start: i64,
) {
    // Only events recorded after the feed started are news.
    let mut newest = start;
    let mut seen: BTreeSet<i64> = BTreeSet::new();
    loop {
        tokio::time::sleep(interval).await;
        let after = newest.saturating_sub(LOOKBACK).max(0);
        let changes = match store.request_changes(after, 500).await {
            Ok(changes) => changes,
            Err(err) => {
                tracing::warn!(error = %err, "request feed cannot read changes");
                continue;
            }
        };
        for change in changes {
            if change.event_id > start && seen.insert(change.event_id) {
                newest = newest.max(change.event_id);
                // No subscriber at the moment is fine.
                let _ = sender.send(change);
            }
        }
        let horizon = newest.saturating_sub(LOOKBACK);
        seen = seen.split_off(&horizon);
    }
}
