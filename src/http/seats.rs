//! The live WebSocket connections of a node, counted in all and per user, so that
//! neither a node nor one user can hold more than the limits allow.

use crate::domain::UserId;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

/// The live connections of this node, in all and per user.
pub struct Sockets {
    open: AtomicUsize,
    per_user: std::sync::Mutex<std::collections::HashMap<UserId, usize>>,
    gauge: prometheus::IntGauge,
}

impl Sockets {
    pub fn new(gauge: prometheus::IntGauge) -> Self {
        Self {
            open: AtomicUsize::new(0),
            per_user: Default::default(),
            gauge,
        }
    }

    fn users(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<UserId, usize>> {
        self.per_user.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One connection's place among the node's and its user's; given back when dropped.
pub(super) struct Seat {
    sockets: Arc<Sockets>,
    user: OnceLock<UserId>,
}

impl Seat {
    /// A place on the node, or `None` when it holds `max` already.
    pub(super) fn take(sockets: &Arc<Sockets>, max: usize) -> Option<Seat> {
        let taken = sockets
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok();
        taken.then(|| {
            sockets.gauge.inc();
            Seat {
                sockets: sockets.clone(),
                user: OnceLock::new(),
            }
        })
    }

    /// Counts the connection as `user`'s, unless they hold `max` already.
    pub(super) fn of_user(&self, user: UserId, max: usize) -> bool {
        let mut users = self.sockets.users();
        let held = users.entry(user).or_default();
        if *held >= max || self.user.set(user).is_err() {
            return false;
        }
        *held += 1;
        true
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.sockets.open.fetch_sub(1, Ordering::AcqRel);
        self.sockets.gauge.dec();
        if let Some(user) = self.user.get() {
            let mut users = self.sockets.users();
            if let Some(held) = users.get_mut(user) {
                *held -= 1;
                if *held == 0 {
                    users.remove(user);
                }
            }
        }
    }
}
