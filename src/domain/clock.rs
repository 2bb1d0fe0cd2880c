//! The time the app goes by: the system's, moved forward on purpose only by tests that
//! prove a default lifetime (a 15-minute lock, a 72-hour setup link) without waiting it.

use super::Timestamp;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// The system clock plus an offset that only ever grows.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    ahead_micros: Arc<AtomicI64>,
}

impl Clock {
    /// The current time at storage precision.
    pub fn now(&self) -> Timestamp {
        super::now() + chrono::TimeDelta::microseconds(self.ahead_micros.load(Ordering::Relaxed))
    }

    /// Moves this clock (and every copy of it) forward.
    pub fn advance(&self, by: std::time::Duration) {
        let micros = i64::try_from(by.as_micros()).unwrap_or(i64::MAX);
        self.ahead_micros.fetch_add(micros, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_advanced_clock_runs_ahead_in_every_copy() {
        let clock = Clock::default();
        let copy = clock.clone();
        clock.advance(std::time::Duration::from_secs(3600));
        let ahead = copy.now() - super::super::now();
        assert!(ahead >= chrono::TimeDelta::minutes(59), "{ahead}");
    }
}
